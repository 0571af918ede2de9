// Package slide opens whole-slide images through libvips and reads their
// pixels. It is the only package with cgo into libvips.
//
// Open reads the header only: vendor and format, the pyramid levels, the
// resolution (µm per pixel) and objective power, and the associated images
// (label, macro, thumbnail). Pixels come from ReadRegion and Thumbnail.
//
// Slide formats are a registry (see Format and RegisterFormat): each format
// is one file, format_*.go, with a magic-bytes sniffer, its extensions and a
// header reader, and Open picks the format from the file's first bytes and,
// where the magic is shared, its extension. Each format goes through the
// fastest libvips path that decodes it correctly: JPEG (or
// uncompressed/LZW/deflate) tiled TIFF pages — Aperio SVS with JPEG tiles,
// pyramidal generic TIFF — are read with tiffload, page by page; everything
// else OpenSlide understands (JPEG 2000 SVS, NDPI, MRXS, SCN, BIF, ...) with
// openslideload; plain JPEG/PNG/GIF/WebP images and flat TIFFs open as
// one-level slides. DICOM WSI, which libvips 8.14 / OpenSlide 3.4.1 cannot
// read, is parsed here and its frames decoded by libvips (format_dicom.go).
//
// A Slide is safe for concurrent ReadRegion calls from many goroutines; its
// owner calls Close once all readers are done.
package slide

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// Reader names the libvips loader that decodes a slide's levels.
const (
	ReaderTIFF      = "tiffload"
	ReaderOpenSlide = "openslideload"
	ReaderImage     = "image"
)

// Level describes one pyramid level.
type Level struct {
	Width      int64   `json:"width"`
	Height     int64   `json:"height"`
	Downsample float64 `json:"downsample"`
	TileWidth  int64   `json:"tile_width,omitempty"`
	TileHeight int64   `json:"tile_height,omitempty"`
	MPPX       float64 `json:"mpp_x,omitempty"` // µm per pixel at this level, when known
	MPPY       float64 `json:"mpp_y,omitempty"`
	page       int     // TIFF page for the tiffload reader
}

// Metadata is everything Open learns from the header.
type Metadata struct {
	Path           string            `json:"path"`
	ID             string            `json:"slide_id"`
	SizeBytes      int64             `json:"size_bytes"`
	Format         string            `json:"format"` // container: "tiff", "bigtiff", "jpeg", "png", ...
	Vendor         string            `json:"vendor"` // OpenSlide vendor ("aperio", "hamamatsu", "generic-tiff", ...) or "image"
	Reader         string            `json:"reader"` // tiffload, openslideload or image
	Compression    string            `json:"compression,omitempty"`
	Levels         []Level           `json:"levels"`
	MPPX           float64           `json:"mpp_x,omitempty"` // level 0, µm/px; 0 when unknown
	MPPY           float64           `json:"mpp_y,omitempty"`
	MPPSource      string            `json:"mpp_source,omitempty"`
	ObjectivePower float64           `json:"objective_power,omitempty"`
	Associated     []string          `json:"associated_images"`
	Properties     map[string]string `json:"properties,omitempty"`
}

// Options adjust how a slide is opened.
type Options struct {
	// MPP overrides the resolution from the metadata (µm per level-0 pixel),
	// e.g. for slides whose header has none. 0 means use the metadata.
	MPP float64
	// Reader forces a loader: "" or "auto", ReaderTIFF, ReaderOpenSlide.
	Reader string
}

// ErrUnsupported is wrapped by errors for files that are recognisably a
// slide format this build cannot read (e.g. a DICOM transfer syntax or frame
// layout it does not know).
var ErrUnsupported = errors.New("unsupported format")

// ErrNoMPP is wrapped when a resolution is needed and neither the metadata
// nor the --mpp override give one.
var ErrNoMPP = errors.New("no microns-per-pixel in the metadata (openslide.mpp-x, aperio.MPP, TIFF resolution or objective power); pass --mpp")

