package anchors

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func P(r, c int32) Pos { return Pos{r, c} }

func bruteDiameter(ps []Pos) float64 {
	var best int64
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			best = max(best, dist2(ps[i], ps[j]))
		}
	}
	return math.Sqrt(float64(best))
}

func TestDiameterByHand(t *testing.T) {
	cases := []struct {
		name string
		ps   []Pos
		want float64
	}{
		{"none", nil, 0},
		{"one patch", []Pos{P(3, 4)}, 0},
		{"two patches", []Pos{P(0, 0), P(3, 4)}, 5},
		{"collinear row", []Pos{P(2, 0), P(2, 1), P(2, 2), P(2, 7)}, 7},
		{"collinear diagonal", []Pos{P(0, 0), P(1, 1), P(2, 2), P(3, 3)}, 3 * math.Sqrt2},
		{"3x3 block", []Pos{P(0, 0), P(0, 1), P(0, 2), P(1, 0), P(1, 1), P(1, 2), P(2, 0), P(2, 1), P(2, 2)}, 2 * math.Sqrt2},
		{"L shape", []Pos{P(0, 0), P(1, 0), P(2, 0), P(3, 0), P(3, 1), P(3, 2)}, math.Sqrt(9 + 4)},
		{"ties: square corners", []Pos{P(0, 0), P(0, 4), P(4, 0), P(4, 4), P(2, 2)}, 4 * math.Sqrt2},
	}
	for _, c := range cases {
		if got := Diameter(c.ps); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: diameter %g, want %g", c.name, got, c.want)
		}
	}
}

func FuzzDiameter(f *testing.F) {
	f.Add([]byte{0, 0, 5, 5, 3, 1})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ps []Pos
		for i := 0; i+1 < len(b) && len(ps) < 300; i += 2 {
			ps = append(ps, P(int32(int8(b[i])), int32(int8(b[i+1]))))
		}
		if got, want := Diameter(ps), bruteDiameter(ps); got != want {
			t.Fatalf("diameter %v, brute force %v for %v", got, want, ps)
		}
	})
}

func TestDiameterRandomLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := 0; trial < 30; trial++ {
		var ps []Pos
		n := 50 + rng.IntN(800)
		for i := 0; i < n; i++ {
			ps = append(ps, P(int32(rng.IntN(200)-100), int32(rng.IntN(60)-30)))
		}
		if got, want := Diameter(ps), bruteDiameter(ps); got != want {
			t.Fatalf("trial %d: %v vs %v", trial, got, want)
		}
	}
}

// floatPolar is the reference formula in floating point.
func floatPolar(dr, dc int32) uint8 {
	th := math.Atan2(float64(dc), float64(dr))
	b := math.Floor(th/(math.Pi/4)) + 4
	if b > 7 {
		b = 7
	}
	return uint8(b)
}

func TestPolarBinByHand(t *testing.T) {
	// Δ = (Δrow, Δcol); θ = atan2(Δcol, Δrow).
	cases := []struct {
		dr, dc int32
		want   uint8
		why    string
	}{
		{0, 0, 4, "anchor itself: atan2(0,0) = 0"},
		{1, 0, 4, "θ = 0"},
		{2, 1, 4, "θ ≈ 26.6°"},
		{1, 1, 5, "θ = 45° exactly starts sector 5"},
		{1, 2, 5, "θ ≈ 63.4°"},
		{0, 1, 6, "θ = 90°"},
		{-1, 2, 6, "θ ≈ 116.6°"},
		{-1, 1, 7, "θ = 135°"},
		{-2, 1, 7, "θ ≈ 153.4°"},
		{-1, 0, 7, "θ = π clamps to 7"},
		{-5, 0, 7, "θ = π clamps to 7"},
		{-2, -1, 0, "θ ≈ −153.4°"},
		{-1, -1, 1, "θ = −135°"},
		{-1, -2, 1, "θ ≈ −116.6°"},
		{0, -1, 2, "θ = −90°"},
		{1, -2, 2, "θ ≈ −63.4°"},
		{1, -1, 3, "θ = −45°"},
		{2, -1, 3, "θ ≈ −26.6°"},
	}
	for _, c := range cases {
		if got := PolarBin(c.dr, c.dc); got != c.want {
			t.Errorf("Δ=(%d,%d) %s: bin %d, want %d", c.dr, c.dc, c.why, got, c.want)
		}
	}
}

