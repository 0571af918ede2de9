package raster

import (
	"image"
	"image/color"
	"testing"
)

func TestFont(t *testing.T) {
	for r := ' '; r <= '~'; r++ {
		if _, ok := glyphSrc[r]; !ok {
			t.Errorf("no glyph for %q", r)
		}
		if r != ' ' && *glyphOf(r) == (glyph{}) {
			t.Errorf("glyph %q is empty", r)
		}
	}
	if *glyphOf('é') != *glyphOf('?') {
		t.Error("non-ASCII is not drawn as '?'")
	}
	if *glyphOf('µ') == *glyphOf('?') || *glyphOf('µ') == *glyphOf('u') {
		t.Error("µ is not its own glyph")
	}
	if got := TextWidth("AUC", 2); got != (3*Advance-1)*2 {
		t.Errorf("TextWidth = %d", got)
	}
	if got := TextWidth("1 µm", 1); got != 4*Advance-1 {
		t.Errorf("TextWidth counts bytes, not runes: %d", got)
	}
}

// DrawText paints the same pixels on an RGB and an image.RGBA, each font
// pixel a scale×scale square, and nothing outside the text's box.
func TestDrawTextCanvases(t *testing.T) {
	red := color.RGBA{200, 10, 20, 255}
	a := New(80, 30)
	b := image.NewRGBA(image.Rect(0, 0, 80, 30))
	DrawText(a, 3, 4, "Hi µm", 2, red, false)
	DrawText(b, 3, 4, "Hi µm", 2, red, false)
	box := image.Rect(3, 4, 3+TextWidth("Hi µm", 2), 4+TextHeight(2))
	n := 0
	for y := 0; y < 30; y++ {
		for x := 0; x < 80; x++ {
			on := a.RGBAAt(x, y) == red
			if on != (b.RGBAAt(x, y) == red) {
				t.Fatalf("(%d,%d) differs between RGB and RGBA", x, y)
			}
			if on {
				n++
				if !(image.Point{x, y}).In(box) {
					t.Fatalf("text pixel (%d,%d) outside %v", x, y, box)
				}
			}
		}
	}
	if n == 0 || n%4 != 0 {
		t.Errorf("%d text pixels; want a positive multiple of 4 (2×2 font pixels)", n)
	}
	// 'H' at scale 2: its left stem fills column 3..4 on rows 4..17.
	for y := 4; y < 4+7*2; y++ {
		if a.RGBAAt(3, y) != red || a.RGBAAt(4, y) != red {
			t.Fatalf("H stem missing at row %d", y)
		}
	}
}

func TestBlendAndRects(t *testing.T) {
	img := New(10, 10)
	FillRect(img, image.Rect(-5, -5, 3, 3), color.RGBA{255, 255, 255, 255})
	if img.RGBAAt(2, 2) != (color.RGBA{255, 255, 255, 255}) || img.RGBAAt(3, 3) != (color.RGBA{0, 0, 0, 255}) {
		t.Fatal("FillRect clipped wrongly")
	}
	Blend(img, 5, 5, color.RGBA{200, 100, 0, 255}, 0.5)
	if got := img.RGBAAt(5, 5); got != (color.RGBA{100, 50, 0, 255}) {
		t.Errorf("Blend = %v", got)
	}
	Blend(img, 50, 50, color.RGBA{200, 100, 0, 255}, 1) // outside: ignored
	StrokeRect(img, image.Rect(4, 4, 8, 8), color.RGBA{0, 255, 0, 255})
	if img.RGBAAt(4, 6).G != 255 || img.RGBAAt(7, 7).G != 255 || img.RGBAAt(6, 6).G != 0 {
		t.Error("StrokeRect")
	}
	if Mix(color.RGBA{0, 0, 0, 255}, color.RGBA{255, 255, 255, 255}, 2) != (color.RGBA{255, 255, 255, 255}) {
		t.Error("Mix does not clamp a")
	}
}
