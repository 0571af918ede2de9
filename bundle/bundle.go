// Package bundle loads what the model reads of one slide: its features
// (features/<encoder>.h5), coordinates (coords.h5) and anchors
// (anchors.h5), capped and sampled, with the distance and polar bins that
// package anchors computes. It sits between the geometry (anchors) and the
// feature files (features/featfile) on one side and the model on the
// other, so that anchors builds without HDF5.
package bundle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/her2wsi/her2wsi/anchors"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/store"
)

// Patch sampling when a slide has more patches (or anchors) than a bundle
// holds.
const (
	// SampleFirst keeps the first MaxPatches patches in raster order, and
	// the first MaxAnchors anchors in raster order: the reference's
	// behaviour (model.Config.ReferenceSampling). On a large slide it sees
	// only the top of the tissue.
	SampleFirst = "first"
	// SampleRandom draws MaxPatches patches and MaxAnchors anchors
	// uniformly without replacement (kept in raster order), anew on every
	// load.
	SampleRandom = "random"
	// SampleSpatial (the default) takes a spatially uniform subset
	// (anchors.SpatialSample: one patch per run of a Hilbert curve through
	// the slide): a new stratified random draw on every load with a random
	// generator (training), the same subset without one (prediction).
	SampleSpatial = "spatial"
)

// Config sets what a bundle holds. The caps are the reference's.
type Config struct {
	PPK        int    `json:"patches_per_anchor"` // which anchors.h5 group (IPCA main: 18)
	MaxPatches int    `json:"max_patches"`        // M (reference 2048)
	MaxAnchors int    `json:"max_anchors"`        // K (reference 128)
	Sampling   string `json:"sampling"`           // SampleSpatial (default), SampleFirst or SampleRandom
}

// DefaultConfig is IPCA's: ppk 18, 2048 patches, 128 anchors, spatially
// uniform subsets of larger slides.
func DefaultConfig() Config {
	return Config{PPK: 18, MaxPatches: 2048, MaxAnchors: 128, Sampling: SampleSpatial}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.PPK <= 0:
		return fmt.Errorf("bundle: patches per anchor %d", c.PPK)
	case c.MaxPatches <= 0 || c.MaxAnchors <= 0:
		return fmt.Errorf("bundle: caps %d patches / %d anchors must be positive", c.MaxPatches, c.MaxAnchors)
	case c.Sampling != SampleFirst && c.Sampling != SampleRandom && c.Sampling != SampleSpatial:
		return fmt.Errorf("bundle: sampling %q (spatial, first or random)", c.Sampling)
	}
	return nil
}

// Files locates one slide's inputs in the work folder.
type Files struct {
	ID       string
	Coords   string // coords.h5
	Features string // features/<encoder>.h5
	Anchors  string // anchors.h5; empty for a slide without anchors (IHC)
	// Grid is an anchors.h5 read only for its patch_index (the anchors
	// stage's grid subsample), for slides read without anchors (IHC);
	// ignored when absent or made from other coordinates.
	Grid string
}

// SlideData is one slide's part of a bundle: N ≤ MaxPatches patches and,
// for H&E, K ≤ MaxAnchors anchors with the K×N bins between them.
type SlideData struct {
	ID       string
	D        int
	Rows     []int64       // rows of coords.h5/features held, ascending (raster order)
	Features []float32     // len(Rows)×D
	Patches  []anchors.Pos // grid positions of Rows
	// H&E only:
	AnchorRows []int64 // rows of the anchor patches
	Anchors    []anchors.Pos
	Dist       []uint8 // K×N, anchor-major: distance bin anchor→patch (0..64)
	Polar      []uint8 // K×N: polar sector anchor→patch (0..7)
	Diameter   float64 // of the whole slide, grid units
	BinWidth   float64
	// Total is the slide's patch count in the work folder; Subsampled
	// those left after the anchors stage's grid subsample (GridFactor > 1),
	// of which the bundle holds N().
	Total, Subsampled int
	GridFactor        int
	// Owner, for a fixed spatial subset (a prediction of a slide above its
	// cap), gives each row of coords.h5 the index into Rows of the patch
	// read in its stratum (−1: not a candidate, e.g. grid-subsampled out);
	// nil when every candidate was read or the subset is random.
	Owner []int32
}

// N is the number of patches held.
func (s *SlideData) N() int { return len(s.Rows) }

// K is the number of anchors held.
func (s *SlideData) K() int { return len(s.Anchors) }

// slideRaw is what the files hold for a slide, before sampling.
type slideRaw struct {
	coords     []int64
	pos        []anchors.Pos
	features   []float32 // nil until needed when not cached
	d          int
	anchorRows []int64
	diameter   float64
	// The anchors stage's grid subsample: rows of coords.h5 kept (nil:
	// all) and its factor.
	subset []int64
	factor int
}