func TestDistBinByHand(t *testing.T) {
	// Diameter 64 → width 1: bin = floor(d).
	cases := []struct {
		d, width float64
		want     uint8
	}{
		{0, 1, 0}, {0.99, 1, 0}, {1, 1, 1}, {5, 1, 5}, {63.9, 1, 63}, {64, 1, 64}, {80, 1, 64},
		{5, 0, 0},                // one patch: width 0
		{math.Sqrt2 * 3, 0.5, 8}, // 4.24/0.5 = 8.48
	}
	for _, c := range cases {
		if got := DistBin(c.d, c.width); got != c.want {
			t.Errorf("DistBin(%g, %g) = %d, want %d", c.d, c.width, got, c.want)
		}
	}
}

// Bins on a small set worked out by hand: an L of patches, anchor at the
// corner (3,0); diameter √13, width √13/64.
func TestBinsByHand(t *testing.T) {
	ps := []Pos{P(0, 0), P(1, 0), P(2, 0), P(3, 0), P(3, 1), P(3, 2)}
	w := BinWidth(Diameter(ps))
	an := []Pos{P(3, 0)}
	dist, polar := make([]uint8, 6), make([]uint8, 6)
	Bins(an, ps, w, dist, polar)
	// Distances 3, 2, 1, 0, 1, 2 → floor(d·64/√13).
	wantD := []uint8{53, 35, 17, 0, 17, 35}
	// Patches above the anchor: Δ = (−k, 0) → θ = π → 7; itself → 4;
	// to the right: Δ = (0, +k) → θ = π/2 → 6.
	wantP := []uint8{7, 7, 7, 4, 6, 6}
	if !slices.Equal(dist, wantD) || !slices.Equal(polar, wantP) {
		t.Errorf("dist %v (want %v), polar %v (want %v)", dist, wantD, polar, wantP)
	}
}

func FuzzBins(f *testing.F) {
	f.Add(int32(3), int32(-7), int32(1), int32(1), 10.5)
	f.Add(int32(0), int32(0), int32(-4), int32(0), 0.0)
	f.Fuzz(func(t *testing.T, ar, ac, pr, pc int32, diam float64) {
		if math.IsNaN(diam) || math.IsInf(diam, 0) || diam < 0 || diam > 1e6 || abs32(ar) > 1<<20 || abs32(ac) > 1<<20 || abs32(pr) > 1<<20 || abs32(pc) > 1<<20 {
			return
		}
		w := BinWidth(diam)
		d, p := make([]uint8, 1), make([]uint8, 1)
		Bins([]Pos{P(ar, ac)}, []Pos{P(pr, pc)}, w, d, p)
		if d[0] > 64 || p[0] > 7 {
			t.Fatalf("bins out of range: %d %d", d[0], p[0])
		}
		dd := math.Sqrt(float64(dist2(P(ar, ac), P(pr, pc))))
		if d[0] != DistBin(dd, w) {
			t.Fatalf("dist bin %d, DistBin %d", d[0], DistBin(dd, w))
		}
		dr, dc := pr-ar, pc-ac
		// Off the 45° boundaries the float formula must agree.
		if dr != 0 && dc != 0 && abs32(dr) != abs32(dc) && p[0] != floatPolar(dr, dc) {
			t.Fatalf("Δ=(%d,%d): polar %d, float formula %d", dr, dc, p[0], floatPolar(dr, dc))
		}
	})
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// The table path and the direct path agree on random sets.
func TestBinsTableMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for trial := 0; trial < 40; trial++ {
		ps := blobs(50+rng.IntN(500), uint64(trial))
		an := ps[:1+rng.IntN(40)]
		w := BinWidth(Diameter(ps))
		d1, p1 := make([]uint8, len(an)*len(ps)), make([]uint8, len(an)*len(ps))
		d2, p2 := make([]uint8, len(an)*len(ps)), make([]uint8, len(an)*len(ps))
		Bins(an, ps, w, d1, p1)
		binsDirect(an, ps, w, d2, p2)
		if !slices.Equal(d1, d2) || !slices.Equal(p1, p2) {
			t.Fatalf("trial %d: table and direct bins differ", trial)
		}
	}
}

