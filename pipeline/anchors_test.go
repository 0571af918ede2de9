package pipeline

import (
	"bytes"
	"context"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/her2wsi/her2wsi/anchors"
	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/synth"
)

// tiledEmbedded makes a tiled and embedded synthetic slide.
func tiledEmbedded(t *testing.T, dir, id string, tissue []image.Rectangle) (Work, Input) {
	t.Helper()
	p := filepath.Join(dir, id+".svs")
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: 6144, Height: 4096, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: tissue}); err != nil {
		t.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	in := Input{Path: p, ID: id}
	tileAll(t, work, []Input{in})
	if s, err := EmbedAll(context.Background(), []Input{in}, work, testEncoder(t, "tiny-clip.onnx"), DefaultEmbedOptions(), nil); err != nil || s.Done != 1 {
		t.Fatalf("embed: %v %+v", err, s)
	}
	return work, in
}

func TestAnchorStage(t *testing.T) {
	dir := t.TempDir()
	work, in := tiledEmbedded(t, dir, "s", []image.Rectangle{image.Rect(256, 256, 3000, 2000), image.Rect(3500, 1024, 5800, 3800)})
	opt := DefaultAnchorOptions()
	r := AnchorSlide(context.Background(), in, work, opt)
	if r.Err != nil || r.Skipped {
		t.Fatalf("%+v", r)
	}
	first, _ := os.ReadFile(work.AnchorsH5("s"))
	// Same input, same bytes.
	if r := AnchorSlide(context.Background(), in, work, opt); r.Err != nil {
		t.Fatal(r.Err)
	}
	second, _ := os.ReadFile(work.AnchorsH5("s"))
	if !bytes.Equal(first, second) {
		t.Error("anchors.h5 differs between two runs on the same input")
	}
	// Through the runner: recorded, then fresh.
	if s := AnchorAll(context.Background(), []Input{in}, work, opt, 1, nil); s.Done != 1 {
		t.Errorf("first runner run: %+v", s)
	}
	if s := AnchorAll(context.Background(), []Input{in}, work, opt, 1, nil); s.Skipped != 1 {
		t.Errorf("rerun not skipped: %+v", s)
	}
	// Every group: K = NumAnchors (or fewer after dedup), indices in range.
	rec, _ := work.ReadSlideRecord("s")
	coords, _ := work.ReadCoords("s", rec)
	n := len(coords) / 2
	for _, ppk := range anchors.PPKValues {
		idx, diam, err := work.ReadAnchors("s", ppk)
		if err != nil {
			t.Fatal(err)
		}
		k := anchors.NumAnchors(n, ppk)
		if len(idx) == 0 || len(idx) > k || !slices.IsSorted(idx) || idx[len(idx)-1] >= int64(n) || diam <= 0 {
			t.Errorf("ppk %d: %d anchors (k %d), diameter %g", ppk, len(idx), k, diam)
		}
	}
	// Another seed is a different setting: recomputed.
	opt.Seed++
	if s := AnchorAll(context.Background(), []Input{in}, work, opt, 1, nil); s.Done != 1 {
		t.Errorf("new seed: %+v", s)
	}

	// anchors bins: K×N matrices over all patches, equal to the package's
	// bins.
	out := filepath.Join(dir, "bins.h5")
	if err := WriteBins(work, "s", 18, out, 1<<30); err != nil {
		t.Fatal(err)
	}
	br, err := store.OpenH5(out)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	dist, dd, _ := br.ReadUint8("dist_bin")
	polar, _, _ := br.ReadUint8("polar_bin")
	idx, _, _ := br.ReadInt64("anchor_index")
	if len(dd) != 2 || dd[0] != len(idx) || dd[1] != n {
		t.Fatalf("dist_bin dims %v, want [%d %d]", dd, len(idx), n)
	}
	ps, _ := anchors.GridPositions(coords, int64(rec.Plan.PatchSizeLevel0))
	_, diam, _ := work.ReadAnchors("s", 18)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		a, i := rng.IntN(len(idx)), rng.IntN(n)
		ap, p := ps[idx[a]], ps[i]
		wantP := anchors.PolarBin(p.Row-ap.Row, p.Col-ap.Col)
		d1, p1 := make([]uint8, 1), make([]uint8, 1)
		anchors.Bins([]anchors.Pos{ap}, []anchors.Pos{p}, anchors.BinWidth(diam), d1, p1)
		if dist[a*n+i] != d1[0] || polar[a*n+i] != wantP {
			t.Fatalf("anchor %d patch %d: file %d/%d, computed %d/%d", a, i, dist[a*n+i], polar[a*n+i], d1[0], wantP)
		}
	}
	if err := WriteBins(work, "s", 9, filepath.Join(dir, "big.h5"), 10); err == nil {
		t.Error("the size limit was not enforced")
	}
}

