package anchors

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// refPolar is the polar bin written independently of PolarBin: the
// boundary directions (multiples of 45°, where θ/(π/4) is an exact integer
// that atan2 in floating point may miss by an ulp) are listed by hand, and
// every other direction goes through the reference formula in floating
// point. Off the boundaries that is safe for |Δ| < 2²⁰: an integer
// direction off a 45° line is at least ~1/(2|Δ|) rad ≫ 1e-15 from it.
func refPolar(dr, dc int64) uint8 {
	ar, ac := dr, dc
	if ar < 0 {
		ar = -ar
	}
	if ac < 0 {
		ac = -ac
	}
	switch {
	case dr == 0 && dc == 0:
		return 4 // atan2(0, 0) = 0
	case dc == 0 && dr > 0:
		return 4 // θ = 0
	case dc == 0: // dr < 0
		return 7 // θ = π: ⌊4⌋ + 4 = 8, clamped to 7
	case dr == 0 && dc > 0:
		return 6 // θ = π/2
	case dr == 0: // dc < 0
		return 2 // θ = −π/2
	case ar == ac && dr > 0 && dc > 0:
		return 5 // θ = π/4
	case ar == ac && dr < 0 && dc > 0:
		return 7 // θ = 3π/4
	case ar == ac && dr < 0 && dc < 0:
		return 1 // θ = −3π/4
	case ar == ac: // dr > 0, dc < 0
		return 3 // θ = −π/4
	}
	b := math.Floor(math.Atan2(float64(dc), float64(dr))/(math.Pi/4)) + 4
	return uint8(min(b, 7))
}

// refDist is the reference distance bin: ⌊d / width⌋ on float64, clamped
// to 64, 0 for a zero width.
func refDist(d2 int64, width float64) uint8 {
	if width == 0 {
		return 0
	}
	return uint8(min(math.Floor(math.Sqrt(float64(d2))/width), 64))
}

// refBins fills K×N anchor-major bins pair by pair with the reference
// formulas.
func refBins(anchors, patches []Pos, width float64) (dist, polar []uint8) {
	n := len(patches)
	dist, polar = make([]uint8, len(anchors)*n), make([]uint8, len(anchors)*n)
	for a, ap := range anchors {
		for i, p := range patches {
			dr, dc := int64(p.Row)-int64(ap.Row), int64(p.Col)-int64(ap.Col)
			dist[a*n+i] = refDist(dr*dr+dc*dc, width)
			polar[a*n+i] = refPolar(dr, dc)
		}
	}
	return dist, polar
}

func TestPolarBinCompass(t *testing.T) {
	// Δ = (Δrow, Δcol) = patch − anchor; θ = atan2(Δcol, Δrow): rows grow
	// downwards, so θ = 0 is "down", π/2 "right", ±π "up", −π/2 "left".
	cases := []struct {
		name   string
		dr, dc int32
		want   uint8
	}{
		{"same patch (θ = atan2(0,0) = 0)", 0, 0, 4},
		{"down, θ = 0", 3, 0, 4},
		{"down-right, θ = π/4", 3, 3, 5},
		{"right, θ = π/2", 0, 3, 6},
		{"up-right, θ = 3π/4", -3, 3, 7},
		{"up, θ = +π → 7", -3, 0, 7},
		{"up-left, θ = −3π/4", -3, -3, 1},
		{"left, θ = −π/2", 0, -3, 2},
		{"down-left, θ = −π/4", 3, -3, 3},
		// Sector interiors, one per sector.
		{"(−π, −3π/4)", -3, -1, 0},
		{"(−3π/4, −π/2)", -1, -3, 1},
		{"(−π/2, −π/4)", 1, -3, 2},
		{"(−π/4, 0)", 3, -1, 3},
		{"(0, π/4)", 3, 1, 4},
		{"(π/4, π/2)", 1, 3, 5},
		{"(π/2, 3π/4)", -1, 3, 6},
		{"(3π/4, π)", -3, 1, 7},
		// Just either side of θ = ±π.
		{"θ just below π", -1000000, 1, 7},
		{"θ just above −π", -1000000, -1, 0},
		// Just either side of the 45° boundary.
		{"θ just below π/4", 1000001, 1000000, 4},
		{"θ just above π/4", 1000000, 1000001, 5},
	}
	for _, c := range cases {
		if got := PolarBin(c.dr, c.dc); got != c.want {
			t.Errorf("%s: PolarBin(%d, %d) = %d, want %d", c.name, c.dr, c.dc, got, c.want)
		}
		if got := refPolar(int64(c.dr), int64(c.dc)); got != c.want {
			t.Errorf("%s: reference gives %d, want %d (bad hand value)", c.name, got, c.want)
		}
	}
}

