package raster

import (
	"image/color"
	"math"
	"testing"
)

// Viridis: its end colours, clamping, and a lightness that rises all the
// way (the property that makes a sequential map readable).
func TestViridis(t *testing.T) {
	if Viridis(0) != (color.RGBA{68, 1, 84, 255}) || Viridis(1) != (color.RGBA{253, 231, 37, 255}) {
		t.Errorf("ends %v %v", Viridis(0), Viridis(1))
	}
	if Viridis(-3) != Viridis(0) || Viridis(7) != Viridis(1) || Viridis(math.NaN()) != Viridis(0) {
		t.Error("not clamped")
	}
	if Viridis(5.0/9) != (color.RGBA{31, 158, 137, 255}) {
		t.Errorf("stop 5: %v", Viridis(5.0/9))
	}
	luma := func(c color.RGBA) float64 { return 0.2126*float64(c.R) + 0.7152*float64(c.G) + 0.0722*float64(c.B) }
	prev := -1.0
	for i := 0; i <= 100; i++ {
		l := luma(Viridis(float64(i) / 100))
		if l <= prev {
			t.Fatalf("luminance falls at %d%%: %.1f after %.1f", i, l, prev)
		}
		prev = l
	}
}
