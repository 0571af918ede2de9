package model

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sort"
)

// Example is one case as the model sees it, unpadded: an H&E slide's
// patches with its anchors and the K×N bins between them, optionally the
// paired IHC slide's patches, and the label (−1 when unknown).
type Example struct {
	ID    string
	N     int       // H&E patches
	HE    []float32 // N×in_dim
	K     int       // anchors
	Dist  []uint8   // K×N distance bins (0..64), anchor-major
	Polar []uint8   // K×N polar sectors (0..7)
	M     int       // IHC patches (0: none)
	IHC   []float32 // M×in_dim
	Label int
	// SlideGraph+ graph (variants with NeedsGraph): V nodes, each patch's
	// node, and directed edges (src, dst).
	V      int
	NodeX  []float32 // V×in_dim node features (nil: the means of the patches' features)
	Assign []int32
	Edges  [][2]int32
}

// Check validates an example's sizes against the config, for a training
// step (at most max_patches H&E patches).
func (e *Example) Check(c Config) error { return e.check(c, false) }

// CheckPredict validates an example for prediction (at most
// c.PredictPatches() H&E patches).
func (e *Example) CheckPredict(c Config) error { return e.check(c, true) }

func (e *Example) check(c Config, predict bool) error {
	limit, key := c.MaxPatches, "max_patches"
	if predict {
		limit = c.PredictPatches()
		if limit > c.MaxPatches {
			key = "max_predict_patches"
		}
	}
	switch {
	case e.N <= 0:
		return fmt.Errorf("model: %s: no H&E patches", e.ID)
	case e.N > limit:
		return fmt.Errorf("model: %s: %d H&E patches, more than %s %d", e.ID, e.N, key, limit)
	case len(e.HE) != e.N*c.InDim:
		return fmt.Errorf("model: %s: H&E features hold %d values, want %d×%d (in_dim)", e.ID, len(e.HE), e.N, c.InDim)
	case e.M > c.MaxIHC:
		return fmt.Errorf("model: %s: %d IHC patches, more than max_ihc_patches %d", e.ID, e.M, c.MaxIHC)
	case len(e.IHC) != e.M*c.InDim:
		return fmt.Errorf("model: %s: IHC features hold %d values, want %d×%d (in_dim)", e.ID, len(e.IHC), e.M, c.InDim)
	case e.Label >= c.Classes:
		return fmt.Errorf("model: %s: label %d, the model has %d classes", e.ID, e.Label, c.Classes)
	}
	if c.Spec().NeedsGraph {
		return e.checkGraph(c)
	}
	if !c.Spec().NeedsAnchors {
		return nil
	}
	switch {
	case e.K <= 0:
		return fmt.Errorf("model: %s: no anchors", e.ID)
	case e.K > c.MaxAnchors:
		return fmt.Errorf("model: %s: %d anchors, more than max_anchors %d", e.ID, e.K, c.MaxAnchors)
	case len(e.Dist) != e.K*e.N || len(e.Polar) != e.K*e.N:
		return fmt.Errorf("model: %s: bins hold %d/%d values, want %d×%d", e.ID, len(e.Dist), len(e.Polar), e.K, e.N)
	}
	for i := range e.Dist {
		if e.Dist[i] >= DistBins || e.Polar[i] >= PolarBins {
			return fmt.Errorf("model: %s: bin (%d, %d) out of range", e.ID, e.Dist[i], e.Polar[i])
		}
	}
	return nil
}

// packed holds an example's graph inputs, padded to bucket sizes.
type packed struct {
	NB, KB, MB int
	he         []float32 // NB×in
	rd, pol    []int32   // KB×(NB+1)
	colMask    []float32 // NB+1
	keep       []float32 // KB×(NB+1)
	rows       []float32 // NB+1: [CLS] and real patches
	mask       []float32 // NB (variants without anchors)
	VB         int       // node slots (graph variants)
	nodes      []float32 // VB×in
	EB         int       // edge slots
	src, dst   []int32   // EB
	edgeMask   []float32 // EB
	nodeMask   []float32 // VB
	assign     []int32   // NB
	ihc        []float32 // MB×in
	ihcKeep    []float32 // MB+1
}

// bucket rounds n up to a power of two (at least 16) up to 2048, and above
// that to a multiple of an eighth of the next power of two (at most 12.5 %
// padding on a whole slide of 20k–50k patches), capped at max: the padded
// sizes the graphs are compiled for, so that a few compilations serve
// every slide.
func bucket(n, max int) int {
	if n <= 16 {
		return min(16, max)
	}
	if n <= 2048 {
		return min(1<<bits.Len(uint(n-1)), max)
	}
	step := 1 << (bits.Len(uint(n-1)) - 3)
	return min((n+step-1)/step*step, max)
}

