package raster

import (
	"image"
	"image/color"
	"testing"
)

func TestScaleBar(t *testing.T) {
	tests := []struct {
		umPerPx float64
		maxPx   int
		um      float64
		px      int
		label   string
		ok      bool
	}{
		{1, 409, 200, 200, "200 µm", true},
		{0.5, 204, 100, 200, "100 µm", true},
		{0.723, 306, 200, 277, "200 µm", true},
		{2.5, 500, 1000, 400, "1 mm", true},
		{8, 400, 2000, 250, "2 mm", true},
		{10, 600, 5000, 500, "5 mm", true},
		{0.1, 60, 5, 50, "5 µm", true},
		{0.25, 100, 20, 80, "20 µm", true},
		{1, 500, 500, 500, "500 µm", true}, // exactly the limit
		{0, 400, 0, 0, "", false},
		{-1, 400, 0, 0, "", false},
		{1, 4, 0, 0, "", false},
	}
	for _, tc := range tests {
		um, px, label, ok := ScaleBar(tc.umPerPx, tc.maxPx)
		if um != tc.um || px != tc.px || label != tc.label || ok != tc.ok {
			t.Errorf("ScaleBar(%g, %d) = %g, %d, %q, %v; want %g, %d, %q, %v", tc.umPerPx, tc.maxPx, um, px, label, ok, tc.um, tc.px, tc.label, tc.ok)
		}
		if ok && (px > tc.maxPx || px*5 < tc.maxPx*2) {
			t.Errorf("ScaleBar(%g, %d): %d px is not within 40–100 %% of the room", tc.umPerPx, tc.maxPx, px)
		}
	}
	for um, want := range map[float64]string{0.5: "0.5 µm", 1500: "1.5 mm", 10000: "10 mm", 50: "50 µm"} {
		if got := LengthLabel(um); got != want {
			t.Errorf("LengthLabel(%g) = %q; want %q", um, got, want)
		}
	}
}

func TestPictureTextScale(t *testing.T) {
	for _, tc := range []struct{ w, h, want int }{{118, 118, 1}, {800, 300, 1}, {1024, 1024, 2}, {1532, 2048, 3}, {2048, 1644, 3}, {5000, 10, 4}} {
		if got := PictureTextScale(tc.w, tc.h); got != tc.want {
			t.Errorf("PictureTextScale(%d, %d) = %d; want %d", tc.w, tc.h, got, tc.want)
		}
	}
}

// The legend goes to the corner with the least cost, shrinks its font to
// fit a small picture, and is left out of one too small for it.
func TestLegendPlace(t *testing.T) {
	red := color.RGBA{255, 0, 0, 255}
	leg := Legend{Scale: 2, Rows: []LegendRow{
		{Key: LineKey(red, 3), Text: "outline"},
		{Key: ScaleBarKey(3), KeyW: 50, Text: "1 mm"},
		{Before: "low", Key: ColourBarKey(func(t float64) color.RGBA { return color.RGBA{uint8(255 * t), 0, 0, 255} }), Text: "high"},
	}}
	sz := leg.Size()
	if want := 2*8 + TextWidth("low", 2) + 6 + 4*Advance*2 + 6 + TextWidth("high", 2); sz.X != want {
		t.Errorf("width %d; want %d", sz.X, want)
	}
	if want := 2*8 + 3*TextHeight(2) + 2*6; sz.Y != want {
		t.Errorf("height %d; want %d", sz.Y, want)
	}
	b := image.Rect(0, 0, 400, 300)
	busy := image.Rect(200, 150, 400, 300) // the bottom right holds "tissue"
	cost := func(r image.Rectangle) float64 { return float64(r.Intersect(busy).Dx() * r.Intersect(busy).Dy()) }
	img := New(b.Dx(), b.Dy())
	FillRect(img, b, color.RGBA{40, 40, 200, 255})
	r, ok := leg.Place(img, 5, cost)
	if !ok || r.Min != (image.Point{5, 300 - 5 - sz.Y}) || r.Size() != sz {
		t.Fatalf("placed at %v (ok %v); want bottom left, %v", r, ok, sz)
	}
	// The panel is light, the border grey, the bar exactly 50 px of text colour.
	if c := img.RGBAAt(r.Min.X+2, r.Min.Y+2); c.R < 200 || c.B < 200 {
		t.Errorf("panel background %v", c)
	}
	if img.RGBAAt(r.Min.X, r.Min.Y) != legendBorder {
		t.Errorf("border %v", img.RGBAAt(r.Min.X, r.Min.Y))
	}
	if n := longestRun(img, r, LegendText); n != 50 {
		t.Errorf("scale bar %d px; want 50", n)
	}
	// Outside the panel nothing changed.
	if img.RGBAAt(r.Max.X+1, r.Min.Y) != (color.RGBA{40, 40, 200, 255}) {
		t.Error("drawn outside the panel")
	}

	// Too wide at scale 2 for a 150-px picture: drawn at scale 1.
	small := New(150, 100)
	r, ok = leg.Place(small, 2, nil)
	if !ok || r.Dx() > 146 {
		t.Errorf("small picture: %v, %v", r, ok)
	}
	// Too small for any scale: nothing drawn.
	tiny := New(30, 20)
	if _, ok := leg.Place(tiny, 2, nil); ok {
		t.Error("legend placed on a 30×20 picture")
	}
	for _, p := range tiny.Pix {
		if p != 0 {
			t.Fatal("drawn on a picture it does not fit")
		}
	}
}

// longestRun is the longest horizontal run of exactly col inside r.
func longestRun(img *RGB, r image.Rectangle, col color.RGBA) int {
	best := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		n := 0
		for x := r.Min.X; x < r.Max.X; x++ {
			if img.RGBAAt(x, y) == col {
				n++
				best = max(best, n)
			} else {
				n = 0
			}
		}
	}
	return best
}

func TestLegendPlaceOr(t *testing.T) {
	big := Legend{Scale: 1, Rows: []LegendRow{{Text: "a legend far too wide for the picture"}}}
	small := Legend{Scale: 1, Rows: []LegendRow{{Key: ScaleBarKey(2), KeyW: 20, Text: "10 µm"}}}
	img := New(80, 40)
	r, full := big.PlaceOr(img, small, 2, nil)
	if full || r.Size() != small.Size() {
		t.Errorf("PlaceOr = %v, %v; want the fallback's %v", r, full, small.Size())
	}
	if r, full := small.PlaceOr(New(80, 40), big, 2, nil); !full || r.Empty() {
		t.Errorf("a legend that fits: %v, %v", r, full)
	}
	if r, full := big.PlaceOr(New(10, 10), small, 2, nil); full || !r.Empty() {
		t.Errorf("neither fits: %v, %v", r, full)
	}
}
