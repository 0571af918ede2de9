package metrics

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"strings"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// ROCGrid returns n+1 false positive rates evenly spaced over [0, 1], the
// grid ROC bands are evaluated on.
func ROCGrid(n int) []float64 {
	g := make([]float64, n+1)
	for i := range g {
		g[i] = float64(i) / float64(n)
	}
	return g
}

// MacroROCAt returns the macro-average ROC curve (MacroROC) evaluated at
// each false positive rate of fpr (non-decreasing), interpolated as
// MacroROC interpolates the class curves; nil when MacroROC is nil.
func MacroROCAt(labels []int, probs [][]float64, classes int, fpr []float64) []float64 {
	r := MacroROC(labels, probs, classes)
	if r == nil {
		return nil
	}
	out := make([]float64, len(fpr))
	for i, f := range fpr {
		out[i] = interpTPR(r, f)
	}
	return out
}

// ROCBand is one model's macro-average ROC curve with a confidence band:
// at each FPR of the grid, the central curve and the band's bounds.
type ROCBand struct {
	Name        string
	AUC         float64  // the legend's figure (macro-AUC)
	AUCCI       Interval // its interval
	FPR         []float64
	Mid, Lo, Hi []float64
}

// WriteROCBandsPNG draws PlotROCBands and writes it to path atomically.
func WriteROCBandsPNG(path string, bands []ROCBand, title, note string) error {
	img, err := PlotROCBands(bands, title, note)
	if err != nil {
		return err
	}
	return writeAtomic(path, func(f *os.File) error { return png.Encode(f, img) })
}

// PlotROCBands draws each band's central curve (its colour from the
// Okabe–Ito palette and its own line style, as the classes of PlotROC)
// over its band (the same colour, translucent), the chance diagonal, and a
// legend "NAME macro-AUC 0.65 [0.55, 0.74]"; note is a line of small text
// under the axes' title (how the band was made).
func PlotROCBands(bands []ROCBand, title, note string) (*image.RGBA, error) {
	if len(bands) == 0 {
		return nil, errors.New("metrics: no ROC band to plot")
	}
	for _, b := range bands {
		if len(b.FPR) < 2 || len(b.Mid) != len(b.FPR) || len(b.Lo) != len(b.FPR) || len(b.Hi) != len(b.FPR) {
			return nil, fmt.Errorf("metrics: ROC band %q: %d FPR points, %d/%d/%d curve points", b.Name, len(b.FPR), len(b.Mid), len(b.Lo), len(b.Hi))
		}
	}
	var legend []legendEntry
	for k, b := range bands {
		st := classStyle(k)
		text := fmt.Sprintf("%s macro-AUC %.2f", b.Name, b.AUC)
		if !b.AUCCI.Undefined() {
			text += fmt.Sprintf(" [%.2f, %.2f]", b.AUCCI[0], b.AUCCI[1])
		}
		legend = append(legend, legendEntry{text, ClassColor(k), &st})
	}
	legend = append(legend, legendEntry{"chance (AUC 0.50)", chanceGry, &chanceStyle})
	// Up to three bands the legend sits in the axes' empty lower right; more
	// would hide the curves, so it goes under the axes (the image grows),
	// and the bands are fainter so that their overlaps stay readable.
	below := len(bands) > 3
	alpha := 0.16
	h := plotH
	if below {
		alpha = max(0.07, 0.16*3/float64(len(bands)))
		_, lh := legendBoxSize(legend, textScale)
		h += lh + 8
	}
	img := image.NewRGBA(image.Rect(0, 0, plotW, h))
	raster.FillRect(img, xywh(0, 0, plotW, h), white)
	drawAxes(img)
	strokePath(img, [][2]float64{toPixel(ROCPoint{0, 0}), toPixel(ROCPoint{1, 1})}, chanceStyle, chanceGry)
	// Bands first (each column of the axes between the bounds), then the
	// curves on top of every band.
	for k, b := range bands {
		col := ClassColor(k)
		for x := plotLeft; x <= plotRight; x++ {
			f := float64(x-plotLeft) / float64(plotRight-plotLeft)
			lo, hi := interpAt(b.FPR, b.Lo, f), interpAt(b.FPR, b.Hi, f)
			ylo, yhi := toPixel(ROCPoint{f, lo})[1], toPixel(ROCPoint{f, hi})[1]
			for y := int(math.Round(yhi)); y <= int(math.Round(ylo)); y++ {
				raster.Blend(img, x, y, col, alpha)
			}
		}
	}
	for k, b := range bands {
		var pts [][2]float64
		if b.FPR[0] == 0 && b.Mid[0] > 0 { // the vertical rise at FPR 0
			pts = append(pts, toPixel(ROCPoint{0, 0}))
		}
		for i := range b.FPR {
			pts = append(pts, toPixel(ROCPoint{b.FPR[i], b.Mid[i]}))
		}
		strokePath(img, pts, *legend[k].style, legend[k].col)
	}

	tw := raster.TextWidth(title, textScale)
	tx := (plotLeft + plotRight - tw) / 2
	if tx < 4 || tx+tw > plotW-4 {
		tx = 4
	}
	raster.DrawText(img, tx, 4, title, textScale, black, true)
	if note != "" {
		ns := textScale
		if raster.TextWidth(note, ns) > plotW-8 {
			ns = 1
		}
		nx := max(4, (plotLeft+plotRight-raster.TextWidth(note, ns))/2)
		raster.DrawText(img, nx, 24, note, ns, mutedGrey, false)
	}
	if below {
		drawLegendBoxAt(img, legend, textScale, plotLeft, plotH)
	} else {
		drawLegendBox(img, legend, textScale)
	}
	return img, nil
}