// Every integer direction in a square, and random far ones.
func TestPolarBinExhaustive(t *testing.T) {
	for dr := int32(-80); dr <= 80; dr++ {
		for dc := int32(-80); dc <= 80; dc++ {
			if got, want := PolarBin(dr, dc), refPolar(int64(dr), int64(dc)); got != want {
				t.Fatalf("PolarBin(%d, %d) = %d, want %d", dr, dc, got, want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		dr, dc := int32(rng.IntN(1<<21)-1<<20), int32(rng.IntN(1<<21)-1<<20)
		if got, want := PolarBin(dr, dc), refPolar(int64(dr), int64(dc)); got != want {
			t.Fatalf("PolarBin(%d, %d) = %d, want %d", dr, dc, got, want)
		}
	}
	// Extremes of int32 stay in range and on the right side.
	for _, c := range []struct {
		dr, dc int32
		want   uint8
	}{
		{math.MinInt32, 0, 7}, {math.MaxInt32, 0, 4}, {0, math.MinInt32, 2}, {0, math.MaxInt32, 6},
		{math.MinInt32, math.MinInt32, 1}, {math.MaxInt32, math.MaxInt32, 5},
		{math.MinInt32, math.MaxInt32, 7}, {math.MaxInt32, math.MinInt32, 2}, // |dc| > |dr| by one
	} {
		if got := PolarBin(c.dr, c.dc); got != c.want {
			t.Errorf("PolarBin(%d, %d) = %d, want %d", c.dr, c.dc, got, c.want)
		}
	}
}

func TestBinWidthAndDistBinEdges(t *testing.T) {
	if BinWidth(0) != 0 || BinWidth(64) != 1 || BinWidth(10) != 10.0/64 {
		t.Errorf("BinWidth: %v %v %v", BinWidth(0), BinWidth(64), BinWidth(10))
	}
	cases := []struct {
		name  string
		d2    int64 // squared distance
		diam2 int64 // squared diameter
		want  uint8
	}{
		{"zero distance", 0, 100, 0},
		{"zero width (one patch)", 0, 0, 0},
		{"3-4-5 on diameter 64: exactly 5", 25, 64 * 64, 5},
		{"diameter itself is 64", 100, 100, 64},
		{"half the diameter is 32", 25, 100, 32},
		{"√2 on diameter √8: exactly 32", 2, 8, 32},
		{"1 on diameter √8: 22.6", 1, 8, 22},
		{"√5 on diameter √8: 50.6", 5, 8, 50},
		{"just under the diameter", 99, 100, 63},
	}
	for _, c := range cases {
		w := BinWidth(math.Sqrt(float64(c.diam2)))
		if got := DistBin(math.Sqrt(float64(c.d2)), w); got != c.want {
			t.Errorf("%s: DistBin = %d, want %d", c.name, got, c.want)
		}
		if got := refDist(c.d2, w); got != c.want {
			t.Errorf("%s: reference = %d, want %d (bad hand value)", c.name, got, c.want)
		}
	}
	// Beyond the diameter (an anchor list not from this slide) clamps.
	if got := DistBin(1e9, 1); got != 64 {
		t.Errorf("far: %d", got)
	}
}

// Bins on a 3×3 block worked out by hand (diameter √8, width √8/64): the
// corner (0,0) and the centre (1,1) as anchors.
func TestBinsBlockByHand(t *testing.T) {
	ps := gridBlock(0, 0, 3, 3)
	w := BinWidth(Diameter(ps))
	an := []Pos{{0, 0}, {1, 1}}
	dist, polar := make([]uint8, 18), make([]uint8, 18)
	Bins(an, ps, w, dist, polar)
	// d·64/√8 for d = 0, 1, √2, 2, √5, √8 is 0, 22.6, 32, 45.25, 50.6, 64.
	wantD := []uint8{
		0, 22, 45, 22, 32, 50, 45, 50, 64, // from the corner
		32, 22, 32, 22, 0, 22, 32, 22, 32, // from the centre
	}
	wantP := []uint8{
		// corner: itself 4; right (0,+k) π/2 → 6; down (+k,0) 0 → 4;
		// (1,1) π/4 → 5; (1,2) 63° → 5; (2,1) 27° → 4; (2,2) → 5
		4, 6, 6, 4, 5, 5, 4, 4, 5,
		// centre: (−1,−1) −3π/4 → 1; (−1,0) π → 7; (−1,1) 3π/4 → 7;
		// (0,−1) −π/2 → 2; itself 4; (0,1) → 6; (1,−1) −π/4 → 3;
		// (1,0) → 4; (1,1) → 5
		1, 7, 7, 2, 4, 6, 3, 4, 5,
	}
	if !slices.Equal(dist, wantD) {
		t.Errorf("dist\n got %v\nwant %v", dist, wantD)
	}
	if !slices.Equal(polar, wantP) {
		t.Errorf("polar\n got %v\nwant %v", polar, wantP)
	}
}

// An anchor that is not one of the patches, every patch at distance 5 and
// diameter 10: every distance bin is exactly 32.
func TestBinsCircleByHand(t *testing.T) {
	ps := []Pos{{3, 4}, {-3, 4}, {-3, -4}, {3, -4}, {5, 0}, {0, -5}}
	if Diameter(ps) != 10 {
		t.Fatalf("diameter %v", Diameter(ps))
	}
	dist, polar := make([]uint8, 6), make([]uint8, 6)
	Bins([]Pos{{0, 0}}, ps, BinWidth(10), dist, polar)
	// θ = 53.1°, 126.9°, −126.9°, −53.1°, 0, −90°.
	if want := []uint8{32, 32, 32, 32, 32, 32}; !slices.Equal(dist, want) {
		t.Errorf("dist %v, want %v", dist, want)
	}
	if want := []uint8{5, 6, 1, 2, 4, 2}; !slices.Equal(polar, want) {
		t.Errorf("polar %v, want %v", polar, want)
	}
}

func TestBinsSinglePatch(t *testing.T) {
	ps := []Pos{{7, -2}}
	w := BinWidth(Diameter(ps)) // 0
	dist, polar := []uint8{99}, []uint8{99}
	Bins(ps, ps, w, dist, polar)
	if dist[0] != 0 || polar[0] != 4 {
		t.Errorf("single patch: dist %d polar %d, want 0 and 4", dist[0], polar[0])
	}
	Bins(nil, ps, w, nil, nil) // no anchors: nothing to do, no panic
	Bins(ps, nil, w, nil, nil)
}

// Bins equals the pair-by-pair reference on slide-like sets, on sparse sets
// with large gaps (the direct path), with anchors off the patch set, and
// with exact bin edges (diameters that are multiples of 64).
func TestBinsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	type set struct {
		name       string
		an, ps     []Pos
		width      float64
		wantDirect bool
	}
	var sets []set
	for trial := 0; trial < 12; trial++ {
		ps := blobs(100+rng.IntN(2500), rng.Uint64())
		an := make([]Pos, 1+rng.IntN(130))
		for i := range an {
			an[i] = ps[rng.IntN(len(ps))]
		}
		sets = append(sets, set{name: fmt.Sprintf("blobs %d", trial), an: an, ps: ps, width: BinWidth(Diameter(ps))})
	}
	// Sparse: a few patches thousands of cells apart.
	sparse := []Pos{{0, 0}, {5000, 3}, {-4000, 7000}, {12, -9000}, {1, 1}}
	sets = append(sets, set{name: "sparse", an: sparse[:3], ps: sparse, width: BinWidth(Diameter(sparse))})
	// Anchors outside the patch set (distances beyond the diameter clamp).
	block := gridBlock(-4, -4, 9, 9)
	sets = append(sets, set{name: "outside anchors", an: []Pos{{-20, 0}, {0, 30}, {100, 100}}, ps: block, width: BinWidth(Diameter(block))})
	// Width 1 and 2: bins fall exactly on integer edges (3-4-5 triangles).
	sets = append(sets, set{name: "width 1", an: []Pos{{0, 0}, {3, 4}}, ps: gridBlock(-10, -10, 21, 21), width: 1})
	sets = append(sets, set{name: "width 2", an: []Pos{{0, 0}, {-6, 8}}, ps: gridBlock(-40, -40, 81, 81), width: 2})
	sets = append(sets, set{name: "width √3/64", an: []Pos{{0, 0}}, ps: gridBlock(-10, -10, 21, 21), width: math.Sqrt(3) / 64})
	for _, s := range sets {
		wantD, wantP := refBins(s.an, s.ps, s.width)
		k, n := len(s.an), len(s.ps)
		dist, polar := make([]uint8, k*n), make([]uint8, k*n)
		Bins(s.an, s.ps, s.width, dist, polar)
		for j := range dist {
			if dist[j] != wantD[j] || polar[j] != wantP[j] {
				a, i := j/n, j%n
				t.Fatalf("%s: anchor %v patch %v: bins (%d, %d), reference (%d, %d)", s.name, s.an[a], s.ps[i], dist[j], polar[j], wantD[j], wantP[j])
			}
			if dist[j] > 64 || polar[j] > 7 {
				t.Fatalf("%s: bin out of range", s.name)
			}
		}
	}
}

// The distance bin equals ⌊√(d²)/width⌋ on many random pairs and widths,
// including widths that put d²-edges exactly on integers.
func TestDistBinRandomPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for i := 0; i < 300000; i++ {
		dr, dc := int64(rng.IntN(4001)-2000), int64(rng.IntN(4001)-2000)
		var w float64
		switch i % 3 {
		case 0:
			w = BinWidth(math.Sqrt(float64(rng.IntN(8000000) + 1)))
		case 1:
			w = BinWidth(float64(rng.IntN(3000) + 1)) // integer diameters
		default:
			w = float64(rng.IntN(50)+1) / 2 // exact edges
		}
		d2 := dr*dr + dc*dc
		got := make([]uint8, 1)
		Bins([]Pos{{0, 0}}, []Pos{{int32(dr), int32(dc)}}, w, got, make([]uint8, 1))
		if want := refDist(d2, w); got[0] != want || DistBin(math.Sqrt(float64(d2)), w) != want {
			t.Fatalf("Δ=(%d,%d) width %v: Bins %d, DistBin %d, reference %d", dr, dc, w, got[0], DistBin(math.Sqrt(float64(d2)), w), want)
		}
	}
}

// FuzzBinsSets: small sets of anchors and patches from the fuzzer's bytes,
// width from the patches' diameter; every bin in range and equal to the
// reference.
func FuzzBinsSets(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 0, 1, 1, 2, 2}, uint8(2))
	f.Add([]byte{128, 0, 0, 128, 127, 127, 5, 200}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, na uint8) {
		var ps []Pos
		for i := 0; i+1 < len(b) && len(ps) < 300; i += 2 {
			ps = append(ps, Pos{int32(int8(b[i])) * 37, int32(int8(b[i+1]))})
		}
		if len(ps) == 0 {
			return
		}
		an := ps[:1+int(na)%len(ps)]
		w := BinWidth(Diameter(ps))
		wantD, wantP := refBins(an, ps, w)
		dist, polar := make([]uint8, len(an)*len(ps)), make([]uint8, len(an)*len(ps))
		Bins(an, ps, w, dist, polar)
		for j := range dist {
			if dist[j] > 64 || polar[j] > 7 {
				t.Fatalf("bin out of range: %d %d", dist[j], polar[j])
			}
			if dist[j] != wantD[j] || polar[j] != wantP[j] {
				t.Fatalf("pair %d: (%d, %d), reference (%d, %d)", j, dist[j], polar[j], wantD[j], wantP[j])
			}
		}
	})
}
