package anchors

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// naiveCut is textbook average linkage (merge the globally closest pair of
// clusters, average of all point pairs, until the closest is above t): the
// definition the nearest-neighbour chain must reproduce.
func naiveCut(D []float32, n int, t float64) [][]int {
	cl := make([][]int, n)
	for i := range cl {
		cl[i] = []int{i}
	}
	for len(cl) > 1 {
		bi, bj, bd := -1, -1, math.Inf(1)
		for i := range cl {
			for j := i + 1; j < len(cl); j++ {
				var s float64
				for _, a := range cl[i] {
					for _, b := range cl[j] {
						s += float64(D[a*n+b])
					}
				}
				if d := s / float64(len(cl[i])*len(cl[j])); d < bd {
					bi, bj, bd = i, j, d
				}
			}
		}
		if bd > t {
			break
		}
		cl[bi] = append(cl[bi], cl[bj]...)
		cl = slices.Delete(cl, bj, bj+1)
	}
	return cl
}

func partition(label []int) [][]int {
	m := map[int][]int{}
	for i, l := range label {
		m[l] = append(m[l], i)
	}
	var out [][]int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func canon(p [][]int) [][]int {
	for _, c := range p {
		slices.Sort(c)
	}
	slices.SortFunc(p, func(a, b []int) int { return a[0] - b[0] })
	return p
}

// The nearest-neighbour chain cut equals textbook average linkage cut at
// the same height, on random dissimilarities of several sizes and cuts.
func TestAverageLinkageCut(t *testing.T) {
	for _, tc := range []struct {
		n   int
		cut float64
	}{{2, 0.5}, {9, 0.3}, {40, 0.5}, {60, 0.8}, {60, 0.1}} {
		rng := rand.New(rand.NewPCG(uint64(tc.n), 7))
		D := make([]float32, tc.n*tc.n)
		for i := 0; i < tc.n; i++ {
			for j := i + 1; j < tc.n; j++ {
				v := float32(rng.Float64())
				D[i*tc.n+j], D[j*tc.n+i] = v, v
			}
		}
		want := canon(naiveCut(D, tc.n, tc.cut))
		got := canon(partition(averageLinkageCut(slices.Clone(D), tc.n, tc.cut)))
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("n=%d cut=%g: %d clusters %v, want %d %v", tc.n, tc.cut, len(got), got, len(want), want)
		}
	}
}

// Two tissue pieces with different features give separate nodes; patches
// alike and adjacent share a node; node features are means; the Delaunay
// edges of a square with a centre are its 4 sides and 4 spokes.
func TestBuildSlideGraph(t *testing.T) {
	// 4×4 patches at 64 px pitch, two feature groups (left and right halves).
	var xy []float64
	var f []float32
	for r := 0; r < 4; r++ {
		for c := 0; c < 4; c++ {
			xy = append(xy, float64(c*64), float64(r*64))
			v := float32(0)
			if c >= 2 {
				v = 5000 // exp(−1e-3·5000) ≈ 0.007: dissimilar
			}
			f = append(f, v, 1)
		}
	}
	g, err := BuildSlideGraph(xy, f, 2, DefaultGraphOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i++ {
		left := i%4 < 2
		if (g.Assign[i] == g.Assign[0]) != left {
			t.Fatalf("patch %d (left %v) in node %d, patch 0 in %d: %v", i, left, g.Assign[i], g.Assign[0], g.Assign)
		}
	}
	// Within a half every pair is ≤ 202 px apart: 1 − exp(−3e-3·202) ≈ 0.45
	// ≤ λh 0.8, so each half is one node.
	if g.Nodes != 2 {
		t.Errorf("%d nodes, want 2 (one per feature group)", g.Nodes)
	}
	if len(g.Edges) != 2 || g.Edges[0] != [2]int32{0, 1} || g.Edges[1] != [2]int32{1, 0} {
		t.Errorf("edges %v, want 0↔1", g.Edges)
	}

	sq := [][2]float64{{0, 0}, {1000, 0}, {0, 1000}, {1000, 1000}, {500, 500}}
	e := delaunayEdges(sq, 4000)
	if len(e) != 16 {
		t.Errorf("square with centre: %d directed edges %v, want 16", len(e), e)
	}
	for _, ed := range e {
		a, b := sq[ed[0]], sq[ed[1]]
		if math.Hypot(a[0]-b[0], a[1]-b[1]) > 1000 {
			t.Errorf("diagonal edge %v", ed)
		}
	}
	if e := delaunayEdges(sq, 800); len(e) != 8 {
		t.Errorf("dthresh 800: %d directed edges, want the 8 spokes", len(e))
	}
	if _, err := BuildSlideGraph(xy, f[:3], 2, DefaultGraphOptions()); err == nil {
		t.Error("mismatched features accepted")
	}
}
