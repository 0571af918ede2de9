package pipeline

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/synth"
)

// BenchmarkEmbedStage measures the embed stage with a full-size encoder
// (the random-weight ViT-B/32 of `make vit-model`, or $HER2WSI_BENCH_ENCODER)
// on a generated 40× slide against the ceiling: ONNX Runtime alone running
// pre-made batches of the same size on the same session. The two alternate
// in rounds; the ratio is stage/ceiling. Also reports peak RSS.
//
// HER2WSI_BENCH_DEVICE (cpu, cuda, ...), HER2WSI_BENCH_BATCH and
// HER2WSI_BENCH_PATCHES adjust it (the GPU check uses batch 256).
func BenchmarkEmbedStage(b *testing.B) {
	model := os.Getenv("HER2WSI_BENCH_ENCODER")
	if model == "" {
		model = filepath.Join("..", ".cache", "models", "vit-b32-random.onnx")
	}
	if _, err := os.Stat(model); err != nil {
		b.Skipf("encoder %s missing: run `make vit-model`", model)
	}
	device := envOr("HER2WSI_BENCH_DEVICE", "cpu")
	batch := envInt("HER2WSI_BENCH_BATCH", 32)
	want := envInt("HER2WSI_BENCH_PATCHES", 512)
	enc, err := features.Open(model, features.Options{Device: device})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()

	// A 40× slide (levels 1, 4, 16; no 20× level) whose tissue gives about
	// `want` patches of 512 px at level 0.
	dir := b.TempDir()
	side := 512 * 16
	rows := (want + 15) / 16
	p := filepath.Join(dir, "bench-embed.svs")
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: side, Height: 512 * (rows + 2), MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true,
		Tissue: []image.Rectangle{image.Rect(0, 512, side, 512*(rows+1))}}); err != nil {
		b.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	ins := []Input{{Path: p, ID: "bench-embed"}}
	if s := TileAll(context.Background(), ins, work, DefaultTileOptions(), 1, nil); s.Failed > 0 {
		b.Fatal(s.Results[0].Err)
	}
	rec, _ := work.ReadSlideRecord("bench-embed")
	n := rec.NumPatches

	// The ceiling: the same number of samples in pre-made full batches.
	fb, err := enc.NewBatch(batch)
	if err != nil {
		b.Fatal(err)
	}
	defer fb.Close()
	prep := enc.NewPreparer()
	patch := raster.New(enc.PatchSize(), enc.PatchSize())
	for i := range patch.Pix {
		patch.Pix[i] = uint8(i * 31)
	}
	for s := 0; s < batch; s++ {
		if err := prep.Prepare(patch, fb, s); err != nil {
			b.Fatal(err)
		}
	}
	ceiling := func() time.Duration {
		t0 := time.Now()
		for done := 0; done < n; done += batch {
			fb.N = min(batch, n-done)
			if _, err := enc.Run(fb); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	opt := DefaultEmbedOptions()
	opt.Batch = batch
	if r := envInt("HER2WSI_BENCH_READERS", 0); r > 0 {
		opt.Readers = r
	}
	stage := func() time.Duration {
		t0 := time.Now()
		s, err := EmbedAll(context.Background(), ins, work, enc, opt, nil)
		if err != nil || s.Done != 1 {
			b.Fatalf("embed: %v %+v", err, s.Results)
		}
		return time.Since(t0)
	}
	ceiling() // warm up the session
	b.ResetTimer()
	tStage, tCeil := alternate(b, 2, stage, ceiling)
	b.StopTimer()
	total := float64(2 * n * b.N)
	sr, cr := total/tStage.Seconds(), total/tCeil.Seconds()
	b.ReportMetric(sr, "stage_patches/s")
	b.ReportMetric(cr, "ort_patches/s")
	b.ReportMetric(sr/cr, "ratio")
	b.ReportMetric(testutil.PeakRSSMB(), "peak_RSS_MB")
	b.ReportMetric(0, "ns/op")
	fmt.Fprintf(os.Stderr, "embed bench: %d patches, batch %d, device %s, encoder %s\n", n, batch, enc.Device(), filepath.Base(model))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
