package pipeline

import (
	"context"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
)

// cosines returns the per-row cosine similarity of two N×d feature sets:
// the smallest and the mean.
func cosines(a, b []float32, d int) (lo, mean float64) {
	lo = 1
	n := len(a) / d
	for i := 0; i < n; i++ {
		var ab, aa, bb float64
		for k := i * d; k < (i+1)*d; k++ {
			ab += float64(a[k]) * float64(b[k])
			aa += float64(a[k]) * float64(a[k])
			bb += float64(b[k]) * float64(b[k])
		}
		c := ab / math.Sqrt(aa*bb)
		lo = min(lo, c)
		mean += c
	}
	return lo, mean / float64(n)
}

// --scaled-decode is part of the embed stage's key: switching it redoes
// the embedding, switching back redoes it again; the features of the two
// read paths agree (cosine ≥ 0.99 per patch with the test encoder).
func TestEmbedScaledDecodeKeyAndFeatures(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s40.svs")
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: 6144, Height: 4096, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true,
		Tissue: []image.Rectangle{image.Rect(500, 400, 4700, 3500)}}); err != nil {
		t.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	ins := []Input{{Path: p, ID: "s40"}}
	tileAll(t, work, ins)
	enc := testEncoder(t, "tiny-clip.onnx")
	feats := map[bool][]float32{}
	run := func(scaled bool) Summary {
		opt := DefaultEmbedOptions()
		opt.ScaledDecode = scaled
		r := &Runner{Work: work, Stages: []Stage{NewEmbedStage(work, enc, opt)}}
		rep, err := r.Run(context.Background(), ins, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sum, _ := rep.Summary(StageEmbed)
		if sum.Done == 1 {
			f, _, _ := readFeatures(t, work.FeaturesH5("s40", "tiny-clip"))
			feats[scaled] = f
		}
		return sum
	}
	for i, c := range []struct {
		scaled bool
		done   bool
	}{{true, true}, {true, false}, {false, true}, {false, false}, {true, true}} {
		if s := run(c.scaled); (s.Done == 1) != c.done || s.Done+s.Skipped != 1 {
			t.Fatalf("run %d (scaled %v): %+v, want done %v", i, c.scaled, s, c.done)
		}
	}
	lo, mean := cosines(feats[true], feats[false], enc.Dim())
	t.Logf("tiny-clip, %d patches: cosine scaled vs exact min %.5f mean %.5f", len(feats[true])/enc.Dim(), lo, mean)
	if lo < 0.99 {
		t.Errorf("cosine %.4f, want ≥ 0.99", lo)
	}
}

// The change in embeddings of the random-weight ViT-B/32 (PLIP's shape,
// `make vit-model`), patch by patch, on a generated 40× slide and on the
// real CMU slide (read as if 40×: 512 px halved); skipped without the model.
func TestScaledDecodeViTCosine(t *testing.T) {
	model := filepath.Join("..", ".cache", "models", "vit-b32-random.onnx")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("%s missing: run `make vit-model`", model)
	}
	if testing.Short() {
		t.Skip("ViT-B/32 on the CPU")
	}
	enc, err := features.Open(model, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dir := t.TempDir()
	gen := filepath.Join(dir, "g40.svs")
	if err := synth.WriteSlide(gen, synth.SlideOptions{Width: 8192, Height: 4096, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true,
		Tissue: []image.Rectangle{image.Rect(0, 0, 8192, 4096)}}); err != nil {
		t.Fatal(err)
	}
	paths := []string{gen}
	if testutil.SharedDataRoot() != "" {
		paths = append(paths, filepath.Join(testutil.SharedData(t, "openslide-cmu-1-small-region-svs"), "CMU-1-Small-Region.svs"))
	}
	for _, p := range paths {
		var both [2][]*raster.RGB
		for k, no := range []bool{false, true} {
			s, err := slide.Open(p, slide.Options{NoScaledDecode: no})
			if err != nil {
				t.Fatal(err)
			}
			if s.ScaledDecoding(0, 2) == no {
				t.Fatalf("%s: scaled decoding %v with NoScaledDecode %v", p, !no, no)
			}
			// A step of 520: the generated texture repeats every 512 px,
			// so patches on the 512 grid would all be alike.
			l0 := s.Meta.Levels[0]
			for y := 0; y+512 <= int(l0.Height) && len(both[k]) < 32; y += 520 {
				for x := 0; x+512 <= int(l0.Width) && len(both[k]) < 32; x += 520 {
					m := raster.New(256, 256)
					if err := s.ReadRegionBoxInto(0, x, y, 2, m); err != nil {
						t.Fatal(err)
					}
					both[k] = append(both[k], m)
				}
			}
			s.Close()
		}
		a, err := features.Embed(enc, both[0], 16)
		if err != nil {
			t.Fatal(err)
		}
		b, err := features.Embed(enc, both[1], 16)
		if err != nil {
			t.Fatal(err)
		}
		lo, mean := cosines(a, b, enc.Dim())
		// For scale: how alike this random-weight model finds two
		// different patches (each exact patch against the next one).
		d := enc.Dim()
		nb, _ := cosines(b[:len(b)-d], b[d:], d)
		t.Logf("%s, ViT-B/32 random, %d patches: cosine scaled vs exact min %.6f mean %.6f (1-cos %.2g); neighbouring different patches min %.6f (1-cos %.2g)",
			filepath.Base(p), len(both[0]), lo, mean, 1-lo, nb, 1-nb)
		if lo < 0.99 {
			t.Errorf("%s: cosine %.4f, want ≥ 0.99", filepath.Base(p), lo)
		}
	}
}