// Loader reads bundles from the work folder, streaming by default: each
// load reads the files, so an epoch over hundreds of cases holds one case
// at a time. With Cache set it keeps each slide's files in memory after the
// first load (for small case sets, or many epochs over a fast disk).
type Loader struct {
	Config Config
	Cache  bool

	mu    sync.Mutex
	cache map[string]*slideRaw
}

// NewLoader checks the configuration.
func NewLoader(cfg Config, cache bool) (*Loader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Loader{Config: cfg, Cache: cache, cache: map[string]*slideRaw{}}, nil
}

// Load reads one slide. rng drives the random samplings; without it
// SampleRandom and SampleSpatial take their deterministic subset.
func (l *Loader) Load(f Files, rng *rand.Rand) (*SlideData, error) {
	raw, err := l.raw(f)
	if err != nil {
		return nil, err
	}
	cfg := l.Config
	// The slide's candidate rows: all, or the anchors stage's grid
	// subsample.
	cand := raw.subset
	if cand == nil {
		cand = make([]int64, len(raw.pos))
		for i := range cand {
			cand[i] = int64(i)
		}
	}
	candPos := make([]anchors.Pos, len(cand))
	for i, r := range cand {
		candPos[i] = raw.pos[r]
	}
	var picked, owner []int
	if cfg.Sampling == SampleSpatial && rng == nil && len(cand) > cfg.MaxPatches {
		picked, owner = anchors.SpatialStrata(candPos, cfg.MaxPatches, nil)
	} else {
		picked = pick(candPos, cfg.MaxPatches, cfg.Sampling, rng)
	}
	rows := make([]int64, len(picked))
	for i, j := range picked {
		rows[i] = cand[j]
	}
	sd := &SlideData{ID: f.ID, D: raw.d, Rows: rows, Patches: make([]anchors.Pos, len(rows)), Diameter: raw.diameter, BinWidth: anchors.BinWidth(raw.diameter),
		Total: len(raw.pos), Subsampled: len(cand), GridFactor: max(raw.factor, 1)}
	for i, r := range rows {
		sd.Patches[i] = raw.pos[r]
	}
	if owner != nil {
		sd.Owner = make([]int32, len(raw.pos))
		for i := range sd.Owner {
			sd.Owner[i] = -1
		}
		for j, r := range cand {
			sd.Owner[r] = int32(owner[j])
		}
	}
	if raw.features != nil {
		sd.Features = gatherRows(raw.features, raw.d, rows)
	} else if sd.Features, err = readFeatureRows(f.Features, raw.d, rows); err != nil {
		return nil, err
	}
	if f.Anchors != "" {
		apos := make([]anchors.Pos, len(raw.anchorRows))
		for i, r := range raw.anchorRows {
			apos[i] = raw.pos[r]
		}
		ai := pick(apos, cfg.MaxAnchors, cfg.Sampling, rng)
		sd.AnchorRows = make([]int64, len(ai))
		sd.Anchors = make([]anchors.Pos, len(ai))
		for i, a := range ai {
			sd.AnchorRows[i] = raw.anchorRows[a]
			sd.Anchors[i] = apos[a]
		}
		k := len(ai)
		sd.Dist, sd.Polar = make([]uint8, k*len(rows)), make([]uint8, k*len(rows))
		anchors.Bins(sd.Anchors, sd.Patches, sd.BinWidth, sd.Dist, sd.Polar)
	}
	return sd, nil
}

// pick returns the indices of ps kept under the cap max, ascending: all
// when len(ps) ≤ max, else the first max, a uniform draw (rng) or a
// spatially uniform subset (random with rng, fixed without).
func pick(ps []anchors.Pos, max int, sampling string, rng *rand.Rand) []int {
	n := len(ps)
	if n > max {
		switch {
		case sampling == SampleSpatial:
			return anchors.SpatialSample(ps, max, rng)
		case sampling == SampleRandom && rng != nil:
			out := rng.Perm(n)[:max]
			slices.Sort(out)
			return out
		case sampling == SampleRandom: // no generator: a fixed spatial subset
			return anchors.SpatialSample(ps, max, nil)
		}
	}
	out := make([]int, min(n, max))
	for i := range out {
		out[i] = i
	}
	return out
}

func gatherRows(all []float32, d int, rows []int64) []float32 {
	out := make([]float32, len(rows)*d)
	for i, r := range rows {
		copy(out[i*d:(i+1)*d], all[int(r)*d:(int(r)+1)*d])
	}
	return out
}

// readFeatureRows reads only the rows needed: one contiguous read when they
// are the first ones, else runs of consecutive rows.
func readFeatureRows(path string, d int, rows []int64) ([]float32, error) {
	r, err := store.OpenH5(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([]float32, 0, len(rows)*d)
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j] == rows[j-1]+1 {
			j++
		}
		v, err := r.ReadFloat32Rows("features", int(rows[i]), j-i)
		if err != nil {
			return nil, err
		}
		out = append(out, v...)
		i = j
	}
	return out, nil
}

