package pipeline

import (
	"fmt"
	"image"
	_ "image/jpeg" // thumbnail.jpg
	_ "image/png"  // qc.png of work folders tiled before thumbnail.jpg
	"math"
	"os"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/raster"
)

// heatmapAlpha is the opacity of the attention colours over the tissue:
// enough to read the colour, little enough to see the tissue through it.
const heatmapAlpha = 0.45

// heatmapColor is the heatmap's colour map: viridis, a perceptually
// uniform sequential map (dark violet for low attention to yellow for
// high, lightness rising throughout) that stays apart from H&E's pink and
// purple and reads the same to colour-blind eyes.
var heatmapColor = raster.Viridis

// writeHeatmap draws the [CLS]→patch attention over the slide's plain
// picture (thumbnail.jpg, the same size as qc.png; qc.png for slides tiled
// before there was one; a white 1024-px canvas when neither exists): each
// patch tinted with the colour of its attention, min–max normalised over
// the slide, at heatmapAlpha, with a legend (colour bar, scale bar).
func writeHeatmap(work Work, id string, sd *bundle.SlideData, attn []float32, label string) error {
	rec, err := work.ReadSlideRecord(id)
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: heatmap: %w", id, err)
	}
	coords, err := work.ReadCoords(id, rec)
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: heatmap: %w", id, err)
	}
	step := int64(rec.Plan.PatchSizeLevel0)
	if step <= 0 {
		step = 256
	}
	var w0, h0 int64
	if len(rec.Slide.Levels) > 0 {
		w0, h0 = rec.Slide.Levels[0].Width, rec.Slide.Levels[0].Height
	}
	if w0 <= 0 || h0 <= 0 {
		for i := 0; i+1 < len(coords); i += 2 {
			w0, h0 = max(w0, coords[i]+step), max(h0, coords[i+1]+step)
		}
	}
	if w0 <= 0 || h0 <= 0 {
		return fmt.Errorf("pipeline: slide %s: heatmap: no slide size and no patches", id)
	}
	img := heatmapBase(work, id, w0, h0)
	umPerPx := 0.0
	if rec.Slide.MPPX > 0 {
		umPerPx = rec.Slide.MPPX * float64(w0) / float64(img.W)
	}
	rows := sd.Rows
	if sd.Owner != nil && len(sd.Owner) == len(coords)/2 {
		// A fixed spatial subset: each unread patch shows the attention of
		// the patch read in its stratum (a compact region around it), so
		// the map covers the tissue without a mesh of gaps.
		rows, attn = fillStrata(sd.Owner, attn)
	}
	drawHeatmap(img, w0, h0, step, coords, rows, attn, umPerPx, label)
	if err := WritePNG(work.HeatmapPNG(id), img); err != nil {
		return fmt.Errorf("pipeline: slide %s: heatmap: %w", id, err)
	}
	return nil
}

// heatmapBase is the picture the heatmap is drawn on (see writeHeatmap).
func heatmapBase(work Work, id string, w0, h0 int64) *raster.RGB {
	for _, p := range []string{work.ThumbnailJPG(id), work.QCPNG(id)} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		img, _, err := image.Decode(f)
		f.Close()
		if err == nil && img.Bounds().Dx() > 0 && img.Bounds().Dy() > 0 {
			return raster.FromImage(img)
		}
	}
	s := 1024 / math.Max(float64(w0), float64(h0))
	img := raster.New(max(1, int(float64(w0)*s)), max(1, int(float64(h0)*s)))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	return img
}

// drawHeatmap tints, on img (the whole w0×h0 slide), the patch of each of
// rows (rows of coords, [N,2] level-0 top-left corners, step level-0
// pixels wide) with heatmapColor of its attention, min–max normalised
// (all 0.5 when every value is equal), at heatmapAlpha, leaving the rest
// of the picture as it is; then draws the legend (what the colours mean, a
// colour bar from low to high and, when umPerPx is known, a scale bar) in
// the corner with the fewest patches.
func drawHeatmap(img *raster.RGB, w0, h0, step int64, coords, rows []int64, attn []float32, umPerPx float64, label string) {
	sx, sy := float64(img.W)/float64(w0), float64(img.H)/float64(h0)
	// Floors on both edges: neighbouring patches share their border
	// exactly, so no pixel is tinted twice.
	rect := func(x, y int64) image.Rectangle {
		return image.Rect(int(float64(x)*sx), int(float64(y)*sy), int(float64(x+step)*sx), int(float64(y+step)*sy)).Intersect(img.Bounds())
	}
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, a := range attn {
		lo, hi = min(lo, a), max(hi, a)
	}
	var patches []image.Rectangle
	for i, row := range rows {
		if i >= len(attn) || row < 0 || int(2*row+1) >= len(coords) {
			break
		}
		t := 0.5
		if hi > lo {
			t = float64((attn[i] - lo) / (hi - lo))
		}
		col := heatmapColor(t)
		r := rect(coords[2*row], coords[2*row+1])
		patches = append(patches, r)
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				img.SetRGBA(x, y, raster.Mix(img.RGBAAt(x, y), col, heatmapAlpha))
			}
		}
	}
	leg, fallback := heatmapLegend(img.W, img.H, umPerPx, label)
	leg.PlaceOr(img, fallback, max(4, img.W/100), func(r image.Rectangle) float64 {
		n := 0
		for _, p := range patches {
			n += area(p.Intersect(r))
		}
		return float64(n)
	})
}

// heatmapLegend is the heatmap's legend for a w×h picture, and the
// colour bar alone for a picture too small for it.
func heatmapLegend(w, h int, umPerPx float64, label string) (leg, fallback raster.Legend) {
	scale := raster.PictureTextScale(w, h)
	rows := []raster.LegendRow{
		{Text: label + ", this slide's min to max"},
		{Before: "low", Key: raster.ColourBarKey(heatmapColor), KeyW: 16 * raster.Advance * scale, Text: "high"},
	}
	if bar, ok := raster.ScaleBarRow(umPerPx, w, scale); ok {
		rows = append(rows, bar)
	}
	return raster.Legend{Rows: rows, Scale: scale}, raster.Legend{Rows: rows[1:2], Scale: scale}
}

func area(r image.Rectangle) int { return r.Dx() * r.Dy() }

// fillStrata expands per-read-patch values to every row that has an owner
// among the patches read (bundle.SlideData.Owner).
func fillStrata(owner []int32, attn []float32) ([]int64, []float32) {
	rows := make([]int64, 0, len(owner))
	vals := make([]float32, 0, len(owner))
	for r, k := range owner {
		if k >= 0 && int(k) < len(attn) {
			rows = append(rows, int64(r))
			vals = append(vals, attn[k])
		}
	}
	return rows, vals
}
