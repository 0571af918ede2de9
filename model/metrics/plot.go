package metrics

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strconv"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// Plot geometry, in pixels.
const (
	plotW, plotH = 640, 560
	// The axes' box: FPR 0..1 maps to x plotLeft..plotRight, TPR 0..1 to y
	// plotBottom..plotTop.
	plotLeft, plotRight = 78, 620
	plotTop, plotBottom = 44, 488
	textScale           = 2
)

var (
	white     = color.RGBA{255, 255, 255, 255}
	black     = color.RGBA{0, 0, 0, 255}
	gridGrey  = color.RGBA{232, 232, 232, 255}
	chanceGry = color.RGBA{150, 150, 150, 255}
	mutedGrey = color.RGBA{130, 130, 130, 255}
	// palette holds the class colours, Okabe and Ito's colour-blind-safe
	// set (blue, orange, bluish green, reddish purple, vermillion, sky
	// blue, black; their yellow is left out, too pale a line on white),
	// cycled beyond 7.
	palette = []color.RGBA{
		{0, 114, 178, 255}, {230, 159, 0, 255}, {0, 158, 115, 255}, {204, 121, 167, 255},
		{213, 94, 0, 255}, {86, 180, 233, 255}, {0, 0, 0, 255},
	}
)

// lineStyle is how a curve is stroked: its width and its dash pattern
// (lengths in pixels along the curve, alternately drawn and skipped; nil
// for a solid line).
type lineStyle struct {
	width   float64
	pattern []float64
}

// classStyles are the class curves' styles, cycled beyond 4: solid,
// dashed, dotted, dash-dot, each thinner than the one before. The curves
// are drawn in class order, so where they coincide every one still shows:
// class 0 through the gaps of the others, each later one on top of it.
var classStyles = []lineStyle{
	{5, nil},
	{4, []float64{16, 8}},
	{4, []float64{4, 6}},
	{3, []float64{16, 6, 4, 6}},
}

var (
	// macroStyle: the macro-average curve, thin, black and long-dashed,
	// drawn last so it shows on top and lets the class colours through.
	macroStyle  = lineStyle{2, []float64{10, 6}}
	chanceStyle = lineStyle{1, []float64{7, 5}}
)

// ClassColor returns the colour of class c's curve in the plot.
func ClassColor(c int) color.RGBA { return palette[c%len(palette)] }

// classStyle returns the style of class c's curve.
func classStyle(c int) lineStyle { return classStyles[c%len(classStyles)] }

// WritePNG plots the one-vs-rest ROC curve of every class whose AUC is
// defined (each in its own colour and line style: solid, dashed, dotted,
// dash-dot), the macro-average curve (MacroROC, black, thin, long-dashed),
// the chance diagonal and a legend with each curve's style ("class 1+ (AUC
// 0.83)"; the macro entry reports MacroAUC) under title, and writes the PNG
// to path atomically. The number of classes is len(classNames); the input
// is checked as by Compute.
func WritePNG(path string, labels []int, probs [][]float64, classNames []string, title string) error {
	img, err := PlotROC(labels, probs, classNames, title)
	if err != nil {
		return err
	}
	return writeAtomic(path, func(f *os.File) error {
		return png.Encode(f, img)
	})
}

// PlotROC draws what WritePNG writes, a 640×560 image.
func PlotROC(labels []int, probs [][]float64, classNames []string, title string) (*image.RGBA, error) {
	classes := len(classNames)
	m, err := Compute(labels, probs, classes)
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	raster.FillRect(img, xywh(0, 0, plotW, plotH), white)
	drawAxes(img)
	strokePath(img, [][2]float64{toPixel(ROCPoint{0, 0}), toPixel(ROCPoint{1, 1})}, chanceStyle, chanceGry)

	var legend []legendEntry
	var undefined []legendEntry
	for c := range classes {
		name := classNames[c]
		if name == "" {
			name = strconv.Itoa(c)
		}
		if m.PerClass[c].AUC == nil {
			undefined = append(undefined, legendEntry{fmt.Sprintf("class %s (AUC undefined)", name), mutedGrey, nil})
			continue
		}
		col, st := ClassColor(c), classStyle(c)
		strokePath(img, toPixels(classROC(labels, probs, c)), st, col)
		legend = append(legend, legendEntry{fmt.Sprintf("class %s (AUC %.2f)", name, *m.PerClass[c].AUC), col, &st})
	}
	if macro := MacroROC(labels, probs, classes); macro != nil {
		strokePath(img, toPixels(macro), macroStyle, black)
		legend = append(legend, legendEntry{fmt.Sprintf("macro (AUC %.2f)", m.MacroAUC), black, &macroStyle})
	}
	legend = append(legend, legendEntry{"chance (AUC 0.50)", chanceGry, &chanceStyle})
	legend = append(legend, undefined...)

	// Title, centred over the axes (left-aligned when too wide).
	tw := raster.TextWidth(title, textScale)
	tx := (plotLeft + plotRight - tw) / 2
	if tx < 4 || tx+tw > plotW-4 {
		tx = 4
	}
	raster.DrawText(img, tx, 14, title, textScale, black, true)

	drawLegendBox(img, legend, textScale)
	return img, nil
}