func TestGridPositions(t *testing.T) {
	ps, err := GridPositions([]int64{0, 0, 512, 0, 1024, 512}, 512)
	if err != nil || !slices.Equal(ps, []Pos{P(0, 0), P(0, 1), P(1, 2)}) {
		t.Fatalf("%v %v", ps, err)
	}
	// An origin off 0 (imported coordinates): same grid positions.
	ps, err = GridPositions([]int64{100, 37, 612, 37, 1124, 549}, 512)
	if err != nil || !slices.Equal(ps, []Pos{P(0, 0), P(0, 1), P(1, 2)}) {
		t.Fatalf("offset origin: %v %v", ps, err)
	}
	for _, c := range []struct {
		coords []int64
		want   string
	}{
		{[]int64{0, 0, 300, 0}, "off the 256-px grid"},
		{[]int64{0, 0, 256, 0, 0, 0}, "share grid position"},
		{[]int64{0, 0, 1}, "pairs"},
	} {
		if _, err := GridPositions(c.coords, 256); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.coords, err, c.want)
		}
	}
}

func TestNumAnchors(t *testing.T) {
	for _, c := range []struct{ n, ppk, want int }{
		{0, 18, 0}, {1, 18, 1}, {17, 18, 1}, {18, 18, 2}, {2048, 18, 114}, {100000, 9, 11112}, {5, 1, 5}, {3, 9, 1},
	} {
		if got := NumAnchors(c.n, c.ppk); got != c.want {
			t.Errorf("NumAnchors(%d, %d) = %d, want %d", c.n, c.ppk, got, c.want)
		}
	}
}

// bruteAssign assigns each point to its nearest centroid, lowest index on ties.
func bruteAssign(ps []Pos, cx, cy []float64) []int32 {
	out := make([]int32, len(ps))
	for i, p := range ps {
		best, bd := -1, math.Inf(1)
		for c := range cx {
			d := sq(float64(p.Col)-cx[c]) + sq(float64(p.Row)-cy[c])
			if d < bd {
				best, bd = c, d
			}
		}
		out[i] = int32(best)
	}
	return out
}

// blobs makes a slide-like point set: irregular tissue pieces with holes.
func blobs(n int, seed uint64) []Pos {
	rng := rand.New(rand.NewPCG(seed, 1))
	seen := map[Pos]bool{}
	var ps []Pos
	type blob struct{ r, c, a, b, th float64 }
	var bs []blob
	scale := math.Sqrt(float64(n)) * 0.9
	for i := 0; i < 4; i++ {
		bs = append(bs, blob{rng.Float64() * scale * 2, rng.Float64() * scale * 3, scale * (0.3 + 0.4*rng.Float64()), scale * (0.3 + 0.5*rng.Float64()), rng.Float64() * math.Pi})
	}
	for len(ps) < n {
		b := bs[rng.IntN(len(bs))]
		u, v := rng.NormFloat64()*b.a/2, rng.NormFloat64()*b.b/2
		r := b.r + u*math.Cos(b.th) - v*math.Sin(b.th)
		c := b.c + u*math.Sin(b.th) + v*math.Cos(b.th)
		p := P(int32(math.Round(r)), int32(math.Round(c)))
		// Holes: a sparse lattice of gaps.
		if (p.Row%11 == 0 && p.Col%7 == 0) || seen[p] {
			continue
		}
		seen[p] = true
		ps = append(ps, p)
	}
	return ps
}

// The grid-accelerated assignment equals a brute-force search, and the
// final assignment is each point's nearest final centroid but for points
// moved in the last update.
func TestKMeansMatchesBruteForce(t *testing.T) {
	for _, c := range []struct{ n, k int }{{50, 3}, {500, 28}, {3000, 334}, {4096, 4096 / 9}} {
		ps := blobs(c.n, uint64(c.n))
		xs, ys := make([]float64, len(ps)), make([]float64, len(ps))
		for i, p := range ps {
			xs[i], ys[i] = float64(p.Col), float64(p.Row)
		}
		x0, y0, x1, y1 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
		for i := range xs {
			x0, y0, x1, y1 = math.Min(x0, xs[i]), math.Min(y0, ys[i]), math.Max(x1, xs[i]), math.Max(y1, ys[i])
		}
		// Random centroids anywhere in the box, also between grid points.
		rng := rand.New(rand.NewPCG(9, uint64(c.k)))
		cx, cy := make([]float64, c.k), make([]float64, c.k)
		for i := range cx {
			cx[i], cy[i] = x0+rng.Float64()*(x1-x0), y0+rng.Float64()*(y1-y0)
		}
		cx[0], cy[0] = xs[0], ys[0] // an exact tie candidate
		g := newCellGrid(cx, cy, x0, y0, x1, y1, math.Sqrt(2*float64(c.n)/float64(c.k)))
		want := bruteAssign(ps, cx, cy)
		for i := range ps {
			got, _ := g.nearest(xs[i], ys[i], cx, cy, int32(i%c.k))
			if got != want[i] {
				t.Fatalf("n=%d k=%d point %d: grid %d, brute %d", c.n, c.k, i, got, want[i])
			}
		}
	}
}

