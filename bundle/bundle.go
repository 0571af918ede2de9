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

// Patch sampling when a slide has more patches than a bundle holds.
const (
	// SampleFirst keeps the first MaxPatches patches in raster order, and
	// the first MaxAnchors anchors in raster order: the reference's
	// behaviour, and the default (deterministic; use it for evaluation and
	// for weights trained with the reference code).
	SampleFirst = "first"
	// SampleRandom draws MaxPatches patches and MaxAnchors anchors
	// uniformly without replacement (kept in raster order), anew on every
	// load: an augmentation for training on slides larger than the cap.
	SampleRandom = "random"
)

// Config sets what a bundle holds. The caps are the reference's.
type Config struct {
	PPK        int    `json:"patches_per_anchor"` // which anchors.h5 group (IPCA main: 18)
	MaxPatches int    `json:"max_patches"`        // M (reference 2048)
	MaxAnchors int    `json:"max_anchors"`        // K (reference 128)
	Sampling   string `json:"sampling"`           // SampleFirst (default) or SampleRandom
}

// DefaultConfig is IPCA's: ppk 18, 2048 patches, 128 anchors, first
// in raster order.
func DefaultConfig() Config {
	return Config{PPK: 18, MaxPatches: 2048, MaxAnchors: 128, Sampling: SampleFirst}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.PPK <= 0:
		return fmt.Errorf("bundle: patches per anchor %d", c.PPK)
	case c.MaxPatches <= 0 || c.MaxAnchors <= 0:
		return fmt.Errorf("bundle: caps %d patches / %d anchors must be positive", c.MaxPatches, c.MaxAnchors)
	case c.Sampling != SampleFirst && c.Sampling != SampleRandom:
		return fmt.Errorf("bundle: sampling %q (first or random)", c.Sampling)
	}
	return nil
}

// Files locates one slide's inputs in the work folder.
type Files struct {
	ID       string
	Coords   string // coords.h5
	Features string // features/<encoder>.h5
	Anchors  string // anchors.h5; empty for a slide without anchors (IHC)
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

// Load reads one slide. rng drives SampleRandom (it may be nil for
// SampleFirst).
func (l *Loader) Load(f Files, rng *rand.Rand) (*SlideData, error) {
	raw, err := l.raw(f)
	if err != nil {
		return nil, err
	}
	cfg := l.Config
	n := len(raw.pos)
	rows := pick(n, cfg.MaxPatches, cfg.Sampling, rng)
	sd := &SlideData{ID: f.ID, D: raw.d, Rows: rows, Patches: make([]anchors.Pos, len(rows)), Diameter: raw.diameter, BinWidth: anchors.BinWidth(raw.diameter)}
	for i, r := range rows {
		sd.Patches[i] = raw.pos[r]
	}
	if raw.features != nil {
		sd.Features = gatherRows(raw.features, raw.d, rows)
	} else if sd.Features, err = readFeatureRows(f.Features, raw.d, rows); err != nil {
		return nil, err
	}
	if f.Anchors != "" {
		ai := pick(len(raw.anchorRows), cfg.MaxAnchors, cfg.Sampling, rng)
		sd.AnchorRows = make([]int64, len(ai))
		sd.Anchors = make([]anchors.Pos, len(ai))
		for i, a := range ai {
			sd.AnchorRows[i] = raw.anchorRows[a]
			sd.Anchors[i] = raw.pos[raw.anchorRows[a]]
		}
		k := len(ai)
		sd.Dist, sd.Polar = make([]uint8, k*len(rows)), make([]uint8, k*len(rows))
		anchors.Bins(sd.Anchors, sd.Patches, sd.BinWidth, sd.Dist, sd.Polar)
	}
	return sd, nil
}

// pick returns the indices kept out of n: all when n ≤ max, else the first
// max or a uniform sample (ascending).
func pick(n, max int, sampling string, rng *rand.Rand) []int64 {
	m := min(n, max)
	out := make([]int64, m)
	if n <= max || sampling == SampleFirst || rng == nil {
		for i := range out {
			out[i] = int64(i)
		}
		return out
	}
	perm := rng.Perm(n)[:m]
	for i, p := range perm {
		out[i] = int64(p)
	}
	slices.Sort(out)
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