// legendEntry is one row of a plot's legend: a line swatch in its style
// (none when style is nil, the text then in the entry's colour) and text.
type legendEntry struct {
	text  string
	col   color.RGBA
	style *lineStyle
}

// drawLegendBox draws the legend in a white box in the lower right corner
// of the axes.
func drawLegendBox(img *image.RGBA, legend []legendEntry, textScale int) {
	boxW, boxH := legendBoxSize(legend, textScale)
	drawLegendBoxAt(img, legend, textScale, plotRight-10-boxW, plotBottom-10-boxH)
}

// Legend box geometry: padding, line swatch, gap before the text.
const legendPad, legendSwatch, legendGap = 8, 44, 8

// legendBoxSize is the legend box's width and height.
func legendBoxSize(legend []legendEntry, textScale int) (w, h int) {
	maxW := 0
	for _, e := range legend {
		maxW = max(maxW, raster.TextWidth(e.text, textScale))
	}
	return legendPad + legendSwatch + legendGap + maxW + legendPad,
		legendPad + len(legend)*raster.LineStep*textScale - (raster.LineStep-raster.GlyphH)*textScale + legendPad
}

// drawLegendBoxAt draws the legend box with its top-left corner at (bx, by).
func drawLegendBoxAt(img *image.RGBA, legend []legendEntry, textScale, bx, by int) {
	const pad, swatch, gap = legendPad, legendSwatch, legendGap
	lineH := raster.LineStep * textScale
	boxW, boxH := legendBoxSize(legend, textScale)
	raster.FillRect(img, xywh(bx, by, boxW, boxH), white)
	raster.StrokeRect(img, xywh(bx, by, boxW, boxH), chanceGry)
	for i, e := range legend {
		y := by + pad + i*lineH
		if e.style != nil {
			// On the capitals' middle row, pixel-centred like the curves.
			yc := float64(y + (raster.GlyphH-1)*textScale/2)
			strokePath(img, [][2]float64{{float64(bx + pad), yc}, {float64(bx + pad + swatch), yc}}, *e.style, e.col)
		}
		tc := black // readable on white whatever the curve's colour
		if e.style == nil {
			tc = e.col
		}
		raster.DrawText(img, bx+pad+swatch+gap, y, e.text, textScale, tc, false)
	}
}

// toPixel maps a ROC point to image coordinates (pixel centres at integers).
func toPixel(p ROCPoint) [2]float64 {
	return [2]float64{
		plotLeft + p.FPR*(plotRight-plotLeft),
		plotBottom - p.TPR*(plotBottom-plotTop),
	}
}

