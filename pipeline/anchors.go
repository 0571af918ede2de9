package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/her2wsi/her2wsi/anchors"
	"github.com/her2wsi/her2wsi/internal/store"
)

// StageAnchors is the anchors stage's name.
const StageAnchors = "anchors"

// AnchorOptions are the anchors stage's parameters.
type AnchorOptions struct {
	PPK     []int  `json:"ppk"` // patches per anchor values (all eight by default)
	MaxIter int    `json:"max_iter"`
	Seed    uint64 `json:"seed"`
	// MaxPatches > 0 subsamples a slide of more patches on its grid, as
	// PAMA's extraction does (anchors.GridSubsample; the reference's 4096,
	// anchors.ReferenceMaxPatches): anchors, diameter and the patches the
	// model reads (patch_index in anchors.h5) are then those of every f-th
	// grid row and column. 0 (default): every patch.
	MaxPatches int `json:"max_patches,omitempty"`
	// GraphFeatures, when set, also builds the slide's SlideGraph+ graph
	// over that features file (the slidegraph model variant reads it),
	// on the patches the anchors use: WORK/slides/<id>/slidegraph/<name>.h5.
	GraphFeatures string `json:"graph_features,omitempty"`
	// Graph overrides the graph construction's settings (nil:
	// anchors.DefaultGraphOptions, TIAToolbox's defaults).
	Graph *anchors.GraphOptions `json:"graph,omitempty"`
}

// ReferenceAnchorOptions are the defaults with PAMA's extraction cap of
// 4096 patches (grid subsampling above it), as reference mode uses.
func ReferenceAnchorOptions() AnchorOptions {
	o := DefaultAnchorOptions()
	o.MaxPatches = anchors.ReferenceMaxPatches
	return o
}

// DefaultAnchorOptions: the reference's eight ppk values, 10 iterations,
// seed 2024.
func DefaultAnchorOptions() AnchorOptions {
	d := anchors.DefaultKMeansConfig()
	return AnchorOptions{PPK: slices.Clone(anchors.PPKValues), MaxIter: d.MaxIter, Seed: d.Seed}
}

// PPKGroup names a ppk value's group in anchors.h5.
func PPKGroup(ppk int) string { return fmt.Sprintf("ppk_%d", ppk) }

// AnchorSlide computes a slide's anchors for every ppk value and writes
// anchors.h5: per ppk a group ppk_<v> with anchor_index [K] int64 (rows into
// coords.h5/features), and root attributes with the geometry (diameter and
// bin width in grid units), the k-means settings and the coordinates'
// checksum. With opt.MaxPatches set and exceeded, the slide is first
// subsampled on its grid (every f-th row and column): anchors.h5 then
// holds patch_index [N'] (the rows kept, which the model's loader reads
// alone) and grid_factor f, and the anchors and diameter are those of the
// rows kept. Same input, same bytes.
func AnchorSlide(ctx context.Context, in Input, work Work, opt AnchorOptions) Result {
	start := time.Now()
	res := Result{Stage: StageAnchors, ID: in.ID, Path: in.Path}
	fail := func(err error) Result {
		res.Err = err
		return res
	}
	rec, err := work.ReadSlideRecord(in.ID)
	if err != nil {
		return fail(err)
	}
	coords, err := work.ReadCoords(in.ID, rec)
	if err != nil {
		return fail(err)
	}
	ps, err := anchors.GridPositions(coords, int64(rec.Plan.PatchSizeLevel0))
	if err != nil {
		return fail(fmt.Errorf("pipeline: %s: %w", in.ID, err))
	}
	total := len(ps)
	var keep []int
	factor := 1
	if opt.MaxPatches > 0 {
		keep, factor = anchors.GridSubsample(ps, opt.MaxPatches)
	}
	if factor > 1 {
		sub := make([]anchors.Pos, len(keep))
		for i, j := range keep {
			sub[i] = ps[j]
		}
		ps = sub
	}
	diam := anchors.Diameter(ps)
	cfg := anchors.KMeansConfig{MaxIter: opt.MaxIter, Seed: opt.Seed}
	w, err := store.CreateH5(work.AnchorsH5(in.ID))
	if err != nil {
		return fail(err)
	}
	defer w.Abort()
	if factor > 1 {
		rows := make([]int64, len(keep))
		for i, j := range keep {
			rows[i] = int64(j)
		}
		if err := w.WriteInt64("patch_index", rows, len(rows)); err != nil {
			return fail(err)
		}
	}
	for _, ppk := range opt.PPK {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		idx := anchors.Anchors(ps, ppk, cfg)
		if factor > 1 { // rows of the subsample → rows of coords.h5
			for i, a := range idx {
				idx[i] = int64(keep[a])
			}
		}
		if err := w.WriteInt64(PPKGroup(ppk)+"/anchor_index", idx, len(idx)); err != nil {
			return fail(err)
		}
		if err := w.SetAttr(PPKGroup(ppk), "num_anchors", int64(len(idx))); err != nil {
			return fail(err)
		}
	}
	ppks := make([]int64, len(opt.PPK))
	for i, v := range opt.PPK {
		ppks[i] = int64(v)
	}
	if err := w.SetAttrs("",
		store.Attr{Key: "diameter", Value: diam},
		store.Attr{Key: "bin_width", Value: anchors.BinWidth(diam)},
		store.Attr{Key: "num_dist_bins", Value: int64(anchors.NumDistBins)},
		store.Attr{Key: "num_polar_bins", Value: int64(anchors.NumPolarBins)},
		store.Attr{Key: "seed", Value: int64(opt.Seed)},
		store.Attr{Key: "max_iter", Value: int64(opt.MaxIter)},
		store.Attr{Key: "ppk", Value: ppks},
		store.Attr{Key: "num_patches", Value: int64(len(ps))},
		store.Attr{Key: "coords_sha256", Value: rec.CoordsSHA256},
		store.Attr{Key: "patch_size_level0", Value: int64(rec.Plan.PatchSizeLevel0)},
	); err != nil {
		return fail(err)
	}
	if factor > 1 {
		if err := w.SetAttrs("", store.Attr{Key: "num_patches_total", Value: int64(total)},
			store.Attr{Key: "grid_factor", Value: int64(factor)}, store.Attr{Key: "max_patches", Value: int64(opt.MaxPatches)}); err != nil {
			return fail(err)
		}
	}
	if opt.GraphFeatures != "" {
		var rows []int
		if factor > 1 {
			rows = keep
		}
		if _, err := writeSlideGraph(work, in.ID, coords, rows, opt); err != nil {
			return fail(err)
		}
	}
	if err := w.Commit(); err != nil {
		return fail(err)
	}
	res.NumPatches, res.Elapsed = len(ps), time.Since(start)
	if factor > 1 {
		slog.Info("grid-subsampled", "slide", in.ID, "stage", StageAnchors, "patches", total, "kept", len(ps), "factor", factor, "max_patches", opt.MaxPatches)
	}
	slog.Info("anchored", "slide", in.ID, "stage", StageAnchors, "patches", len(ps), "diameter", fmt.Sprintf("%.1f", diam), "elapsed", res.Elapsed.Round(time.Millisecond))
	return res
}

