package slide

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// SynthOptions describes a generated test slide: stained texture inside the
// given rectangles on a glass-coloured background, saved as a tiled,
// JPEG-compressed pyramidal TIFF through libvips. With Aperio set it carries
// an Aperio ImageDescription (so OpenSlide reads it as an SVS).
type SynthOptions struct {
	Width, Height int
	Tissue        []image.Rectangle // level-0 pixels
	MPP           float64           // 0: no resolution anywhere in the file
	AppMag        float64           // written to the Aperio description when > 0
	Aperio        bool
	BigTIFF       bool
	Pyramid       bool // false: one level only
	// Pyramid4 keeps only the levels at downsample 1, 4, 16, ... like an
	// Aperio scanner (so a 40× slide has no 20× level). Implies Pyramid.
	Pyramid4 bool
	TileSize int // default 256
	Quality  int // JPEG quality, default 85
	Stain    string
	Seed     uint64
}

// WriteSynthetic generates the slide described by o at path (atomically: it
// appears complete or not at all). Generation streams, so slides far larger
// than memory can be made.
func WriteSynthetic(path string, o SynthOptions) error {
	if err := ensureInit(); err != nil {
		return err
	}
	if o.Width <= 0 || o.Height <= 0 {
		return fmt.Errorf("slide: synthetic size %dx%d", o.Width, o.Height)
	}
	if o.TileSize == 0 {
		o.TileSize = 256
	}
	if o.Quality == 0 {
		o.Quality = 85
	}
	tex := StainTexture(512, o.Stain, o.Seed)
	ctex := C.her2_image_from_rgb((*C.uchar)(unsafe.Pointer(&tex.Pix[0])), C.int(tex.W), C.int(tex.H))
	if ctex == nil {
		return errors.New("slide: synthetic texture: " + takeError())
	}
	defer C.her2_unref(ctex)
	rects := make([]C.int, 0, 4*len(o.Tissue))
	for _, r := range o.Tissue {
		r = r.Intersect(image.Rect(0, 0, o.Width, o.Height))
		if r.Empty() {
			continue
		}
		rects = append(rects, C.int(r.Min.X), C.int(r.Min.Y), C.int(r.Dx()), C.int(r.Dy()))
	}
	var rp *C.int
	if len(rects) > 0 {
		rp = &rects[0]
	}
	img := C.her2_compose(ctex, C.int(o.Width), C.int(o.Height), 243, rp, C.int(len(rects)/4))
	if img == nil {
		return errors.New("slide: synthetic compose: " + takeError())
	}
	defer C.her2_unref(img)
	desc := ""
	if o.Aperio {
		desc = fmt.Sprintf("Aperio Image Library v12.0.0 (her2wsi synthetic)\r\n%dx%d (%dx%d) JPEG/RGB Q=%d", o.Width, o.Height, o.TileSize, o.TileSize, o.Quality)
		if o.AppMag > 0 {
			desc += fmt.Sprintf("|AppMag = %g", o.AppMag)
		}
		if o.MPP > 0 {
			desc += fmt.Sprintf("|MPP = %.4f", o.MPP)
		}
	}
	// libvips stores resolution in pixels per mm. With no MPP we write the
	// 72 dpi default every TIFF writer uses, which readers must not trust.
	ppmm := 72 / 25.4
	if o.MPP > 0 {
		ppmm = 1000 / o.MPP
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-synth.tif")
	cp, cd := C.CString(tmp), C.CString(desc)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cd))
	r := C.her2_save_pyramid(img, cp, cd, C.double(ppmm), C.int(o.TileSize), C.int(o.Quality),
		cbool(o.BigTIFF), cbool(o.Pyramid || o.Pyramid4), 1)
	if r != 0 {
		os.Remove(tmp)
		return fmt.Errorf("slide: write %s: %s", filepath.Base(path), takeError())
	}
	if o.Pyramid4 {
		if err := relinkTIFF(tmp, func(p int) bool { return p%2 == 0 }); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("slide: write %s: %w", filepath.Base(path), err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("slide: write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// StainTexture draws an n×n tileable texture that looks like stained tissue
// at 20×: for "he" (default) eosin-pink stroma with hematoxylin-purple
// nuclei; for "ihc" pale blue counterstained cells with DAB-brown membranes.
func StainTexture(n int, stain string, seed uint64) *raster.RGB {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	bg, nuc := [3]float64{232, 168, 200}, [3]float64{96, 62, 150}
	if stain == "ihc" {
		bg, nuc = [3]float64{222, 214, 222}, [3]float64{120, 130, 175}
	}
	img := raster.New(n, n)
	f := make([]float64, 3*n*n)
	for i := 0; i < n*n; i++ {
		v := rng.Float64()*24 - 12
		for c := 0; c < 3; c++ {
			f[3*i+c] = bg[c] + v
		}
	}
	// Nuclei: dark ellipses, with wrap-around so the texture tiles.
	cells := n * n / 900
	for k := 0; k < cells; k++ {
		cx, cy := rng.Float64()*float64(n), rng.Float64()*float64(n)
		rad := 4 + rng.Float64()*5
		for dy := -int(rad) - 1; dy <= int(rad)+1; dy++ {
			for dx := -int(rad) - 1; dx <= int(rad)+1; dx++ {
				d := math.Hypot(float64(dx), float64(dy))
				x := (int(cx) + dx + n) % n
				y := (int(cy) + dy + n) % n
				i := 3 * (y*n + x)
				switch {
				case d <= rad:
					for c := 0; c < 3; c++ {
						f[i+c] = nuc[c] + rng.Float64()*20 - 10
					}
				case stain == "ihc" && d <= rad+2.5:
					// DAB membrane ring.
					f[i], f[i+1], f[i+2] = 165, 110, 60
				}
			}
		}
	}
	for i, v := range f {
		img.Pix[i] = uint8(math.Max(0, math.Min(255, v)))
	}
	return img
}
