package raster

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strconv"
)

// Colours of the legend panels the pictures share.
var (
	// LegendText is the legend's text and the scale bar's colour.
	LegendText = color.RGBA{0, 0, 0, 255}
	// legendPanel is the panel's background, painted at legendPanelAlpha
	// so that what lies under it is still faintly seen.
	legendPanel      = color.RGBA{255, 255, 255, 255}
	legendPanelAlpha = 0.85
	legendBorder     = color.RGBA{110, 110, 110, 255}
)

// PictureTextScale is the font scale for labels on a w×h picture: one font
// pixel per started 800 picture pixels of the long side, 1 to 4 (a 1024-px
// picture gets 2, a 2048-px one 3), so that the text stays readable when
// the picture is shown shrunk to a page's width.
func PictureTextScale(w, h int) int {
	return min(4, max(1, (max(w, h)+799)/800))
}

// ScaleBar picks a scale bar for a picture of umPerPx µm per pixel: the
// longest round length (1, 2 or 5 × 10^k µm) whose bar is at most maxPx
// pixels long and at least 8. It returns the length in µm, the bar's
// length in pixels (rounded) and its label ("500 µm", "1 mm"); ok is false
// when umPerPx is not positive or no length fits.
func ScaleBar(umPerPx float64, maxPx int) (um float64, px int, label string, ok bool) {
	if !(umPerPx > 0) || math.IsInf(umPerPx, 0) || maxPx < 8 {
		return 0, 0, "", false
	}
	maxUM := float64(maxPx) * umPerPx
	p := math.Pow(10, math.Floor(math.Log10(maxUM)))
	for _, m := range []float64{5, 2, 1, 0.5, 0.2, 0.1} {
		if l := m * p; l <= maxUM*(1+1e-9) {
			um = l
			break
		}
	}
	px = int(math.Round(um / umPerPx))
	if px < 8 || px > maxPx {
		return 0, 0, "", false
	}
	return um, px, LengthLabel(um), true
}

// LengthLabel writes a length in µm the way a scale bar is labelled: in mm
// from 1 mm up, in µm below, with no trailing zeros ("2 mm", "0.5 µm").
func LengthLabel(um float64) string {
	if um >= 1000 {
		return strconv.FormatFloat(um/1000, 'g', 4, 64) + " mm"
	}
	return strconv.FormatFloat(um, 'g', 4, 64) + " µm"
}

// LegendRow is one line of a legend: text before the key (e.g. a colour
// bar's "low"), the key (a small picture of what the row names, drawn into
// a box KeyW pixels wide and one text line high), and the text after it.
type LegendRow struct {
	Before string
	Key    func(c Canvas, r image.Rectangle) // nil: no key
	KeyW   int                               // 0: four characters wide
	Text   string
}

// Legend is a key drawn on a light, nearly opaque panel in a corner of a
// picture.
type Legend struct {
	Rows  []LegendRow
	Scale int // font scale (≥ 1)
}

// geometry, in pixels at the legend's scale.
func (l Legend) pad() int   { return 4 * max(1, l.Scale) }
func (l Legend) gap() int   { return 3 * max(1, l.Scale) }
func (l Legend) lineH() int { return TextHeight(max(1, l.Scale)) }
func (l Legend) keyW(r LegendRow) int {
	if r.KeyW > 0 {
		return r.KeyW
	}
	return 4 * Advance * max(1, l.Scale)
}

// rowW is a row's width: its texts, its key and the gaps between them.
func (l Legend) rowW(r LegendRow) int {
	s := max(1, l.Scale)
	w := 0
	if r.Before != "" {
		w += TextWidth(r.Before, s) + l.gap()
	}
	if r.Key != nil {
		w += l.keyW(r)
	}
	if r.Text != "" {
		if r.Key != nil || r.Before != "" {
			w += l.gap()
		}
		w += TextWidth(r.Text, s)
	}
	return w
}

// Size is the panel's size, border included.
func (l Legend) Size() image.Point {
	if len(l.Rows) == 0 {
		return image.Point{}
	}
	w := 0
	for _, r := range l.Rows {
		w = max(w, l.rowW(r))
	}
	n := len(l.Rows)
	return image.Point{2*l.pad() + w, 2*l.pad() + n*l.lineH() + (n-1)*l.gap()}
}

// Draw paints the panel with its top-left corner at p.
func (l Legend) Draw(c Canvas, p image.Point) {
	sz := l.Size()
	if sz == (image.Point{}) {
		return
	}
	s := max(1, l.Scale)
	panel := image.Rectangle{p, p.Add(sz)}
	BlendRect(c, panel, legendPanel, legendPanelAlpha)
	StrokeRect(c, panel, legendBorder)
	y := p.Y + l.pad()
	for _, r := range l.Rows {
		x := p.X + l.pad()
		if r.Before != "" {
			DrawText(c, x, y, r.Before, s, LegendText, false)
			x += TextWidth(r.Before, s) + l.gap()
		}
		if r.Key != nil {
			// Keys sit on the capitals' height (rows 0–6), not the descender.
			r.Key(c, image.Rect(x, y, x+l.keyW(r), y+7*s))
			x += l.keyW(r) + l.gap()
		}
		if r.Text != "" {
			DrawText(c, x, y, r.Text, s, LegendText, false)
		}
		y += l.lineH() + l.gap()
	}
}

