package slide

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// TIFF compression codes the reader cares about.
const (
	compNone      = 1
	compLZW       = 5
	compOldJPEG   = 6
	compJPEG      = 7
	compDeflate   = 8
	compAdobeZIP  = 32946
	compJP2KYCbCr = 33003 // Aperio JPEG 2000, YCbCr
	compJP2KRGB   = 33005 // Aperio JPEG 2000, RGB
	compWebP      = 50001
)

// tiffPage is what one image file directory (IFD) says about its page.
type tiffPage struct {
	Index          int
	Width, Height  int64
	TileW, TileH   int64 // 0 when stripped
	Compression    int
	Photometric    int
	SamplesPerPx   int
	BitsPerSample  int
	SubfileType    int64
	Description    string
	XRes, YRes     float64 // pixels per ResUnit
	ResUnit        int     // 1 none, 2 inch, 3 cm
	DataEnd        int64   // largest offset+bytecount over the page's tiles/strips
	DataChunks     int64   // number of tiles/strips
	MissingChunks  int64   // tiles/strips with zero byte count
	SubIFDs        int     // number of SubIFD pointers
	hasDataOffsets bool
	nextPtrAt      int64 // file offset of this IFD's next-IFD pointer
	// For reading tiles raw (scaled JPEG decoding, scaled.go): the page's
	// JPEGTables and its tile/strip offsets and byte counts (read lazily).
	jpegTables           []byte
	chunkOffs, chunkCnts tiffField
}

// tiffInfo is the parsed directory chain of a TIFF or BigTIFF file.
type tiffInfo struct {
	BigTIFF bool
	Pages   []tiffPage
	parser  *ifdParser
}

// maxTIFFPages bounds the IFD chain so a looping or hostile file cannot make
// the parser run forever.
const maxTIFFPages = 1024

var errNotTIFF = errors.New("not a TIFF file")

// tiffContainer reads a TIFF header: "tiff" for classic TIFF, "bigtiff" for
// BigTIFF (8-byte offsets), "" for anything else. parseTIFF accepts exactly
// these headers.
func tiffContainer(hdr []byte) string {
	if len(hdr) < 8 {
		return ""
	}
	bo := tiffByteOrder(hdr)
	if bo == nil {
		return ""
	}
	switch bo.Uint16(hdr[2:]) {
	case 42:
		return "tiff"
	case 43:
		if len(hdr) >= 16 && bo.Uint16(hdr[4:]) == 8 {
			return "bigtiff"
		}
	}
	return ""
}

// tiffByteOrder is the byte order a TIFF header's first two bytes name
// ("II" little-endian, "MM" big-endian); nil for anything else.
func tiffByteOrder(hdr []byte) binary.ByteOrder {
	switch string(hdr[:2]) {
	case "II":
		return binary.LittleEndian
	case "MM":
		return binary.BigEndian
	}
	return nil
}

// parseTIFF reads the IFD chain of r (size bytes long) without touching pixel
// data. It validates that every offset lies inside the file, so a truncated
// file is reported here instead of as a decoder failure deep in libvips.
func parseTIFF(r io.ReaderAt, size int64) (*tiffInfo, error) {
	var hdr [16]byte
	n, _ := r.ReadAt(hdr[:], 0)
	if n < 8 {
		return nil, errNotTIFF
	}
	bo := tiffByteOrder(hdr[:])
	if bo == nil {
		return nil, errNotTIFF
	}
	info := &tiffInfo{}
	var next int64
	switch bo.Uint16(hdr[2:]) {
	case 42:
		next = int64(bo.Uint32(hdr[4:]))
	case 43:
		if n < 16 || bo.Uint16(hdr[4:]) != 8 {
			return nil, errNotTIFF
		}
		info.BigTIFF = true
		next = int64(bo.Uint64(hdr[8:]))
	default:
		return nil, errNotTIFF
	}
	p := &ifdParser{r: r, size: size, bo: bo, big: info.BigTIFF}
	info.parser = p
	seen := map[int64]bool{}
	for next != 0 {
		if len(info.Pages) >= maxTIFFPages {
			return nil, fmt.Errorf("more than %d TIFF directories", maxTIFFPages)
		}
		if seen[next] {
			return nil, fmt.Errorf("TIFF directory chain loops at offset %d", next)
		}
		seen[next] = true
		page, nxt, err := p.readIFD(next)
		if err != nil {
			return nil, fmt.Errorf("TIFF directory %d: %w", len(info.Pages), err)
		}
		page.Index = len(info.Pages)
		info.Pages = append(info.Pages, page)
		next = nxt
	}
	if len(info.Pages) == 0 {
		return nil, errors.New("TIFF file has no image directories")
	}
	return info, nil
}

