package pipeline

import (
	"context"
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
	"github.com/her2wsi/her2wsi/tiling"
)

// Test inputs shared with watch's tests (see fixture).
var (
	testEncoder = fixture.Encoder     // a test encoder by file name, such as tiny-clip.onnx
	cellColour  = fixture.CellColour  // the colour of colourSlide's grid cell
	colourSlide = fixture.ColourSlide // a slide of distinctly coloured 256-px cells
	exists      = fixture.Exists
)

func tileAll(t *testing.T, work Work, ins []Input) {
	t.Helper()
	sum := TileAll(context.Background(), ins, work, DefaultTileOptions(), 2, nil)
	if sum.Failed > 0 {
		t.Fatalf("tiling failed: %+v", sum.Results)
	}
}

func readFeatures(t *testing.T, p string) ([]float32, []int64, int) {
	t.Helper()
	f, c, d, err := featfile.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	return f, c, d
}

// Row i of the feature file belongs to coordinate i: the tiny encoder's
// first three features are the patch's mean normalised colour, and every
// cell has its own colour. And each row equals the encoder run on the
// pixels read at that coordinate.
func TestEmbedRowsBelongToTheirCoordinates(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cells.tif")
	colourSlide(t, p, 6, 9)
	work := Work{Dir: filepath.Join(dir, "work")}
	ins := []Input{{Path: p, ID: "cells"}}
	tileAll(t, work, ins)
	enc := testEncoder(t, "tiny-clip.onnx")
	opt := DefaultEmbedOptions()
	opt.Batch, opt.Readers = 7, 3 // batches straddle rows; readers finish out of order
	sum, err := EmbedAll(context.Background(), ins, work, enc, opt, nil)
	if err != nil || sum.Done != 1 {
		t.Fatalf("embed: %v %+v", err, sum.Results)
	}
	feats, coords, dim := readFeatures(t, work.FeaturesH5("cells", "tiny-clip"))
	if len(coords) != 2*54 || dim != 8 {
		t.Fatalf("%d coords, dim %d", len(coords)/2, dim)
	}
	for i := 0; i < len(coords)/2; i++ {
		row, col := int(coords[2*i+1]/256), int(coords[2*i]/256)
		c := cellColour(row, col)
		for k := 0; k < 3; k++ {
			want := (float64(c[k])/255 - float64(features.CLIPMean[k])) / float64(features.CLIPStd[k])
			if got := float64(feats[i*dim+k]); math.Abs(got-want) > 1e-3 {
				t.Fatalf("row %d (cell %d,%d) channel %d: mean %g, want %g", i, row, col, k, got, want)
			}
		}
	}
	// Golden check: re-read three patches and run the encoder directly.
	s, err := slide.Open(p, slide.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec, _ := work.ReadSlideRecord("cells")
	pr := tiling.NewPatchReader(s, rec.Plan)
	for _, i := range []int{0, 25, 53} {
		patch := raster.New(256, 256)
		if err := pr.Read(coords[2*i], coords[2*i+1], patch); err != nil {
			t.Fatal(err)
		}
		want, err := features.Embed(enc, []*raster.RGB{patch}, 1)
		if err != nil {
			t.Fatal(err)
		}
		for k := range want {
			if math.Abs(float64(want[k]-feats[i*dim+k])) > 1e-6 {
				t.Fatalf("row %d feature %d: stage %g, direct %g", i, k, feats[i*dim+k], want[k])
			}
		}
	}
}

func TestEmbedSkipsAndRecomputes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.svs")
	// Tissue edges mid-cell, so the keep threshold changes the patch set.
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true,
		Tissue: []image.Rectangle{image.Rect(600, 600, 1700, 1500)}}); err != nil {
		t.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	ins := []Input{{Path: p, ID: "s"}}
	tileAll(t, work, ins)
	clip, raw := testEncoder(t, "tiny-clip.onnx"), testEncoder(t, "tiny-raw.onnx")
	run := func(enc features.Encoder, force bool) Summary {
		r := &Runner{Work: work, Stages: []Stage{NewEmbedStage(work, enc, DefaultEmbedOptions())}}
		rep, err := r.Run(context.Background(), ins, RunOptions{Force: force})
		if err != nil {
			t.Fatal(err)
		}
		sum, _ := rep.Summary(StageEmbed)
		return sum
	}
	if s := run(clip, false); s.Done != 1 {
		t.Fatalf("first run %+v", s)
	}
	if s := run(clip, false); s.Skipped != 1 {
		t.Fatalf("rerun not skipped: %+v", s)
	}
	if s := run(raw, false); s.Done != 1 {
		t.Fatalf("another encoder not computed: %+v", s)
	}
	if s := run(clip, true); s.Done != 1 {
		t.Fatalf("--force not recomputed: %+v", s)
	}
	// New tiling parameters change the coordinates: features are stale.
	opt := DefaultTileOptions()
	opt.Grid.MinTissue = 0.9
	if s := TileAll(context.Background(), ins, work, opt, 1, nil); s.Done != 1 {
		t.Fatalf("retile: %+v", s)
	}
	if s := run(clip, false); s.Done != 1 {
		t.Fatalf("changed coords not recomputed: %+v", s)
	}
	_, coords, _ := readFeatures(t, work.FeaturesH5("s", "tiny-clip"))
	rec, _ := work.ReadSlideRecord("s")
	if len(coords)/2 != rec.NumPatches || CoordsChecksum(coords) != rec.CoordsSHA256 {
		t.Errorf("features hold %d coords, slide.json %d", len(coords)/2, rec.NumPatches)
	}
}

