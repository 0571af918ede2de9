package tiling

import (
	"fmt"
	"image"
	"image/color"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// QC picture colours: the tissue outline is bright green (it stands out on
// pink/purple H&E and brown/blue IHC), kept patches are outlined in blue.
var (
	qcOutline = [3]uint8{0, 230, 0}
	qcBox     = [3]uint8{0, 40, 255}
)

// DrawQC returns a copy of thumb with the outline of the tissue in mask drawn
// in green and each box (a kept patch, in thumbnail pixel coordinates, Max
// exclusive) drawn as a 1-px blue rectangle outline. The mask may have any
// size: it is scaled to the thumbnail by nearest neighbour. The outline is 1
// px wide on thumbnails up to 600 px on their longer side, 2 px up to 1400,
// 3 px above, and is drawn on the tissue side of the boundary (the image border counts as
// boundary, so tissue cut by the border is framed). A nil mask draws no
// outline; boxes are clipped to the image. DrawQC returns nil when thumb is
// nil or invalid.
func DrawQC(thumb *raster.RGB, mask *Mask, boxes []image.Rectangle) *raster.RGB {
	if thumb.Valid() != nil {
		return nil
	}
	out := raster.New(thumb.W, thumb.H)
	copy(out.Pix, thumb.Pix)
	tw, th := thumb.W, thumb.H
	if mask != nil && mask.W > 0 && mask.H > 0 && len(mask.Tissue) == mask.W*mask.H {
		// Resample the mask to thumbnail size.
		xs := make([]int, tw)
		for x := range xs {
			xs[x] = min(int((float64(x)+0.5)*float64(mask.W)/float64(tw)), mask.W-1)
		}
		t := make([]bool, tw*th)
		for y := 0; y < th; y++ {
			my := min(int((float64(y)+0.5)*float64(mask.H)/float64(th)), mask.H-1)
			row := mask.Tissue[my*mask.W : (my+1)*mask.W]
			for x := 0; x < tw; x++ {
				t[y*tw+x] = row[xs[x]] != 0
			}
		}
		width := 1
		switch long := max(tw, th); {
		case long > 1400:
			width = 3
		case long > 600:
			width = 2
		}
		in := func(x, y int) bool {
			return x >= 0 && y >= 0 && x < tw && y < th && t[y*tw+x]
		}
		for y := 0; y < th; y++ {
			for x := 0; x < tw; x++ {
				if !t[y*tw+x] {
					continue
				}
				edge := false
				for d := 1; d <= width && !edge; d++ {
					edge = !in(x-d, y) || !in(x+d, y) || !in(x, y-d) || !in(x, y+d)
				}
				if edge {
					out.Set(x, y, qcOutline[0], qcOutline[1], qcOutline[2])
				}
			}
		}
	}
	for _, b := range boxes {
		drawRect(out, b.Canon(), qcBox)
	}
	return out
}

// drawRect draws the 1-px outline of r (Max exclusive), clipped to img.
func drawRect(img *raster.RGB, r image.Rectangle, c [3]uint8) {
	if r.Empty() {
		return
	}
	x0, y0, x1, y1 := r.Min.X, r.Min.Y, r.Max.X-1, r.Max.Y-1
	set := func(x, y int) {
		if x >= 0 && y >= 0 && x < img.W && y < img.H {
			img.Set(x, y, c[0], c[1], c[2])
		}
	}
	for x := max(x0, 0); x <= min(x1, img.W-1); x++ {
		set(x, y0)
		set(x, y1)
	}
	for y := max(y0, 0); y <= min(y1, img.H-1); y++ {
		set(x0, y)
		set(x1, y)
	}
}

// QCLabels are what the QC picture's legend states.
type QCLabels struct {
	UMPerPixel float64 // µm per picture pixel (horizontally); 0: no scale bar
	Patches    int     // kept patches
	PatchSize  int     // a patch's side in pixels at PatchMPP
	PatchMPP   float64 // µm/px the patches are read at
}

// QCLegend is the QC picture's legend for a picture w×h pixels: the
// outline's and the boxes' colours with what they mean (the patch count,
// size and resolution; the mask's resolution when mask is not nil) and a
// scale bar when UMPerPixel is known; and the scale bar alone, the
// fallback for a picture too small for the whole legend.
func QCLegend(w, h int, mask *Mask, l QCLabels) (leg, fallback raster.Legend) {
	scale := raster.PictureTextScale(w, h)
	outline := "tissue outline"
	if mask != nil && mask.MPP > 0 {
		outline += fmt.Sprintf(" (mask at %.3g µm/px)", mask.MPP)
	}
	noun := "patches"
	if l.Patches == 1 {
		noun = "patch"
	}
	patches := fmt.Sprintf("%d kept %s", l.Patches, noun)
	if l.PatchSize > 0 && l.PatchMPP > 0 {
		patches += fmt.Sprintf(", %d px at %s", l.PatchSize, raster.MPPLabel(l.PatchMPP))
	}
	rows := []raster.LegendRow{
		{Key: raster.LineKey(rgba(qcOutline), max(2, scale+1)), Text: outline},
		{Key: raster.BoxKey(rgba(qcBox), max(1, scale-1)), KeyW: raster.TextHeight(scale), Text: patches},
	}
	if bar, ok := raster.ScaleBarRow(l.UMPerPixel, w, scale); ok {
		rows = append(rows, bar)
		fallback.Rows, fallback.Scale = []raster.LegendRow{bar}, scale
	}
	return raster.Legend{Rows: rows, Scale: scale}, fallback
}

// DrawQCLegend draws QCLegend onto img (a QC picture) in place, in the
// corner where the mask, scaled to the picture, shows least tissue (the
// scale bar alone when the whole legend does not fit). It reports whether
// the whole legend fitted.
func DrawQCLegend(img *raster.RGB, mask *Mask, l QCLabels) bool {
	if img.Valid() != nil {
		return false
	}
	leg, fallback := QCLegend(img.W, img.H, mask, l)
	var cost func(image.Rectangle) float64
	if mask != nil && mask.W > 0 && mask.H > 0 && len(mask.Tissue) == mask.W*mask.H {
		sx, sy := float64(mask.W)/float64(img.W), float64(mask.H)/float64(img.H)
		cost = func(r image.Rectangle) float64 {
			return mask.Fraction(float64(r.Min.X)*sx, float64(r.Min.Y)*sy, float64(r.Max.X)*sx, float64(r.Max.Y)*sy)
		}
	}
	_, full := leg.PlaceOr(img, fallback, max(4, img.W/100), cost)
	return full
}

func rgba(c [3]uint8) color.RGBA { return color.RGBA{c[0], c[1], c[2], 255} }
