package raster

import (
	"image"
	"image/color"
	"math"
)

// Canvas is what the drawing helpers paint on: *RGB and the standard
// library's *image.RGBA both are one. Colours are opaque; SetRGBA ignores
// points outside Bounds.
type Canvas interface {
	Bounds() image.Rectangle
	RGBAAt(x, y int) color.RGBA
	SetRGBA(x, y int, c color.RGBA)
}

// Bounds is the image's rectangle, (0,0)–(W,H).
func (m *RGB) Bounds() image.Rectangle { return image.Rect(0, 0, m.W, m.H) }

// RGBAAt returns the pixel at (x, y) as an opaque colour (transparent black
// outside the image).
func (m *RGB) RGBAAt(x, y int) color.RGBA {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return color.RGBA{}
	}
	r, g, b := m.At(x, y)
	return color.RGBA{r, g, b, 255}
}

// SetRGBA writes c's colour channels at (x, y) (alpha is ignored: RGB is
// opaque); points outside the image are ignored.
func (m *RGB) SetRGBA(x, y int, c color.RGBA) {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return
	}
	m.Set(x, y, c.R, c.G, c.B)
}

// FillRect paints r (Max exclusive), clipped to the canvas.
func FillRect(c Canvas, r image.Rectangle, col color.RGBA) {
	r = r.Intersect(c.Bounds())
	if img, ok := c.(*image.RGBA); ok {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				img.SetRGBA(x, y, col)
			}
		}
		return
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c.SetRGBA(x, y, col)
		}
	}
}

// StrokeRect draws the one-pixel outline of r (Max exclusive), clipped.
func StrokeRect(c Canvas, r image.Rectangle, col color.RGBA) {
	if r.Empty() {
		return
	}
	FillRect(c, image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), col)
	FillRect(c, image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), col)
	FillRect(c, image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y), col)
	FillRect(c, image.Rect(r.Max.X-1, r.Min.Y, r.Max.X, r.Max.Y), col)
}

// Mix returns dst moved towards src by a in [0,1] (clamped), per channel,
// rounded; the result is opaque.
func Mix(dst, src color.RGBA, a float64) color.RGBA {
	a = math.Max(0, math.Min(1, a))
	m := func(d, s uint8) uint8 { return uint8(math.Round(float64(d) + (float64(s)-float64(d))*a)) }
	return color.RGBA{m(dst.R, src.R), m(dst.G, src.G), m(dst.B, src.B), 255}
}

// Blend paints col over the pixel (x, y) with opacity a in [0,1]; points
// outside the canvas and a ≤ 0 leave it unchanged.
func Blend(c Canvas, x, y int, col color.RGBA, a float64) {
	if a <= 0 || !(image.Point{x, y}).In(c.Bounds()) {
		return
	}
	c.SetRGBA(x, y, Mix(c.RGBAAt(x, y), col, a))
}

// BlendRect paints col over r with opacity a, clipped.
func BlendRect(c Canvas, r image.Rectangle, col color.RGBA, a float64) {
	r = r.Intersect(c.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c.SetRGBA(x, y, Mix(c.RGBAAt(x, y), col, a))
		}
	}
}
