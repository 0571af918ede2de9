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
	"os"
	"path/filepath"
	"runtime/cgo"
	"sync"
	"unsafe"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// TIFFOptions say how WriteTIFF and WriteImage lay out and compress a file.
type TIFFOptions struct {
	// Description is level 0's ImageDescription ("" for none). An Aperio
	// header here makes OpenSlide read the file as an SVS.
	Description string
	// MPP is µm per pixel at level 0. 0 writes the 72 dpi default every
	// TIFF writer uses, which readers must not trust.
	MPP      float64
	TileSize int  // tile side in pixels (a multiple of 16), default 256
	JPEG     bool // JPEG at Quality; false: deflate (lossless)
	Quality  int  // JPEG quality, default 85
	BigTIFF  bool
	Pyramid  bool // halving levels down to about one tile; false: level 0 only
	// Pyramid4 keeps only the levels at downsample 1, 4, 16, ... like an
	// Aperio scanner (so a 40× slide has no 20× level). Implies Pyramid.
	Pyramid4 bool
}

func (o TIFFOptions) withDefaults() TIFFOptions {
	if o.TileSize == 0 {
		o.TileSize = 256
	}
	if o.Quality == 0 {
		o.Quality = 85
	}
	return o
}

// FillFunc fills dst with the pixels of the image's rectangle whose top-left
// corner is at and whose size is dst's. WriteTIFF calls it from several
// threads at once, for regions in any order (a region may be asked for more
// than once), so it must be safe for concurrent use and give the same
// pixels for the same region every time.
type FillFunc func(dst *raster.RGB, at image.Point) error

// WriteTIFF writes a width×height RGB image as a tiled TIFF at path, asking
// fill for its pixels region by region, so images far larger than memory can
// be written. The file appears complete or not at all.
func WriteTIFF(path string, width, height int, fill FillFunc, o TIFFOptions) error {
	if err := ensureInit(); err != nil {
		return err
	}
	if width <= 0 || height <= 0 {
		return fmt.Errorf("slide: write %s: size %dx%d", filepath.Base(path), width, height)
	}
	f := &filler{fill: fill}
	h := cgo.NewHandle(f)
	defer h.Delete()
	im := C.her2_image_from_fill(C.int(width), C.int(height), C.uintptr_t(h))
	if im == nil {
		return fmt.Errorf("slide: write %s: %s", filepath.Base(path), takeError())
	}
	defer C.her2_unref(im)
	return saveTIFF(im, path, o, f)
}

// WriteImage saves img as a tiled TIFF (deflate, lossless: pixels read back
// exactly) with the given resolution, as a pyramid when pyramid is set. For
// test fixtures whose pixel content must be known exactly.
func WriteImage(path string, img *raster.RGB, mpp float64, pyramid bool) error {
	if err := ensureInit(); err != nil {
		return err
	}
	c, err := imageFromRGB(img)
	if err != nil {
		return fmt.Errorf("slide: write image: %w", err)
	}
	defer c.close()
	return saveTIFF(c.p, path, TIFFOptions{MPP: mpp, Pyramid: pyramid, Quality: 90}, nil)
}

// saveTIFF writes im through a temporary file beside path. f, when not nil,
// is im's pixel source, whose failure fails the save.
func saveTIFF(im *C.VipsImage, path string, o TIFFOptions, f *filler) error {
	o = o.withDefaults()
	ppmm := 72 / 25.4 // libvips stores resolution in pixels per mm
	if o.MPP > 0 {
		ppmm = 1000 / o.MPP
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-tiff.tif")
	cp, cd := C.CString(tmp), C.CString(o.Description)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cd))
	fail := func(err error) error {
		os.Remove(tmp)
		return fmt.Errorf("slide: write %s: %w", filepath.Base(path), err)
	}
	if C.her2_save_pyramid(im, cp, cd, C.double(ppmm), C.int(o.TileSize), C.int(o.Quality),
		cbool(o.BigTIFF), cbool(o.Pyramid || o.Pyramid4), cbool(o.JPEG)) != 0 {
		return fail(errors.New(takeError()))
	}
	if err := f.error(); err != nil {
		return fail(err)
	}
	if o.Pyramid4 {
		if err := relinkTIFF(tmp, func(p int) bool { return p%2 == 0 }); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// filler is a WriteTIFF pixel source, reached from libvips' threads through
// a cgo.Handle.
type filler struct {
	fill FillFunc
	mu   sync.Mutex
	err  error // the first failure
}

func (f *filler) setError(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *filler) error() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// her2GoFill is libvips' generate callback for her2_image_from_fill: it
// fills the w×h region at (x, y), rows stride bytes apart. It always
// returns 0: libvips 8.14 crashes when the source of a pyramid save fails
// (libvips#3411), so a failed fill keeps its error in the filler, leaves
// zeros, and the save is thrown away afterwards.
//
//export her2GoFill
func her2GoFill(handle C.uintptr_t, x, y, w, h C.int, dst *C.uchar, stride C.int) C.int {
	W, H, S := int(w), int(h), int(stride)
	if W <= 0 || H <= 0 {
		return 0
	}
	mem := unsafe.Slice((*uint8)(unsafe.Pointer(dst)), S*(H-1)+3*W)
	f := cgo.Handle(handle).Value().(*filler)
	if err := f.fillRegion(mem, S, W, H, image.Pt(int(x), int(y))); err != nil {
		f.setError(err)
		clear(mem)
	}
	return 0
}

// fillRegion fills a w×h region of mem (rows stride bytes apart) at at.
func (f *filler) fillRegion(mem []uint8, stride, w, h int, at image.Point) (err error) {
	if err := f.error(); err != nil {
		return err // already failed: do no more work
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("fill panicked: %v", p)
		}
	}()
	if stride == 3*w { // packed: fill libvips' buffer in place
		return f.fill(&raster.RGB{W: w, H: h, Pix: mem}, at)
	}
	tmp := raster.New(w, h)
	if err := f.fill(tmp, at); err != nil {
		return err
	}
	for r := range h {
		copy(mem[r*stride:r*stride+3*w], tmp.Pix[r*3*w:(r+1)*3*w])
	}
	return nil
}
