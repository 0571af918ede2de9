package slide

import (
	"bufio"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/cgo"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// DICOM WSI: VL Whole Slide Microscopy Image Storage
// (1.2.840.10008.5.1.4.1.1.77.1.6), read in Go and decoded by libvips
// frame by frame. Recognised by the 128-byte preamble and "DICM", so
// registered before the TIFF family (file-name order): a dual-personality
// file, a TIFF header in the DICOM preamble, is DICOM unless its extension
// is a TIFF one.
//
// The DICOM structure is parsed here, not with github.com/suyashkumar/dicom:
// that library reads the whole file, pixel data included, into memory (and
// native pixels as one int per sample), where a slide needs only the
// header and the file offsets of its frames, read one frame at a time.
//
// A slide is one instance (one .dcm file) and the other instances of its
// series in the same folder: the VOLUME instances are the pyramid levels,
// ordered by TotalPixelMatrixColumns, and LABEL, OVERVIEW and THUMBNAIL
// instances are the associated images "label", "macro" and "thumbnail".
// Frames are placed by DimensionOrganizationType TILED_FULL (row-major) or
// by the per-frame plane positions (TILED_SPARSE); a file with neither is
// refused. Frames in JPEG baseline/extended and JPEG 2000 are decoded by
// libvips' buffer loaders, uncompressed RGB and MONOCHROME2 frames are
// copied. MPP comes from PixelSpacing in the Shared Functional Groups.
func init() {
	RegisterFormat(Format{
		Name:       "dicom",
		Extensions: []string{".dcm"},
		Sniff:      isDICOM,
		ReadMetadata: func(path string, opt Options) (Metadata, error) {
			ser, err := openDICOMSeries(path)
			if err != nil {
				return Metadata{}, err
			}
			return ser.meta, nil
		},
		Open: openDICOM,
	})
}

func isDICOM(h []byte) bool { return len(h) >= 132 && string(h[128:132]) == "DICM" }

// Transfer syntaxes read.
const (
	tsImplicitLE = "1.2.840.10008.1.2"
	tsExplicitLE = "1.2.840.10008.1.2.1"
	tsJPEGBase   = "1.2.840.10008.1.2.4.50"
	tsJPEGExt    = "1.2.840.10008.1.2.4.51"
	tsJ2KLossles = "1.2.840.10008.1.2.4.90"
	tsJ2K        = "1.2.840.10008.1.2.4.91"
	sopWSM       = "1.2.840.10008.5.1.4.1.1.77.1.6"
)

var transferSyntaxNames = map[string]string{
	tsImplicitLE: "uncompressed (implicit VR little endian)",
	tsExplicitLE: "uncompressed (explicit VR little endian)",
	tsJPEGBase:   "jpeg baseline",
	tsJPEGExt:    "jpeg extended",
	tsJ2KLossles: "jpeg 2000 lossless",
	tsJ2K:        "jpeg 2000",
}

// Tags used.
const (
	tagTransferSyntax  = 0x00020010
	tagImageType       = 0x00080008
	tagSOPClass        = 0x00080016
	tagSOPInstance     = 0x00080018
	tagManufacturer    = 0x00080070
	tagSeriesUID       = 0x0020000E
	tagDimOrg          = 0x00209311
	tagSamples         = 0x00280002
	tagPhotometric     = 0x00280004
	tagPlanar          = 0x00280006
	tagNumFrames       = 0x00280008
	tagRows            = 0x00280010
	tagColumns         = 0x00280011
	tagPixelSpacing    = 0x00280030
	tagBitsAllocated   = 0x00280100
	tagPixelMeasures   = 0x00289110
	tagTotalCols       = 0x00480006
	tagTotalRows       = 0x00480007
	tagPlanePosSlide   = 0x0048021A
	tagColumnPos       = 0x0048021E
	tagRowPos          = 0x0048021F
	tagSharedGroups    = 0x52009229
	tagPerFrameGroups  = 0x52009230
	tagPixelData       = 0x7FE00010
	tagItem            = 0xFFFEE000
	tagItemDelim       = 0xFFFEE00D
	tagSeqDelim        = 0xFFFEE0DD
	undefinedLength    = 0xFFFFFFFF
	maxDICOMValueBytes = 64 << 20 // values kept in memory; longer ones are skipped
)

// The VRs of the elements read, for implicit VR files.
var dicomVRs = map[uint32]string{
	tagSharedGroups: "SQ", tagPerFrameGroups: "SQ", tagPixelMeasures: "SQ", tagPlanePosSlide: "SQ",
	tagSamples: "US", tagPlanar: "US", tagRows: "US", tagColumns: "US", tagBitsAllocated: "US",
	tagNumFrames: "IS", tagTotalCols: "UL", tagTotalRows: "UL", tagColumnPos: "SL", tagRowPos: "SL",
}

type dcmElem struct {
	vr    string
	val   []byte
	items []dcmSet
}

type dcmSet map[uint32]*dcmElem

func (s dcmSet) str(tag uint32) string {
	if e := s[tag]; e != nil {
		return strings.TrimRight(string(e.val), " \x00")
	}
	return ""
}

func (s dcmSet) strs(tag uint32) []string {
	v := s.str(tag)
	if v == "" {
		return nil
	}
	parts := strings.Split(v, `\`)
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// int reads a US, UL, SL or SS value, or an IS string.
func (s dcmSet) int(tag uint32) (int64, bool) {
	e := s[tag]
	if e == nil {
		return 0, false
	}
	switch {
	case e.vr == "US" && len(e.val) >= 2:
		return int64(binary.LittleEndian.Uint16(e.val)), true
	case e.vr == "SS" && len(e.val) >= 2:
		return int64(int16(binary.LittleEndian.Uint16(e.val))), true
	case e.vr == "UL" && len(e.val) >= 4:
		return int64(binary.LittleEndian.Uint32(e.val)), true
	case e.vr == "SL" && len(e.val) >= 4:
		return int64(int32(binary.LittleEndian.Uint32(e.val))), true
	case e.vr == "IS" || e.vr == "DS":
		v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimRight(string(e.val), " \x00")), 10, 64)
		return v, err == nil
	case e.vr == "UN" || e.vr == "": // implicit VR: length decides
		switch len(e.val) {
		case 2:
			return int64(binary.LittleEndian.Uint16(e.val)), true
		case 4:
			return int64(int32(binary.LittleEndian.Uint32(e.val))), true
		}
		v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimRight(string(e.val), " \x00")), 10, 64)
		return v, err == nil
	}
	return 0, false
}

func (s dcmSet) seq(tag uint32) []dcmSet {
	if e := s[tag]; e != nil {
		return e.items
	}
	return nil
}

// dcmSpan is a byte range of the file.
type dcmSpan struct{ off, n int64 }

// dcmParser reads a DICOM file's data set up to the pixel data.
type dcmParser struct {
	f        *os.File
	r        *bufio.Reader
	pos      int64
	size     int64
	explicit bool
	// stopAfter, when set, ends the top-level data set at the first
	// element past this tag (outside the file meta group).
	stopAfter uint32
}

var errDICOMTruncated = errors.New("truncated")

func (p *dcmParser) read(n int64) ([]byte, error) {
	if n < 0 || p.pos+n > p.size {
		return nil, fmt.Errorf("%w: %d bytes wanted at offset %d of a %d-byte file", errDICOMTruncated, n, p.pos, p.size)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.r, b); err != nil {
		return nil, fmt.Errorf("%w at offset %d: %v", errDICOMTruncated, p.pos, err)
	}
	p.pos += n
	return b, nil
}

func (p *dcmParser) skip(n int64) error {
	if p.pos+n > p.size {
		return fmt.Errorf("%w: a %d-byte value at offset %d runs past the end of the %d-byte file", errDICOMTruncated, n, p.pos, p.size)
	}
	if n <= int64(p.r.Buffered()) {
		_, err := p.r.Discard(int(n))
		p.pos += n
		return err
	}
	p.pos += n
	if _, err := p.f.Seek(p.pos, io.SeekStart); err != nil {
		return err
	}
	p.r.Reset(p.f)
	return nil
}

func (p *dcmParser) u16() (uint16, error) {
	b, err := p.read(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (p *dcmParser) u32() (uint32, error) {
	b, err := p.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *dcmParser) tag() (uint32, error) {
	g, err := p.u16()
	if err != nil {
		return 0, err
	}
	e, err := p.u16()
	return uint32(g)<<16 | uint32(e), err
}

func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// header reads an element header: tag, VR and length.
func (p *dcmParser) header(explicit bool) (tag uint32, vr string, n uint32, err error) {
	if tag, err = p.tag(); err != nil {
		return
	}
	if tag>>16 == 0xFFFE || !explicit {
		n, err = p.u32()
		if !explicit {
			vr = dicomVRs[tag]
		}
		return
	}
	b, err := p.read(2)
	if err != nil {
		return
	}
	vr = string(b)
	if longVR(vr) {
		if err = p.skip(2); err != nil {
			return
		}
		n, err = p.u32()
	} else {
		var v uint16
		v, err = p.u16()
		n = uint32(v)
	}
	return
}

// dataset reads elements until length bytes are read (undefinedLength: an
// item delimiter; top: the end of the file or the pixel data, whose
// header's position is returned in pixel).
func (p *dcmParser) dataset(length uint32, depth int, top bool) (set dcmSet, pixel *dcmElem, pixelLen uint32, err error) {
	if depth > 8 {
		return nil, nil, 0, errors.New("sequences nested too deep")
	}
	set = dcmSet{}
	end := p.pos + int64(length)
	for {
		if length != undefinedLength && !top && p.pos >= end {
			return set, nil, 0, nil
		}
		if top && p.pos >= p.size {
			return set, nil, 0, nil
		}
		explicit := p.explicit
		if b, perr := p.r.Peek(2); perr == nil && top && binary.LittleEndian.Uint16(b) == 0x0002 {
			explicit = true // the file meta group is always explicit VR
		}
		tag, vr, n, err := p.header(explicit)
		if err != nil {
			return nil, nil, 0, err
		}
		if tag == tagItemDelim || (top && p.stopAfter != 0 && tag > p.stopAfter && tag>>16 != 0x0002) {
			return set, nil, 0, nil
		}
		if tag == tagPixelData {
			if vr == "" {
				vr = "OB"
			}
			return set, &dcmElem{vr: vr}, n, nil
		}
		e := &dcmElem{vr: vr}
		switch {
		case vr == "SQ" || n == undefinedLength:
			if e.items, err = p.sequence(n, depth+1); err != nil {
				return nil, nil, 0, fmt.Errorf("sequence (%04x,%04x): %w", tag>>16, tag&0xFFFF, err)
			}
		case n > maxDICOMValueBytes:
			if err = p.skip(int64(n)); err != nil {
				return nil, nil, 0, err
			}
		default:
			if e.val, err = p.read(int64(n)); err != nil {
				return nil, nil, 0, fmt.Errorf("element (%04x,%04x): %w", tag>>16, tag&0xFFFF, err)
			}
		}
		set[tag] = e
		if top && tag == tagTransferSyntax {
			ts := set.str(tagTransferSyntax)
			p.explicit = ts != tsImplicitLE
		}
	}
}

func (p *dcmParser) sequence(length uint32, depth int) ([]dcmSet, error) {
	end := p.pos + int64(length)
	var items []dcmSet
	for length == undefinedLength || p.pos < end {
		tag, _, n, err := p.header(p.explicit)
		if err != nil {
			return nil, err
		}
		if tag == tagSeqDelim {
			break
		}
		if tag != tagItem {
			return nil, fmt.Errorf("element (%04x,%04x) where an item was expected", tag>>16, tag&0xFFFF)
		}
		set, _, _, err := p.dataset(n, depth, false)
		if err != nil {
			return nil, err
		}
		items = append(items, set)
	}
	return items, nil
}

// dcmInstance is one .dcm file of a series: its header and where its
// frames are.
type dcmInstance struct {
	path         string
	ts           string
	series       string
	imageType    []string
	manufacturer string
	frameW       int
	frameH       int
	totalW       int
	totalH       int
	samples      int
	photometric  string
	planar       int
	dimOrg       string
	spacingMM    [2]float64 // PixelSpacing: row spacing (y), column spacing (x)
	frames       [][]dcmSpan
	encapsulated bool
	// grid maps a frame cell (row-major over the frame grid) to its frame
	// index, -1 where no frame is (TILED_SPARSE).
	grid   []int
	across int
	down   int

	// orderNote, when set, says how the frame order was decided for a file
	// that does not state it.
	orderNote string

	fileMu sync.Mutex
	file   *os.File // opened on the first frame read, closed with the slide
}

// readAt reads len(b) bytes at off of the instance's file, kept open
// between frames.
func (in *dcmInstance) readAt(b []byte, off int64) error {
	in.fileMu.Lock()
	f := in.file
	if f == nil {
		var err error
		if f, err = os.Open(in.path); err != nil {
			in.fileMu.Unlock()
			return unwrapPathError(err)
		}
		in.file = f
	}
	in.fileMu.Unlock()
	_, err := f.ReadAt(b, off)
	return unwrapPathError(err)
}

func (in *dcmInstance) closeFile() {
	in.fileMu.Lock()
	defer in.fileMu.Unlock()
	if in.file != nil {
		in.file.Close()
		in.file = nil
	}
}

func (in *dcmInstance) kind() string {
	if len(in.imageType) >= 3 {
		return strings.ToUpper(in.imageType[2])
	}
	return ""
}

// parseDICOMInstance reads one file's header and frame table.
func parseDICOMInstance(path string) (*dcmInstance, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPathError(err)
	}
	p := &dcmParser{f: f, r: bufio.NewReaderSize(f, 1<<16), size: fi.Size(), explicit: true}
	pre, err := p.read(132)
	if err != nil || !isDICOM(pre) {
		return nil, errors.New("not a DICOM file (no DICM preamble)")
	}
	set, pix, pixLen, err := p.dataset(undefinedLength, 0, true)
	if err != nil {
		return nil, fmt.Errorf("damaged DICOM: %w", err)
	}
	in := &dcmInstance{path: path, ts: set.str(tagTransferSyntax), series: set.str(tagSeriesUID),
		imageType: set.strs(tagImageType), manufacturer: set.str(tagManufacturer),
		photometric: strings.ToUpper(set.str(tagPhotometric)), dimOrg: strings.ToUpper(set.str(tagDimOrg))}
	if c := set.str(tagSOPClass); c != sopWSM {
		return nil, fmt.Errorf("%w: DICOM SOP class %s is not VL Whole Slide Microscopy Image Storage (%s)", ErrUnsupported, c, sopWSM)
	}
	if _, ok := transferSyntaxNames[in.ts]; !ok {
		return nil, fmt.Errorf("%w: DICOM transfer syntax %q (readable: %s)", ErrUnsupported, in.ts, knownTransferSyntaxes())
	}
	get := func(tag uint32, name string, def int64) (int, error) {
		v, ok := set.int(tag)
		if !ok {
			if def >= 0 {
				return int(def), nil
			}
			return 0, fmt.Errorf("damaged DICOM: no %s", name)
		}
		if v < 0 || v > 1<<31-1 {
			return 0, fmt.Errorf("damaged DICOM: %s %d", name, v)
		}
		return int(v), nil
	}
	var nframes, bits int
	for _, g := range []struct {
		dst  *int
		tag  uint32
		name string
		def  int64
	}{
		{&in.frameH, tagRows, "Rows", -1}, {&in.frameW, tagColumns, "Columns", -1},
		{&in.samples, tagSamples, "SamplesPerPixel", -1}, {&bits, tagBitsAllocated, "BitsAllocated", -1},
		{&nframes, tagNumFrames, "NumberOfFrames", 1}, {&in.planar, tagPlanar, "PlanarConfiguration", 0},
		{&in.totalW, tagTotalCols, "TotalPixelMatrixColumns", 0}, {&in.totalH, tagTotalRows, "TotalPixelMatrixRows", 0},
	} {
		if *g.dst, err = get(g.tag, g.name, g.def); err != nil {
			return nil, err
		}
	}
	if in.frameW == 0 || in.frameH == 0 || nframes == 0 {
		return nil, fmt.Errorf("damaged DICOM: frames of %dx%d, %d frames", in.frameW, in.frameH, nframes)
	}
	if int64(in.frameW)*int64(in.frameH) > 1<<26 {
		return nil, fmt.Errorf("%w: DICOM frames of %dx%d are too large", ErrUnsupported, in.frameW, in.frameH)
	}
	if in.totalW == 0 || in.totalH == 0 {
		if nframes != 1 {
			return nil, errors.New("damaged DICOM: no TotalPixelMatrixColumns/Rows for a multi-frame image")
		}
		in.totalW, in.totalH = in.frameW, in.frameH
	}
	if bits != 8 || (in.samples != 3 && in.samples != 1) {
		return nil, fmt.Errorf("%w: DICOM pixels of %d samples of %d bits (want 8-bit RGB or grey)", ErrUnsupported, in.samples, bits)
	}
	for _, it := range set.seq(tagSharedGroups) {
		for _, pm := range it.seq(tagPixelMeasures) {
			sp := pm.strs(tagPixelSpacing)
			if len(sp) == 2 {
				r, e1 := strconv.ParseFloat(sp[0], 64)
				c, e2 := strconv.ParseFloat(sp[1], 64)
				if e1 == nil && e2 == nil && r > 0 && c > 0 {
					in.spacingMM = [2]float64{r, c}
				}
			}
		}
	}
	if pix == nil {
		return nil, fmt.Errorf("%w: no pixel data (the file ends after %d bytes of header)", errDICOMTruncated, p.pos)
	}
	if pixLen == undefinedLength {
		in.encapsulated = true
		if in.frames, err = encapsulatedFrames(f, p.pos, p.size, nframes); err != nil {
			return nil, err
		}
	} else {
		if in.ts != tsImplicitLE && in.ts != tsExplicitLE {
			return nil, fmt.Errorf("damaged DICOM: native pixel data in compressed transfer syntax %s", in.ts)
		}
		switch in.photometric {
		case "RGB", "MONOCHROME2":
		default:
			return nil, fmt.Errorf("%w: uncompressed DICOM pixels in %s (want RGB or MONOCHROME2)", ErrUnsupported, in.photometric)
		}
		fb := int64(in.frameW) * int64(in.frameH) * int64(in.samples)
		if int64(pixLen) < fb*int64(nframes) || p.pos+fb*int64(nframes) > p.size {
			have := min(int64(pixLen), p.size-p.pos) / fb
			return nil, fmt.Errorf("%w: pixel data holds %d of %d frames", errDICOMTruncated, have, nframes)
		}
		for i := 0; i < nframes; i++ {
			in.frames = append(in.frames, []dcmSpan{{p.pos + int64(i)*fb, fb}})
		}
	}
	if err := in.layout(set.seq(tagPerFrameGroups)); err != nil {
		return nil, err
	}
	return in, nil
}

// encapsulatedFrames walks the fragment items of encapsulated pixel data
// starting at off and groups them into n frames.
func encapsulatedFrames(f *os.File, off, size int64, n int) ([][]dcmSpan, error) {
	var frags []dcmSpan
	var bot []uint32
	var hdr [8]byte
	first := true
	var base int64
	for {
		if off+8 > size {
			return nil, fmt.Errorf("%w: pixel data ends at offset %d with %d fragments read (%d frames expected)", errDICOMTruncated, size, len(frags), n)
		}
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return nil, fmt.Errorf("%w: %v", errDICOMTruncated, err)
		}
		tag := uint32(binary.LittleEndian.Uint16(hdr[0:]))<<16 | uint32(binary.LittleEndian.Uint16(hdr[2:]))
		ln := int64(binary.LittleEndian.Uint32(hdr[4:]))
		if tag == tagSeqDelim {
			break
		}
		if tag != tagItem || ln == undefinedLength {
			return nil, fmt.Errorf("damaged DICOM: bad fragment item (%04x,%04x) at offset %d", tag>>16, tag&0xFFFF, off)
		}
		if off+8+ln > size {
			return nil, fmt.Errorf("%w: fragment %d at offset %d runs past the end of the %d-byte file (%d frames expected)", errDICOMTruncated, len(frags), off, size, n)
		}
		if first {
			first = false
			if ln%4 == 0 && ln > 0 && ln < 1<<28 {
				b := make([]byte, ln)
				if _, err := f.ReadAt(b, off+8); err != nil {
					return nil, err
				}
				for i := 0; i < len(b); i += 4 {
					bot = append(bot, binary.LittleEndian.Uint32(b[i:]))
				}
			}
			off += 8 + ln
			base = off
			continue
		}
		frags = append(frags, dcmSpan{off + 8, ln})
		off += 8 + ln
	}
	switch {
	case len(frags) == n:
		out := make([][]dcmSpan, n)
		for i := range frags {
			out[i] = frags[i : i+1]
		}
		return out, nil
	case n == 1 && len(frags) > 0:
		return [][]dcmSpan{frags}, nil
	case len(bot) == n && len(frags) > n:
		out := make([][]dcmSpan, n)
		for _, fr := range frags {
			rel := uint32(fr.off - 8 - base)
			i := sort.Search(n, func(i int) bool { return bot[i] > rel }) - 1
			if i < 0 {
				return nil, errors.New("damaged DICOM: basic offset table does not match the fragments")
			}
			out[i] = append(out[i], fr)
		}
		for i, fr := range out {
			if len(fr) == 0 {
				return nil, fmt.Errorf("damaged DICOM: frame %d has no fragments", i+1)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("damaged DICOM: %d fragments for %d frames (missing frames?)", len(frags), n)
}

// layout places the frames on the frame grid.
func (in *dcmInstance) layout(perFrame []dcmSet) error {
	in.across = (in.totalW + in.frameW - 1) / in.frameW
	in.down = (in.totalH + in.frameH - 1) / in.frameH
	cells := in.across * in.down
	if cells > 1<<24 || cells > 64*max(len(in.frames), 1) {
		return fmt.Errorf("damaged DICOM: a %dx%d matrix of %dx%d frames for %d frames", in.totalW, in.totalH, in.frameW, in.frameH, len(in.frames))
	}
	n := len(in.frames)
	in.grid = make([]int, cells)
	switch {
	case in.dimOrg == "TILED_FULL" || (in.dimOrg == "" && n == 1 && cells == 1):
		// Row-major; frames beyond the first plane (other focal planes or
		// optical paths) are not read.
		if n < cells || n%cells != 0 {
			return fmt.Errorf("damaged DICOM: %d frames for a TILED_FULL matrix of %dx%d frames (%dx%d pixels in %dx%d frames)", n, in.across, in.down, in.totalW, in.totalH, in.frameW, in.frameH)
		}
		for i := range in.grid {
			in.grid[i] = i
		}
		return nil
	case len(perFrame) > 0:
		if len(perFrame) != n {
			return fmt.Errorf("damaged DICOM: %d per-frame functional groups for %d frames", len(perFrame), n)
		}
		for i := range in.grid {
			in.grid[i] = -1
		}
		for i, g := range perFrame {
			pos := g.seq(tagPlanePosSlide)
			if len(pos) == 0 {
				return fmt.Errorf("damaged DICOM: frame %d has no plane position", i+1)
			}
			c, ok1 := pos[0].int(tagColumnPos)
			r, ok2 := pos[0].int(tagRowPos)
			if !ok1 || !ok2 {
				return fmt.Errorf("damaged DICOM: frame %d has no column/row position", i+1)
			}
			x, y := c-1, r-1 // 1-based
			if x < 0 || y < 0 || x%int64(in.frameW) != 0 || y%int64(in.frameH) != 0 || x >= int64(in.totalW) || y >= int64(in.totalH) {
				return fmt.Errorf("%w: frame %d at (%d,%d) is not on the %dx%d frame grid of the %dx%d matrix", ErrUnsupported, i+1, c, r, in.frameW, in.frameH, in.totalW, in.totalH)
			}
			cell := int(y)/in.frameH*in.across + int(x)/in.frameW
			if in.grid[cell] < 0 { // the first plane's frame wins
				in.grid[cell] = i
			}
		}
		return nil
	}
	if in.dimOrg == "" && n == cells {
		// Non-conformant: the file says nothing about where its frames go
		// (pydicom-written TCGA files store them column-major). Infer the
		// order from the pixels, or refuse.
		return in.inferOrder()
	}
	return fmt.Errorf("%w: DICOM frame layout unknown: %d frames of %dx%d with neither DimensionOrganizationType TILED_FULL nor per-frame plane positions (dimension organization %q; non-conformant file)", ErrUnsupported, n, in.frameW, in.frameH, in.dimOrg)
}

// Frame order inference for files that say nothing about it.
const (
	maxInferFrames = 2048 // frames decoded to decide; a larger file is refused
	// A candidate order is taken when the steps across its frame borders
	// are at most seamAccept times the steps beside them inside the frames
	// (1 for a seamless picture; JPEG blocking adds a little), and the other
	// order's are at least seamMargin times larger.
	seamAccept = 2.0
	seamMargin = 1.5
)

// inferOrder places the frames of an instance with no
// DimensionOrganizationType and no per-frame positions, whose frame count
// fills the matrix exactly once. The only two orders a writer plausibly
// uses are tried — row-major (TILED_FULL's) and column-major — and the one
// whose frame borders are continuous with the image on either side wins,
// when the evidence is clear; otherwise the file is refused. With one row
// or one column of frames the two agree. in.orderNote says what was done.
func (in *dcmInstance) inferOrder() error {
	rowMajor := func(cx, cy int) int { return cy*in.across + cx }
	colMajor := func(cx, cy int) int { return cx*in.down + cy }
	set := func(order func(cx, cy int) int) {
		for cy := 0; cy < in.down; cy++ {
			for cx := 0; cx < in.across; cx++ {
				in.grid[cy*in.across+cx] = order(cx, cy)
			}
		}
	}
	if in.across == 1 || in.down == 1 {
		set(rowMajor)
		in.orderNote = "row-major (no DimensionOrganizationType; one row or column of frames, so the order is not in doubt)"
		return nil
	}
	refuse := func(why string) error {
		return fmt.Errorf("%w: DICOM frame layout unknown: %d frames of %dx%d in a %dx%d grid with neither DimensionOrganizationType nor per-frame plane positions (non-conformant file), and %s", ErrUnsupported, len(in.frames), in.frameW, in.frameH, in.across, in.down, why)
	}
	if len(in.frames) > maxInferFrames {
		return refuse(fmt.Sprintf("too many frames (more than %d) to infer their order from the pixels", maxInferFrames))
	}
	if in.frameW < 2 || in.frameH < 2 {
		return refuse("frames too small to infer their order from the pixels")
	}
	defer in.closeFile()
	// Only the two outer lines on each side of a frame are looked at: keep
	// those, decoding every frame into one buffer.
	frames := make([]frameEdges, len(in.frames))
	buf := make([]byte, in.frameW*in.frameH*3)
	for i := range frames {
		if err := decodeFrame(in, i, buf); err != nil {
			return err
		}
		frames[i] = newFrameEdges(buf, in.frameW, in.frameH)
	}
	row := in.seamRatio(frames, rowMajor)
	col := in.seamRatio(frames, colMajor)
	switch {
	case row <= seamAccept && col > seamMargin*row:
		set(rowMajor)
		in.orderNote = fmt.Sprintf("row-major, inferred from image continuity (no DimensionOrganizationType or plane positions): steps across frame borders %.2fx those inside frames, %.2fx column-major", row, col)
	case col <= seamAccept && row > seamMargin*col:
		set(colMajor)
		in.orderNote = fmt.Sprintf("column-major, inferred from image continuity (no DimensionOrganizationType or plane positions): steps across frame borders %.2fx those inside frames, %.2fx row-major", col, row)
	default:
		return refuse(fmt.Sprintf("the pixels do not tell the order (steps across frame borders %.2fx those inside frames row-major, %.2fx column-major)", row, col))
	}
	return nil
}

// frameEdges are the rows and columns 0, 1, n-2 and n-1 of a decoded frame.
type frameEdges struct {
	w, h       int
	rows, cols [4][]byte // packed RGB lines
}

func newFrameEdges(pix []byte, w, h int) frameEdges {
	e := frameEdges{w: w, h: h}
	for k, y := range [4]int{0, 1, h - 2, h - 1} {
		e.rows[k] = slices.Clone(pix[y*w*3 : (y+1)*w*3])
	}
	for k, x := range [4]int{0, 1, w - 2, w - 1} {
		col := make([]byte, 3*h)
		for y := 0; y < h; y++ {
			copy(col[3*y:3*y+3], pix[(y*w+x)*3:])
		}
		e.cols[k] = col
	}
	return e
}

// at is channel c of pixel (x, y), which must lie on a kept row or column.
func (e frameEdges) at(x, y, c int) int {
	switch y {
	case 0, 1:
		return int(e.rows[y][3*x+c])
	case e.h - 2, e.h - 1:
		return int(e.rows[y-e.h+4][3*x+c])
	}
	switch x {
	case 0, 1:
		return int(e.cols[x][3*y+c])
	case e.w - 2, e.w - 1:
		return int(e.cols[x-e.w+4][3*y+c])
	}
	panic("frameEdges: pixel off the kept lines")
}

// seamRatio assembles the frames in the given order and returns the mean
// absolute step across every frame border over the mean step between the
// two pixel lines beside it, inside each frame.
func (in *dcmInstance) seamRatio(frames []frameEdges, order func(cx, cy int) int) float64 {
	fw, fh := in.frameW, in.frameH
	px := func(f frameEdges, x, y, c int) int { return f.at(x, y, c) }
	abs := func(v int) int { return max(v, -v) }
	var seam, inside int64
	for cy := 0; cy < in.down; cy++ {
		for cx := 0; cx < in.across; cx++ {
			a := frames[order(cx, cy)]
			hValid := min(fh, in.totalH-cy*fh)
			wValid := min(fw, in.totalW-cx*fw)
			if cx+1 < in.across && fw >= 2 {
				b := frames[order(cx+1, cy)]
				bw := min(fw, in.totalW-(cx+1)*fw)
				for y := 0; y < hValid; y++ {
					for c := 0; c < 3; c++ {
						seam += int64(abs(px(a, fw-1, y, c) - px(b, 0, y, c)))
						inside += int64(abs(px(a, fw-2, y, c) - px(a, fw-1, y, c)))
						if bw >= 2 {
							inside += int64(abs(px(b, 0, y, c) - px(b, 1, y, c)))
						}
					}
				}
			}
			if cy+1 < in.down && fh >= 2 {
				b := frames[order(cx, cy+1)]
				bh := min(fh, in.totalH-(cy+1)*fh)
				for x := 0; x < wValid; x++ {
					for c := 0; c < 3; c++ {
						seam += int64(abs(px(a, x, fh-1, c) - px(b, x, 0, c)))
						inside += int64(abs(px(a, x, fh-2, c) - px(a, x, fh-1, c)))
						if bh >= 2 {
							inside += int64(abs(px(b, x, 0, c) - px(b, x, 1, c)))
						}
					}
				}
			}
		}
	}
	// Each border has one seam line and up to two inside lines.
	return 2 * float64(seam) / max(float64(inside), 1)
}

func knownTransferSyntaxes() string {
	var out []string
	for k, v := range transferSyntaxNames {
		out = append(out, v+" "+k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// dcmSeries is a slide: its level instances and associated instances.
type dcmSeries struct {
	meta       Metadata
	levels     []*dcmInstance
	associated map[string]*dcmInstance
}

// all returns every instance of the series.
func (ser *dcmSeries) all() []*dcmInstance {
	out := slices.Clone(ser.levels)
	for _, in := range ser.associated {
		out = append(out, in)
	}
	return out
}

// openDICOMSeries reads path and the other instances of its series in the
// same folder.
func openDICOMSeries(path string) (*dcmSeries, error) {
	first, err := parseDICOMInstance(path)
	if err != nil {
		return nil, err
	}
	ser := &dcmSeries{associated: map[string]*dcmInstance{}}
	all := []*dcmInstance{first}
	if first.series != "" {
		all = append(all, siblingInstances(path, first.series)...)
	}
	for _, in := range all {
		switch in.kind() {
		case "LABEL":
			ser.associated["label"] = in
		case "OVERVIEW":
			ser.associated["macro"] = in
		case "THUMBNAIL":
			ser.associated["thumbnail"] = in
		default:
			ser.levels = append(ser.levels, in)
		}
	}
	if len(ser.levels) == 0 {
		// A lone label or overview: read it as the slide.
		ser.levels = []*dcmInstance{first}
	}
	sort.SliceStable(ser.levels, func(i, j int) bool { return ser.levels[i].totalW > ser.levels[j].totalW })
	// One instance per size: duplicates (other focal planes, copies) drop.
	ser.levels = slices.CompactFunc(ser.levels, func(a, b *dcmInstance) bool { return a.totalW == b.totalW })
	base := ser.levels[0]
	m := Metadata{Format: "dicom", Vendor: "dicom", Reader: "dicom", Properties: map[string]string{}}
	if base.manufacturer != "" {
		m.Properties["dicom.Manufacturer"] = base.manufacturer
	}
	m.Compression = transferSyntaxNames[base.ts]
	for i, in := range ser.levels {
		m.Levels = append(m.Levels, Level{Width: int64(in.totalW), Height: int64(in.totalH),
			Downsample: float64(base.totalW) / float64(in.totalW), TileWidth: int64(in.frameW), TileHeight: int64(in.frameH)})
		key := fmt.Sprintf("dicom.level[%d].", i)
		m.Properties[key+"file"] = filepath.Base(in.path)
		m.Properties[key+"transfer-syntax"] = in.ts
		m.Properties[key+"frames"] = strconv.Itoa(len(in.frames))
		m.Properties[key+"dimension-organization"] = in.dimOrg
		m.Properties[key+"transfer-syntax-name"] = transferSyntaxNames[in.ts]
		if in.orderNote != "" {
			m.Properties[key+"frame-order"] = in.orderNote
			slog.Warn("non-conformant DICOM: frame order not stated", "file", in.path, "order", in.orderNote)
		}
	}
	m.Properties["dicom.SeriesInstanceUID"] = base.series
	if sp := base.spacingMM; sp[0] > 0 {
		m.MPPX, m.MPPY = sp[1]*1000, sp[0]*1000
		m.MPPSource = "dicom PixelSpacing"
		if m.MPPX < minPlausibleMPP || m.MPPX > maxPlausibleMPP {
			slog.Warn("implausible DICOM pixel spacing", "file", path, "mpp", m.MPPX)
		}
	}
	for name := range ser.associated {
		m.Associated = append(m.Associated, name)
	}
	sort.Strings(m.Associated)
	ser.meta = m
	return ser, nil
}

// dicomSeriesUID reads only as far as a DICOM file's SeriesInstanceUID.
func dicomSeriesUID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	p := &dcmParser{f: f, r: bufio.NewReaderSize(f, 1<<14), size: fi.Size(), explicit: true, stopAfter: tagSeriesUID}
	if pre, err := p.read(132); err != nil || !isDICOM(pre) {
		return "", errors.New("not a DICOM file")
	}
	set, _, _, err := p.dataset(undefinedLength, 0, true)
	if err != nil {
		return "", err
	}
	return set.str(tagSeriesUID), nil
}

// siblingInstances returns the other DICOM files in path's folder that
// belong to series uid. Files of other series are passed over; a
// damaged file is reported in the log and passed over.
func siblingInstances(path, uid string) []*dcmInstance {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []*dcmInstance
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() || filepath.Clean(p) == filepath.Clean(path) || !strings.EqualFold(filepath.Ext(p), ".dcm") {
			continue
		}
		if h, err := readHeader(p); err != nil || !isDICOM(h) {
			continue
		}
		if u, err := dicomSeriesUID(p); err == nil && u != uid {
			continue // another series
		}
		in, err := parseDICOMInstance(p)
		if err != nil {
			slog.Warn("DICOM instance beside the slide passed over", "file", p, "err", err)
			continue
		}
		if in.series == uid {
			out = append(out, in)
		}
	}
	return out
}

// openDICOM opens a DICOM series as a slide whose levels are assembled
// from frames.
func openDICOM(path string, opt Options) (*Slide, error) {
	ser, err := openDICOMSeries(path)
	if err != nil {
		return nil, err
	}
	s := newSlide(ser.meta)
	var handles []cgo.Handle
	var mu sync.Mutex
	s.openLevel = func(level int) (*vipsImage, error) {
		src := &frameSource{in: ser.levels[level]}
		h := cgo.NewHandle(src)
		mu.Lock()
		handles = append(handles, h)
		mu.Unlock()
		return imageFromSource(src.in.totalW, src.in.totalH, h)
	}
	srcs := make([]*frameSource, len(ser.levels))
	for i, in := range ser.levels {
		srcs[i] = &frameSource{in: in}
	}
	s.readRaw = func(level, x, y, w, h int, dst []byte) error {
		return srcs[level].read(x, y, w, h, dst)
	}
	s.readAssociated = func(name string) (*raster.RGB, error) {
		in := ser.associated[name]
		if in == nil {
			return nil, fmt.Errorf("no associated image %q", name)
		}
		out := raster.New(in.totalW, in.totalH)
		return out, (&frameSource{in: in}).fill(out.Pix, 3*in.totalW, 0, 0, in.totalW, in.totalH)
	}
	s.onClose = func() {
		for _, in := range ser.all() {
			dicomFrames.drop(in)
			in.closeFile()
		}
	}
	// The level images hold handles to their frame sources; they go when
	// the slide does (after Close, which releases the images).
	runtime.SetFinalizer(s, func(*Slide) {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range handles {
			h.Delete()
		}
	})
	return s, nil
}

// frameSource fills regions of one instance's total pixel matrix from its
// frames: the regionSource of its level's image.
type frameSource struct{ in *dcmInstance }

func (src *frameSource) name() string { return src.in.path }

// fill copies the w×h region at (x, y) of the matrix into mem, rows stride
// bytes apart. Cells with no frame (TILED_SPARSE) are white.
func (src *frameSource) fill(mem []byte, stride, x, y, w, h int) error {
	in := src.in
	fw, fh := in.frameW, in.frameH
	for cy := y / fh; cy <= (y+h-1)/fh && cy < in.down; cy++ {
		for cx := x / fw; cx <= (x+w-1)/fw && cx < in.across; cx++ {
			// The intersection of the region and this frame.
			x0, y0 := max(x, cx*fw), max(y, cy*fh)
			x1, y1 := min(x+w, (cx+1)*fw, in.totalW), min(y+h, (cy+1)*fh, in.totalH)
			if x0 >= x1 || y0 >= y1 {
				continue
			}
			idx := in.grid[cy*in.across+cx]
			if idx < 0 {
				for r := y0; r < y1; r++ {
					o := (r-y)*stride + (x0-x)*3
					for i := o; i < o+(x1-x0)*3; i++ {
						mem[i] = 255
					}
				}
				continue
			}
			e, err := dicomFrames.get(in, idx)
			if err != nil {
				return err
			}
			pix := e.pix
			for r := y0; r < y1; r++ {
				s := ((r-cy*fh)*fw + (x0 - cx*fw)) * 3
				copy(mem[(r-y)*stride+(x0-x)*3:], pix[s:s+(x1-x0)*3])
			}
			dicomFrames.release(e)
		}
	}
	return nil
}

// read writes the w×h region at (x, y) into dst (packed RGB), white
// outside the matrix.
func (src *frameSource) read(x, y, w, h int, dst []byte) error {
	if w <= 0 || h <= 0 || len(dst) < 3*w*h {
		return fmt.Errorf("buffer of %d bytes for a %dx%d region", len(dst), w, h)
	}
	in := src.in
	x0, y0 := max(x, 0), max(y, 0)
	x1, y1 := min(x+w, in.totalW), min(y+h, in.totalH)
	if x0 >= x1 || y0 >= y1 {
		fillWhite(dst[:3*w*h])
		return nil
	}
	if x0 != x || y0 != y || x1 != x+w || y1 != y+h {
		fillWhite(dst[:3*w*h])
	}
	return src.fill(dst[3*((y0-y)*w+(x0-x)):], 3*w, x0, y0, x1-x0, y1-y0)
}

func fillWhite(b []byte) {
	if len(b) == 0 {
		return
	}
	b[0] = 255
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// decodeFrame reads frame idx of in and decodes it into dst: packed RGB of
// the frame size. JPEG frames are decoded by libjpeg straight into dst,
// JPEG 2000 ones by libvips' jp2kload_buffer; uncompressed ones are read.
func decodeFrame(in *dcmInstance, idx int, dst []byte) error {
	fw, fh := in.frameW, in.frameH
	if !in.encapsulated {
		sp := in.frames[idx][0]
		if in.samples == 3 && in.planar == 0 {
			if err := in.readAt(dst[:sp.n], sp.off); err != nil {
				return fmt.Errorf("frame %d: %w", idx+1, err)
			}
			return nil
		}
		bp := getScratch(int(sp.n))
		defer scratchPool.Put(bp)
		buf := *bp
		if err := in.readAt(buf, sp.off); err != nil {
			return fmt.Errorf("frame %d: %w", idx+1, err)
		}
		if in.samples == 1 {
			for i, v := range buf[:fw*fh] {
				dst[3*i], dst[3*i+1], dst[3*i+2] = v, v, v
			}
		} else { // planar
			for i := 0; i < fw*fh; i++ {
				dst[3*i], dst[3*i+1], dst[3*i+2] = buf[i], buf[fw*fh+i], buf[2*fw*fh+i]
			}
		}
		return nil
	}
	var n int64
	for _, sp := range in.frames[idx] {
		n += sp.n
	}
	if n == 0 {
		return fmt.Errorf("frame %d is empty", idx+1)
	}
	bp := getScratch(int(n))
	defer scratchPool.Put(bp)
	buf := *bp
	o := 0
	for _, sp := range in.frames[idx] {
		if err := in.readAt(buf[o:o+int(sp.n)], sp.off); err != nil {
			return fmt.Errorf("frame %d: %w", idx+1, err)
		}
		o += int(sp.n)
	}
	if in.ts == tsJPEGBase || in.ts == tsJPEGExt {
		if err := decodeJPEGInto(buf, dst, fw, fh); err != nil {
			return fmt.Errorf("frame %d (%s): %s", idx+1, transferSyntaxNames[in.ts], err)
		}
		return nil
	}
	codec := codecAny
	if in.ts == tsJ2K || in.ts == tsJ2KLossles {
		codec = codecJP2K
	}
	src, w, h, err := decodeBuffer(buf, codec)
	if err != nil {
		return fmt.Errorf("frame %d (%s): %s", idx+1, transferSyntaxNames[in.ts], err)
	}
	if w < fw || h < fh {
		return fmt.Errorf("frame %d decodes as %dx%d, header says %dx%d", idx+1, w, h, fw, fh)
	}
	for r := 0; r < fh; r++ {
		copy(dst[r*fw*3:(r+1)*fw*3], src[r*w*3:])
	}
	return nil
}

// frameCache holds decoded frames, shared by every DICOM slide and reader,
// least recently used first out, within a byte budget. A reader holds a
// frame (get) while it copies from it and then releases it; an evicted
// frame's buffer is reused once no reader holds it, so a steady read
// allocates no frame buffers.
type frameCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	lru   *list.List // of *cachedFrame, most recent at the front
	items map[frameKey]*cachedFrame
	free  sync.Pool // of *[]byte, evicted frame buffers
}

type frameKey struct {
	in  *dcmInstance
	idx int
}

type cachedFrame struct {
	key  frameKey
	once sync.Once
	pix  []byte
	err  error
	el   *list.Element
	size int64
	refs int  // readers holding pix (under frameCache.mu)
	gone bool // out of the cache: pix is reused when refs drops to 0
}

var dicomFrames = &frameCache{max: 256 << 20, lru: list.New(), items: map[frameKey]*cachedFrame{}}

// get returns frame idx of in, decoded, held for the caller until release.
func (c *frameCache) get(in *dcmInstance, idx int) (*cachedFrame, error) {
	k := frameKey{in, idx}
	c.mu.Lock()
	e := c.items[k]
	if e == nil {
		e = &cachedFrame{key: k, size: int64(in.frameW) * int64(in.frameH) * 3}
		e.el = c.lru.PushFront(e)
		c.items[k] = e
		c.used += e.size
		for c.used > c.max && c.lru.Len() > 1 {
			c.removeLocked(c.lru.Back().Value.(*cachedFrame))
		}
	} else {
		c.lru.MoveToFront(e.el)
	}
	e.refs++
	c.mu.Unlock()
	e.once.Do(func() {
		e.pix = c.buffer(int(e.size))
		e.err = decodeFrame(in, idx, e.pix)
	})
	if e.err != nil {
		c.mu.Lock()
		if c.items[k] == e { // let a later read try again
			c.removeLocked(e)
		}
		c.mu.Unlock()
		err := e.err
		c.release(e)
		return nil, err
	}
	return e, nil
}

// release ends the caller's hold on e.
func (c *frameCache) release(e *cachedFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	c.recycleLocked(e)
}

func (c *frameCache) removeLocked(e *cachedFrame) {
	if e.gone {
		return
	}
	c.lru.Remove(e.el)
	delete(c.items, e.key)
	c.used -= e.size
	e.gone = true
	c.recycleLocked(e)
}

func (c *frameCache) recycleLocked(e *cachedFrame) {
	if e.gone && e.refs == 0 && e.pix != nil {
		b := e.pix
		e.pix = nil
		c.free.Put(&b)
	}
}

func (c *frameCache) buffer(n int) []byte {
	if p, _ := c.free.Get().(*[]byte); p != nil && cap(*p) >= n && cap(*p) <= 2*n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

// drop removes in's frames (its slide is closed).
func (c *frameCache) drop(in *dcmInstance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if k.in == in {
			c.removeLocked(e)
		}
	}
}

// DICOMSeriesPrimary returns the file that stands for path's DICOM series
// in a folder scan: the instance of its series in its folder that holds the
// largest level (of equal ones, the first by name). Open reads a series'
// other instances with that one, so a scan takes it and passes over the
// rest. For a file that is not a readable DICOM WSI instance it returns path.
func DICOMSeriesPrimary(path string) string {
	primary, _ := DICOMSeries(path)
	return primary
}

// DICOMSeries returns path's DICOM series in its folder: the primary
// instance (see DICOMSeriesPrimary) and every readable instance of the
// series there, path among them, sorted. For a file that is not a readable
// DICOM WSI instance both are path alone.
func DICOMSeries(path string) (primary string, files []string) {
	if h, err := readHeader(path); err != nil || !isDICOM(h) {
		return path, []string{path}
	}
	first, err := parseDICOMInstance(path)
	if err != nil || first.series == "" {
		return path, []string{path}
	}
	files = []string{path}
	best := first
	if best.kind() == "LABEL" || best.kind() == "OVERVIEW" || best.kind() == "THUMBNAIL" {
		best = nil
	}
	for _, in := range siblingInstances(path, first.series) {
		files = append(files, in.path)
		switch in.kind() {
		case "LABEL", "OVERVIEW", "THUMBNAIL":
			continue
		}
		if best == nil || in.totalW > best.totalW || (in.totalW == best.totalW && in.path < best.path) {
			best = in
		}
	}
	sort.Strings(files)
	if best == nil {
		return path, files
	}
	return best.path, files
}

// DICOMFolderSlide returns the file that opens the DICOM WSI series held in
// folder dir (its .dcm instances, not looking into subfolders) as one
// slide: the instance with the largest level (see DICOMSeriesPrimary). A
// folder with no DICOM instance, or with instances of more than one
// series, is an error naming the folder.
func DICOMFolderSlide(dir string) (string, error) {
	if err := ensureInit(); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("slide: %s: %w", dir, unwrapPathError(err))
	}
	var first string
	series := map[string]bool{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") || !strings.EqualFold(filepath.Ext(p), ".dcm") {
			continue
		}
		if h, err := readHeader(p); err != nil || !isDICOM(h) {
			return "", fmt.Errorf("slide: %s: %s is not a DICOM file (no DICM preamble)", dir, e.Name())
		}
		uid, err := dicomSeriesUID(p)
		if err != nil {
			return "", fmt.Errorf("slide: %s: %s: damaged DICOM: %w", dir, e.Name(), err)
		}
		series[uid] = true
		if first == "" {
			first = p
		}
	}
	switch {
	case first == "":
		return "", fmt.Errorf("slide: %s: no DICOM instances (.dcm files) in the folder", dir)
	case len(series) > 1:
		uids := slices.Sorted(maps.Keys(series))
		return "", fmt.Errorf("slide: %s: instances of %d DICOM series (%s): one series (one slide) per folder", dir, len(series), strings.Join(uids, ", "))
	}
	return DICOMSeriesPrimary(first), nil
}