// drawAxes draws the grid, the axes' box, the ticks with their labels and
// the axis titles.
func drawAxes(img *image.RGBA) {
	const tickLen = 6
	glyphPix := raster.GlyphH * textScale
	for k := 0; k <= 5; k++ {
		v := float64(k) / 5
		p := toPixel(ROCPoint{v, v})
		x, y := int(math.Round(p[0])), int(math.Round(p[1]))
		label := strconv.FormatFloat(v, 'f', 1, 64)
		lw := raster.TextWidth(label, textScale)
		if k > 0 && k < 5 {
			raster.FillRect(img, xywh(x, plotTop, 1, plotBottom-plotTop), gridGrey)
			raster.FillRect(img, xywh(plotLeft, y, plotRight-plotLeft, 1), gridGrey)
		}
		raster.FillRect(img, xywh(x, plotBottom, 1, tickLen), black)
		raster.DrawText(img, x-lw/2, plotBottom+tickLen+4, label, textScale, black, false)
		raster.FillRect(img, xywh(plotLeft-tickLen, y, tickLen, 1), black)
		raster.DrawText(img, plotLeft-tickLen-4-lw, y-(raster.GlyphH-1)*textScale/2, label, textScale, black, false)
	}
	raster.StrokeRect(img, xywh(plotLeft, plotTop, plotRight-plotLeft+1, plotBottom-plotTop+1), black)

	xl := "False positive rate"
	raster.DrawText(img, (plotLeft+plotRight-raster.TextWidth(xl, textScale))/2, plotBottom+tickLen+4+glyphPix+10, xl, textScale, black, false)
	yl := "True positive rate"
	raster.DrawTextUp(img, 8, (plotTop+plotBottom+raster.TextWidth(yl, textScale))/2, yl, textScale, black)
}

// xywh is the w×h rectangle with top-left corner (x, y).
func xywh(x, y, w, h int) image.Rectangle { return image.Rect(x, y, x+w, y+h) }

// line draws an anti-aliased segment of the given width from a to b (pixel
// centres at integer coordinates). It generalises Xiaolin Wu's algorithm:
// along the major axis it steps one pixel at a time; across it the line is
// a band of width·sqrt(1+slope²) pixels (so the perpendicular width is
// width), and each pixel is painted with the fraction of it the band covers.
// For width 1 that is Wu's two-pixel split.
func line(img *image.RGBA, a, b [2]float64, width float64, col color.RGBA) {
	x0, y0, x1, y1 := a[0], a[1], b[0], b[1]
	steep := math.Abs(y1-y0) > math.Abs(x1-x0)
	if steep { // step along y; "x" below is then the image y
		x0, y0, x1, y1 = y0, x0, y1, x1
	}
	if x0 > x1 {
		x0, y0, x1, y1 = x1, y1, x0, y0
	}
	if x1-x0 < 1e-9 {
		return // zero length (and not steep): nothing to draw
	}
	g := (y1 - y0) / (x1 - x0)
	half := width * math.Sqrt(1+g*g) / 2
	for xi := int(math.Round(x0)); xi <= int(math.Round(x1)); xi++ {
		xc := math.Min(math.Max(float64(xi), x0), x1) // no overshoot at the ends
		yc := y0 + g*(xc-x0)
		lo, hi := yc-half, yc+half
		for j := int(math.Floor(lo + 0.5)); j <= int(math.Floor(hi+0.5)); j++ {
			cov := math.Min(hi, float64(j)+0.5) - math.Max(lo, float64(j)-0.5)
			if steep {
				raster.Blend(img, j, xi, col, cov)
			} else {
				raster.Blend(img, xi, j, col, cov)
			}
		}
	}
}

// toPixels maps a ROC curve to image coordinates.
func toPixels(pts []ROCPoint) [][2]float64 {
	out := make([][2]float64, len(pts))
	for i, p := range pts {
		out[i] = toPixel(p)
	}
	return out
}

// strokePath draws the path through pts (image coordinates) in style st:
// solid, or the dash pattern laid along the path's length, continuing
// from one segment to the next.
func strokePath(img *image.RGBA, pts [][2]float64, st lineStyle, col color.RGBA) {
	if len(st.pattern) == 0 {
		for i := 1; i < len(pts); i++ {
			line(img, pts[i-1], pts[i], st.width, col)
		}
		return
	}
	k, left := 0, st.pattern[0] // the pattern's element and what is left of it
	for i := 1; i < len(pts); i++ {
		a, b := pts[i-1], pts[i]
		dx, dy := b[0]-a[0], b[1]-a[1]
		length := math.Hypot(dx, dy)
		if length == 0 {
			continue
		}
		ux, uy := dx/length, dy/length
		for s := 0.0; s < length; {
			step := math.Min(left, length-s)
			if k%2 == 0 {
				line(img, [2]float64{a[0] + ux*s, a[1] + uy*s}, [2]float64{a[0] + ux*(s+step), a[1] + uy*(s+step)}, st.width, col)
			}
			s += step
			if left -= step; left <= 1e-9 {
				k = (k + 1) % len(st.pattern)
				left = st.pattern[k]
			}
		}
	}
}