// Place draws the legend inside c's bounds, margin pixels from the edges,
// in the corner where cost (e.g. the tissue a panel there would cover) is
// least; ties go to the bottom right, bottom left, top right, top left, in
// that order. A legend too large for the picture is drawn at a smaller
// font scale, down to 1; Place returns the panel's rectangle, or false
// when even that does not fit (nothing is drawn).
func (l Legend) Place(c Canvas, margin int, cost func(image.Rectangle) float64) (image.Rectangle, bool) {
	b := c.Bounds()
	for s := max(1, l.Scale); s >= 1; s-- {
		ls := l
		ls.Scale = s
		sz := ls.Size()
		if sz.X == 0 || sz.X > b.Dx()-2*margin || sz.Y > b.Dy()-2*margin {
			continue
		}
		corners := []image.Point{
			{b.Max.X - margin - sz.X, b.Max.Y - margin - sz.Y},
			{b.Min.X + margin, b.Max.Y - margin - sz.Y},
			{b.Max.X - margin - sz.X, b.Min.Y + margin},
			{b.Min.X + margin, b.Min.Y + margin},
		}
		best, bestCost := corners[0], math.Inf(1)
		for _, p := range corners {
			k := 0.0
			if cost != nil {
				k = cost(image.Rectangle{p, p.Add(sz)})
			}
			if k < bestCost {
				best, bestCost = p, k
			}
		}
		ls.Draw(c, best)
		return image.Rectangle{best, best.Add(sz)}, true
	}
	return image.Rectangle{}, false
}

// PlaceOr places l as Place does; when it does not fit, it places the
// smaller fallback instead (e.g. the scale bar alone on a tiny picture).
// It returns the panel's rectangle (empty when neither fits) and whether
// it is l's.
func (l Legend) PlaceOr(c Canvas, fallback Legend, margin int, cost func(image.Rectangle) float64) (r image.Rectangle, full bool) {
	if r, ok := l.Place(c, margin, cost); ok {
		return r, true
	}
	r, _ = fallback.Place(c, margin, cost)
	return r, false
}

// LineKey draws a horizontal line of the given width across the key box.
func LineKey(col color.RGBA, width int) func(Canvas, image.Rectangle) {
	return func(c Canvas, r image.Rectangle) {
		y := (r.Min.Y + r.Max.Y - width) / 2
		FillRect(c, image.Rect(r.Min.X, y, r.Max.X, y+width), col)
	}
}

// BoxKey draws a square outline of the given line width, as high as the
// key box, at its left.
func BoxKey(col color.RGBA, width int) func(Canvas, image.Rectangle) {
	return func(c Canvas, r image.Rectangle) {
		sq := image.Rect(r.Min.X, r.Min.Y, r.Min.X+r.Dy(), r.Max.Y)
		for i := range max(1, width) {
			StrokeRect(c, sq.Inset(i), col)
		}
	}
}

// ScaleBarKey draws a scale bar exactly the key box's width long: a bar
// thick pixels high in LegendText with end ticks the box's height.
func ScaleBarKey(thick int) func(Canvas, image.Rectangle) {
	return func(c Canvas, r image.Rectangle) {
		thick := max(1, thick)
		y := (r.Min.Y + r.Max.Y - thick) / 2
		FillRect(c, image.Rect(r.Min.X, y, r.Max.X, y+thick), LegendText)
		tick := max(1, thick/2)
		FillRect(c, image.Rect(r.Min.X, r.Min.Y, r.Min.X+tick, r.Max.Y), LegendText)
		FillRect(c, image.Rect(r.Max.X-tick, r.Min.Y, r.Max.X, r.Max.Y), LegendText)
	}
}

// ColourBarKey draws the colour map cmap from 0 (left) to 1 (right) across
// the key box, framed in the legend's border colour.
func ColourBarKey(cmap func(t float64) color.RGBA) func(Canvas, image.Rectangle) {
	return func(c Canvas, r image.Rectangle) {
		n := max(1, r.Dx()-1)
		for x := r.Min.X; x < r.Max.X; x++ {
			FillRect(c, image.Rect(x, r.Min.Y, x+1, r.Max.Y), cmap(float64(x-r.Min.X)/float64(n)))
		}
		StrokeRect(c, r.Inset(-1), legendBorder)
	}
}

// ScaleBarRow is the legend row of a scale bar for a picture w pixels wide
// at umPerPx µm per pixel: the bar at most a fifth of the width (and at
// most 40 characters of text at scale), labelled with its length. ok is
// false when the picture has no usable scale.
func ScaleBarRow(umPerPx float64, w, scale int) (LegendRow, bool) {
	_, px, label, ok := ScaleBar(umPerPx, min(w/5, 40*Advance*max(1, scale)))
	if !ok {
		return LegendRow{}, false
	}
	return LegendRow{Key: ScaleBarKey(max(2, scale+1)), KeyW: px, Text: label}, true
}

// MPPLabel writes a resolution as a legend does ("0.50 µm/px").
func MPPLabel(mpp float64) string { return fmt.Sprintf("%.2f µm/px", mpp) }
