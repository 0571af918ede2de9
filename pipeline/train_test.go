package pipeline_test

// Tests here build on generated case sets: synth/caseset imports pipeline,
// so they live in the external test package.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/model/metrics"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth/caseset"
)

// The chain on generated cases: train with cross-validation (fold folders,
// mean ± std, final model, test metrics, ROC picture), then H&E-only
// prediction of slides from the run folder into predictions.csv with
// heatmaps; a rerun replaces those slides' rows and keeps the others.
func TestTrainCVAndPredict(t *testing.T) {
	opt := caseset.DefaultOptions()
	opt.Cases, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.Folds = 16, 16, 60, 120, 2
	work, cs := generatedCases(t, opt)
	c := fixture.SmallModel(model.VariantIPCA)
	rt := testRuntime(t, c)
	tc := model.DefaultTrainConfig()
	tc.Epochs, tc.EffectiveBatch, tc.LR = 2, 4, 1e-3
	out := filepath.Join(t.TempDir(), "run")
	rep, err := pipeline.Train(context.Background(), pipeline.TrainOptions{Cases: cs, Work: work, Encoder: opt.Encoder, Model: c, Train: tc, Out: out, CV: 2, Sampling: "first", Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.CV) != 2 || rep.Test == nil || rep.Test.N == 0 {
		t.Fatalf("report: %d folds, test %+v", len(rep.CV), rep.Test)
	}
	for _, f := range []string{"fold0/model.safetensors", "fold1/validation/metrics.json", "model.safetensors", "config.json", "log.jsonl", "test/metrics.json", "test/roc.png", "test/predictions.csv", "report.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	var m metrics.Metrics
	b, _ := os.ReadFile(filepath.Join(out, "test", "metrics.json"))
	if err := json.Unmarshal(b, &m); err != nil || m.N != rep.Test.N {
		t.Fatalf("test/metrics.json: %v (n %d)", err, m.N)
	}

	lm, err := pipeline.OpenModel(out, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	var ins []pipeline.Input
	for _, c := range cs[:3] {
		ins = append(ins, pipeline.Input{ID: c.HE})
	}
	sum := pipeline.PredictAll(context.Background(), append(ins, pipeline.Input{ID: "no-such-slide"}), work, opt.Encoder, lm, nil)
	if sum.Done != 3 || sum.Failed != 1 {
		t.Fatalf("predict: %d done, %d failed; want 3 and 1", sum.Done, sum.Failed)
	}
	b, err = os.ReadFile(work.PredictionsCSV())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || lines[0] != fixture.PredictionsHeader || !strings.Contains(lines[1], lm.ID) {
		t.Fatalf("predictions.csv:\n%s", b)
	}
	for _, in := range ins {
		if _, err := os.Stat(work.HeatmapPNG(in.ID)); err != nil {
			t.Errorf("no heatmap for %s", in.ID)
		}
		checkAttentionJSON(t, work, in.ID)
	}
	// The run records that its slides were generated, and the reports of
	// its predictions say so, with the run folder and the test metrics.
	if d := rep.Data; !d.AllGenerated() || d.Slides != 2*opt.Cases || d.TrainCases+d.TestCases != opt.Cases || d.Generator != "synthcases/1" {
		t.Errorf("report.json data: %+v", d)
	}
	html, err := os.ReadFile(work.ReportHTML(ins[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<p id="generated" class="warn">Trained on generated data`, `<code id="model-run">` + out + `</code>`,
		fmt.Sprintf("%d held-out cases: macro-AUC %.3f", rep.Test.N, rep.Test.MacroAUC), fmt.Sprintf(`<td id="model-epochs">%d</td>`, rep.Epochs)} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// Rerun one slide: its row is replaced, the others kept.
	if s := pipeline.PredictAll(context.Background(), ins[:1], work, opt.Encoder, lm, nil); s.Done != 1 {
		t.Fatal("rerun failed")
	}
	b, _ = os.ReadFile(work.PredictionsCSV())
	if n := len(strings.Split(strings.TrimSpace(string(b)), "\n")); n != 4 {
		t.Fatalf("after rerun predictions.csv has %d lines, want 4", n)
	}
	// A weight file alone (with its embedded config) loads too.
	if _, err := pipeline.OpenModel("", filepath.Join(out, "model.safetensors"), "", ""); err != nil {
		t.Fatal(err)
	}
}
