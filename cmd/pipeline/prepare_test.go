package main

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth"
)

// train --input prepares the cases' slides through the runner (tile,
// embed, anchors; state.json recorded; a second run skips them) and then
// trains; --input with an encoder name instead of a file is a usage error.
func TestTrainPreparesCases(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	crashEnv(t) // skips without ONNX Runtime
	dir := t.TempDir()
	slides := filepath.Join(dir, "slides")
	os.MkdirAll(slides, 0o755)
	var csv strings.Builder
	csv.WriteString("case_id,he_slide,ihc_slide,label,split\n")
	for i := 0; i < 4; i++ {
		for _, kind := range []string{"he", "ihc"} {
			o := synth.SlideOptions{Width: 2048, Height: 2048, MPP: 0.5, Aperio: true, Pyramid: true, Stain: kind, Seed: uint64(10*i + len(kind)),
				Tissue: []image.Rectangle{image.Rect(256, 256, 1792, 1792)}}
			if err := synth.WriteSlide(filepath.Join(slides, fmt.Sprintf("%s%d.svs", kind, i)), o); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&csv, "c%d,he%d,ihc%d,%d,train\n", i, i, i, i)
	}
	cs := filepath.Join(dir, "cases.csv")
	os.WriteFile(cs, []byte(csv.String()), 0o644)
	work := filepath.Join(dir, "work")
	enc, _ := filepath.Abs(filepath.Join("..", "..", "features", "testdata", "encoders", "tiny-clip.onnx"))
	cfg, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "demo-model.json"))
	args := []string{"train", "--cases", cs, "--work", work, "--out", filepath.Join(dir, "run"), "--encoder", enc,
		"--input", slides, "--model-config", cfg, "--epochs", "1", "--val-fold", "-1", "--log-format", "json"}
	if code := run(args); code != exitOK {
		t.Fatalf("train --input: exit %d", code)
	}
	w := pipeline.Work{Dir: work}
	for i := 0; i < 4; i++ {
		for _, id := range []string{fmt.Sprintf("he%d", i), fmt.Sprintf("ihc%d", i)} {
			st, err := w.ReadState(id)
			if err != nil || st.Stages[pipeline.StageEmbed].Status != "done" || st.Stages[pipeline.StageAnchors].Status != "done" {
				t.Fatalf("%s: state %+v %v", id, st, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"train", "--cases", cs, "--work", work, "--out", filepath.Join(dir, "run2"), "--features", "tiny-clip",
		"--input", slides, "--model-config", cfg, "--epochs", "1"}); code != exitUsage {
		t.Fatalf("--input with a features name: exit %d, want %d", code, exitUsage)
	}
}
