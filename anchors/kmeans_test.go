package anchors

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// refKMeans is a brute-force k-means that consumes the same random draws as
// KMeans: k-means++ seeding where every chosen centre updates every point's
// D² and each draw walks all points with a running sum, then Lloyd
// iterations that scan every centroid for every point (ties to the lowest
// centroid index). The one thing it shares with KMeans is the order in which
// a D² draw walks the points: KMeans walks its seeding cells in cell order
// and each cell's points in index order, so the reference walks the points
// in that order too (the cell side below must follow cluster.go's seeding
// grid). Everything else (pruning, cell searches, the Fenwick tree) is
// replaced by exhaustive loops.
func refKMeans(ps []Pos, k int, cfg KMeansConfig) ([][2]float64, []int32) {
	n := len(ps)
	if n == 0 || k <= 0 {
		return nil, nil
	}
	k = min(k, n)
	xs, ys := make([]float64, n), make([]float64, n)
	for i, p := range ps {
		xs[i], ys[i] = float64(p.Col), float64(p.Row)
	}
	x0, y0, x1, y1 := slices.Min(xs), slices.Min(ys), slices.Max(xs), slices.Max(ys)
	side := math.Max(math.Sqrt(8), 2*math.Sqrt(float64(n)/float64(k)))
	order := newCellGrid(xs, ys, x0, y0, x1, y1, side).items

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	d2 := make([]float64, n)
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	var cx, cy []float64
	add := func(p int) {
		cx, cy = append(cx, xs[p]), append(cy, ys[p])
		for i := range d2 {
			ex, ey := xs[i]-xs[p], ys[i]-ys[p]
			d2[i] = min(d2[i], ex*ex+ey*ey)
		}
	}
	add(rng.IntN(n))
	for len(cx) < k {
		total := 0.0
		for _, i := range order {
			total += d2[i]
		}
		if total == 0 {
			break
		}
		u := rng.Float64() * total
		next, last := -1, -1
		for _, i := range order {
			if d2[i] == 0 {
				continue
			}
			last = int(i)
			if u < d2[i] {
				next = int(i)
				break
			}
			u -= d2[i]
		}
		if next < 0 {
			next = last
		}
		add(next)
	}

	assign := make([]int32, n)
	for i := range assign {
		assign[i] = -1
	}
	for it := 0; it < max(cfg.MaxIter, 1); it++ {
		changed := false
		for i := range ps {
			best, bd := int32(-1), math.Inf(1)
			for c := range cx {
				dx, dy := cx[c]-xs[i], cy[c]-ys[i]
				if d := dx*dx + dy*dy; d < bd {
					best, bd = int32(c), d
				}
			}
			if best != assign[i] {
				assign[i], changed = best, true
			}
		}
		if !changed {
			break
		}
		sx, sy, cnt := make([]float64, k), make([]float64, k), make([]int, k)
		for i, c := range assign {
			sx[c] += xs[i]
			sy[c] += ys[i]
			cnt[c]++
		}
		for c := range cx {
			if cnt[c] > 0 { // an empty cluster keeps its centroid
				cx[c], cy[c] = sx[c]/float64(cnt[c]), sy[c]/float64(cnt[c])
			}
		}
	}
	cents := make([][2]float64, len(cx))
	for c := range cents {
		cents[c] = [2]float64{cy[c], cx[c]}
	}
	return cents, assign
}