func TestKMeansProperties(t *testing.T) {
	ps := blobs(2000, 3)
	cfg := DefaultKMeansConfig()
	cents, assign := KMeans(ps, 100, cfg)
	cents2, assign2 := KMeans(ps, 100, cfg)
	if !slices.Equal(assign, assign2) || !slices.Equal(cents, cents2) {
		t.Fatal("k-means is not deterministic")
	}
	cfg.Seed++
	_, assign3 := KMeans(ps, 100, cfg)
	if slices.Equal(assign, assign3) {
		t.Error("another seed gave the same clustering")
	}
	// Lloyd never increases the within-cluster sum of squares: compare the
	// result with one iteration.
	one := KMeansConfig{MaxIter: 1, Seed: DefaultKMeansConfig().Seed}
	c1, a1 := KMeans(ps, 100, one)
	if wcss(ps, cents, assign) > wcss(ps, c1, a1)+1e-9 {
		t.Errorf("10 iterations (%g) worse than 1 (%g)", wcss(ps, cents, assign), wcss(ps, c1, a1))
	}
	// k = n: every point its own centroid.
	small := blobs(30, 4)
	c, a := KMeans(small, 30, DefaultKMeansConfig())
	if len(c) != 30 || wcss(small, c, a) != 0 {
		t.Errorf("k = n: %d centroids, wcss %g", len(c), wcss(small, c, a))
	}
}

func wcss(ps []Pos, cents [][2]float64, assign []int32) float64 {
	s := 0.0
	for i, p := range ps {
		c := cents[assign[i]]
		s += sq(float64(p.Row)-c[0]) + sq(float64(p.Col)-c[1])
	}
	return s
}

func TestAnchors(t *testing.T) {
	ps := blobs(3000, 8)
	for _, ppk := range PPKValues {
		a := Anchors(ps, ppk, DefaultKMeansConfig())
		k := NumAnchors(len(ps), ppk)
		if len(a) == 0 || len(a) > k || !slices.IsSorted(a) || slices.Compact(slices.Clone(a)) == nil {
			t.Fatalf("ppk %d: %d anchors for k %d", ppk, len(a), k)
		}
		if len(a) < k*9/10 {
			t.Errorf("ppk %d: only %d distinct anchors for k %d", ppk, len(a), k)
		}
		for i := 1; i < len(a); i++ {
			if a[i] == a[i-1] {
				t.Fatalf("duplicate anchor %d", a[i])
			}
		}
	}
	// One patch, and two.
	if a := Anchors([]Pos{P(5, 5)}, 18, DefaultKMeansConfig()); !slices.Equal(a, []int64{0}) {
		t.Errorf("one patch: %v", a)
	}
	if a := Anchors([]Pos{P(0, 0), P(0, 1)}, 1, DefaultKMeansConfig()); !slices.Equal(a, []int64{0, 1}) {
		t.Errorf("two patches, ppk 1: %v", a)
	}
	// Anchors are real patches nearest their centroid: a 3×3 block with
	// k = 1 has its centroid at the centre patch.
	var block []Pos
	for r := int32(0); r < 3; r++ {
		for c := int32(0); c < 3; c++ {
			block = append(block, P(r, c))
		}
	}
	if a := Anchors(block, 18, DefaultKMeansConfig()); !slices.Equal(a, []int64{4}) {
		t.Errorf("3×3 block, k = ⌊9/18⌋+1 = 1: anchors %v, want the centre patch [4]", a)
	}
}
