package main

import (
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.svs")
	if err := synth.WriteSlide(good, synth.SlideOptions{Width: 2048, Height: 2048, MPP: 0.5, Aperio: true, Pyramid: true,
		Tissue: []image.Rectangle{image.Rect(256, 256, 1280, 1280)}}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.svs")
	os.WriteFile(bad, []byte("nope"), 0o644)
	work := filepath.Join(dir, "work")
	enc, _ := filepath.Abs(filepath.Join("..", "..", "features", "testdata", "encoders", "tiny-clip.onnx"))
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"no args", nil, exitUsage},
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"info good", []string{"info", good}, exitOK},
		{"info json", []string{"info", "--json", good}, exitOK},
		{"info bad", []string{"info", good, bad}, exitFailed},
		{"info no slide", []string{"info"}, exitUsage},
		{"tile good", []string{"tile", "--input", good, "--out", work, "--log-format", "json"}, exitOK},
		{"tile good+bad", []string{"tile", "--out", work, good, bad}, exitFailed},
		{"tile missing out", []string{"tile", "--input", good}, exitUsage},
		{"tile bad flag value", []string{"tile", "--input", good, "--out", work, "--min-tissue", "2"}, exitUsage},
		{"tile unknown flag", []string{"tile", "--bogus"}, exitUsage},
		{"tile missing input", []string{"tile", "--input", filepath.Join(dir, "nope"), "--out", work}, exitUsage},
		{"version", []string{"version"}, exitOK},
		{"embed absurd batch", []string{"run", "--stage", "embed", "--input", good, "--out", work, "--encoder", enc, "--batch", "100000000"}, exitUsage},
		{"embed no readers", []string{"run", "--stage", "embed", "--input", good, "--out", work, "--encoder", enc, "--readers", "0"}, exitUsage},
		{"watch absurd batch", []string{"watch", "--inbox", dir, "--out", work, "--encoder", enc, "--model", dir, "--batch", "100000000"}, exitUsage},
		{"watch no readers", []string{"watch", "--inbox", dir, "--out", work, "--encoder", enc, "--model", dir, "--readers", "0"}, exitUsage},
		{"negative workers", []string{"run", "--stage", "tile", "--input", good, "--out", work, "--workers", "-1"}, exitUsage},
		{"compare one variant", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir, "--variants", "ipca"}, exitUsage},
		{"compare unknown variant", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir, "--variants", "ipca,nope"}, exitUsage},
		{"compare variant-config not compared", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir, "--variant-config", "transmil=x.json"}, exitUsage},
		{"compare variant-config no file", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir, "--variant-config", "transmil"}, exitUsage},
		{"compare variant-config unknown variant", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir, "--variant-config", "nope=x.json"}, exitUsage},
		{"compare bad pairs", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir, "--pairs", "some"}, exitUsage},
		{"compare cv 1", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir, "--cv", "1"}, exitUsage},
		{"compare no out", []string{"compare", "--cases", bad, "--work", work, "--features", "f"}, exitUsage},
		{"compare bad cases file", []string{"compare", "--cases", bad, "--work", work, "--features", "f", "--out", dir}, exitFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := run(c.args); got != c.want {
				t.Errorf("run(%v) = %d, want %d", c.args, got, c.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(work, "slides", "good", "slide.json")); err != nil {
		t.Errorf("tile did not write slide.json: %v", err)
	}

	// A slide held by another live process: not done, and not a success.
	l, err := pipeline.AcquireLock(pipeline.Work{Dir: work}, "good", pipeline.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if got := run([]string{"tile", "--force", "--input", good, "--out", work}); got != exitLocked {
		t.Errorf("tile of a locked slide: exit %d, want %d", got, exitLocked)
	}
}