// refAnchors: for each centroid the patch nearest it by exhaustive search
// (lowest index on ties), then sorted and deduplicated.
func refAnchors(ps []Pos, cents [][2]float64) []int64 {
	var out []int64
	for _, c := range cents {
		best, bd := -1, math.Inf(1)
		for i, p := range ps {
			dr, dc := float64(p.Row)-c[0], float64(p.Col)-c[1]
			if d := dr*dr + dc*dc; d < bd {
				best, bd = i, d
			}
		}
		out = append(out, int64(best))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// lineSet, ringSet and sparseSet are point sets unlike tissue blobs.
func lineSet(n int) []Pos {
	ps := make([]Pos, n)
	for i := range ps {
		ps[i] = Pos{int32(3 * i), int32(-2 * i)}
	}
	return ps
}

func ringSet(n int, seed uint64) []Pos {
	rng := rand.New(rand.NewPCG(seed, 7))
	seen := map[Pos]bool{}
	var ps []Pos
	r := math.Sqrt(float64(n)) * 2
	for len(ps) < n {
		a := rng.Float64() * 2 * math.Pi
		rr := r + rng.Float64()*4
		p := Pos{int32(math.Round(rr * math.Sin(a))), int32(math.Round(rr * math.Cos(a)))}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	return ps
}

// sparseSet: a few small clusters far apart (large gaps between tissue
// pieces, a bounding box ~2 000 times the patch count).
func sparseSet(n int, seed uint64) []Pos {
	rng := rand.New(rand.NewPCG(seed, 9))
	seen := map[Pos]bool{}
	var ps []Pos
	centres := []Pos{{0, 0}, {2000, 5}, {-300, 4000}, {900, -900}}
	for len(ps) < n {
		c := centres[rng.IntN(len(centres))]
		p := Pos{c.Row + int32(rng.IntN(30)), c.Col + int32(rng.IntN(30))}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	return ps
}

// KMeans and Anchors equal the brute-force reference exactly (centroids,
// assignments, anchors) on small and medium sets of several shapes, seeds
// and iteration counts.
func TestKMeansEqualsBruteForce(t *testing.T) {
	type tc struct {
		name string
		ps   []Pos
		k    int
		cfg  KMeansConfig
	}
	def := DefaultKMeansConfig()
	var cases []tc
	for _, n := range []int{1, 2, 9, 37, 300, 2048, 4096} {
		for _, ppk := range []int{1, 9, 64, 400} {
			cases = append(cases, tc{fmt.Sprintf("blobs n=%d ppk=%d", n, ppk), blobs(n, uint64(n)), NumAnchors(n, ppk), def})
		}
	}
	cases = append(cases,
		tc{"3x3 block k=1", gridBlock(0, 0, 3, 3), 1, def},
		tc{"3x3 block k=2", gridBlock(0, 0, 3, 3), 2, def},
		tc{"3x3 block k=9", gridBlock(0, 0, 3, 3), 9, def},
		tc{"20x20 block k=45 (many ties)", gridBlock(-10, 5, 20, 20), 45, def},
		tc{"line k=12", lineSet(100), 12, def},
		tc{"ring k=30", ringSet(1500, 1), 30, def},
		tc{"sparse k=40", sparseSet(1200, 2), 40, def},
		tc{"blobs 1 iteration", blobs(1000, 5), 50, KMeansConfig{MaxIter: 1, Seed: 2024}},
		tc{"blobs 0 iterations (treated as 1)", blobs(1000, 5), 50, KMeansConfig{MaxIter: 0, Seed: 2024}},
		tc{"blobs 100 iterations", blobs(1000, 5), 50, KMeansConfig{MaxIter: 100, Seed: 2024}},
		tc{"blobs seed 0", blobs(1000, 5), 50, KMeansConfig{MaxIter: 10, Seed: 0}},
		tc{"blobs seed 2^64−1", blobs(1000, 5), 50, KMeansConfig{MaxIter: 10, Seed: math.MaxUint64}},
		tc{"k > n", blobs(10, 1), 25, def},
	)
	if !testing.Short() {
		cases = append(cases, tc{"blobs n=10000 ppk=9", blobs(10000, 77), NumAnchors(10000, 9), def})
	}
	for _, c := range cases {
		wantC, wantA := refKMeans(c.ps, c.k, c.cfg)
		gotC, gotA := KMeans(c.ps, c.k, c.cfg)
		if !slices.Equal(gotC, wantC) {
			t.Errorf("%s: centroids differ from the brute force (%d vs %d)", c.name, len(gotC), len(wantC))
			continue
		}
		if !slices.Equal(gotA, wantA) {
			t.Errorf("%s: assignments differ from the brute force", c.name)
			continue
		}
		if len(gotC) != min(c.k, len(c.ps)) {
			t.Errorf("%s: %d centroids for k=%d", c.name, len(gotC), c.k)
		}
		if c.cfg == def && len(c.ps) > 0 {
			ppkLike := max(len(c.ps)/max(c.k, 1), 1)
			if got, want := Anchors(c.ps, ppkLike, def), refAnchors(c.ps, refCentroids(c.ps, NumAnchors(len(c.ps), ppkLike), def)); !slices.Equal(got, want) {
				t.Errorf("%s: anchors %v, brute force %v", c.name, got, want)
			}
		}
	}
}

func refCentroids(ps []Pos, k int, cfg KMeansConfig) [][2]float64 {
	c, _ := refKMeans(ps, k, cfg)
	return c
}

// Anchors worked out by hand where k = 1 (the centroid is the mean, no
// randomness) or k = n.
func TestAnchorsByHand(t *testing.T) {
	def := DefaultKMeansConfig()
	cases := []struct {
		name string
		ps   []Pos
		ppk  int
		want []int64
	}{
		{"no patches", nil, 9, []int64{}},
		{"one patch", []Pos{{-4, 12}}, 400, []int64{0}},
		// mean (0, 0.5): both patches at 0.5, the lower index wins.
		{"two patches tie", []Pos{{0, 0}, {0, 1}}, 9, []int64{0}},
		{"two patches tie, listed the other way", []Pos{{0, 1}, {0, 0}}, 9, []int64{0}},
		// mean (0, 1.5) between patches 1 and 2.
		{"row of 4, tie in the middle", gridBlock(0, 0, 1, 4), 9, []int64{1}},
		// mean (2, 0.5): (2,0) at 0.5 beats (3,0) at √1.25.
		{"L shape", []Pos{{0, 0}, {1, 0}, {2, 0}, {3, 0}, {3, 1}, {3, 2}}, 9, []int64{2}},
		// mean (1,1) is the centre patch, index 4.
		{"3x3 block", gridBlock(0, 0, 3, 3), 18, []int64{4}},
		// 4x4 block: mean (1.5,1.5), four patches tie at √0.5; lowest index
		// is (1,1) = 5.
		{"4x4 block, four-way tie", gridBlock(0, 0, 4, 4), 64, []int64{5}},
		// ppk 1 on 5 patches: k = min(5/1+1, 5) = 5, every patch an anchor.
		{"k = n", []Pos{{9, 9}, {0, 0}, {4, 1}, {2, 7}, {-3, 3}}, 1, []int64{0, 1, 2, 3, 4}},
		// collinear, k = 1: mean of rows 0,1,2,3,9 is 3 → patch (3,0).
		{"collinear uneven", []Pos{{0, 0}, {9, 0}, {1, 0}, {2, 0}, {3, 0}}, 9, []int64{4}},
	}
	for _, c := range cases {
		got := Anchors(c.ps, c.ppk, def)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: anchors %v, want %v", c.name, got, c.want)
		}
	}
}

// Anchors are distinct, ascending, valid patch indices, at most k of them,
// the same on every run, and each is a patch nearest some centroid.
func TestAnchorsInvariants(t *testing.T) {
	def := DefaultKMeansConfig()
	for _, ps := range [][]Pos{blobs(5000, 1), ringSet(3000, 2), sparseSet(2500, 3), lineSet(700)} {
		for _, ppk := range PPKValues {
			k := NumAnchors(len(ps), ppk)
			a := Anchors(ps, ppk, def)
			if len(a) == 0 || len(a) > k {
				t.Fatalf("ppk %d: %d anchors for k=%d", ppk, len(a), k)
			}
			for i, j := range a {
				if j < 0 || j >= int64(len(ps)) || (i > 0 && j <= a[i-1]) {
					t.Fatalf("ppk %d: anchors not distinct ascending indices: %v", ppk, a)
				}
			}
			if again := Anchors(ps, ppk, def); !slices.Equal(a, again) {
				t.Fatalf("ppk %d: a second run differs", ppk)
			}
		}
	}
}

func TestNumAnchorsTable(t *testing.T) {
	for _, c := range []struct{ n, ppk, want int }{
		{0, 9, 0}, {1, 9, 1}, {1, 400, 1}, {2, 1, 2}, {8, 9, 1}, {9, 9, 2}, {10, 9, 2},
		{4096, 9, 456}, {4096, 18, 228}, {4096, 400, 11}, {20000, 36, 556},
		{100000, 9, 11112}, {100000, 400, 251}, {7, 0, 0}, {7, -3, 0},
	} {
		if got := NumAnchors(c.n, c.ppk); got != c.want {
			t.Errorf("NumAnchors(%d, %d) = %d, want %d", c.n, c.ppk, got, c.want)
		}
	}
	if !slices.Equal(PPKValues, []int{9, 18, 36, 64, 100, 144, 256, 400}) {
		t.Errorf("PPKValues %v", PPKValues)
	}
	if d := DefaultKMeansConfig(); d.MaxIter != 10 || d.Seed != 2024 {
		t.Errorf("DefaultKMeansConfig %+v", d)
	}
}

// Repeated positions leave fewer distinct centres than k: KMeans returns
// the centres it found and every assignment names one of them.
func TestKMeansFewerDistinctThanK(t *testing.T) {
	ps := []Pos{{1, 1}, {1, 1}, {1, 1}, {2, 2}}
	c, a := KMeans(ps, 4, KMeansConfig{Seed: 1, MaxIter: 10})
	if len(c) != 2 {
		t.Fatalf("centres %v, want 2", c)
	}
	for i, x := range a {
		if x < 0 || int(x) >= len(c) {
			t.Fatalf("patch %d assigned to %d of %d centres", i, x, len(c))
		}
	}
}

// Grid positions whose squared distances could overflow int64 are refused.
func TestGridPositionsRange(t *testing.T) {
	if _, err := GridPositions([]int64{0, 0, 256 << 29, 0}, 256); err == nil {
		t.Fatal("coordinate 2^29 patches away accepted")
	}
	if _, err := GridPositions([]int64{0, 0, 256 * (1<<29 - 1), 0}, 256); err != nil {
		t.Fatal(err)
	}
}