// cancelAfter wraps an encoder and cancels the run after n batches.
type cancelAfter struct {
	features.Encoder
	n      atomic.Int32
	cancel context.CancelFunc
}

func (c *cancelAfter) Run(b *features.Batch) ([]float32, error) {
	if c.n.Add(-1) == 0 {
		c.cancel()
	}
	return c.Encoder.Run(b)
}

func TestEmbedCancelLeavesNothingPartial(t *testing.T) {
	dir := t.TempDir()
	var ins []Input
	for _, name := range []string{"a", "b"} {
		p := filepath.Join(dir, name+".svs")
		if err := synth.WriteSlide(p, synth.SlideOptions{Width: 8192, Height: 6144, MPP: 0.5, Aperio: true, Pyramid: true,
			Tissue: []image.Rectangle{image.Rect(0, 0, 8192, 6144)}}); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, Input{Path: p, ID: name})
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	tileAll(t, work, ins)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	enc := &cancelAfter{Encoder: testEncoder(t, "tiny-clip.onnx"), cancel: cancel}
	enc.n.Store(3)
	opt := DefaultEmbedOptions()
	opt.Batch = 16
	sum, err := EmbedAll(ctx, ins, work, enc, opt, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if sum.Interrupted != 2 || sum.Failed != 0 {
		t.Errorf("summary %+v: both slides should be reported interrupted, not failed", sum)
	}
	for _, in := range ins {
		fdir := filepath.Dir(work.FeaturesH5(in.ID, "tiny-clip"))
		entries, _ := os.ReadDir(fdir)
		for _, e := range entries {
			t.Errorf("%s: left %s after cancellation", in.ID, e.Name())
		}
	}
	// Every goroutine of the stage has ended.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// A slide whose file breaks between tiling and embedding fails alone.
func TestEmbedFailingSlideDoesNotStopOthers(t *testing.T) {
	dir := t.TempDir()
	var ins []Input
	for _, name := range []string{"good1", "broken", "good2", "untiled"} {
		p := filepath.Join(dir, name+".svs")
		if err := synth.WriteSlide(p, synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: gridTissue20}); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, Input{Path: p, ID: name})
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	tileAll(t, work, ins[:3])
	// Corrupt level 0 of "broken": noise over the middle of the file.
	b, _ := os.ReadFile(ins[1].Path)
	for i := len(b) / 4; i < len(b)/2; i++ {
		b[i] ^= 0x5a
	}
	os.WriteFile(ins[1].Path, b, 0o644)

	sum, err := EmbedAll(context.Background(), ins, work, testEncoder(t, "tiny-clip.onnx"), DefaultEmbedOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 2 || sum.Failed != 2 {
		t.Fatalf("summary %+v", sum)
	}
	for _, r := range sum.Results {
		_, statErr := os.Stat(work.FeaturesH5(r.ID, "tiny-clip"))
		switch r.ID {
		case "good1", "good2":
			if r.Err != nil || statErr != nil {
				t.Errorf("%s: %v %v", r.ID, r.Err, statErr)
			}
		case "broken":
			if r.Err == nil || !strings.Contains(r.Err.Error(), "broken.svs") || statErr == nil {
				t.Errorf("broken: err %v, file %v", r.Err, statErr)
			}
		case "untiled":
			if r.Err == nil || !strings.Contains(r.Err.Error(), "not tiled") {
				t.Errorf("untiled: %v", r.Err)
			}
		}
	}
}

func TestImportFeatures(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.svs")
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: gridTissue20}); err != nil {
		t.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	tileAll(t, work, []Input{{Path: p, ID: "s"}})
	rec, _ := work.ReadSlideRecord("s")
	ours, _ := work.ReadCoords("s", rec)
	n := len(ours) / 2

	// A TRIDENT-style file with the same patches in reverse order, D = 3,
	// feature row = (x, y, 1).
	mk := func(name string, coords []int64, feats []float32, attrs map[string]any) string {
		f := filepath.Join(dir, name)
		w, err := store.CreateH5(f)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteFloat32("features", feats, len(coords)/2, 3)
		w.WriteInt64("coords", coords, len(coords)/2, 2)
		for k, v := range attrs {
			w.SetAttr("coords", k, v)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		return f
	}
	rev := make([]int64, 0, 2*n)
	var fe []float32
	for i := n - 1; i >= 0; i-- {
		rev = append(rev, ours[2*i], ours[2*i+1])
		fe = append(fe, float32(ours[2*i]), float32(ours[2*i+1]), 1)
	}
	good := mk("s.h5", rev, fe, map[string]any{"patch_size_level0": int64(256)})
	r, err := ImportFeatures(good, work, ImportOptions{Encoder: "uni"})
	if err != nil || r.NumPatches != n {
		t.Fatalf("import: %v %+v", err, r)
	}
	feats, coords, _ := readFeatures(t, work.FeaturesH5("s", "uni"))
	for i := 0; i < n; i++ {
		if coords[2*i] != ours[2*i] || feats[3*i] != float32(ours[2*i]) || feats[3*i+1] != float32(ours[2*i+1]) {
			t.Fatalf("row %d not reordered to coords.h5 order", i)
		}
	}
	// Errors: other patches, another grid, no grid step, off-grid.
	other := append([]int64{}, rev...)
	other[0] += 256 * 40
	for _, c := range []struct {
		name, want string
		coords     []int64
		attrs      map[string]any
		opt        ImportOptions
	}{
		{"s.h5", "not in the file", other, map[string]any{"patch_size_level0": int64(256)}, ImportOptions{Encoder: "uni"}},
		{"s.h5", "grid step 512", rev, map[string]any{"patch_size_level0": int64(512)}, ImportOptions{Encoder: "uni"}},
		{"x.h5", "--patch-size-level0", []int64{0, 0, 256, 0}, nil, ImportOptions{Encoder: "uni"}},
		{"y.h5", "off the 256-px grid", []int64{0, 0, 300, 0}, map[string]any{"patch_size_level0": int64(256)}, ImportOptions{Encoder: "uni"}},
		{"z.h5", "encoder name", []int64{0, 0}, map[string]any{"patch_size_level0": int64(256)}, ImportOptions{Encoder: "../evil"}},
	} {
		f := mk(c.name, c.coords, make([]float32, 3*len(c.coords)/2), c.attrs)
		if _, err := ImportFeatures(f, work, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.want, err, c.want)
		}
	}
	// A slide not tiled here gets coords.h5 and slide.json from the file.
	f := mk("elsewhere.h5", []int64{1024, 512, 0, 0, 512, 0}, []float32{1, 1, 1, 2, 2, 2, 3, 3, 3}, map[string]any{"patch_size": int64(256), "downsample": []float64{2, 2}})
	if _, err := ImportFeatures(f, work, ImportOptions{Encoder: "conch"}); err != nil {
		t.Fatal(err)
	}
	rec2, err := work.ReadSlideRecord("elsewhere")
	if err != nil || rec2.Plan.PatchSizeLevel0 != 512 || rec2.NumPatches != 3 {
		t.Fatalf("imported slide record %+v %v", rec2, err)
	}
	c2, err := work.ReadCoords("elsewhere", rec2)
	if err != nil || c2[0] != 0 || c2[2] != 512 || c2[4] != 1024 || c2[5] != 512 {
		t.Errorf("coords %v %v (want raster order)", c2, err)
	}
}