// interpAt interpolates y over the grid xs (increasing) at x, clamped.
func interpAt(xs, ys []float64, x float64) float64 {
	if x <= xs[0] {
		return ys[0]
	}
	for i := 1; i < len(xs); i++ {
		if x <= xs[i] {
			t := (x - xs[i-1]) / (xs[i] - xs[i-1])
			return ys[i-1] + t*(ys[i]-ys[i-1])
		}
	}
	return ys[len(ys)-1]
}

// ForestRow is one estimate with its interval in a forest plot.
type ForestRow struct {
	Label string   // left of the axis, e.g. "ipca - pama"
	Est   float64  // the point
	CI    Interval // the whisker
	Note  string   // right of the axis, e.g. "+0.07 [-0.04, +0.18] p=0.21"
}

// ForestGroup is a titled block of rows (one metric).
type ForestGroup struct {
	Title string
	Rows  []ForestRow
}

// Forest plot geometry, in pixels.
const (
	forestW                  = 1100
	forestLabelX             = 16
	forestAxisL, forestAxisR = 250, 690
	forestNoteX              = 710
	forestTop                = 70
	forestRowH               = 26
	forestTitleH             = 30
	forestGroupGap           = 14
)

// WriteForestPNG draws PlotForest and writes it to path atomically.
func WriteForestPNG(path string, groups []ForestGroup, title, xlabel string) error {
	img, err := PlotForest(groups, title, xlabel)
	if err != nil {
		return err
	}
	return writeAtomic(path, func(f *os.File) error { return png.Encode(f, img) })
}

