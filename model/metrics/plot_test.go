package metrics

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestWritePNG(t *testing.T) {
	// Four classes, class 3 absent (its curve is not drawn).
	labels, probs := randomCases(120, 3, 5)
	for i := range probs {
		probs[i] = append(probs[i], 0.01)
	}
	names := []string{"0", "1+", "2+", "3+"}
	dir := t.TempDir()
	path := filepath.Join(dir, "roc.png")
	if err := WritePNG(path, labels, probs, names, "HER2 ROC, fold 1"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got != (image.Point{plotW, plotH}) {
		t.Fatalf("size %v; want %dx%d", got, plotW, plotH)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries; want only roc.png", len(entries))
	}
	// Count exact class-colour pixels inside the axes, excluding the legend
	// (lower right), so the curves themselves are seen; and in the whole
	// image (the legend swatches).
	inAxes := func(x, y int) bool {
		return x > plotLeft && x < plotRight && y > plotTop && y < plotBottom &&
			!(x > plotRight-360 && y > plotBottom-150)
	}
	counts := map[color.RGBA][2]int{}
	nonWhite := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if c != white {
				nonWhite++
			}
			k := counts[c]
			k[0]++
			if inAxes(x, y) {
				k[1]++
			}
			counts[c] = k
		}
	}
	if white := counts[white][0]; white < plotW*plotH/2 {
		t.Errorf("only %d white pixels: background not white?", white)
	}
	if nonWhite < 1000 {
		t.Errorf("only %d non-white pixels", nonWhite)
	}
	for c := range 3 {
		k := counts[ClassColor(c)]
		if k[0] < 50 || k[1] < 20 {
			t.Errorf("class %d colour %v: %d pixels, %d inside the axes", c, ClassColor(c), k[0], k[1])
		}
	}
	if k := counts[ClassColor(3)]; k[0] != 0 {
		t.Errorf("undefined class 3 drawn: %d pixels of its colour", k[0])
	}
	if k := counts[black]; k[1] < 100 {
		t.Errorf("macro curve: %d black pixels inside the axes", k[1])
	}
}

func TestWritePNGErrors(t *testing.T) {
	dir := t.TempDir()
	names := []string{"0", "1+"}
	tests := []struct {
		name   string
		path   string
		labels []int
		probs  [][]float64
		names  []string
		input  bool // error wraps ErrInput
	}{
		{"label out of range", "a.png", []int{0, 2}, [][]float64{{1, 0}, {0, 1}}, names, true},
		{"row width", "b.png", []int{0, 1}, [][]float64{{1, 0, 0}, {0, 1, 0}}, names, true},
		{"NaN", "c.png", []int{0, 1}, [][]float64{{math.NaN(), 0}, {0, 1}}, names, true},
		{"no class names", "d.png", []int{0, 1}, [][]float64{{1, 0}, {0, 1}}, nil, true},
		{"missing directory", "missing/e.png", []int{0, 1}, [][]float64{{1, 0}, {0, 1}}, names, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := WritePNG(filepath.Join(dir, tc.path), tc.labels, tc.probs, tc.names, "t")
			if err == nil || errors.Is(err, ErrInput) != tc.input {
				t.Errorf("error = %v; want one (ErrInput: %v)", err, tc.input)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left %d entries", len(entries))
	}
}

// A write that fails half-way (the destination is a directory, so the
// rename fails) removes its temporary file.
func TestWritePNGRenameFailureCleansUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "roc.png")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o644); err != nil { // non-empty: rename fails
		t.Fatal(err)
	}
	err := WritePNG(path, []int{0, 1}, [][]float64{{1, 0}, {0, 1}}, []string{"0", "1+"}, "t")
	if err == nil {
		t.Fatal("WritePNG over a directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries; want only the roc.png directory", len(entries))
	}
}

// Degenerate input still plots: a single class present, no curve defined.
func TestPlotROCNoDefinedCurve(t *testing.T) {
	img, err := PlotROC([]int{1, 1}, [][]float64{{0.2, 0.8}, {0.6, 0.4}}, []string{"0", "1+"}, "empty")
	if err != nil {
		t.Fatal(err)
	}
	for c := range 2 {
		for i := 0; i < len(img.Pix); i += 4 {
			if color.RGBA(ClassColor(c)) == (color.RGBA{img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3]}) {
				t.Fatalf("class %d colour drawn without a defined curve", c)
			}
		}
	}
}