// AnchorAll runs the anchors stage over slides through a Runner, several
// at once (default one per CPU: k-means is single-threaded).
func AnchorAll(ctx context.Context, inputs []Input, work Work, opt AnchorOptions, workers int, prog Progress) Summary {
	return runOneStage(ctx, inputs, work, NewAnchorStage(work, opt, workers), prog)
}

// WriteBins writes, for inspection and other tools, one ppk group's
// anchor_index [K], dist_bin [K,N] uint8 and polar_bin [K,N] uint8 over all
// the slide's N patches into out. maxBytes bounds K×N (each matrix).
func WriteBins(work Work, id string, ppk int, out string, maxBytes int64) error {
	rec, err := work.ReadSlideRecord(id)
	if err != nil {
		return err
	}
	coords, err := work.ReadCoords(id, rec)
	if err != nil {
		return err
	}
	ps, err := anchors.GridPositions(coords, int64(rec.Plan.PatchSizeLevel0))
	if err != nil {
		return fmt.Errorf("pipeline: %s: %w", id, err)
	}
	idx, diam, err := work.ReadAnchors(id, ppk)
	if err != nil {
		return fmt.Errorf("pipeline: %s: %w (run the anchors stage with this ppk)", id, err)
	}
	k, n := len(idx), len(ps)
	if int64(k)*int64(n) > maxBytes {
		return fmt.Errorf("pipeline: %s: ppk %d gives %d×%d = %d MB per matrix, over the %d MB limit (raise --max-mb)", id, ppk, k, n, int64(k)*int64(n)>>20, maxBytes>>20)
	}
	aps := make([]anchors.Pos, k)
	for i, j := range idx {
		if j < 0 || j >= int64(n) {
			return fmt.Errorf("pipeline: %s: anchor index %d outside 0..%d", id, j, n-1)
		}
		aps[i] = ps[j]
	}
	dist, polar := make([]uint8, k*n), make([]uint8, k*n)
	width := anchors.BinWidth(diam)
	anchors.Bins(aps, ps, width, dist, polar)
	w, err := store.CreateH5(out)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := w.WriteInt64("anchor_index", idx, k); err != nil {
		return err
	}
	if err := w.WriteUint8("dist_bin", dist, k, n); err != nil {
		return err
	}
	if err := w.WriteUint8("polar_bin", polar, k, n); err != nil {
		return err
	}
	if err := w.SetAttrs("", store.Attr{Key: "slide", Value: id}, store.Attr{Key: "ppk", Value: int64(ppk)},
		store.Attr{Key: "diameter", Value: diam}, store.Attr{Key: "bin_width", Value: width},
		store.Attr{Key: "coords_sha256", Value: rec.CoordsSHA256}); err != nil {
		return err
	}
	return w.Commit()
}
