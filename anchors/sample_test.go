package anchors

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The Hilbert index visits every cell of the grid once, each step to a
// 4-neighbour.
func TestHilbertIndexIsACurve(t *testing.T) {
	for _, order := range []int{1, 2, 3, 5} {
		n := uint32(1) << order
		at := make([][2]uint32, n*n)
		seen := make([]bool, n*n)
		for x := uint32(0); x < n; x++ {
			for y := uint32(0); y < n; y++ {
				d := hilbertIndex(order, x, y)
				if d >= uint64(n*n) || seen[d] {
					t.Fatalf("order %d: (%d,%d) → %d (repeated or out of range)", order, x, y, d)
				}
				seen[d] = true
				at[d] = [2]uint32{x, y}
			}
		}
		for d := 1; d < len(at); d++ {
			dx := int(at[d][0]) - int(at[d-1][0])
			dy := int(at[d][1]) - int(at[d-1][1])
			if dx*dx+dy*dy != 1 {
				t.Fatalf("order %d: step %d goes %v → %v", order, d, at[d-1], at[d])
			}
		}
	}
}

// rect is a rows×cols block of positions in raster order.
func rect(rows, cols int32) []Pos {
	var ps []Pos
	for r := int32(0); r < rows; r++ {
		for c := int32(0); c < cols; c++ {
			ps = append(ps, Pos{r, c})
		}
	}
	return ps
}

// A spatial sample of a slide gives each half (and each quadrant) its share
// of the patches, where the first m in raster order take only the top; it
// is ascending and distinct, deterministic without rng, and a stratified
// random draw with it.
func TestSpatialSample(t *testing.T) {
	ps := rect(100, 60) // 6000 patches
	m := 2048
	quadrants := func(idx []int) [4]int {
		var q [4]int
		for _, i := range idx {
			p := ps[i]
			k := 0
			if p.Row >= 50 {
				k += 2
			}
			if p.Col >= 30 {
				k++
			}
			q[k]++
		}
		return q
	}
	check := func(name string, idx []int) {
		t.Helper()
		if len(idx) != m || !slices.IsSorted(idx) || len(slices.Compact(slices.Clone(idx))) != m {
			t.Fatalf("%s: %d indices, sorted %v", name, len(idx), slices.IsSorted(idx))
		}
		for k, c := range quadrants(idx) {
			if c < m/4-m/40 || c > m/4+m/40 { // within 10 % of a quarter
				t.Errorf("%s: quadrant %d holds %d of %d", name, k, c, m)
			}
		}
	}
	det := SpatialSample(ps, m, nil)
	check("deterministic", det)
	if again := SpatialSample(ps, m, nil); !slices.Equal(det, again) {
		t.Error("deterministic sample differs between calls")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := SpatialSample(ps, m, rng), SpatialSample(ps, m, rng)
	check("random a", a)
	check("random b", b)
	if slices.Equal(a, b) {
		t.Error("two random draws are equal")
	}
	// What the first-m rule does: the lower half is never seen.
	if q := quadrants(seq(m)); q[2]+q[3] != 0 {
		t.Fatalf("first %d in raster order reach the lower half: %v", m, q)
	}
	// Every position is owned by a pick of its own run, and a pick owns
	// itself; owners are near (a compact run of about n/m positions).
	picked, owner := SpatialStrata(ps, m, nil)
	if !slices.Equal(picked, det) {
		t.Fatal("SpatialStrata picks differ from SpatialSample's")
	}
	for k, p := range picked {
		if owner[p] != k {
			t.Fatalf("pick %d (position %d) owned by %d", k, p, owner[p])
		}
	}
	var far int
	for i, k := range owner {
		a, b := ps[i], ps[picked[k]]
		if d := dist2(a, b); d > 4*4 {
			far++
		}
	}
	if far > len(ps)/100 {
		t.Errorf("%d of %d positions lie more than 4 cells from the pick standing for them", far, len(ps))
	}
	if got := SpatialSample(ps[:100], m, rng); !slices.Equal(got, seq(100)) {
		t.Error("fewer positions than m: not all of them")
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// PAMA's grid subsampling: factor ⌊√(n/4096)⌋+1, every f-th row and
// column of the grid from its origin.
func TestGridSubsample(t *testing.T) {
	cases := []struct {
		name       string
		rows, cols int32
		max, wantF int
	}{
		{"under the cap", 64, 64, 4096, 1},
		{"just over", 64, 65, 4096, 2}, // 4160 patches
		{"20k patches", 100, 200, 4096, 3},
		{"50k patches", 200, 250, 4096, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := rect(c.rows, c.cols)
			keep, f := GridSubsample(ps, c.max)
			if f != c.wantF || GridFactor(len(ps), c.max) != f {
				t.Fatalf("factor %d, want %d", f, c.wantF)
			}
			want := 0
			for _, p := range ps {
				if int(p.Row)%f == 0 && int(p.Col)%f == 0 {
					want++
				}
			}
			if len(keep) != want || !slices.IsSorted(keep) {
				t.Fatalf("kept %d, want %d", len(keep), want)
			}
			for _, i := range keep {
				if int(ps[i].Row)%f != 0 || int(ps[i].Col)%f != 0 {
					t.Fatalf("kept %v off the %d-grid", ps[i], f)
				}
			}
			if f > 1 && len(keep) > c.max {
				t.Errorf("kept %d > cap %d", len(keep), c.max)
			}
		})
	}
}