func TestLineCoverage(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 20, 20))
	red := color.RGBA{255, 0, 0, 255}
	// Width 1 on pixel centres: exactly one full pixel per column.
	line(img, [2]float64{2, 5}, [2]float64{10, 5}, 1, red)
	for x := 2; x <= 10; x++ {
		if img.RGBAAt(x, 5) != red || img.RGBAAt(x, 4).A != 0 || img.RGBAAt(x, 6).A != 0 {
			t.Fatalf("column %d: %v %v %v", x, img.RGBAAt(x, 4), img.RGBAAt(x, 5), img.RGBAAt(x, 6))
		}
	}
	// Width 1 half-way between rows: two half-covered pixels (Wu's split).
	line(img, [2]float64{2, 12.5}, [2]float64{10, 12.5}, 1, red)
	if a, b := img.RGBAAt(5, 12), img.RGBAAt(5, 13); a.R != 128 || b.R != 128 {
		t.Errorf("half-way line: %v %v", a, b)
	}
	// Steep line, width 2: full middle pixel, half pixels either side.
	line(img, [2]float64{15, 2}, [2]float64{15, 18}, 2, red)
	if img.RGBAAt(15, 10) != red || img.RGBAAt(14, 10).R != 128 || img.RGBAAt(16, 10).R != 128 {
		t.Errorf("steep line: %v %v %v", img.RGBAAt(14, 10), img.RGBAAt(15, 10), img.RGBAAt(16, 10))
	}
}

// coincidingCases gives four classes whose one-vs-rest ROC curves are the
// same curve: every class's positives score the same values q, and its
// negatives (the other classes' cases) (1-q)/3, overlapping them.
func coincidingCases() ([]int, [][]float64) {
	var labels []int
	var probs [][]float64
	for c := range 4 {
		for i := range 20 {
			q := 0.2 + 0.4*float64(i)/19
			row := []float64{(1 - q) / 3, (1 - q) / 3, (1 - q) / 3, (1 - q) / 3}
			row[c] = q
			labels = append(labels, c)
			probs = append(probs, row)
		}
	}
	return labels, probs
}

// Four curves drawn on the very same path each still show their colour
// (the line styles' gaps and widths), the macro curve shows on top, and
// the legend names every class with its AUC, the macro and chance.
func TestPlotROCCoincidingCurvesVisible(t *testing.T) {
	labels, probs := coincidingCases()
	m, err := Compute(labels, probs, 4)
	if err != nil {
		t.Fatal(err)
	}
	first := classROC(labels, probs, 0)
	for c := 1; c < 4; c++ {
		if got := classROC(labels, probs, c); len(got) != len(first) || *m.PerClass[c].AUC != *m.PerClass[0].AUC {
			t.Fatalf("class %d's curve differs from class 0's: the test data is wrong", c)
		}
	}
	img, err := PlotROC(labels, probs, []string{"0", "1+", "2+", "3+"}, "coinciding")
	if err != nil {
		t.Fatal(err)
	}
	// The legend box's rows are black text and each class's swatch: count
	// inside the axes but outside the legend box.
	legend := image.Rect(plotRight-360, plotBottom-200, plotRight, plotBottom)
	counts := map[color.RGBA]int{}
	for y := plotTop + 1; y < plotBottom; y++ {
		for x := plotLeft + 1; x < plotRight; x++ {
			if !(image.Point{x, y}).In(legend) {
				counts[img.RGBAAt(x, y)]++
			}
		}
	}
	for c := range 4 {
		if n := counts[ClassColor(c)]; n < 30 {
			t.Errorf("class %d (%s): %d pixels of its colour on the coinciding curves; want ≥ 30", c, classStyle(c).describe(), n)
		}
	}
	if counts[black] < 30 {
		t.Errorf("macro curve: %d black pixels", counts[black])
	}
	// Each class's legend swatch is in its colour and style.
	for c := range 4 {
		n := 0
		for y := legend.Min.Y; y < legend.Max.Y; y++ {
			for x := legend.Min.X; x < legend.Max.X; x++ {
				if img.RGBAAt(x, y) == ClassColor(c) {
					n++
				}
			}
		}
		if n < 20 {
			t.Errorf("class %d's swatch: %d pixels", c, n)
		}
	}
}

// The styles differ pairwise (pattern or width) and are thicker than the
// old 2-px lines.
func TestClassStyles(t *testing.T) {
	seen := map[string]bool{}
	for c := range 4 {
		st := classStyle(c)
		if st.width < 3 {
			t.Errorf("class %d width %g", c, st.width)
		}
		if d := st.describe(); seen[d] {
			t.Errorf("class %d repeats style %s", c, d)
		} else {
			seen[d] = true
		}
	}
}

// strokePath carries the dash pattern across segments: a dashed path
// of two 10-px segments with a {6, 6} pattern draws 0–6 and 12–18.
func TestStrokePathDashPhase(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 5))
	red := color.RGBA{255, 0, 0, 255}
	strokePath(img, [][2]float64{{2, 2}, {12, 2}, {22, 2}}, lineStyle{1, []float64{6, 6}}, red)
	for x := 2; x <= 24; x++ {
		on := img.RGBAAt(x, 2).R > 0
		want := (x >= 2 && x <= 8) || (x >= 14 && x <= 20)
		if on != want {
			t.Errorf("x=%d drawn=%v; want %v", x, on, want)
		}
	}
}

// describe names a style for messages ("solid 5", "dashed [16 8] 4").
func (st lineStyle) describe() string {
	if len(st.pattern) == 0 {
		return fmt.Sprintf("solid %g", st.width)
	}
	return fmt.Sprintf("dashed %v %g", st.pattern, st.width)
}