func TestBundleLoader(t *testing.T) {
	dir := t.TempDir()
	work, in := tiledEmbedded(t, dir, "b", []image.Rectangle{image.Rect(0, 0, 6144, 4096)})
	if r := AnchorSlide(context.Background(), in, work, DefaultAnchorOptions()); r.Err != nil {
		t.Fatal(r.Err)
	}
	files := bundle.Files{ID: "b", Coords: work.CoordsH5("b"), Features: work.FeaturesH5("b", "tiny-clip"), Anchors: work.AnchorsH5("b")}
	rec, _ := work.ReadSlideRecord("b")
	n := rec.NumPatches // 24×16 = 384
	cfg := bundle.DefaultConfig()
	cfg.MaxPatches, cfg.MaxAnchors, cfg.Sampling = 100, 10, bundle.SampleFirst
	for _, cache := range []bool{false, true} {
		l, err := bundle.NewLoader(cfg, cache)
		if err != nil {
			t.Fatal(err)
		}
		sd, err := l.Load(files, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sd.N() != 100 || sd.K() != 10 || sd.D != 8 || len(sd.Features) != 800 || len(sd.Dist) != 1000 {
			t.Fatalf("cache=%v: N %d K %d D %d", cache, sd.N(), sd.K(), sd.D)
		}
		// First in raster order: rows 0..99, features equal the file's.
		all, _, _ := readFeatures(t, files.Features)
		for i, r := range sd.Rows {
			if r != int64(i) || !slices.Equal(sd.Features[i*8:(i+1)*8], all[i*8:(i+1)*8]) {
				t.Fatalf("row %d: %d", i, r)
			}
		}
		// Random sampling: 100 distinct rows in raster order, changing per draw.
		lr, _ := bundle.NewLoader(bundle.Config{PPK: 18, MaxPatches: 100, MaxAnchors: 10, Sampling: bundle.SampleRandom}, cache)
		rng := rand.New(rand.NewPCG(3, 3))
		a, _ := lr.Load(files, rng)
		b, _ := lr.Load(files, rng)
		if !slices.IsSorted(a.Rows) || slices.Equal(a.Rows, b.Rows) || a.Rows[len(a.Rows)-1] >= int64(n) {
			t.Errorf("random rows %v / %v", a.Rows[:5], b.Rows[:5])
		}
		for i, r := range a.Rows {
			if !slices.Equal(a.Features[i*8:(i+1)*8], all[r*8:(r+1)*8]) {
				t.Fatalf("random row %d features differ from the file's row %d", i, r)
			}
		}
	}
	// A bundle of a slide smaller than the caps holds everything.
	l, _ := bundle.NewLoader(bundle.DefaultConfig(), false)
	sd, err := l.Load(files, nil)
	if err != nil || sd.N() != n {
		t.Fatalf("%v %d", err, sd.N())
	}
	// Stale inputs are refused: re-tile with other parameters.
	opt := DefaultTileOptions()
	opt.Grid.MinTissue = 0.5
	opt.Grid.MaskMPP = 8
	TileSlide(context.Background(), in, work, opt)
	if _, err := l.Load(files, nil); err == nil {
		t.Log("coordinates unchanged by the new tiling; staleness not exercised")
	}
}

// The anchors stage's grid subsample (PAMA's extraction cap, reference
// mode): a slide over max_patches keeps every f-th grid row and column;
// anchors.h5 lists those rows, the anchors are among them, and the model's
// loader reads only them. A spatial bundle of the full slide reaches its
// bottom, where the first rows in raster order do not.
func TestAnchorGridSubsample(t *testing.T) {
	dir := t.TempDir()
	work, in := tiledEmbedded(t, dir, "g", []image.Rectangle{image.Rect(0, 0, 6144, 4096)})
	opt := DefaultAnchorOptions()
	opt.MaxPatches = 100 // 384 patches → factor ⌊√3.84⌋+1 = 2
	if r := AnchorSlide(context.Background(), in, work, opt); r.Err != nil {
		t.Fatal(r.Err)
	}
	rec, _ := work.ReadSlideRecord("g")
	coords, err := work.ReadCoords("g", rec)
	if err != nil {
		t.Fatal(err)
	}
	ps, _ := anchors.GridPositions(coords, int64(rec.Plan.PatchSizeLevel0))
	r, err := store.OpenH5(work.AnchorsH5("g"))
	if err != nil {
		t.Fatal(err)
	}
	keep, _, err := r.ReadInt64("patch_index")
	f, _ := r.Attr("", "grid_factor")
	r.Close()
	if err != nil || f != int64(2) {
		t.Fatalf("patch_index: %v, grid_factor %v", err, f)
	}
	onGrid := map[int64]bool{}
	for i, p := range ps {
		if p.Row%2 == 0 && p.Col%2 == 0 {
			onGrid[int64(i)] = true
		}
	}
	if len(keep) != len(onGrid) || len(keep) == 0 {
		t.Fatalf("kept %d rows, %d on the 2-grid", len(keep), len(onGrid))
	}
	for _, k := range keep {
		if !onGrid[k] {
			t.Fatalf("row %d (%v) kept off the grid", k, ps[k])
		}
	}
	idx, _, err := work.ReadAnchors("g", 18)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != anchors.NumAnchors(len(keep), 18) {
		t.Errorf("%d anchors for %d kept patches", len(idx), len(keep))
	}
	for _, a := range idx {
		if !onGrid[a] {
			t.Fatalf("anchor row %d off the subsample", a)
		}
	}
	l, _ := bundle.NewLoader(bundle.DefaultConfig(), false)
	sd, err := l.Load(work.SlideFiles("g", "tiny-clip", true), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sd.Rows, keep) || sd.Total != len(ps) || sd.Subsampled != len(keep) || sd.GridFactor != 2 {
		t.Fatalf("bundle rows %d (total %d, subsampled %d, factor %d), want the %d kept", sd.N(), sd.Total, sd.Subsampled, sd.GridFactor, len(keep))
	}
	// IHC-style loads (no anchors) honour the subsample through Files.Grid.
	ihc := work.SlideFiles("g", "tiny-clip", false)
	ihc.Grid = work.AnchorsH5("g")
	if sd, err := l.Load(ihc, nil); err != nil || !slices.Equal(sd.Rows, keep) {
		t.Fatalf("IHC-style load: %v", err)
	}

	// Without the cap: a spatial bundle of 100 reaches the slide's bottom
	// rows, the first 100 in raster order do not.
	if r := AnchorSlide(context.Background(), in, work, DefaultAnchorOptions()); r.Err != nil {
		t.Fatal(r.Err)
	}
	maxRow := func(sampling string) int32 {
		cfg := bundle.DefaultConfig()
		cfg.MaxPatches, cfg.Sampling = 100, sampling
		l, _ := bundle.NewLoader(cfg, false)
		sd, err := l.Load(work.SlideFiles("g", "tiny-clip", true), nil)
		if err != nil {
			t.Fatal(err)
		}
		var m int32
		for _, p := range sd.Patches {
			m = max(m, p.Row)
		}
		return m
	}
	var bottom int32
	for _, p := range ps {
		bottom = max(bottom, p.Row)
	}
	if got := maxRow(bundle.SampleSpatial); got < bottom-1 {
		t.Errorf("spatial bundle reaches row %d of %d", got, bottom)
	}
	if got := maxRow(bundle.SampleFirst); got > bottom/2 {
		t.Errorf("first-100 bundle reaches row %d of %d", got, bottom)
	}
}
