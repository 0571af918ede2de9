package anchors

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
)

// ReferenceMaxPatches is PAMA's cap at feature extraction (extract_dino.py
// max_nodes): a slide with more tissue patches is subsampled on its grid.
const ReferenceMaxPatches = 4096

// GridFactor is PAMA's integer subsampling factor for a slide of n
// patches under the cap max: 1 when n ≤ max, else ⌊√(n/max)⌋ + 1
// (extract_dino.py: down_factor = int(np.sqrt(n / max_nodes)) + 1).
func GridFactor(n, max int) int {
	if max <= 0 || n <= max {
		return 1
	}
	return int(math.Sqrt(float64(n)/float64(max))) + 1
}

// GridSubsample keeps the patches on every f-th row and column of the
// patch grid, f = GridFactor(len(ps), max), as PAMA's extraction does
// (sampling_mat[::f, ::f] over the grid from its origin): the indices kept,
// ascending, and f. Every patch is kept when there are at most max. The
// result can hold fewer than max/f² of the patches' share when the tissue
// is ragged, never more than about n/f² + the grid's edge.
func GridSubsample(ps []Pos, max int) (keep []int, f int) {
	f = GridFactor(len(ps), max)
	keep = make([]int, 0, len(ps)/(f*f)+1)
	for i, p := range ps {
		if mod(p.Row, f) == 0 && mod(p.Col, f) == 0 {
			keep = append(keep, i)
		}
	}
	return keep, f
}

func mod(v int32, f int) int {
	m := int(v) % f
	if m < 0 {
		m += f
	}
	return m
}

// hilbertIndex is the position of cell (x, y) along the Hilbert curve that
// fills a 2^order × 2^order grid (x, y < 2^order).
func hilbertIndex(order int, x, y uint32) uint64 {
	var d uint64
	for s := uint32(1) << (order - 1); s > 0; s >>= 1 {
		var rx, ry uint32
		if x&s != 0 {
			rx = 1
		}
		if y&s != 0 {
			ry = 1
		}
		d += uint64(s) * uint64(s) * uint64((3*rx)^ry)
		// Rotate the quadrant so the curve inside it has the base
		// orientation.
		if ry == 0 {
			if rx == 1 {
				x = s - 1 - (x & (s - 1))
				y = s - 1 - (y & (s - 1))
			}
			x, y = y, x
		}
		x &= s - 1
		y &= s - 1
	}
	return d
}

// HilbertOrder returns the indices of ps sorted along a Hilbert curve over
// their bounding box: consecutive indices are near each other on the slide,
// and any run of the order covers a compact region.
func HilbertOrder(ps []Pos) []int {
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	if len(ps) < 2 {
		return idx
	}
	minR, maxR, minC, maxC := bounds(ps)
	span := max(uint64(maxR-minR), uint64(maxC-minC)) + 1
	order := max(1, bits.Len64(span-1))
	key := make([]uint64, len(ps))
	for i, p := range ps {
		key[i] = hilbertIndex(order, uint32(p.Col-minC), uint32(p.Row-minR))
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case key[a] < key[b]:
			return -1
		case key[a] > key[b]:
			return 1
		}
		return a - b
	})
	return idx
}

// SpatialSample picks m of the positions ps, spatially uniform: ps are
// ordered along a Hilbert curve and cut into m consecutive runs of n/m
// positions (±1), and one position is taken from each run — at random with
// rng, else the run's middle one (deterministic, for prediction). Every
// region of the slide thus gets its share of the sample whatever its place
// in raster order, and a random draw is a stratified sample that differs
// on every call. All indices when m ≥ len(ps). The result is ascending
// (raster order for raster-ordered positions).
func SpatialSample(ps []Pos, m int, rng *rand.Rand) []int {
	picked, _ := SpatialStrata(ps, m, rng)
	return picked
}

// SpatialStrata is SpatialSample that also says, for every position, which
// pick stands for it: owner[i] is the index into picked of the position
// taken from i's run (a compact region around it, by the curve's
// locality).
func SpatialStrata(ps []Pos, m int, rng *rand.Rand) (picked, owner []int) {
	n := len(ps)
	owner = make([]int, n)
	if m >= n {
		picked = make([]int, n)
		for i := range picked {
			picked[i], owner[i] = i, i
		}
		return picked, owner
	}
	if m <= 0 {
		for i := range owner {
			owner[i] = -1
		}
		return []int{}, owner
	}
	order := HilbertOrder(ps)
	picked = make([]int, m)
	for i := range picked {
		lo, hi := i*n/m, (i+1)*n/m
		j := lo + (hi-lo)/2
		if rng != nil {
			j = lo + rng.IntN(hi-lo)
		}
		picked[i] = order[j]
	}
	// Runs are numbered along the curve; the picks are returned ascending:
	// rank maps a run to its pick's place in that order.
	byRun := slices.Clone(picked)
	slices.Sort(picked)
	rank := make(map[int]int, m)
	for k, p := range picked {
		rank[p] = k
	}
	for i := 0; i < m; i++ {
		k := rank[byRun[i]]
		for _, j := range order[i*n/m : (i+1)*n/m] {
			owner[j] = k
		}
	}
	return picked, owner
}