type ifdParser struct {
	r    io.ReaderAt
	size int64
	bo   binary.ByteOrder
	big  bool
}

var errTruncated = errors.New("file is truncated")

func (p *ifdParser) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > p.size || off+n < off {
		return nil, fmt.Errorf("offset %d+%d beyond end of file (%d bytes): %w", off, n, p.size, errTruncated)
	}
	if n > 64<<20 {
		return nil, fmt.Errorf("tag of %d bytes is implausible", n)
	}
	buf := make([]byte, n)
	if _, err := p.r.ReadAt(buf, off); err != nil && !(errors.Is(err, io.EOF) && len(buf) == int(n)) {
		return nil, fmt.Errorf("read at %d: %w", off, err)
	}
	return buf, nil
}

// typeSize is the byte size of one value of each TIFF field type.
func typeSize(t uint16) int64 {
	switch t {
	case 1, 2, 6, 7: // BYTE ASCII SBYTE UNDEFINED
		return 1
	case 3, 8: // SHORT SSHORT
		return 2
	case 4, 9, 11, 13: // LONG SLONG FLOAT IFD
		return 4
	case 5, 10, 12, 16, 17, 18: // RATIONAL SRATIONAL DOUBLE LONG8 SLONG8 IFD8
		return 8
	}
	return 0
}

type tiffField struct {
	tag, typ uint16
	count    int64
	data     []byte // inline or small out-of-line values
	at       int64  // file offset of a large value array not yet read (data nil)
}

