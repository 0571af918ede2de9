package anchors

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refMaxDist2 is the brute-force largest squared distance over all pairs,
// written independently of the package's helpers.
func refMaxDist2(ps []Pos) int64 {
	var best int64
	for i := 0; i < len(ps); i++ {
		for j := i + 1; j < len(ps); j++ {
			a := int64(ps[i].Row) - int64(ps[j].Row)
			b := int64(ps[i].Col) - int64(ps[j].Col)
			if d := a*a + b*b; d > best {
				best = d
			}
		}
	}
	return best
}

func refDiameter(ps []Pos) float64 { return math.Sqrt(float64(refMaxDist2(ps))) }

// gridBlock is the rows×cols block of patches with its top-left at (r0, c0),
// in raster order.
func gridBlock(r0, c0, rows, cols int32) []Pos {
	var ps []Pos
	for r := r0; r < r0+rows; r++ {
		for c := c0; c < c0+cols; c++ {
			ps = append(ps, Pos{r, c})
		}
	}
	return ps
}

// Sets whose diameter is worked out by hand, aimed at the hull and the
// rotating calipers: parallel edges, many antipodal ties, collinear runs,
// duplicates.
func TestDiameterHandSets(t *testing.T) {
	// The 12 lattice points at distance 5 from the origin: every one has an
	// antipode, all at distance 10.
	var circle5 []Pos
	for r := int32(-5); r <= 5; r++ {
		for c := int32(-5); c <= 5; c++ {
			if r*r+c*c == 25 {
				circle5 = append(circle5, Pos{r, c})
			}
		}
	}
	if len(circle5) != 12 {
		t.Fatalf("circle5 has %d points", len(circle5))
	}
	cases := []struct {
		name string
		ps   []Pos
		want float64
	}{
		{"empty", []Pos{}, 0},
		{"one patch far away", []Pos{{-7000, 9000}}, 0},
		{"two patches, vertical", []Pos{{5, 2}, {-3, 2}}, 8},
		{"two patches, diagonal 3-4-5", []Pos{{1, 1}, {4, 5}}, 5},
		{"duplicates only", []Pos{{2, 2}, {2, 2}, {2, 2}}, 0},
		{"duplicates of two points", []Pos{{0, 0}, {6, 8}, {0, 0}, {6, 8}}, 10},
		{"collinear column, unsorted", []Pos{{4, 1}, {-2, 1}, {9, 1}, {0, 1}}, 11},
		{"collinear slope 2 with a duplicate", []Pos{{0, 0}, {1, 2}, {2, 4}, {1, 2}, {3, 6}}, math.Sqrt(9 + 36)},
		{"3x3 block", gridBlock(0, 0, 3, 3), math.Sqrt(8)},
		{"1x10 row", gridBlock(5, -3, 1, 10), 9},
		{"4x7 rectangle (parallel edges)", gridBlock(-2, 3, 4, 7), math.Sqrt(9 + 36)},
		{"L shape, long arms", append(gridBlock(0, 0, 10, 1), gridBlock(9, 1, 1, 5)...), math.Sqrt(81 + 25)},
		{"plus sign", []Pos{{0, 0}, {-3, 0}, {3, 0}, {0, -3}, {0, 3}}, 6},
		{"lattice circle of radius 5 (12 antipodal ties)", circle5, 10},
		{"triangle with obtuse apex", []Pos{{0, 0}, {0, 10}, {1, 5}}, 10},
		{"square plus interior", []Pos{{0, 0}, {0, 4}, {4, 0}, {4, 4}, {1, 2}, {2, 2}, {3, 1}}, math.Sqrt(32)},
	}
	for _, c := range cases {
		if got := Diameter(c.ps); got != c.want {
			t.Errorf("%s: diameter %v, want %v", c.name, got, c.want)
		}
		if got := refDiameter(c.ps); got != c.want {
			t.Errorf("%s: the brute force gives %v, want %v (bad hand value)", c.name, got, c.want)
		}
	}
}

// Every point of the parabola col = row² is a hull vertex: a hull of
// thousands of vertices, far more than a slide's.
func TestDiameterManyHullVertices(t *testing.T) {
	for _, n := range []int32{2500, 3001} {
		var ps []Pos
		for r := int32(0); r < n; r++ {
			ps = append(ps, Pos{r, r * r / 4})
		}
		// and points on a lattice circle of radius 5^4 = 625 (many vertices,
		// many ties)
		for r := int32(-625); r <= 625; r++ {
			for c := int32(-625); c <= 625; c++ {
				if r*r+c*c == 625*625 {
					ps = append(ps, Pos{r - 5000, c})
				}
			}
		}
		rand.New(rand.NewPCG(1, uint64(n))).Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
		if got, want := Diameter(ps), refDiameter(ps); got != want {
			t.Fatalf("n=%d: diameter %v, brute force %v", n, got, want)
		}
	}
}