// Slide is an open whole-slide image.
type Slide struct {
	Meta Metadata

	mu     sync.RWMutex // readers hold R; Close holds W
	closed bool
	levels []*levelHandle
	// strict is set once a decoder warning is seen while this slide was
	// being read through tiffload; from then on it reads through OpenSlide,
	// whose JPEG decoding fails loudly on corrupt data.
	strict       atomic.Bool
	strictLevels []*levelHandle
	// openLevel and readAssociated, when set (by a Format.Open), replace
	// the libvips loader Meta.Reader names and OpenSlide's associated
	// images.
	openLevel      func(level int) (*vipsImage, error)
	readAssociated func(name string) (*raster.RGB, error)
	// readRaw, when set (by a Format.Open that assembles pixels itself),
	// serves ReadRegionInto and ReadRegionBoxInto without a libvips image:
	// it writes the w×h region at (x, y) of level into dst (packed RGB,
	// white outside the level). Thumbnails still go through openLevel.
	readRaw func(level, x, y, w, h int, dst []byte) error
	// onClose, when set, runs once in Close after the levels are released.
	onClose func()
}

type levelHandle struct {
	once sync.Once
	img  *vipsImage
	err  error
}

// ID derives the slide id from a path: the file name without extension.
func ID(path string) string {
	base := filepath.Base(path)
	if ext := filepath.Ext(base); ext != "" && ext != base {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

// Open reads the slide's header; pixels are not decoded until read. The
// registered format that claims the file (see Format) reads it.
func Open(path string, opt Options) (*Slide, error) {
	f, fi, err := formatOf(path)
	if err != nil {
		return nil, err
	}
	var s *Slide
	if f.Open != nil {
		if s, err = f.Open(path, opt); err == nil && s == nil {
			err = fmt.Errorf("format %s opened no slide", f.Name)
		}
	} else {
		var meta Metadata
		if meta, err = f.ReadMetadata(path, opt); err == nil {
			s = newSlide(meta)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("slide: %s: %w", path, err)
	}
	if err := finishMetadata(&s.Meta, path, fi.Size(), opt); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ReadMetadata reads only the slide's header, as Open does, and returns what
// it says, holding nothing open.
func ReadMetadata(path string, opt Options) (Metadata, error) {
	f, fi, err := formatOf(path)
	if err != nil {
		return Metadata{}, err
	}
	if f.ReadMetadata == nil {
		s, err := Open(path, opt)
		if err != nil {
			return Metadata{}, err
		}
		defer s.Close()
		return s.Meta, nil
	}
	meta, err := f.ReadMetadata(path, opt)
	if err != nil {
		return Metadata{}, fmt.Errorf("slide: %s: %w", path, err)
	}
	if err := finishMetadata(&meta, path, fi.Size(), opt); err != nil {
		return Metadata{}, err
	}
	return meta, nil
}

// newSlide makes the Slide for meta, its levels opened on first use. A
// Format.Open whose levels libvips cannot load by path sets openLevel (and
// readAssociated) on it.
func newSlide(meta Metadata) *Slide {
	s := &Slide{Meta: meta, levels: make([]*levelHandle, len(meta.Levels)), strictLevels: make([]*levelHandle, len(meta.Levels))}
	for i := range s.levels {
		s.levels[i], s.strictLevels[i] = &levelHandle{}, &levelHandle{}
	}
	return s
}

// finishMetadata does what is common to every format once its header is
// read: the file's identity, the reader option, the --mpp override, the
// resolution derived from the objective power and each level's resolution.
func finishMetadata(meta *Metadata, path string, size int64, opt Options) error {
	name := path
	meta.Path, meta.ID, meta.SizeBytes = path, ID(path), size
	if meta.Properties == nil {
		meta.Properties = map[string]string{}
	}
	if opt.Reader != "" && opt.Reader != "auto" && opt.Reader != ReaderTIFF && opt.Reader != ReaderOpenSlide {
		return fmt.Errorf("slide: %s: unknown reader %q (auto, tiffload, openslideload)", name, opt.Reader)
	}
	if opt.MPP > 0 {
		meta.MPPX, meta.MPPY, meta.MPPSource = opt.MPP, opt.MPP, "--mpp override"
	}
	if meta.MPPX == 0 && meta.ObjectivePower > 0 {
		// Conventional optics: 10× ≈ 1 µm/px. Logged so it is never silent.
		meta.MPPX = 10 / meta.ObjectivePower
		meta.MPPY = meta.MPPX
		meta.MPPSource = fmt.Sprintf("objective power %gx (assumed %.4g µm/px)", meta.ObjectivePower, meta.MPPX)
	}
	for i := range meta.Levels {
		if meta.MPPX > 0 {
			meta.Levels[i].MPPX = meta.MPPX * meta.Levels[i].Downsample
			meta.Levels[i].MPPY = meta.MPPY * meta.Levels[i].Downsample
		}
	}
	if len(meta.Levels) == 0 {
		return fmt.Errorf("slide: %s: no pyramid levels", name)
	}
	if meta.Associated == nil {
		meta.Associated = []string{}
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// Plausible slide resolutions. TIFF writers put 72 dpi (≈353 µm/px) in files
// with no real resolution; that must not pass as a measurement.
const minPlausibleMPP, maxPlausibleMPP = 0.05, 20.0

func tiffResolutionMPP(res, unit string) (float64, bool) {
	r, ok := positiveFloat(res)
	if !ok {
		return 0, false
	}
	var mpp float64
	switch strings.ToLower(unit) {
	case "centimeter", "cm", "3":
		mpp = 1e4 / r
	case "inch", "2":
		mpp = 25400 / r
	default:
		return 0, false
	}
	return mpp, mpp >= minPlausibleMPP && mpp <= maxPlausibleMPP
}

// MPP returns the level-0 resolution in µm per pixel, or an error wrapping
// ErrNoMPP naming the slide.
func (s *Slide) MPP() (x, y float64, err error) {
	if s.Meta.MPPX <= 0 || s.Meta.MPPY <= 0 {
		return 0, 0, fmt.Errorf("slide: %s: %w", s.Meta.Path, ErrNoMPP)
	}
	return s.Meta.MPPX, s.Meta.MPPY, nil
}

// level returns the opened libvips image for level i, opening it on first
// use; strict selects the OpenSlide handle of a tiffload slide.
func (s *Slide) level(i int, strict bool) (*vipsImage, error) {
	if i < 0 || i >= len(s.levels) {
		return nil, fmt.Errorf("slide: %s: level %d out of range (0..%d)", s.Meta.Path, i, len(s.levels)-1)
	}
	h, reader := s.levels[i], s.Meta.Reader
	if strict && reader == ReaderTIFF {
		h, reader = s.strictLevels[i], ReaderOpenSlide
	}
	h.once.Do(func() {
		var err error
		switch {
		case s.openLevel != nil:
			h.img, err = s.openLevel(i)
		case reader == ReaderTIFF:
			h.img, err = openTIFFPage(s.Meta.Path, s.Meta.Levels[i].page)
		case reader == ReaderOpenSlide:
			h.img, err = openOpenSlideLevel(s.Meta.Path, i)
		default:
			h.img, err = openGeneric(s.Meta.Path)
		}
		if err != nil {
			h.err = fmt.Errorf("slide: %s: open level %d: %s", s.Meta.Path, i, firstLine(err.Error()))
			return
		}
		if w, hh := h.img.size(); int64(w) != s.Meta.Levels[i].Width || int64(hh) != s.Meta.Levels[i].Height {
			h.err = fmt.Errorf("slide: %s: level %d decodes as %dx%d, header says %dx%d", s.Meta.Path, i, w, hh, s.Meta.Levels[i].Width, s.Meta.Levels[i].Height)
			h.img.close()
			h.img = nil
		}
	})
	return h.img, h.err
}

var errClosed = errors.New("slide is closed")

// ReadRegion returns the w×h RGB pixels at (x, y) of the given level, in
// that level's pixel coordinates. Parts outside the level are white.
func (s *Slide) ReadRegion(level, x, y, w, h int) (*raster.RGB, error) {
	out := raster.New(w, h)
	return out, s.ReadRegionInto(level, x, y, out)
}

// ReadRegionInto reads into dst (dst.W×dst.H at (x, y)), reusing its buffer.
func (s *Slide) ReadRegionInto(level, x, y int, dst *raster.RGB) error {
	if err := dst.Valid(); err != nil {
		return fmt.Errorf("slide: %s: %w", s.Meta.Path, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("slide: %s: %w", s.Meta.Path, errClosed)
	}
	var err error
	if s.readRaw != nil {
		err = s.rawRead(level, x, y, dst.W, dst.H, dst.Pix)
	} else {
		err = s.checked(level, func(img *vipsImage) error { return img.read(x, y, dst.W, dst.H, dst.Pix) })
	}
	if err != nil {
		return fmt.Errorf("slide: %s: read level %d region (%d,%d %dx%d): %s", s.Meta.Path, level, x, y, dst.W, dst.H, firstLine(err.Error()))
	}
	return nil
}

// ReadRegionBoxInto reads the (factor·dst.W)×(factor·dst.H) region at
// (x, y) of level and averages each factor×factor block into dst: an exact
// box-filter reduction done in C straight from libvips' region memory (the
// 40× → 20× patch read is factor 2). factor 1 is ReadRegionInto.
func (s *Slide) ReadRegionBoxInto(level, x, y, factor int, dst *raster.RGB) error {
	if factor < 1 || factor > 64 {
		return fmt.Errorf("slide: %s: box factor %d outside 1..64", s.Meta.Path, factor)
	}
	if err := dst.Valid(); err != nil {
		return fmt.Errorf("slide: %s: %w", s.Meta.Path, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("slide: %s: %w", s.Meta.Path, errClosed)
	}
	var err error
	switch {
	case s.readRaw != nil && factor == 1:
		err = s.rawRead(level, x, y, dst.W, dst.H, dst.Pix)
	case s.readRaw != nil:
		sw, sh := factor*dst.W, factor*dst.H
		bp := getScratch(3 * sw * sh)
		if err = s.rawRead(level, x, y, sw, sh, *bp); err == nil {
			boxReduce(*bp, 3*sw, dst.W, dst.H, factor, dst.Pix)
		}
		scratchPool.Put(bp)
	default:
		err = s.checked(level, func(img *vipsImage) error { return img.readBox(x, y, dst.W, dst.H, factor, dst.Pix) })
	}
	if err != nil {
		return fmt.Errorf("slide: %s: read level %d region (%d,%d %dx%d): %s", s.Meta.Path, level, x, y, factor*dst.W, factor*dst.H, firstLine(err.Error()))
	}
	return nil
}

// Decoder warnings. libvips' tiffload decodes a corrupt JPEG tile into
// garbage without failing: libjpeg's warning only lands in libvips'
// process-wide error buffer, and the garbage tile is then cached. So after
// every tiffload read the buffer is checked; text there bumps decodeEpoch,
// and every read that overlapped it (any slide) is suspect: its slide
// switches for good to OpenSlide, which fails on corrupt JPEG data, and the
// read is redone there. A healthy slide flagged by another's warning only
// gets slower; a corrupt one fails with the decoder's message.
var (
	decodeEpoch atomic.Uint64
	decodeMu    sync.Mutex
)

func noteDecodeWarnings() {
	if !errorPending() {
		return
	}
	decodeMu.Lock()
	defer decodeMu.Unlock()
	if errorPending() {
		msg := takeError()
		decodeEpoch.Add(1)
		slog.Warn("decoder warning; slides being read switch to the strict OpenSlide reader", "lib", "VIPS", "message", msg)
	}
}

// checked runs op on the level's image with the decoder-warning protocol.
// The caller holds s.mu (read).
func (s *Slide) checked(level int, op func(*vipsImage) error) error {
	strict := s.strict.Load()
	if s.Meta.Reader != ReaderTIFF || strict {
		img, err := s.level(level, strict)
		if err != nil {
			return err
		}
		return op(img)
	}
	e0 := decodeEpoch.Load()
	img, err := s.level(level, false)
	if err != nil {
		return err
	}
	err = op(img)
	noteDecodeWarnings()
	if err == nil && decodeEpoch.Load() == e0 {
		return nil
	}
	if !s.strict.Swap(true) {
		slog.Warn("reading through OpenSlide from now on", "slide", s.Meta.ID, "reason", "decoder warning during a tiffload read")
	}
	img, err = s.level(level, true)
	if err != nil {
		return err
	}
	return op(img)
}

// ThumbnailLevel picks the level a thumbnail of at most maxSide pixels is
// made from: the smallest level still at least maxSide on its long side (so
// the thumbnail is a reduction), or the smallest level when all are smaller.
func (s *Slide) ThumbnailLevel(maxSide int) int {
	best := 0
	for i, lv := range s.Meta.Levels {
		if max(lv.Width, lv.Height) >= int64(maxSide) && lv.Width*lv.Height <= s.Meta.Levels[best].Width*s.Meta.Levels[best].Height {
			best = i
		}
	}
	if max(s.Meta.Levels[best].Width, s.Meta.Levels[best].Height) < int64(maxSide) {
		// Every level is smaller: take the largest (level 0).
		best = 0
	}
	return best
}

// Thumbnail returns the whole slide scaled so its long side is maxSide
// pixels (never enlarged), along with the level-0 pixels per thumbnail pixel
// in x and y. It reads from the pyramid level nearest above that size and
// streams the reduction, so a full-resolution level is never held in memory.
func (s *Slide) Thumbnail(maxSide int) (*raster.RGB, [2]float64, error) {
	if maxSide <= 0 {
		return nil, [2]float64{}, fmt.Errorf("slide: %s: thumbnail size %d", s.Meta.Path, maxSide)
	}
	l0 := s.Meta.Levels[0]
	scale := float64(maxSide) / float64(max(l0.Width, l0.Height))
	if scale > 1 {
		scale = 1
	}
	tw := max(1, int(math.Round(float64(l0.Width)*scale)))
	th := max(1, int(math.Round(float64(l0.Height)*scale)))
	img, err := s.ScaledLevelImage(s.ThumbnailLevel(max(tw, th)), tw, th)
	if err != nil {
		return nil, [2]float64{}, err
	}
	return img, [2]float64{float64(l0.Width) / float64(tw), float64(l0.Height) / float64(th)}, nil
}

// ScaledLevelImage returns the whole of the given level resized to w×h.
func (s *Slide) ScaledLevelImage(level, w, h int) (*raster.RGB, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("slide: %s: %w", s.Meta.Path, errClosed)
	}
	out := raster.New(w, h)
	err := s.checked(level, func(img *vipsImage) error {
		if lw, lh := img.size(); lw == w && lh == h {
			return img.read(0, 0, w, h, out.Pix)
		}
		return img.resizeTo(w, h, out.Pix)
	})
	if err != nil {
		return nil, fmt.Errorf("slide: %s: scale level %d to %dx%d: %s", s.Meta.Path, level, w, h, firstLine(err.Error()))
	}
	return out, nil
}

// Associated returns an associated image (label, macro, thumbnail) by name.
func (s *Slide) Associated(name string) (*raster.RGB, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	base := s.Meta.Path
	if s.closed {
		return nil, fmt.Errorf("slide: %s: %w", base, errClosed)
	}
	found := false
	for _, a := range s.Meta.Associated {
		found = found || a == name
	}
	if !found {
		return nil, fmt.Errorf("slide: %s: no associated image %q (have %v)", base, name, s.Meta.Associated)
	}
	read := s.readAssociated
	if read == nil {
		read = func(name string) (*raster.RGB, error) { return readAssociated(s.Meta.Path, name) }
	}
	img, err := read(name)
	if err != nil {
		return nil, fmt.Errorf("slide: %s: associated image %q: %s", base, name, firstLine(err.Error()))
	}
	return img, nil
}

// Close releases every libvips handle. It waits for reads in progress.
func (s *Slide) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, h := range append(s.levels, s.strictLevels...) {
		h.once.Do(func() {}) // a level never opened stays unopened
		h.img.close()
	}
	if s.onClose != nil {
		s.onClose()
	}
	return nil
}

// rawRead reads through readRaw. The caller holds s.mu (read).
func (s *Slide) rawRead(level, x, y, w, h int, dst []byte) error {
	if level < 0 || level >= len(s.Meta.Levels) {
		return fmt.Errorf("level %d out of range (0..%d)", level, len(s.Meta.Levels)-1)
	}
	return s.readRaw(level, x, y, w, h, dst)
}

// scratchPool holds the buffers of box reads through readRaw.
var scratchPool sync.Pool // of *[]byte

func getScratch(n int) *[]byte {
	if p, _ := scratchPool.Get().(*[]byte); p != nil && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n)
	return &b
}