func (p *ifdParser) readIFD(off int64) (tiffPage, int64, error) {
	var page tiffPage
	entrySize, countSize := int64(12), int64(2)
	if p.big {
		entrySize, countSize = 20, 8
	}
	cb, err := p.read(off, countSize)
	if err != nil {
		return page, 0, err
	}
	var count int64
	if p.big {
		count = int64(p.bo.Uint64(cb))
	} else {
		count = int64(p.bo.Uint16(cb))
	}
	if count == 0 || count > 4096 {
		return page, 0, fmt.Errorf("implausible entry count %d", count)
	}
	nextSize := int64(4)
	if p.big {
		nextSize = 8
	}
	body, err := p.read(off+countSize, count*entrySize+nextSize)
	if err != nil {
		return page, 0, err
	}
	fields := map[uint16]tiffField{}
	for i := int64(0); i < count; i++ {
		e := body[i*entrySize : (i+1)*entrySize]
		f := tiffField{tag: p.bo.Uint16(e), typ: p.bo.Uint16(e[2:])}
		ts := typeSize(f.typ)
		if ts == 0 {
			continue // unknown type: skip, as libtiff does
		}
		var valField []byte
		if p.big {
			f.count = int64(p.bo.Uint64(e[4:]))
			valField = e[12:20]
		} else {
			f.count = int64(p.bo.Uint32(e[4:]))
			valField = e[8:12]
		}
		if f.count < 0 || f.count > 1<<40 {
			return page, 0, fmt.Errorf("tag %d: implausible count %d", f.tag, f.count)
		}
		total := ts * f.count
		if total <= int64(len(valField)) {
			f.data = valField[:total]
		} else {
			var vo int64
			if p.big {
				vo = int64(p.bo.Uint64(valField))
			} else {
				vo = int64(p.bo.Uint32(valField))
			}
			// Large arrays (tile offsets of a big level) are read lazily below.
			if f.tag == 324 || f.tag == 325 || f.tag == 273 || f.tag == 279 {
				if vo+total > p.size || vo < 0 {
					return page, 0, fmt.Errorf("tag %d: values at %d+%d beyond end of file (%d bytes): %w", f.tag, vo, total, p.size, errTruncated)
				}
				f.at = vo
				fields[f.tag] = f
				continue
			}
			if f.data, err = p.read(vo, total); err != nil {
				return page, 0, fmt.Errorf("tag %d: %w", f.tag, err)
			}
		}
		fields[f.tag] = f
	}
	num := func(tag uint16) (int64, bool) {
		f, ok := fields[tag]
		if !ok || f.count < 1 {
			return 0, false
		}
		return p.value(f, 0), true
	}
	rational := func(tag uint16) float64 {
		f, ok := fields[tag]
		if !ok || f.typ != 5 || len(f.data) < 8 {
			return 0
		}
		num, den := p.bo.Uint32(f.data), p.bo.Uint32(f.data[4:])
		if den == 0 {
			return 0
		}
		return float64(num) / float64(den)
	}
	page.Width, _ = num(256)
	page.Height, _ = num(257)
	page.TileW, _ = num(322)
	page.TileH, _ = num(323)
	c, _ := num(259)
	page.Compression = int(c)
	if page.Compression == 0 {
		page.Compression = compNone
	}
	ph, _ := num(262)
	page.Photometric = int(ph)
	spp, ok := num(277)
	if !ok {
		spp = 1
	}
	page.SamplesPerPx = int(spp)
	bps, ok := num(258)
	if !ok {
		bps = 1
	}
	page.BitsPerSample = int(bps)
	page.SubfileType, _ = num(254)
	if f, ok := fields[270]; ok && f.typ == 2 {
		page.Description = string(bytes.TrimRight(f.data, "\x00"))
	}
	page.XRes, page.YRes = rational(282), rational(283)
	ru, ok := num(296)
	if !ok {
		ru = 2
	}
	page.ResUnit = int(ru)
	if f, ok := fields[330]; ok {
		page.SubIFDs = int(f.count)
	}
	if f, ok := fields[347]; ok && (f.typ == 7 || f.typ == 1) {
		page.jpegTables = f.data
	}
	if page.Width <= 0 || page.Height <= 0 {
		return page, 0, fmt.Errorf("missing or zero image size (%dx%d)", page.Width, page.Height)
	}
	offTag, cntTag := uint16(273), uint16(279)
	if page.TileW > 0 {
		offTag, cntTag = 324, 325
	}
	if err := p.checkChunks(&page, fields[offTag], fields[cntTag]); err != nil {
		return page, 0, err
	}
	page.nextPtrAt = off + countSize + count*entrySize
	nb := body[count*entrySize:]
	var next int64
	if p.big {
		next = int64(p.bo.Uint64(nb))
	} else {
		next = int64(p.bo.Uint32(nb))
	}
	return page, next, nil
}

// value returns element i of an inline field as an integer.
func (p *ifdParser) value(f tiffField, i int64) int64 {
	switch typeSize(f.typ) {
	case 1:
		return int64(f.data[i])
	case 2:
		return int64(p.bo.Uint16(f.data[2*i:]))
	case 4:
		return int64(p.bo.Uint32(f.data[4*i:]))
	case 8:
		return int64(p.bo.Uint64(f.data[8*i:]))
	}
	return 0
}

// chunkIndex returns the tile/strip offsets and byte counts of page i
// (checked against the file's size by parseTIFF).
func (ti *tiffInfo) chunkIndex(i int) (offs, cnts []int64, err error) {
	pg := ti.Pages[i]
	if !pg.hasDataOffsets {
		return nil, nil, errors.New("page has no data offsets")
	}
	p := ti.parser
	all := func(f tiffField) ([]int64, error) {
		data := f.data
		if data == nil {
			var err error
			if data, err = p.read(f.at, typeSize(f.typ)*f.count); err != nil {
				return nil, err
			}
		}
		v := make([]int64, f.count)
		g := tiffField{typ: f.typ, data: data}
		for j := range v {
			v[j] = p.value(g, int64(j))
		}
		return v, nil
	}
	if offs, err = all(pg.chunkOffs); err != nil {
		return nil, nil, err
	}
	if cnts, err = all(pg.chunkCnts); err != nil {
		return nil, nil, err
	}
	return offs, cnts, nil
}