// pack pads an example. anchorsKept lists the anchors used (nil: all);
// under ReferencePadding it lists anchor slots 0..MaxAnchors−1, where slots
// ≥ K are padding. withIHC adds the IHC inputs. An example of up to
// max_patches patches is padded as a training step's; a larger one (a
// prediction, up to c.PredictPatches()) to its own bucket.
func pack(c Config, e *Example, anchorsKept []int, withIHC bool) *packed {
	p := &packed{}
	in := c.InDim
	limit := c.MaxPatches
	if e.N > limit {
		limit = c.PredictPatches()
	}
	if c.ReferencePadding {
		p.NB = c.MaxPatches
	} else {
		p.NB = bucket(e.N, limit)
	}
	if c.Spec().SquarePad {
		// TransMIL's square padding: side² slots, the first side²−N patches
		// repeated (the shape depends on the side only).
		side := squareSide(e.N)
		p.NB = side * side
		p.he = make([]float32, p.NB*in)
		copy(p.he, e.HE)
		copy(p.he[e.N*in:], e.HE)
		p.mask = make([]float32, p.NB)
		for j := range p.mask {
			p.mask[j] = 1
		}
		return p
	}
	if c.Spec().NeedsGraph {
		packGraph(p, c, e)
		return p
	}
	p.he = make([]float32, p.NB*in)
	copy(p.he, e.HE)
	if !c.Spec().NeedsAnchors {
		p.mask = make([]float32, p.NB)
		for j := 0; j < e.N; j++ {
			p.mask[j] = 1
		}
		return p
	}
	if anchorsKept == nil {
		n := e.K
		if c.ReferencePadding {
			n = c.MaxAnchors
		}
		anchorsKept = make([]int, n)
		for i := range anchorsKept {
			anchorsKept[i] = i
		}
	}
	if c.ReferencePadding {
		p.KB = len(anchorsKept)
	} else {
		p.KB = bucket(len(anchorsKept), c.MaxAnchors)
	}
	W := p.NB + 1
	p.rd, p.pol = make([]int32, p.KB*W), make([]int32, p.KB*W)
	p.keep = make([]float32, p.KB*W)
	p.colMask = make([]float32, W)
	p.colMask[0] = 1
	p.rows = make([]float32, W)
	for j := 0; j <= e.N; j++ {
		p.rows[j] = 1
	}
	for j := 1; j < W; j++ {
		if c.ReferencePadding || j <= e.N {
			p.colMask[j] = 1
		}
	}
	for s, a := range anchorsKept {
		row := s * W
		real := a < e.K
		var sd, sp int
		if real {
			for j := 0; j < e.N; j++ {
				d, q := e.Dist[a*e.N+j], e.Polar[a*e.N+j]
				p.rd[row+1+j], p.pol[row+1+j] = int32(d), int32(q)
				sd += int(d)
				sp += int(q)
				p.keep[row+1+j] = 1
			}
		}
		// The [CLS] column: the integer part of the row's mean, over the
		// real patches, or over the padded row as the reference does.
		den := e.N
		if c.ReferencePadding {
			den = p.NB
		}
		p.rd[row], p.pol[row] = int32(sd/den), int32(sp/den)
		if real || c.ReferencePadding {
			p.keep[row] = 1
		}
	}
	if withIHC {
		p.MB = bucket(max(e.M, 1), c.MaxIHC)
		if c.ReferencePadding {
			p.MB = c.MaxIHC
		}
		p.ihc = make([]float32, p.MB*in)
		copy(p.ihc, e.IHC)
		p.ihcKeep = make([]float32, p.MB+1)
		for j := 0; j <= e.M; j++ {
			p.ihcKeep[j] = 1
		}
	}
	return p
}

// maskAnchors draws the anchors kept by kernel masking with ratio r. By
// default it keeps int(K·(1−r)) of the K real anchors (at least one), in
// order. Under ReferencePadding it does what the reference does: a random
// permutation of all MaxAnchors slots, padding included, cut to
// int(MaxAnchors·(1−r)).
func maskAnchors(c Config, k int, r float64, rng *rand.Rand) []int {
	if c.ReferencePadding {
		perm := rng.Perm(c.MaxAnchors)
		return perm[:int(float64(c.MaxAnchors)*(1-r))]
	}
	keep := max(1, int(float64(k)*(1-r)))
	if keep >= k {
		return nil
	}
	idx := rng.Perm(k)[:keep]
	sort.Ints(idx)
	return idx
}
