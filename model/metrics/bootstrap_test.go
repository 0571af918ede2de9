package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

func TestPercentile(t *testing.T) {
	// numpy.percentile(v, 100*q) (linear interpolation).
	for _, tc := range []struct {
		vals []float64
		q    float64
		want float64
	}{
		{[]float64{1, 2, 3, 4}, 0.5, 2.5},
		{[]float64{4, 1, 3, 2}, 0.025, 1.075},
		{[]float64{4, 1, 3, 2}, 0.975, 3.925},
		{[]float64{5}, 0.3, 5},
		{[]float64{math.NaN(), 1, 3}, 0.5, 2},
		{[]float64{0, 10}, 1, 10},
	} {
		if got := Percentile(append([]float64(nil), tc.vals...), tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Percentile(%v, %g) = %g, want %g", tc.vals, tc.q, got, tc.want)
		}
	}
	if !math.IsNaN(Percentile([]float64{math.NaN()}, 0.5)) {
		t.Error("all NaN: want NaN")
	}
	// Mostly undefined values: no interval.
	if iv := PercentileInterval([]float64{math.NaN(), math.NaN(), 1}, 0.95); !iv.Undefined() {
		t.Errorf("mostly NaN: interval %v, want undefined", iv)
	}
}

func TestResamplerKeepsClassCounts(t *testing.T) {
	labels := []int{0, 0, 0, 1, 2, 2, 3, 3, 3, 3}
	rs := NewResampler(labels, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	var idx []int
	seen := map[int]bool{}
	for range 200 {
		idx = rs.Draw(rng, idx)
		if len(idx) != len(labels) {
			t.Fatalf("%d drawn, want %d", len(idx), len(labels))
		}
		count := make([]int, 4)
		for _, i := range idx {
			count[labels[i]]++
			seen[i] = true
		}
		if count[0] != 3 || count[1] != 1 || count[2] != 2 || count[3] != 4 {
			t.Fatalf("class counts %v, want [3 1 2 4]", count)
		}
	}
	if len(seen) != len(labels) {
		t.Errorf("200 draws reached %d of %d cases", len(seen), len(labels))
	}
}

// simulate draws n cases per class whose scores carry the label with the
// given strength (softmax of strength·onehot + N(0,1) noise).
func simulate(rng *rand.Rand, perClass, classes int, strength float64) ([]int, [][]float64) {
	var labels []int
	var probs [][]float64
	for c := range classes {
		for range perClass {
			row := make([]float64, classes)
			var sum float64
			for k := range row {
				z := rng.NormFloat64()
				if k == c {
					z += strength
				}
				row[k] = math.Exp(z)
				sum += row[k]
			}
			for k := range row {
				row[k] /= sum
			}
			labels = append(labels, c)
			probs = append(probs, row)
		}
	}
	return labels, probs
}

func TestBootstrapPerfectAndDeterministic(t *testing.T) {
	labels := []int{0, 1, 2, 3, 0, 1, 2, 3}
	iv, err := Bootstrap(labels, onehot(labels, 4), 4, 300, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range SummaryNames {
		if got := iv.Of(name); got != (Interval{1, 1}) {
			t.Errorf("perfect predictions: %s interval %v, want [1, 1]", name, got)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	l, p := simulate(rng, 10, 4, 1)
	a, _ := Bootstrap(l, p, 4, 300, 9)
	b, _ := Bootstrap(l, p, 4, 300, 9)
	c, _ := Bootstrap(l, p, 4, 300, 10)
	if a != b {
		t.Error("same seed, different intervals")
	}
	if a == c {
		t.Error("another seed, the same intervals")
	}
	m, _ := Compute(l, p, 4)
	for _, name := range SummaryNames {
		if iv := a.Of(name); !(iv[0] <= m.Value(name) && m.Value(name) <= iv[1]) || iv[0] >= iv[1] {
			t.Errorf("%s: %g outside or on a degenerate interval %v", name, m.Value(name), iv)
		}
	}
}

// More cases, narrower intervals: the width shrinks about as 1/√n.
func TestBootstrapWidthShrinks(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	width := func(perClass int) float64 {
		l, p := simulate(rng, perClass, 4, 1)
		iv, err := Bootstrap(l, p, 4, 400, 1)
		if err != nil {
			t.Fatal(err)
		}
		return iv.MacroAUC[1] - iv.MacroAUC[0]
	}
	small, large := width(10), width(160)
	if r := small / large; r < 2.5 || r > 6 {
		t.Errorf("macro-AUC interval width %.3f at 40 cases, %.3f at 640: ratio %.2f, want about 4", small, large, r)
	}
}

// The 95 % interval covers the population macro-AUC in about 95 % of
// repeated test sets.
func TestBootstrapCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	l, p := simulate(rng, 20000, 4, 1)
	pop, _ := Compute(l, p, 4)
	const sims = 120
	covered := 0
	for s := range sims {
		l, p := simulate(rng, 15, 4, 1)
		iv, err := Bootstrap(l, p, 4, 400, uint64(s))
		if err != nil {
			t.Fatal(err)
		}
		if iv.MacroAUC[0] <= pop.MacroAUC && pop.MacroAUC <= iv.MacroAUC[1] {
			covered++
		}
	}
	frac := float64(covered) / sims
	t.Logf("coverage %.3f (population macro-AUC %.3f)", frac, pop.MacroAUC)
	if frac < 0.86 || frac > 0.99 {
		t.Errorf("the interval covered the population macro-AUC %.3f in %.2f of %d test sets, want about 0.95", pop.MacroAUC, frac, sims)
	}
}

func TestBootstrapErrorsAndJSON(t *testing.T) {
	if _, err := Bootstrap([]int{0, 1}, [][]float64{{1, 0}}, 2, 100, 0); !errors.Is(err, ErrInput) {
		t.Errorf("length mismatch: %v", err)
	}
	if _, err := Bootstrap([]int{0, 1}, [][]float64{{1, 0}, {0, 1}}, 2, 0, 0); !errors.Is(err, ErrInput) {
		t.Errorf("0 replicates: %v", err)
	}
	// A class absent from the labels: its AUC is left out as in Compute;
	// metrics.json carries the intervals and reads back.
	labels := []int{0, 0, 1, 1, 2, 2}
	m, err := ComputeWithCI(labels, onehot([]int{0, 1, 1, 1, 2, 0}, 4), 4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Metrics
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.CI == nil || back.CI.Replicates != DefaultReplicates || back.CI.MacroAUC != m.CI.MacroAUC || back.CI.Accuracy != m.CI.Accuracy {
		t.Fatalf("ci95 did not round-trip: %s", b)
	}
	if s := m.WithCI(NameAccuracy); s != "0.667 ["+fmtF(m.CI.Accuracy[0])+", "+fmtF(m.CI.Accuracy[1])+"]" {
		t.Errorf("WithCI = %q", s)
	}
	var iv Interval
	if err := json.Unmarshal([]byte("null"), &iv); err != nil || !iv.Undefined() {
		t.Errorf("null interval: %v %v", iv, err)
	}
	if b, _ := json.Marshal(Interval{math.NaN(), 1}); string(b) != "null" {
		t.Errorf("undefined interval marshals as %s", b)
	}
}

func fmtF(x float64) string { return fmt.Sprintf("%.3f", x) }

func TestPlotForestAndBands(t *testing.T) {
	groups := []ForestGroup{{Title: "macro-AUC", Rows: []ForestRow{
		{Label: "a - b", Est: 0.2, CI: Interval{0.1, 0.3}, Note: FormatDiff(0.2, Interval{0.1, 0.3}, 0.001)},
		{Label: "a - c", Est: -0.05, CI: Interval{-0.2, 0.1}, Note: "x"},
		{Label: "b - c", Est: math.NaN(), CI: Interval{math.NaN(), math.NaN()}, Note: "undefined"},
	}}}
	img, err := PlotForest(groups, "t", "x")
	if err != nil {
		t.Fatal(err)
	}
	// The excluding-0 row's square is vermillion, the other's blue.
	count := func(col [3]uint8) int {
		n := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				o := img.PixOffset(x, y)
				if img.Pix[o] == col[0] && img.Pix[o+1] == col[1] && img.Pix[o+2] == col[2] {
					n++
				}
			}
		}
		return n
	}
	if count([3]uint8{213, 94, 0}) < 100 || count([3]uint8{0, 114, 178}) < 100 {
		t.Error("forest plot: missing the red (CI excludes 0) or the blue row")
	}
	if _, err := PlotForest(nil, "t", "x"); err == nil {
		t.Error("no rows: want an error")
	}
	if FormatDiff(-0.0123, Interval{-0.05, 0.02}, 0.5) != "-0.012 [-0.050, +0.020] p=0.500" {
		t.Errorf("FormatDiff: %q", FormatDiff(-0.0123, Interval{-0.05, 0.02}, 0.5))
	}
	grid := ROCGrid(10)
	band := ROCBand{Name: "a", AUC: 0.8, AUCCI: Interval{0.7, 0.9}, FPR: grid, Mid: grid, Lo: grid, Hi: make([]float64, len(grid))}
	for i := range grid {
		band.Hi[i] = math.Min(1, grid[i]+0.3)
	}
	var bimg *image.RGBA
	if bimg, err = PlotROCBands([]ROCBand{band}, "t", "n"); err != nil || bimg.Bounds().Dx() != plotW {
		t.Fatalf("PlotROCBands: %v", err)
	}
	// Inside the band (above the diagonal) the blue tint shows; below it, white.
	in := toPixel(ROCPoint{0.5, 0.65})
	out := toPixel(ROCPoint{0.5, 0.3})
	if c := bimg.RGBAAt(int(in[0]), int(in[1])); c.B <= c.R {
		t.Errorf("inside the band: %v, want a blue tint", c)
	}
	if c := bimg.RGBAAt(int(out[0]), int(out[1])); c.R != 255 || c.G != 255 || c.B != 255 {
		t.Errorf("outside the band: %v, want white", c)
	}
	// Three bands: the legend in the axes, the picture its usual size; seven
	// (a compare of the paper's baselines): the legend under the axes, so the
	// axes' lower right shows the curves' tint, not the white legend box.
	if img3 := img3x(t, band); img3.Bounds().Dy() != plotH {
		t.Errorf("3 bands: height %d, want %d", img3.Bounds().Dy(), plotH)
	}
	many := make([]ROCBand, 7)
	for i := range many {
		many[i] = band
		many[i].Name = fmt.Sprintf("variant%d", i)
	}
	img7, _ := PlotROCBands(many, "t", "")
	inked := func(img *image.RGBA, r image.Rectangle) int {
		n := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if img.RGBAAt(x, y) != white {
					n++
				}
			}
		}
		return n
	}
	below := image.Rect(0, plotH, plotW, img7.Bounds().Dy())
	if h := img7.Bounds().Dy(); h <= plotH+100 || inked(img7, below) < 1000 {
		t.Errorf("7 bands: height %d, %d inked pixels under the axes; want the legend there", h, inked(img7, below))
	}
	// The axes' lower right (where a legend box of three would sit) holds
	// only the grid: the band lies above the diagonal.
	lo, hi := toPixel(ROCPoint{0.55, 0.05}), toPixel(ROCPoint{0.95, 0.3})
	if n := inked(img7, image.Rect(int(lo[0]), int(hi[1]), int(hi[0]), int(lo[1]))); n > 600 {
		t.Errorf("7 bands: %d inked pixels in the lower right of the axes", n)
	}
	if n := inked(img3x(t, band), image.Rect(int(lo[0]), int(hi[1]), int(hi[0]), int(lo[1]))); n < 1500 {
		t.Errorf("3 bands: %d inked pixels in the lower right of the axes; want the legend box there", n)
	}
	if _, err := PlotROCBands([]ROCBand{{Name: "x", FPR: grid}}, "t", ""); err == nil {
		t.Error("band without curves: want an error")
	}
	if at := MacroROCAt([]int{0, 1}, [][]float64{{0.9, 0.1}, {0.2, 0.8}}, 2, grid); at[0] != 1 || at[10] != 1 {
		t.Errorf("MacroROCAt of a perfect ranking: %v", at)
	}
}

// img3x plots three copies of a band.
func img3x(t *testing.T, b ROCBand) *image.RGBA {
	img, err := PlotROCBands([]ROCBand{b, b, b}, "t", "")
	if err != nil {
		t.Fatal(err)
	}
	return img
}