// PlotForest draws a forest plot: one block per group (its title in bold),
// one row per estimate — the label on the left, the point (a square) and its
// interval (a whisker) against a shared horizontal axis with a vertical line
// at 0, the note on the right. A row whose interval excludes 0 is drawn in
// vermillion, the others in blue; an undefined row shows its note only.
func PlotForest(groups []ForestGroup, title, xlabel string) (*image.RGBA, error) {
	rows := 0
	lo, hi := 0.0, 0.0
	for _, g := range groups {
		for _, r := range g.Rows {
			rows++
			for _, v := range []float64{r.Est, r.CI[0], r.CI[1]} {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	if rows == 0 {
		return nil, errors.New("metrics: no forest-plot rows")
	}
	// A symmetric axis around 0 with a round limit.
	lim := math.Max(-lo, hi)
	step := niceStep(lim)
	lim = math.Ceil(lim/step) * step
	if lim == 0 {
		lim, step = 0.1, 0.05
	}
	height := forestTop + len(groups)*(forestTitleH+forestGroupGap) + rows*forestRowH + 80
	img := image.NewRGBA(image.Rect(0, 0, forestW, height))
	raster.FillRect(img, xywh(0, 0, forestW, height), white)
	xOf := func(v float64) float64 {
		return forestAxisL + (v+lim)/(2*lim)*(forestAxisR-forestAxisL)
	}
	raster.DrawText(img, forestLabelX, 14, title, textScale, black, true)
	bottom := height - 70
	// Grid and ticks.
	for t := -lim; t <= lim+1e-9; t += step {
		x := int(math.Round(xOf(t)))
		c := gridGrey
		if math.Abs(t) < 1e-9 {
			c = black
		}
		raster.FillRect(img, xywh(x, forestTop-10, 1, bottom-forestTop+10), c)
		raster.FillRect(img, xywh(x, bottom, 1, 6), black)
		label := fmt.Sprintf("%+.2f", t)
		if math.Abs(t) < 1e-9 {
			label = "0"
		}
		raster.DrawText(img, x-raster.TextWidth(label, textScale)/2, bottom+10, label, textScale, black, false)
	}
	raster.FillRect(img, xywh(forestAxisL, bottom, forestAxisR-forestAxisL+1, 1), black)
	raster.DrawText(img, (forestAxisL+forestAxisR-raster.TextWidth(xlabel, textScale))/2, bottom+34, xlabel, textScale, black, false)
	blue, red := palette[0], palette[4]
	y := forestTop
	glyph := raster.GlyphH * textScale
	for _, g := range groups {
		raster.DrawText(img, forestLabelX, y, g.Title, textScale, black, true)
		y += forestTitleH
		for _, r := range g.Rows {
			yc := float64(y) + float64(glyph-1)/2
			raster.DrawText(img, forestLabelX+16, y, r.Label, textScale, black, false)
			raster.DrawText(img, forestNoteX, y, r.Note, textScale, black, false)
			y += forestRowH
			if r.CI.Undefined() || math.IsNaN(r.Est) {
				continue
			}
			col := blue
			if r.CI[0] > 0 || r.CI[1] < 0 {
				col = red
			}
			a, b := xOf(r.CI[0]), xOf(r.CI[1])
			line(img, [2]float64{a, yc}, [2]float64{b, yc}, 3, col)
			line(img, [2]float64{a, yc - 6}, [2]float64{a, yc + 6}, 2, col)
			line(img, [2]float64{b, yc - 6}, [2]float64{b, yc + 6}, 2, col)
			px := int(math.Round(xOf(r.Est)))
			raster.FillRect(img, xywh(px-5, int(math.Round(yc))-5, 11, 11), col)
		}
		y += forestGroupGap
	}
	return img, nil
}

// niceStep returns a tick step (1, 2 or 5 × a power of ten) giving two or
// three ticks on each side of 0 up to lim, so the labels never touch.
func niceStep(lim float64) float64 {
	if lim <= 0 || math.IsNaN(lim) || math.IsInf(lim, 0) {
		return 0.05
	}
	raw := lim / 2.5
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// FormatDiff writes a difference with its interval and p-value as the
// forest plot's note and the Markdown table show it: "+0.074 [-0.039,
// +0.180] p=0.21" (ASCII minus, for the plot's font).
func FormatDiff(d float64, ci Interval, p float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%+.3f", d)
	if !ci.Undefined() {
		fmt.Fprintf(&b, " [%+.3f, %+.3f]", ci[0], ci[1])
	}
	if !math.IsNaN(p) {
		if p < 0.001 {
			b.WriteString(" p<0.001")
		} else {
			fmt.Fprintf(&b, " p=%.3f", p)
		}
	}
	return b.String()
}