// Random point sets of many shapes: the diameter equals the brute-force
// maximum exactly.
func TestDiameterPropertyRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	shapes := []func(n int) []Pos{
		func(n int) []Pos { // square box
			ps := make([]Pos, n)
			for i := range ps {
				ps[i] = Pos{int32(rng.IntN(40)), int32(rng.IntN(40))}
			}
			return ps
		},
		func(n int) []Pos { // thin strip (nearly collinear, many duplicates)
			ps := make([]Pos, n)
			for i := range ps {
				ps[i] = Pos{int32(rng.IntN(2)), int32(rng.IntN(500) - 250)}
			}
			return ps
		},
		func(n int) []Pos { // exact line of slope −3/2 with duplicates
			ps := make([]Pos, n)
			for i := range ps {
				s := int32(rng.IntN(60) - 30)
				ps[i] = Pos{2 * s, -3 * s}
			}
			return ps
		},
		func(n int) []Pos { // ring (many hull vertices)
			ps := make([]Pos, n)
			for i := range ps {
				a := rng.Float64() * 2 * math.Pi
				ps[i] = Pos{int32(math.Round(300 * math.Cos(a))), int32(math.Round(300 * math.Sin(a)))}
			}
			return ps
		},
		func(n int) []Pos { // slide-like blobs far from the origin
			ps := blobs(n, rng.Uint64())
			for i := range ps {
				ps[i].Row += 40000
				ps[i].Col -= 90000
			}
			return ps
		},
	}
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(400)
		ps := shapes[trial%len(shapes)](n)
		if got, want := Diameter(ps), refDiameter(ps); got != want {
			t.Fatalf("trial %d (shape %d, n=%d): diameter %v, brute force %v", trial, trial%len(shapes), n, got, want)
		}
	}
}

// FuzzDiameterWide fuzzes with 16-bit coordinates (FuzzDiameter uses 8-bit
// ones), spanning the range of real slides.
func FuzzDiameterWide(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 255, 255, 255, 255, 1, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 5, 0, 0, 0, 10, 0, 0, 0, 15})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ps []Pos
		for i := 0; i+3 < len(b) && len(ps) < 200; i += 4 {
			ps = append(ps, Pos{int32(int16(uint16(b[i])<<8 | uint16(b[i+1]))), int32(int16(uint16(b[i+2])<<8 | uint16(b[i+3])))})
		}
		if got, want := Diameter(ps), refDiameter(ps); got != want {
			t.Fatalf("diameter %v, brute force %v for %v", got, want, ps)
		}
	})
}

func TestGridPositionsCases(t *testing.T) {
	cases := []struct {
		name   string
		coords []int64
		step   int64
		want   []Pos
	}{
		{"empty", []int64{}, 256, []Pos{}},
		{"one patch: origin is the remainder, not the minimum", []int64{1000, 2000}, 256, []Pos{{7, 3}}},
		{"x is the column, y the row", []int64{0, 0, 256, 0, 0, 512}, 256, []Pos{{0, 0}, {0, 1}, {2, 0}}},
		{"origin = common remainder, gaps kept", []int64{13, 7, 13 + 10*256, 7 + 3*256}, 256, []Pos{{0, 0}, {3, 10}}},
		{"negative coordinates", []int64{-512, -256, 0, 0}, 256, []Pos{{-1, -2}, {0, 0}}},
		{"negative off-origin", []int64{-500, 12, 12, 12}, 512, []Pos{{0, -1}, {0, 0}}},
		{"step 1", []int64{5, 6, 7, 8}, 1, []Pos{{6, 5}, {8, 7}}},
	}
	for _, c := range cases {
		got, err := GridPositions(c.coords, c.step)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	bad := []struct {
		name   string
		coords []int64
		step   int64
	}{
		{"zero step", []int64{0, 0}, 0},
		{"negative step", []int64{0, 0}, -256},
		{"odd length", []int64{0, 0, 256}, 256},
		{"off grid in x", []int64{0, 0, 257, 0}, 256},
		{"off grid in y", []int64{0, 0, 0, 255}, 256},
		{"duplicate, not adjacent", []int64{0, 0, 256, 0, 512, 0, 0, 0}, 256},
		{"row beyond int32", []int64{0, 0, 0, 1 << 40}, 1},
	}
	for _, c := range bad {
		_, err := GridPositions(c.coords, c.step)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "anchors: ") {
			t.Errorf("%s: error %q lacks the anchors: prefix", c.name, err)
		}
	}
}