// checkChunks verifies every tile/strip of the page lies inside the file.
// Offset arrays are streamed in blocks so a huge level costs little memory.
func (p *ifdParser) checkChunks(page *tiffPage, offs, cnts tiffField) error {
	if offs.count == 0 {
		return nil // no data offsets: libvips will say what is wrong
	}
	if cnts.count != offs.count {
		return fmt.Errorf("%d data offsets but %d byte counts", offs.count, cnts.count)
	}
	page.hasDataOffsets = true
	page.DataChunks = offs.count
	page.chunkOffs, page.chunkCnts = offs, cnts
	get := func(f tiffField) func(i int64) (int64, error) {
		ts := typeSize(f.typ)
		if f.data == nil {
			// Large out-of-line array: read it in blocks.
			base := f.at
			const block = 4096
			var buf []byte
			var bufStart int64 = -1
			return func(i int64) (int64, error) {
				if bufStart < 0 || i < bufStart || i >= bufStart+block {
					bufStart = i - i%block
					n := min(int64(block), f.count-bufStart)
					var err error
					if buf, err = p.read(base+bufStart*ts, n*ts); err != nil {
						return 0, err
					}
				}
				j := i - bufStart
				return p.value(tiffField{typ: f.typ, data: buf}, j), nil
			}
		}
		return func(i int64) (int64, error) { return p.value(f, i), nil }
	}
	off, cnt := get(offs), get(cnts)
	for i := int64(0); i < offs.count; i++ {
		o, err := off(i)
		if err != nil {
			return err
		}
		c, err := cnt(i)
		if err != nil {
			return err
		}
		if c == 0 {
			page.MissingChunks++
			continue
		}
		if o+c > p.size || o < 0 || c < 0 {
			return fmt.Errorf("image data of tile/strip %d at %d+%d lies beyond end of file (%d bytes): %w", i, o, c, p.size, errTruncated)
		}
		if o+c > page.DataEnd {
			page.DataEnd = o + c
		}
	}
	return nil
}

func tiffMPP(p tiffPage) (float64, bool) {
	unit := map[int]string{2: "inch", 3: "centimeter"}[p.ResUnit]
	return tiffResolutionMPP(strconv.FormatFloat(p.XRes, 'g', -1, 64), unit)
}

func compressionName(c int) string {
	switch c {
	case compNone:
		return "none"
	case compLZW:
		return "lzw"
	case compOldJPEG:
		return "old-jpeg"
	case compJPEG:
		return "jpeg"
	case compDeflate, compAdobeZIP:
		return "deflate"
	case compJP2KYCbCr, compJP2KRGB:
		return "jpeg2000"
	case compWebP:
		return "webp"
	}
	return "tiff-" + strconv.Itoa(c)
}

// relinkTIFF rewrites the IFD chain of the TIFF at path in place so that
// only the pages for which keep returns true remain (the dropped pages' data
// stays in the file, unreferenced). Page 0 must be kept. The fixture writer
// uses it to turn libvips' 2× pyramid into an Aperio-like 4× one.
func relinkTIFF(path string, keep func(page int) bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ti, err := parseTIFF(f, fi.Size())
	if err != nil {
		return err
	}
	if !keep(0) {
		return errors.New("relink: page 0 must be kept")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	var hdr [2]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return err
	}
	if string(hdr[:]) == "MM" {
		bo = binary.BigEndian
	}
	// Offsets of each IFD: page 0 from the header, the others from the
	// previous page's next pointer.
	offsets := make([]int64, len(ti.Pages))
	ptr := make([]byte, 8)
	for i := 1; i < len(ti.Pages); i++ {
		n := 4
		if ti.BigTIFF {
			n = 8
		}
		if _, err := f.ReadAt(ptr[:n], ti.Pages[i-1].nextPtrAt); err != nil {
			return err
		}
		if ti.BigTIFF {
			offsets[i] = int64(bo.Uint64(ptr))
		} else {
			offsets[i] = int64(bo.Uint32(ptr))
		}
	}
	last := 0
	for i := 1; i <= len(ti.Pages); i++ {
		if i < len(ti.Pages) && !keep(i) {
			continue
		}
		var next int64
		if i < len(ti.Pages) {
			next = offsets[i]
		}
		if ti.BigTIFF {
			bo.PutUint64(ptr, uint64(next))
			_, err = f.WriteAt(ptr[:8], ti.Pages[last].nextPtrAt)
		} else {
			bo.PutUint32(ptr, uint32(next))
			_, err = f.WriteAt(ptr[:4], ti.Pages[last].nextPtrAt)
		}
		if err != nil {
			return err
		}
		last = i
	}
	return f.Sync()
}
