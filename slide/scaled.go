package slide

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"unsafe"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// Scaled JPEG decoding. A 40× slide without a 20× level is read at level 0
// and halved: every 20× patch decodes four times the pixels it keeps. JPEG
// can do the halving itself: libjpeg-turbo decodes an 8×8 DCT block at
// 4×4 (scale 1/2) or 2×2 (1/4) from its low frequencies, for a fraction of
// the cost of a full decode. So, as cuCIM and tiffslide read tiled TIFFs,
// a box read (ReadRegionBoxInto) with factor 2, 4 or 8 on a tiled JPEG
// TIFF page reads the raw tiles the region touches (pread at the offsets of
// the page's tile index; the page's JPEGTables loaded first) and decodes
// them at 1/factor straight into the patch, only the columns and rows it
// needs. The result is not the box filter's: DCT-domain scaling is a
// different low-pass (the README gives the measured difference). A
// corrupt tile fails the scaled read, and the slide then switches to the
// strict OpenSlide reader as after a decoder warning (checked), which fails
// on the corrupt data with its own message. Options.NoScaledDecode (the CLI's
// --scaled-decode=false) turns it off.

// jpegLevel is the open tile index of one level's TIFF page.
type jpegLevel struct {
	once sync.Once
	f    *os.File
	t    *C.her2_jtiles
	err  error // the page cannot be read this way (not JPEG, ...): use libvips
}

