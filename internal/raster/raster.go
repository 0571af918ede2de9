// Package raster holds the packed 8-bit RGB image that the slide reader hands
// to the tiling and embedding stages, and the resamplers they share; and
// what the project's pictures (the QC picture, the heatmap, the ROC plot)
// draw with: a small bitmap font and a few primitives on a Canvas.
//
// Pixels are packed row-major, three bytes per pixel, with no padding between
// rows: the layout an ONNX uint8 [H,W,3] input and libvips' memory output use.
package raster

import (
	"fmt"
	"image"
	"image/color"
)

// RGB is an 8-bit, 3-channel image, row-major with stride 3*W.
type RGB struct {
	W, H int
	Pix  []uint8
}

// New allocates a zeroed w×h image.
func New(w, h int) *RGB {
	return &RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
}

// At returns the pixel at (x, y).
func (m *RGB) At(x, y int) (r, g, b uint8) {
	i := 3 * (y*m.W + x)
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// Set writes the pixel at (x, y).
func (m *RGB) Set(x, y int, r, g, b uint8) {
	i := 3 * (y*m.W + x)
	m.Pix[i], m.Pix[i+1], m.Pix[i+2] = r, g, b
}

// Valid reports whether the buffer matches the dimensions.
func (m *RGB) Valid() error {
	if m == nil {
		return fmt.Errorf("raster: nil image")
	}
	if m.W <= 0 || m.H <= 0 || len(m.Pix) != 3*m.W*m.H {
		return fmt.Errorf("raster: %dx%d image with %d bytes", m.W, m.H, len(m.Pix))
	}
	return nil
}

// FromImage converts any image.Image (e.g. a decoded PNG or JPEG) to RGB,
// compositing transparent pixels onto white, the colour of empty glass.
func FromImage(src image.Image) *RGB {
	b := src.Bounds()
	m := New(b.Dx(), b.Dy())
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(src.At(x, y)).(color.NRGBA)
			a := uint32(c.A)
			m.Pix[i] = uint8((uint32(c.R)*a + 255*(255-a) + 127) / 255)
			m.Pix[i+1] = uint8((uint32(c.G)*a + 255*(255-a) + 127) / 255)
			m.Pix[i+2] = uint8((uint32(c.B)*a + 255*(255-a) + 127) / 255)
			i += 3
		}
	}
	return m
}

// ToImage converts to a standard library image (for PNG encoding and drawing).
func (m *RGB) ToImage() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}