// raw reads (or recalls) a slide's coordinates, anchors and geometry, and
// checks that the feature file belongs to these coordinates.
func (l *Loader) raw(f Files) (*slideRaw, error) {
	key := f.Coords + "\x00" + f.Features + "\x00" + f.Anchors
	if l.Cache {
		l.mu.Lock()
		r, ok := l.cache[key]
		l.mu.Unlock()
		if ok {
			return r, nil
		}
	}
	fail := func(format string, a ...any) (*slideRaw, error) {
		return nil, fmt.Errorf("bundle: slide %s: "+format, append([]any{f.ID}, a...)...)
	}
	cr, err := store.OpenH5(f.Coords)
	if err != nil {
		return fail("%v", err)
	}
	coords, _, err := cr.ReadInt64("coords")
	var step int64
	if err == nil {
		v, aerr := cr.Attr("coords", "patch_size_level0")
		step, _ = v.(int64)
		if aerr != nil || step <= 0 {
			err = errors.New("coords.h5 has no patch_size_level0")
		}
	}
	cr.Close()
	if err != nil {
		return fail("%v", err)
	}
	pos, err := anchors.GridPositions(coords, step)
	if err != nil {
		return fail("%v", err)
	}
	info, n, d, err := featfile.ReadInfo(f.Features)
	if err != nil {
		return fail("%v", err)
	}
	if n != len(pos) || info.CoordsSHA256 != store.ChecksumInt64(coords) {
		return fail("%s belongs to other coordinates than coords.h5 (%d rows for %d patches): rerun the embed stage", filepath.Base(f.Features), n, len(pos))
	}
	raw := &slideRaw{coords: coords, pos: pos, d: d}
	if f.Anchors != "" {
		ar, err := store.OpenH5(f.Anchors)
		if err != nil {
			return fail("%v", err)
		}
		idx, _, err := ar.ReadInt64(fmt.Sprintf("ppk_%d/anchor_index", l.Config.PPK))
		var dv, sum any
		if err == nil {
			dv, err = ar.Attr("", "diameter")
		}
		if err == nil {
			sum, err = ar.Attr("", "coords_sha256")
		}
		ar.Close()
		if err != nil {
			return fail("anchors (ppk %d): %v", l.Config.PPK, err)
		}
		if sum != info.CoordsSHA256 {
			return fail("anchors.h5 belongs to other coordinates: rerun the anchors stage")
		}
		raw.diameter, _ = dv.(float64)
		if !sort.SliceIsSorted(idx, func(a, b int) bool { return idx[a] < idx[b] }) {
			slices.Sort(idx)
		}
		for _, i := range idx {
			if i < 0 || int(i) >= len(pos) {
				return fail("anchor index %d outside 0..%d", i, len(pos)-1)
			}
		}
		raw.anchorRows = idx
		if raw.subset, raw.factor, err = readSubset(f.Anchors, len(pos)); err != nil {
			return fail("anchors.h5: %v", err)
		}
	} else if f.Grid != "" {
		if sum, ok := gridChecksum(f.Grid); ok && sum == info.CoordsSHA256 {
			if raw.subset, raw.factor, err = readSubset(f.Grid, len(pos)); err != nil {
				return fail("anchors.h5: %v", err)
			}
		}
	}
	if l.Cache {
		fr, err := store.OpenH5(f.Features)
		if err != nil {
			return fail("%v", err)
		}
		raw.features, _, err = fr.ReadFloat32("features")
		fr.Close()
		if err != nil {
			return fail("%v", err)
		}
		l.mu.Lock()
		l.cache[key] = raw
		l.mu.Unlock()
	}
	return raw, nil
}

// readSubset reads the anchors stage's grid subsample from anchors.h5:
// patch_index [N'] (rows of coords.h5, ascending) and its grid_factor;
// nil when the slide was not subsampled.
func readSubset(path string, n int) ([]int64, int, error) {
	r, err := store.OpenH5(path)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	if !r.Has("patch_index") {
		return nil, 1, nil
	}
	idx, _, err := r.ReadInt64("patch_index")
	if err != nil {
		return nil, 0, err
	}
	for i, v := range idx {
		if v < 0 || int(v) >= n || (i > 0 && v <= idx[i-1]) {
			return nil, 0, fmt.Errorf("patch_index holds %d at %d (want ascending rows 0..%d)", v, i, n-1)
		}
	}
	f := 1
	if v, err := r.Attr("", "grid_factor"); err == nil {
		if g, ok := v.(int64); ok && g > 0 {
			f = int(g)
		}
	}
	return idx, f, nil
}

// gridChecksum is an anchors.h5's coords_sha256, when the file is there.
func gridChecksum(path string) (string, bool) {
	r, err := store.OpenH5(path)
	if err != nil {
		return "", false
	}
	defer r.Close()
	v, err := r.Attr("", "coords_sha256")
	s, ok := v.(string)
	return s, err == nil && ok
}