func (j *jpegLevel) close() {
	if j.t != nil {
		C.her2_jtiles_free(j.t)
		j.t = nil
	}
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

// openJPEGLevel builds the tile index of TIFF page `page` of path.
func openJPEGLevel(path string, page int) (*C.her2_jtiles, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	ti, err := parseTIFF(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if page < 0 || page >= len(ti.Pages) {
		f.Close()
		return nil, nil, fmt.Errorf("no TIFF page %d", page)
	}
	pg := ti.Pages[page]
	switch {
	case pg.Compression != compJPEG:
		err = fmt.Errorf("compression %s", compressionName(pg.Compression))
	case pg.TileW <= 0 || pg.TileH <= 0:
		err = errors.New("not tiled")
	case pg.SamplesPerPx != 3 || pg.BitsPerSample != 8 || (pg.Photometric != 2 && pg.Photometric != 6):
		err = fmt.Errorf("%d samples of %d bits, photometric %d", pg.SamplesPerPx, pg.BitsPerSample, pg.Photometric)
	case pg.MissingChunks > 0:
		err = fmt.Errorf("%d missing tiles", pg.MissingChunks)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	offs, cnts, err := ti.chunkIndex(page)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	across := (pg.Width + pg.TileW - 1) / pg.TileW
	down := (pg.Height + pg.TileH - 1) / pg.TileH
	if int64(len(offs)) < across*down {
		f.Close()
		return nil, nil, fmt.Errorf("%d tile offsets for %d×%d tiles", len(offs), across, down)
	}
	var tables *C.uchar
	if len(pg.jpegTables) > 0 {
		tables = (*C.uchar)(unsafe.Pointer(&pg.jpegTables[0]))
	}
	rgb := 0
	if pg.Photometric == 2 {
		rgb = 1
	}
	t := C.her2_jtiles_new(C.int(f.Fd()), (*C.int64_t)(unsafe.Pointer(&offs[0])), (*C.int64_t)(unsafe.Pointer(&cnts[0])), C.int(len(offs)),
		C.int(across), C.int(down), C.int(pg.TileW), C.int(pg.TileH), C.int(pg.Width), C.int(pg.Height),
		tables, C.size_t(len(pg.jpegTables)), C.int(rgb))
	if t == nil {
		f.Close()
		return nil, nil, errors.New("out of memory")
	}
	return t, f, nil
}

// scaledFactorOK says whether a box factor is one JPEG decodes at.
func scaledFactorOK(f int) bool { return f == 2 || f == 4 || f == 8 }

// jpegLevel returns the tile index of level i, or nil when the level
// cannot be read by scaled decoding.
func (s *Slide) jpegLevel(i int) *C.her2_jtiles {
	j := s.jpeg[i]
	j.once.Do(func() {
		t, f, err := openJPEGLevel(s.Meta.Path, s.Meta.Levels[i].page)
		if err != nil {
			j.err = err
			slog.Debug("no scaled JPEG decoding", "slide", s.Meta.ID, "level", i, "reason", err.Error())
			return
		}
		j.t, j.f = t, f
	})
	return j.t
}

// readScaled reads the factor-reduced region with scaled JPEG decoding. ok
// is false when the read does not qualify (then nothing was done).
// The caller holds s.mu (read).
func (s *Slide) readScaled(level, x, y, factor int, dst *raster.RGB) (ok bool, err error) {
	if s.noScaled || s.Meta.Reader != ReaderTIFF || s.openLevel != nil || s.readRaw != nil || s.strict.Load() || !scaledFactorOK(factor) ||
		level < 0 || level >= len(s.jpeg) || x < 0 || y < 0 || x%factor != 0 || y%factor != 0 ||
		int64(x+factor*dst.W) > s.Meta.Levels[level].Width || int64(y+factor*dst.H) > s.Meta.Levels[level].Height {
		return false, nil
	}
	t := s.jpegLevel(level)
	if t == nil || int(t.tw)%factor != 0 || int(t.th)%factor != 0 {
		return false, nil
	}
	var msg *C.char
	if C.her2_read_scaled(t, C.int(x), C.int(y), C.int(dst.W), C.int(dst.H), C.int(factor), 1, (*C.uchar)(unsafe.Pointer(&dst.Pix[0])), &msg) != 0 {
		defer C.free(unsafe.Pointer(msg))
		return true, errors.New(C.GoString(msg))
	}
	return true, nil
}

// ScaledDecoding reports whether box reads of level at factor go through
// scaled JPEG decoding on this slide (for logs and benchmarks).
func (s *Slide) ScaledDecoding(level, factor int) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || s.noScaled || s.Meta.Reader != ReaderTIFF || s.openLevel != nil || s.readRaw != nil || !scaledFactorOK(factor) || level < 0 || level >= len(s.jpeg) {
		return false
	}
	t := s.jpegLevel(level)
	return t != nil && int(t.tw)%factor == 0 && int(t.th)%factor == 0
}

// BareTiles are the raw bytes of the tiles some regions of a level touch,
// read into C memory: the ceiling of scaled decoding for benchmarks
// (Decode). Free releases them.
type BareTiles struct {
	s    *Slide
	t    *C.her2_jtiles
	arr  **C.uchar // n tile buffers
	lens []C.size_t
}

// LoadTilesBare reads the raw tiles that the regions (x, y, w, h in level
// pixels) of level touch, a tile once per region that touches it, as the
// read path decodes them.
func (s *Slide) LoadTilesBare(level int, regions [][4]int) (*BareTiles, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || level < 0 || level >= len(s.jpeg) {
		return nil, fmt.Errorf("slide: %s: level %d not available", s.Meta.Path, level)
	}
	t := s.jpegLevel(level)
	if t == nil {
		return nil, fmt.Errorf("slide: %s: level %d is not a tiled JPEG page: %v", s.Meta.Path, level, s.jpeg[level].err)
	}
	tw, th, across := int(t.tw), int(t.th), int(t.across)
	offs := unsafe.Slice((*int64)(unsafe.Pointer(t.offs)), int(t.across*t.down))
	cnts := unsafe.Slice((*int64)(unsafe.Pointer(t.cnts)), int(t.across*t.down))
	var bufs []*C.uchar
	bt := &BareTiles{s: s, t: t}
	for _, r := range regions {
		for ty := r[1] / th; ty <= (r[1]+r[3]-1)/th; ty++ {
			for tx := r[0] / tw; tx <= (r[0]+r[2]-1)/tw; tx++ {
				i := ty*across + tx
				b := (*C.uchar)(C.malloc(C.size_t(cnts[i])))
				bufs = append(bufs, b)
				bt.lens = append(bt.lens, C.size_t(cnts[i]))
				if _, err := s.jpeg[level].f.ReadAt(unsafe.Slice((*byte)(unsafe.Pointer(b)), cnts[i]), offs[i]); err != nil {
					for _, b := range bufs {
						C.free(unsafe.Pointer(b))
					}
					return nil, err
				}
			}
		}
	}
	// The pointer array lives in C memory (cgo: no Go pointers to pointers).
	bt.arr = (**C.uchar)(C.malloc(C.size_t(len(bufs)+1) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	copy(unsafe.Slice(bt.arr, len(bufs)), bufs)
	return bt, nil
}

// Len is the number of tiles.
func (bt *BareTiles) Len() int { return len(bt.lens) }

// Decode decodes every tile, whole, at 1/factor, with one decompressor in
// one C loop, discarding the pixels.
func (bt *BareTiles) Decode(factor int) error {
	if len(bt.lens) == 0 {
		return nil
	}
	bt.s.mu.RLock()
	defer bt.s.mu.RUnlock()
	if bt.s.closed {
		return fmt.Errorf("slide: %s: %w", bt.s.Meta.Path, errClosed)
	}
	var msg *C.char
	if C.her2_decode_tiles_bare(bt.t, bt.arr, &bt.lens[0], C.int(len(bt.lens)), C.int(factor), &msg) != 0 {
		defer C.free(unsafe.Pointer(msg))
		return errors.New(C.GoString(msg))
	}
	return nil
}

// DecodeVips decodes every tile like Decode but through libvips'
// jpegload_buffer with shrink factor (the page's tables merged into each
// tile's bytes): the alternative to calling libjpeg-turbo directly, kept
// for the benchmark that compares them.
func (bt *BareTiles) DecodeVips(factor int) error {
	if len(bt.lens) == 0 {
		return nil
	}
	bt.s.mu.RLock()
	defer bt.s.mu.RUnlock()
	if bt.s.closed {
		return fmt.Errorf("slide: %s: %w", bt.s.Meta.Path, errClosed)
	}
	if C.her2_decode_tiles_vips(bt.t, bt.arr, &bt.lens[0], C.int(len(bt.lens)), C.int(factor)) != 0 {
		return errors.New(takeError())
	}
	return nil
}

// Free releases the tiles' memory.
func (bt *BareTiles) Free() {
	if bt.arr == nil {
		return
	}
	for _, b := range unsafe.Slice(bt.arr, len(bt.lens)) {
		C.free(unsafe.Pointer(b))
	}
	C.free(unsafe.Pointer(bt.arr))
	bt.arr, bt.lens = nil, nil
}

// readScaledWhole is readScaled with whole tiles decoded (no
// jpeg_crop_scanline / jpeg_skip_scanlines), for the tests.
func (s *Slide) readScaledWhole(level, x, y, factor int, dst *raster.RGB) error {
	t := s.jpegLevel(level)
	if t == nil {
		return fmt.Errorf("level %d: no tile index: %v", level, s.jpeg[level].err)
	}
	var msg *C.char
	if C.her2_read_scaled(t, C.int(x), C.int(y), C.int(dst.W), C.int(dst.H), C.int(factor), 0, (*C.uchar)(unsafe.Pointer(&dst.Pix[0])), &msg) != 0 {
		defer C.free(unsafe.Pointer(msg))
		return errors.New(C.GoString(msg))
	}
	return nil
}
