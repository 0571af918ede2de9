package slide

/*
#cgo pkg-config: vips openslide
#cgo LDFLAGS: -ljpeg
#cgo CFLAGS: -O3
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/cgo"
	"strings"
	"sync"
	"unsafe"

	"github.com/her2wsi/her2wsi/internal/raster"
)

var (
	initOnce sync.Once
	initErr  error
)

// ensureInit starts libvips once per process.
func ensureInit() error {
	initOnce.Do(func() {
		if C.her2_init() != 0 {
			initErr = errors.New("slide: libvips failed to start: " + takeError())
		}
	})
	return initErr
}

// takeError returns and clears libvips' error text as one line.
func takeError() string {
	s := C.her2_take_error()
	defer C.g_free(C.gpointer(s))
	msg := strings.TrimSpace(C.GoString(s))
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
	if msg == "" {
		msg = "unknown libvips error"
	}
	return msg
}

//export her2GoLog
func her2GoLog(level C.int, domain, msg *C.char) {
	lv := slog.LevelInfo
	switch {
	case level&(C.G_LOG_LEVEL_CRITICAL|C.G_LOG_LEVEL_WARNING) != 0:
		lv = slog.LevelWarn
	case level&C.G_LOG_LEVEL_INFO != 0:
		lv = slog.LevelDebug
	}
	slog.Log(context.Background(), lv, strings.TrimSpace(C.GoString(msg)), "lib", C.GoString(domain))
}

// vipsImage is one owned reference to a C VipsImage.
type vipsImage struct {
	p *C.VipsImage
}

func (v *vipsImage) close() {
	if v != nil && v.p != nil {
		C.her2_unref(v.p)
		v.p = nil
	}
}

func (v *vipsImage) size() (int, int) { return int(v.p.Xsize), int(v.p.Ysize) }

func openOpenSlideLevel(path string, level int) (*vipsImage, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	p := C.her2_open_openslide(cp, C.int(level))
	if p == nil {
		return nil, errors.New(takeError())
	}
	return &vipsImage{p}, nil
}

// readAssociated reads an associated image through OpenSlide's C API:
// libvips 8.14.1 (Debian 12) crashes loading associated images
// (libvips PR #3384, fixed in 8.14.2).
func readAssociated(path, name string) (*raster.RGB, error) {
	cp, cn := C.CString(path), C.CString(name)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cn))
	var w, h C.int64_t
	if C.her2_associated_size(cp, cn, &w, &h) != 0 || w <= 0 || h <= 0 {
		return nil, errors.New("openslide cannot read it")
	}
	if w*h > 1<<28 {
		return nil, fmt.Errorf("%dx%d is too large", w, h)
	}
	out := raster.New(int(w), int(h))
	var msg *C.char
	if C.her2_associated_read(cp, cn, (*C.uchar)(unsafe.Pointer(&out.Pix[0])), w*h, &msg) != 0 {
		defer C.free(unsafe.Pointer(msg))
		return nil, errors.New(C.GoString(msg))
	}
	return out, nil
}

// imageFromRGB copies img into a new libvips image: pixels decoded outside
// libvips, e.g. by a format's own level opener (see Format.Open), become a
// level read like any other.
func imageFromRGB(img *raster.RGB) (*vipsImage, error) {
	if err := img.Valid(); err != nil {
		return nil, err
	}
	p := C.her2_image_from_rgb((*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.int(img.W), C.int(img.H))
	if p == nil {
		return nil, errors.New(takeError())
	}
	return &vipsImage{p}, nil
}

func openTIFFPage(path string, page int) (*vipsImage, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	p := C.her2_open_tiff(cp, C.int(page), 1)
	if p == nil {
		return nil, errors.New(takeError())
	}
	return &vipsImage{p}, nil
}

func openGeneric(path string) (*vipsImage, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	p := C.her2_open_generic(cp, 1)
	if p == nil {
		return nil, errors.New(takeError())
	}
	return &vipsImage{p}, nil
}

// openSlideProperties opens the file through OpenSlide for its header and
// returns all metadata fields as strings. ok is false when OpenSlide does
// not recognise the file.
func openSlideProperties(path string) (props map[string]string, err error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	p := C.her2_openslide_header(cp)
	if p == nil {
		return nil, errors.New(takeError())
	}
	defer C.her2_unref(p)
	return imageFields(p), nil
}

func imageFields(p *C.VipsImage) map[string]string {
	props := map[string]string{}
	names := C.her2_fields(p)
	if names == nil {
		return props
	}
	defer C.g_strfreev(names)
	for i := 0; ; i++ {
		np := *(**C.char)(unsafe.Add(unsafe.Pointer(names), uintptr(i)*unsafe.Sizeof(uintptr(0))))
		if np == nil {
			break
		}
		name := C.GoString(np)
		s := C.her2_get_string(p, np)
		if s == nil {
			C.vips_error_clear()
			continue
		}
		props[name] = C.GoString(s)
		C.g_free(C.gpointer(s))
	}
	return props
}

// read copies the w×h region at (x, y) into dst (len 3*w*h). Areas outside
// the image are white. Safe for concurrent use on one image: each call makes
// and frees its own VipsRegion inside a single cgo call, so the region never
// changes OS thread.
func (v *vipsImage) read(x, y, w, h int, dst []byte) error {
	if len(dst) < 3*w*h {
		return fmt.Errorf("buffer of %d bytes for a %dx%d region", len(dst), w, h)
	}
	if C.her2_read(v.p, C.int(x), C.int(y), C.int(w), C.int(h), (*C.uchar)(unsafe.Pointer(&dst[0]))) != 0 {
		return errors.New(takeError())
	}
	return nil
}

// readBox reads (f·w)×(f·h) at (x, y) and box-averages it into w×h.
func (v *vipsImage) readBox(x, y, w, h, f int, dst []byte) error {
	if len(dst) < 3*w*h {
		return fmt.Errorf("buffer of %d bytes for a %dx%d region", len(dst), w, h)
	}
	if C.her2_read_box(v.p, C.int(x), C.int(y), C.int(w), C.int(h), C.int(f), (*C.uchar)(unsafe.Pointer(&dst[0]))) != 0 {
		return errors.New(takeError())
	}
	return nil
}

// resizeTo streams the whole image through a shrink into a dw×dh buffer.
func (v *vipsImage) resizeTo(dw, dh int, dst []byte) error {
	w, h := v.size()
	hs, vs := float64(dw)/float64(w), float64(dh)/float64(h)
	if C.her2_resize_to(v.p, C.double(hs), C.double(vs), C.int(dw), C.int(dh), (*C.uchar)(unsafe.Pointer(&dst[0]))) != 0 {
		return errors.New(takeError())
	}
	return nil
}

// errorPending reports whether libvips' process-wide error buffer has text.
func errorPending() bool { return C.her2_error_pending() != 0 }

func (v *vipsImage) readMany(rects []C.int, dst []byte) error {
	if len(rects) == 0 {
		return nil
	}
	if C.her2_read_many(v.p, &rects[0], C.int(len(rects)/4), (*C.uchar)(unsafe.Pointer(&dst[0]))) != 0 {
		return errors.New(takeError())
	}
	return nil
}

// ReadRegionsBare reads each region (x, y, w, h at level) in one C loop of
// libvips region fetches into a scratch buffer, with no Go work and no
// checks between reads. It exists as the benchmark ceiling for the real read
// path; the pixels are discarded.
func (s *Slide) ReadRegionsBare(level int, regions [][4]int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	img, err := s.level(level, false)
	if err != nil {
		return err
	}
	rects := make([]C.int, 0, 4*len(regions))
	biggest := 0
	for _, r := range regions {
		rects = append(rects, C.int(r[0]), C.int(r[1]), C.int(r[2]), C.int(r[3]))
		biggest = max(biggest, 3*r[2]*r[3])
	}
	if biggest == 0 {
		return nil
	}
	return img.readMany(rects, make([]byte, biggest))
}

// A regionSource computes the pixels of an image made by imageFromSource:
// fill writes the w×h region at (x, y) into mem, rows stride bytes apart.
// libvips calls it from several threads at once.
type regionSource interface {
	fill(mem []byte, stride, x, y, w, h int) error
	name() string
}

// imageFromSource makes a w×h image whose pixels come from the
// regionSource behind handle (a cgo.Handle the caller keeps alive as long
// as the image). A failed fill fails the read with the source's error.
func imageFromSource(w, h int, handle cgo.Handle) (*vipsImage, error) {
	p := C.her2_image_from_source(C.int(w), C.int(h), C.uintptr_t(handle))
	if p == nil {
		return nil, errors.New(takeError())
	}
	return &vipsImage{p}, nil
}

// her2GoSource is libvips' generate callback for her2_image_from_source:
// it fills the w×h region at (x, y), rows stride bytes apart, and returns
// nil or the failure's text (malloc'd; the C side frees it).
//
//export her2GoSource
func her2GoSource(handle C.uintptr_t, x, y, w, h C.int, dst *C.uchar, stride C.int) (failed *C.char) {
	W, H, S := int(w), int(h), int(stride)
	if W <= 0 || H <= 0 {
		return nil
	}
	mem := unsafe.Slice((*uint8)(unsafe.Pointer(dst)), S*(H-1)+3*W)
	src := cgo.Handle(handle).Value().(regionSource)
	defer func() {
		if p := recover(); p != nil {
			failed = C.CString(fmt.Sprintf("%s: region source panicked: %v", src.name(), p))
		}
	}()
	if err := src.fill(mem, S, int(x), int(y), W, H); err != nil {
		return C.CString(err.Error()) // the caller's error names the slide
	}
	return nil
}

// Codecs for decodeBuffer.
const (
	codecAny  = 0 // whatever libvips' buffer loaders take
	codecJPEG = 1
	codecJP2K = 2
)

// decodeBuffer decodes a compressed image held in memory (JPEG, JPEG 2000)
// to packed 8-bit RGB.
func decodeBuffer(buf []byte, codec int) (pix []byte, w, h int, err error) {
	if len(buf) == 0 {
		return nil, 0, 0, errors.New("empty buffer")
	}
	var cw, ch C.int
	p := C.her2_decode_buffer(unsafe.Pointer(&buf[0]), C.size_t(len(buf)), C.int(codec), &cw, &ch)
	if p == nil {
		return nil, 0, 0, errors.New(takeError())
	}
	defer C.g_free(C.gpointer(p))
	if errorPending() {
		// libjpeg's warnings on corrupt data only reach libvips' error
		// buffer (see noteDecodeWarnings): the frame is garbage.
		return nil, 0, 0, errors.New(takeError())
	}
	return C.GoBytes(unsafe.Pointer(p), cw*ch*3), int(cw), int(ch), nil
}

// encodeJ2K encodes img as lossless JPEG 2000, for test series of JPEG 2000
// frames (export_test.go).
func encodeJ2K(img *raster.RGB) ([]byte, error) {
	if err := ensureInit(); err != nil {
		return nil, err
	}
	if err := img.Valid(); err != nil {
		return nil, err
	}
	var buf unsafe.Pointer
	var n C.size_t
	if C.her2_encode_j2k((*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.int(img.W), C.int(img.H), &buf, &n) != 0 {
		return nil, errors.New(takeError())
	}
	defer C.g_free(C.gpointer(buf))
	return C.GoBytes(buf, C.int(n)), nil
}

// EncodeJPEG encodes img as a baseline JPEG of the given quality (1–100)
// with libjpeg (libjpeg-turbo on Debian) on the calling thread, several
// times faster than image/jpeg.
func EncodeJPEG(img *raster.RGB, quality int) ([]byte, error) {
	if img.W <= 0 || img.H <= 0 || len(img.Pix) < 3*img.W*img.H {
		return nil, fmt.Errorf("slide: jpeg: bad image %dx%d", img.W, img.H)
	}
	var out *C.uchar
	var n C.ulong
	if C.her2_jpeg((*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.int(img.W), C.int(img.H), C.int(quality), &out, &n) != 0 {
		return nil, errors.New("slide: jpeg: libjpeg failed")
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), C.int(n)), nil
}

// decodeJPEGInto decodes an 8-bit JPEG held in memory with libjpeg(-turbo)
// on the calling thread into dst: dh rows of dw packed RGB pixels (a larger
// image is cropped). No libvips image is made; the pixels equal
// jpegload_buffer's, and corrupt data fails as it does with fail_on
// warning.
func decodeJPEGInto(buf, dst []byte, dw, dh int) error {
	if len(buf) == 0 {
		return errors.New("empty JPEG")
	}
	if dw <= 0 || dh <= 0 || len(dst) < 3*dw*dh {
		return fmt.Errorf("buffer of %d bytes for %dx%d pixels", len(dst), dw, dh)
	}
	var w, h C.int
	var msg [256]C.char // JMSG_LENGTH_MAX is 200
	if C.her2_jpeg_decode((*C.uchar)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), (*C.uchar)(unsafe.Pointer(&dst[0])),
		C.int(dw), C.int(dh), &w, &h, &msg[0]) != 0 {
		return errors.New("jpeg: " + C.GoString(&msg[0]))
	}
	return nil
}

// boxReduce averages each f×f block of src (f·w × f·h pixels, rows lskip
// bytes apart) into dst (w×h packed RGB).
func boxReduce(src []byte, lskip, w, h, f int, dst []byte) {
	C.her2_box_reduce((*C.uchar)(unsafe.Pointer(&src[0])), C.size_t(lskip), C.int(w), C.int(h), C.int(f), (*C.uchar)(unsafe.Pointer(&dst[0])))
}
