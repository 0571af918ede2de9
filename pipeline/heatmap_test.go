package pipeline

import (
	"context"
	"image"
	"image/color"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
)

var (
	heatTissue = color.RGBA{214, 120, 176, 255}
	heatGlass  = color.RGBA{242, 240, 238, 255}
)

// heatScene: a 400×300 picture of a 4000×3000 slide at 0.25 µm/px (2.5
// µm per picture pixel), tissue in the left half, with 4×7 patches of 400
// level-0 pixels (40 picture pixels) on it, attention rising with the row.
func heatScene() (base *raster.RGB, coords, rows []int64, attn []float32) {
	base = raster.New(400, 300)
	for y := 0; y < 300; y++ {
		for x := 0; x < 400; x++ {
			c := heatGlass
			if x < 200 {
				c = heatTissue
			}
			base.SetRGBA(x, y, c)
		}
	}
	for r := range int64(7) {
		for c := range int64(4) {
			coords = append(coords, 400*c, 400*r)
		}
	}
	for i := range len(coords) / 2 {
		rows = append(rows, int64(i))
		attn = append(attn, float32(i))
	}
	return base, coords, rows, attn
}

// The heatmap keeps the tissue visible: a patch pixel is the tissue mixed
// with the colour at heatmapAlpha, neither the tissue nor the pure colour;
// outside the patches and the legend nothing changes; the legend (in the
// corner without patches) holds the colour bar's ends and a scale bar.
func TestHeatmapKeepsTissueVisible(t *testing.T) {
	base, coords, rows, attn := heatScene()
	img := raster.New(base.W, base.H)
	copy(img.Pix, base.Pix)
	drawHeatmap(img, 4000, 3000, 400, coords, rows, attn, 2.5, "attention")

	for i := range rows {
		x, y := int(coords[2*i]/10)+20, int(coords[2*i+1]/10)+20 // patch centre
		col := heatmapColor(float64(i) / float64(len(rows)-1))
		got := img.RGBAAt(x, y)
		if got == heatTissue || got == col {
			t.Fatalf("patch %d at (%d,%d) is %v: the tissue or the pure colour", i, x, y, got)
		}
		if want := raster.Mix(heatTissue, col, heatmapAlpha); got != want {
			t.Fatalf("patch %d: %v; want %v (tissue %v + %v at %.2f)", i, got, want, heatTissue, col, heatmapAlpha)
		}
		// Patch borders are tinted once: the last pixel of a patch and the
		// first of its neighbour have their own colours, not a double tint.
		if x0 := int(coords[2*i] / 10); x0 > 0 {
			if c := img.RGBAAt(x0, y); c != got {
				t.Fatalf("patch %d's first column %v differs from its centre %v", i, c, got)
			}
		}
	}
	// The legend goes to the right half (no patches), bottom right first.
	var legend image.Rectangle
	for y := range 300 {
		for x := range 400 {
			if img.RGBAAt(x, y) != base.RGBAAt(x, y) && (x >= 160 || y >= 280) {
				legend = legend.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	if legend.Min.X < 160 || legend.Max != (image.Point{396, 296}) {
		t.Fatalf("legend over %v; want the bottom right, clear of the patches", legend)
	}
	count := func(c color.RGBA) int {
		n := 0
		for y := legend.Min.Y; y < legend.Max.Y; y++ {
			for x := legend.Min.X; x < legend.Max.X; x++ {
				if img.RGBAAt(x, y) == c {
					n++
				}
			}
		}
		return n
	}
	if count(heatmapColor(0)) == 0 || count(heatmapColor(1)) == 0 {
		t.Error("colour bar without its low or high end colour")
	}
	// 2.5 µm/px, room for 80 px (a fifth of 400): a 200 µm bar, 80 px.
	best := 0
	for y := legend.Min.Y; y < legend.Max.Y; y++ {
		n := 0
		for x := legend.Min.X; x < legend.Max.X; x++ {
			if img.RGBAAt(x, y) == raster.LegendText {
				n++
				best = max(best, n)
			} else {
				n = 0
			}
		}
	}
	if best != 80 {
		t.Errorf("scale bar %d px; want 80 (200 µm at 2.5 µm/px)", best)
	}

	// Equal attention everywhere: the middle colour.
	img2 := raster.New(base.W, base.H)
	copy(img2.Pix, base.Pix)
	drawHeatmap(img2, 4000, 3000, 400, coords, rows, make([]float32, len(rows)), 0, "attention")
	if got, want := img2.RGBAAt(20, 20), raster.Mix(heatTissue, heatmapColor(0.5), heatmapAlpha); got != want {
		t.Errorf("flat attention: %v; want %v", got, want)
	}
}

// On a tiled slide the heatmap has qc.png's size and is drawn on
// thumbnail.jpg, the tissue showing through.
func TestHeatmapOnTiledSlide(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "he.svs")
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: gridTissue20}); err != nil {
		t.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	in := Input{Path: p, ID: slide.ID(p)}
	if r := TileSlide(context.Background(), in, work, DefaultTileOptions()); r.Err != nil {
		t.Fatal(r.Err)
	}
	rec, err := work.ReadSlideRecord(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	coords, err := work.ReadCoords(in.ID, rec)
	if err != nil {
		t.Fatal(err)
	}
	sd := &bundle.SlideData{ID: in.ID}
	var attn []float32
	for i := range len(coords) / 2 {
		sd.Rows = append(sd.Rows, int64(i))
		attn = append(attn, float32(i%7))
	}
	if err := writeHeatmap(work, in.ID, sd, attn, "attention"); err != nil {
		t.Fatal(err)
	}
	heat, qc, thumb := decodeFile(t, work.HeatmapPNG(in.ID)), decodeFile(t, work.QCPNG(in.ID)), decodeFile(t, work.ThumbnailJPG(in.ID))
	if want := DefaultTileOptions().QCMaxSide; heat.W != qc.W || heat.H != qc.H || heat.W != want {
		t.Fatalf("heatmap %dx%d, qc.png %dx%d; want both %d wide", heat.W, heat.H, qc.W, qc.H, want)
	}
	s := float64(heat.W) / 4096
	for i := range len(coords) / 2 {
		x, y := int(float64(coords[2*i]+128)*s), int(float64(coords[2*i+1]+128)*s)
		col := heatmapColor(float64(float32(i%7) / 6)) // as drawHeatmap normalises, in float32
		got, under := heat.RGBAAt(x, y), thumb.RGBAAt(x, y)
		if got == under || got == col || got != raster.Mix(under, col, heatmapAlpha) {
			t.Fatalf("patch %d at (%d,%d): %v over %v with %v", i, x, y, got, under, col)
		}
	}
	// Glass far from every patch is the thumbnail's.
	if heat.RGBAAt(10, 1000) != thumb.RGBAAt(10, 1000) {
		t.Errorf("glass changed: %v, thumbnail %v", heat.RGBAAt(10, 1000), thumb.RGBAAt(10, 1000))
	}
}
