package slide_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
	"github.com/her2wsi/her2wsi/tiling"
)

// A minimal DICOM writer for test series: explicit VR little endian
// headers, frames uncompressed or in JPEG baseline (Go's encoder).

type dcmBuf struct {
	bytes.Buffer
	implicit bool // implicit VR little endian
}

func (b *dcmBuf) tag(tag uint32) {
	binary.Write(b, binary.LittleEndian, uint16(tag>>16))
	binary.Write(b, binary.LittleEndian, uint16(tag))
}

func (b *dcmBuf) el(tag uint32, vr string, val []byte) {
	if len(val)%2 == 1 {
		pad := byte(' ')
		if vr == "UI" || vr == "OB" {
			pad = 0
		}
		val = append(val, pad)
	}
	b.tag(tag)
	if b.implicit {
		binary.Write(b, binary.LittleEndian, uint32(len(val)))
		b.Write(val)
		return
	}
	b.WriteString(vr)
	switch vr {
	case "OB", "OW", "SQ", "UN", "UT":
		b.Write([]byte{0, 0})
		binary.Write(b, binary.LittleEndian, uint32(len(val)))
	default:
		binary.Write(b, binary.LittleEndian, uint16(len(val)))
	}
	b.Write(val)
}

func (b *dcmBuf) str(tag uint32, vr, s string) { b.el(tag, vr, []byte(s)) }
func (b *dcmBuf) us(tag uint32, v int) {
	b.el(tag, "US", binary.LittleEndian.AppendUint16(nil, uint16(v)))
}
func (b *dcmBuf) ul(tag uint32, v int) {
	b.el(tag, "UL", binary.LittleEndian.AppendUint32(nil, uint32(v)))
}
func (b *dcmBuf) sl(tag uint32, v int) {
	b.el(tag, "SL", binary.LittleEndian.AppendUint32(nil, uint32(int32(v))))
}

// seq writes a sequence of undefined length with items of defined length.
func (b *dcmBuf) seq(tag uint32, items ...[]byte) {
	b.tag(tag)
	if !b.implicit {
		b.WriteString("SQ")
		b.Write([]byte{0, 0})
	}
	binary.Write(b, binary.LittleEndian, uint32(0xFFFFFFFF))
	for _, it := range items {
		b.tag(0xFFFEE000)
		binary.Write(b, binary.LittleEndian, uint32(len(it)))
		b.Write(it)
	}
	b.tag(0xFFFEE0DD)
	binary.Write(b, binary.LittleEndian, uint32(0))
}

type genDICOM struct {
	img        *raster.RGB
	fw, fh     int
	series     string
	imageType  string // e.g. "ORIGINAL\PRIMARY\VOLUME\NONE"
	jpeg       bool
	sparse     bool // TILED_SPARSE, frames in reverse order, cell skip left out
	skip       int  // with sparse: the cell with no frame (-1: none)
	spacingMM  string
	ts         string // override the transfer syntax
	frames     int    // override NumberOfFrames (0: the real count)
	dropFrames int    // frames left out of the pixel data
	noDimOrg   bool
	quality    int  // JPEG quality, default 100
	j2k        bool // lossless JPEG 2000 frames
	colMajor   bool // frames stored column by column (with noDimOrg: the TCGA file's way)
}

// cells returns the frames of g.img, row-major, edge frames padded black.
func (g genDICOM) cells() (across, down int, frames []*raster.RGB) {
	across, down = (g.img.W+g.fw-1)/g.fw, (g.img.H+g.fh-1)/g.fh
	for cy := 0; cy < down; cy++ {
		for cx := 0; cx < across; cx++ {
			f := raster.New(g.fw, g.fh)
			clear(f.Pix)
			for y := 0; y < g.fh && cy*g.fh+y < g.img.H; y++ {
				for x := 0; x < g.fw && cx*g.fw+x < g.img.W; x++ {
					s := ((cy*g.fh+y)*g.img.W + cx*g.fw + x) * 3
					copy(f.Pix[(y*g.fw+x)*3:][:3], g.img.Pix[s:s+3])
				}
			}
			frames = append(frames, f)
		}
	}
	return
}

func writeDICOM(t testing.TB, path string, g genDICOM) {
	t.Helper()
	ts := "1.2.840.10008.1.2.1"
	if g.jpeg {
		ts = "1.2.840.10008.1.2.4.50"
	}
	if g.j2k {
		ts, g.jpeg = "1.2.840.10008.1.2.4.90", true
	}
	if g.ts != "" {
		ts = g.ts
	}
	if g.imageType == "" {
		g.imageType = `ORIGINAL\PRIMARY\VOLUME\NONE`
	}
	const sop = "1.2.840.10008.5.1.4.1.1.77.1.6"
	inst := "1.2.3.4." + fmt.Sprint(len(path)*7919+g.img.W)
	var meta dcmBuf
	meta.el(0x00020001, "OB", []byte{0, 1})
	meta.str(0x00020002, "UI", sop)
	meta.str(0x00020003, "UI", inst)
	meta.str(0x00020010, "UI", ts)
	var out dcmBuf
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	out.ul(0x00020000, meta.Len())
	out.Write(meta.Bytes())
	imp := ts == "1.2.840.10008.1.2"
	out.implicit = imp

	across, _, cells := g.cells()
	type placed struct {
		f      *raster.RGB
		cx, cy int
	}
	var frames []placed
	for i, f := range cells {
		frames = append(frames, placed{f, i % across, i / across})
	}
	if g.colMajor {
		down := len(cells) / across
		frames = frames[:0]
		for cx := 0; cx < across; cx++ {
			for cy := 0; cy < down; cy++ {
				frames = append(frames, placed{cells[cy*across+cx], cx, cy})
			}
		}
	}
	if g.sparse {
		var keep []placed
		for i := len(frames) - 1; i >= 0; i-- {
			if i != g.skip {
				keep = append(keep, frames[i])
			}
		}
		frames = keep
	}
	n := len(frames)
	if g.frames > 0 {
		n = g.frames
	}
	out.str(0x00080008, "CS", g.imageType)
	out.str(0x00080016, "UI", sop)
	out.str(0x00080018, "UI", inst)
	out.str(0x00080060, "CS", "SM")
	out.str(0x0020000E, "UI", g.series)
	if !g.noDimOrg {
		if g.sparse {
			out.str(0x00209311, "CS", "TILED_SPARSE")
		} else {
			out.str(0x00209311, "CS", "TILED_FULL")
		}
	}
	out.us(0x00280002, 3)
	if g.j2k {
		out.str(0x00280004, "CS", "RGB")
	} else if g.jpeg {
		out.str(0x00280004, "CS", "YBR_FULL_422")
	} else {
		out.str(0x00280004, "CS", "RGB")
	}
	out.us(0x00280006, 0)
	out.str(0x00280008, "IS", fmt.Sprint(n))
	out.us(0x00280010, g.fh)
	out.us(0x00280011, g.fw)
	out.us(0x00280100, 8)
	out.us(0x00280101, 8)
	out.us(0x00280102, 7)
	out.us(0x00280103, 0)
	out.ul(0x00480006, g.img.W)
	out.ul(0x00480007, g.img.H)
	if g.spacingMM != "" {
		pm, shared := dcmBuf{implicit: imp}, dcmBuf{implicit: imp}
		pm.str(0x00280030, "DS", g.spacingMM)
		shared.seq(0x00289110, pm.Bytes())
		out.seq(0x52009229, shared.Bytes())
	}
	if g.sparse {
		var items [][]byte
		for _, f := range frames {
			pos, it := dcmBuf{implicit: imp}, dcmBuf{implicit: imp}
			pos.sl(0x0048021E, f.cx*g.fw+1)
			pos.sl(0x0048021F, f.cy*g.fh+1)
			it.seq(0x0048021A, pos.Bytes())
			items = append(items, it.Bytes())
		}
		out.seq(0x52009230, items...)
	}
	frames = frames[:len(frames)-g.dropFrames]
	if g.jpeg {
		out.tag(0x7FE00010)
		out.WriteString("OB")
		out.Write([]byte{0, 0})
		binary.Write(&out, binary.LittleEndian, uint32(0xFFFFFFFF))
		out.tag(0xFFFEE000)
		binary.Write(&out, binary.LittleEndian, uint32(0))
		for _, f := range frames {
			var j bytes.Buffer
			if g.j2k {
				b, err := slide.EncodeJ2K(f.f)
				if err != nil {
					t.Fatal(err)
				}
				j.Write(b)
			} else if err := jpeg.Encode(&j, rgbImage(f.f), &jpeg.Options{Quality: cmp.Or(g.quality, 100)}); err != nil {
				t.Fatal(err)
			}
			if j.Len()%2 == 1 {
				j.WriteByte(0)
			}
			out.tag(0xFFFEE000)
			binary.Write(&out, binary.LittleEndian, uint32(j.Len()))
			out.Write(j.Bytes())
		}
		out.tag(0xFFFEE0DD)
		binary.Write(&out, binary.LittleEndian, uint32(0))
	} else {
		var pix []byte
		for _, f := range frames {
			pix = append(pix, f.f.Pix...)
		}
		out.el(0x7FE00010, "OB", pix)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rgbImage(m *raster.RGB) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i := 0; i < m.W*m.H; i++ {
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2], 255
	}
	return img
}

// dcmPattern is a smooth but position-revealing test image.
func dcmPattern(w, h, seed int) *raster.RGB {
	m := raster.New(w, h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetRGBA(x, y, color.RGBA{uint8(x + seed), uint8(y * 2), uint8((x + y) / 2), 255})
		}
	}
	return m
}

// crop returns the w×h region at (x, y) of m, white outside it.
func crop(m *raster.RGB, x, y, w, h int) *raster.RGB {
	out := raster.New(w, h)
	for i := range out.Pix {
		out.Pix[i] = 255
	}
	for r := 0; r < h; r++ {
		for c := 0; c < w; c++ {
			if x+c >= 0 && x+c < m.W && y+r >= 0 && y+r < m.H {
				copy(out.Pix[(r*w+c)*3:][:3], m.Pix[((y+r)*m.W+x+c)*3:][:3])
			}
		}
	}
	return out
}

// diff returns the largest and the mean absolute difference.
func diff(a, b *raster.RGB) (int, float64) {
	mx, sum := 0, 0
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d < 0 {
			d = -d
		}
		mx, sum = max(mx, d), sum+d
	}
	return mx, float64(sum) / float64(len(a.Pix))
}

var dicomRegions = [][4]int{{0, 0, 300, 200}, {50, 40, 30, 30}, {60, 60, 10, 10}, {290, 190, 20, 20}, {-5, -5, 12, 12}, {100, 50, 150, 100}}

// wantRegions reads each of dicomRegions at level of s and fails for every
// one whose pixels are not exactly src's there (what names the reads).
func wantRegions(t *testing.T, s *slide.Slide, level int, src *raster.RGB, what string) {
	t.Helper()
	for _, r := range dicomRegions {
		got, err := s.ReadRegion(level, r[0], r[1], r[2], r[3])
		if err != nil {
			t.Fatal(err)
		}
		if mx, _ := diff(got, crop(src, r[0], r[1], r[2], r[3])); mx != 0 {
			t.Errorf("%s %v differs from the source by up to %d", what, r, mx)
		}
	}
}

func TestDICOMTiledFullUncompressedExact(t *testing.T) {
	dir := t.TempDir()
	src := dcmPattern(300, 200, 0)
	p := filepath.Join(dir, "a.dcm")
	writeDICOM(t, p, genDICOM{img: src, fw: 64, fh: 48, series: "1.2.3", spacingMM: `0.00025\0.0005`})
	s := openSlide(t, p, slide.Options{})
	if s.Meta.MPPX != 0.5 || s.Meta.MPPY != 0.25 || s.Meta.MPPSource != "dicom PixelSpacing" || len(s.Meta.Levels) != 1 ||
		s.Meta.Levels[0].Width != 300 || s.Meta.Levels[0].TileWidth != 64 {
		t.Fatalf("meta %+v", s.Meta)
	}
	wantRegions(t, s, 0, src, "region")
}

func TestDICOMJPEG2000Exact(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j2k.dcm")
	src := dcmPattern(150, 100, 2)
	writeDICOM(t, p, genDICOM{img: src, fw: 64, fh: 64, series: "2", j2k: true})
	s := openSlide(t, p, slide.Options{})
	if s.Meta.Compression != "jpeg 2000 lossless" {
		t.Errorf("compression %q", s.Meta.Compression)
	}
	wantRegions(t, s, 0, src, "lossless JPEG 2000 region")
}

func TestDICOMImplicitVRSparse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "imp.dcm")
	src := dcmPattern(200, 150, 5)
	writeDICOM(t, p, genDICOM{img: src, fw: 64, fh: 64, series: "7", ts: "1.2.840.10008.1.2", sparse: true, skip: -1, spacingMM: `0.0005\0.0005`})
	s := openSlide(t, p, slide.Options{})
	if s.Meta.MPPX != 0.5 || s.Meta.Levels[0].Width != 200 || s.Meta.Levels[0].Height != 150 {
		t.Fatalf("meta %+v", s.Meta)
	}
	got, err := s.ReadRegion(0, 0, 0, 200, 150)
	if err != nil {
		t.Fatal(err)
	}
	if mx, _ := diff(got, src); mx != 0 {
		t.Errorf("implicit VR TILED_SPARSE differs from its source by up to %d", mx)
	}
}

func TestDICOMSparseJPEGMultiLevelFolder(t *testing.T) {
	dir := t.TempDir()
	l0, l1 := dcmPattern(300, 200, 0), dcmPattern(150, 100, 9)
	writeDICOM(t, filepath.Join(dir, "l0.dcm"), genDICOM{img: l0, fw: 64, fh: 64, series: "9.9", jpeg: true, sparse: true, skip: 2})
	writeDICOM(t, filepath.Join(dir, "l1.dcm"), genDICOM{img: l1, fw: 64, fh: 64, series: "9.9"})
	writeDICOM(t, filepath.Join(dir, "label.dcm"), genDICOM{img: dcmPattern(40, 30, 3), fw: 40, fh: 30, series: "9.9", imageType: `ORIGINAL\PRIMARY\LABEL\NONE`})
	writeDICOM(t, filepath.Join(dir, "other.dcm"), genDICOM{img: dcmPattern(600, 400, 1), fw: 64, fh: 64, series: "8.8"})
	for _, f := range []string{"l0.dcm", "l1.dcm", "label.dcm"} {
		if got := slide.DICOMSeriesPrimary(filepath.Join(dir, f)); got != filepath.Join(dir, "l0.dcm") {
			t.Errorf("primary of %s: %s, want l0.dcm", f, got)
		}
	}
	if got := slide.DICOMSeriesPrimary(filepath.Join(dir, "other.dcm")); got != filepath.Join(dir, "other.dcm") {
		t.Errorf("primary of other.dcm: %s", got)
	}
	s := openSlide(t, filepath.Join(dir, "l1.dcm"), slide.Options{})
	m := s.Meta
	if len(m.Levels) != 2 || m.Levels[0].Width != 300 || m.Levels[1].Width != 150 || m.Levels[1].Downsample != 2 || m.MPPX != 0 ||
		len(m.Associated) != 1 || m.Associated[0] != "label" {
		t.Fatalf("meta %+v", m)
	}
	if _, _, err := s.MPP(); !errors.Is(err, slide.ErrNoMPP) {
		t.Errorf("no PixelSpacing: want ErrNoMPP, got %v", err)
	}
	// Level 0: JPEG, frame cell 2 (x 128..191, y 0..63) missing: white.
	want := crop(l0, 0, 0, 300, 200)
	for y := 0; y < 64; y++ {
		for x := 128; x < 192; x++ {
			copy(want.Pix[(y*300+x)*3:][:3], []byte{255, 255, 255})
		}
	}
	got, err := s.ReadRegion(0, 0, 0, 300, 200)
	if err != nil {
		t.Fatal(err)
	}
	// Go's JPEG encoder subsamples chroma 4:2:0; the pattern's wrap at
	// x = 256 is a sharp edge, so single pixels differ more. A misplaced
	// frame would move the mean by tens.
	if mx, mean := diff(got, want); mx > 64 || mean > 1.5 {
		t.Errorf("JPEG level 0 differs from its source: max %d, mean %.2f", mx, mean)
	}
	wantRegions(t, s, 1, l1, "level 1 region")
	lab, err := s.Associated("label")
	if err != nil {
		t.Fatal(err)
	}
	if mx, _ := diff(lab, dcmPattern(40, 30, 3)); mx != 0 {
		t.Errorf("label differs by up to %d", mx)
	}
	if _, _, err := s.Thumbnail(64); err != nil {
		t.Error(err)
	}
}

func TestDICOMBadInput(t *testing.T) {
	dir := t.TempDir()
	src := dcmPattern(200, 100, 0)
	base := genDICOM{img: src, fw: 64, fh: 64, series: "1.1"}
	cases := []struct {
		name string
		mod  func(g *genDICOM)
		cut  int // bytes cut off the end
		want string
	}{
		{"truncated", nil, 5000, "truncated"},
		{"truncated-jpeg", func(g *genDICOM) { g.jpeg = true }, 300, "truncated"},
		{"missing-frames", func(g *genDICOM) { g.jpeg = true; g.dropFrames = 2 }, 0, "fragments for"},
		{"frame-count", func(g *genDICOM) { g.frames = 5; g.dropFrames = 3 }, 0, "frames for a TILED_FULL matrix"},
		{"transfer-syntax", func(g *genDICOM) { g.ts = "1.2.840.10008.1.2.4.80" }, 0, "transfer syntax"},
		{"no-layout", func(g *genDICOM) { g.noDimOrg = true; g.img = noise(256, 128) }, 0, "the pixels do not tell the order"},
	}
	for _, c := range cases {
		g := base
		if c.mod != nil {
			c.mod(&g)
		}
		p := filepath.Join(dir, c.name+".dcm")
		writeDICOM(t, p, g)
		if c.cut > 0 {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-c.cut], 0o644)
		}
		_, err := slide.Open(p, slide.Options{})
		if err == nil {
			t.Errorf("%s: opened", c.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "slide: "+p+": ") || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: want one line naming %s and saying %q, got %q", c.name, p, c.want, msg)
		}
	}
}

func TestDICOMRealFiles(t *testing.T) {
	p := filepath.Join(dataDir(t, "dicom-wsi-tiled-full-jpeg"), "jpeg.dicom")
	s := openSlide(t, p, slide.Options{})
	if lv := s.Meta.Levels; len(lv) != 1 || lv[0].Width != 957 || lv[0].Height != 715 || lv[0].TileWidth != 256 {
		t.Fatalf("levels %+v", lv)
	}
	if x, y, err := s.MPP(); err != nil || x < 16.78 || x > 16.79 || y != x {
		t.Errorf("mpp %g %g %v", x, y, err)
	}
	if m, err := slide.ReadMetadata(p, slide.Options{}); err != nil || m.Levels[0].Width != 957 || m.MPPSource != "dicom PixelSpacing" || m.Compression != "jpeg baseline" {
		t.Errorf("ReadMetadata: %+v, %v", m, err)
	}
	whole, err := s.ReadRegion(0, 0, 0, 957, 715)
	if err != nil {
		t.Fatal(err)
	}
	// Regions across frame borders agree with the whole read.
	for _, r := range [][4]int{{250, 250, 20, 20}, {500, 500, 300, 215}, {0, 700, 957, 15}} {
		got, err := s.ReadRegion(0, r[0], r[1], r[2], r[3])
		if err != nil {
			t.Fatal(err)
		}
		if mx, _ := diff(got, crop(whole, r[0], r[1], r[2], r[3])); mx != 0 {
			t.Errorf("region %v differs from the whole read by %d", r, mx)
		}
	}
	// Row-major assembly: no seam at a frame border (the mean step across
	// x = 256 is like the steps beside it), a scrambled layout would show one.
	step := func(x int) float64 {
		sum := 0
		for y := 0; y < 715; y++ {
			for c := 0; c < 3; c++ {
				d := int(whole.Pix[(y*957+x)*3+c]) - int(whole.Pix[(y*957+x-1)*3+c])
				sum += max(d, -d)
			}
		}
		return float64(sum) / (715 * 3)
	}
	if seam, beside := step(256), (step(250)+step(262))/2; seam > 3*beside+5 {
		t.Errorf("seam at a frame border: step %.1f against %.1f beside it", seam, beside)
	}

}

// The TCGA file states neither DimensionOrganizationType nor frame
// positions, and stores its 7×6 frames column by column: the order is
// inferred from the pixels, said in the metadata, and the assembled image
// has no seams at frame borders.
func TestDICOMRealTCGAInferredOrder(t *testing.T) {
	p := filepath.Join(dataDir(t, "tcga-xk-aaju-dicom-wsi"), "small_dicom.dcm")
	s := openSlide(t, p, slide.Options{})
	m := s.Meta
	if lv := m.Levels; len(lv) != 1 || lv[0].Width != 3236 || lv[0].Height != 2638 || lv[0].TileWidth != 500 {
		t.Fatalf("levels %+v", lv)
	}
	if o := m.Properties["dicom.level[0].frame-order"]; !strings.HasPrefix(o, "column-major, inferred from image continuity") {
		t.Errorf("frame order %q", o)
	}
	if _, _, err := s.MPP(); !errors.Is(err, slide.ErrNoMPP) {
		t.Errorf("no PixelSpacing: want ErrNoMPP, got %v", err)
	}
	whole, err := s.ReadRegion(0, 0, 0, 3236, 2638)
	if err != nil {
		t.Fatal(err)
	}
	// Across each vertical frame border the mean step is like the steps
	// beside it; in row-major order it is many times larger.
	step := func(x int) float64 {
		sum := 0
		for y := 0; y < 2638; y++ {
			for c := 0; c < 3; c++ {
				d := int(whole.Pix[(y*3236+x)*3+c]) - int(whole.Pix[(y*3236+x-1)*3+c])
				sum += max(d, -d)
			}
		}
		return float64(sum) / (2638 * 3)
	}
	for _, x := range []int{500, 1000, 1500, 2000, 2500, 3000} {
		if seam, beside := step(x), (step(x-3)+step(x+3))/2; seam > 2*beside+2 {
			t.Errorf("seam at x = %d: step %.1f against %.1f beside it", x, seam, beside)
		}
	}
	for _, r := range [][4]int{{450, 950, 120, 120}, {2990, 2490, 246, 148}} {
		got, err := s.ReadRegion(0, r[0], r[1], r[2], r[3])
		if err != nil {
			t.Fatal(err)
		}
		if mx, _ := diff(got, crop(whole, r[0], r[1], r[2], r[3])); mx != 0 {
			t.Errorf("region %v differs from the whole read by %d", r, mx)
		}
	}
}

// Generated files without DimensionOrganizationType or positions: the
// order is inferred (row- or column-major) and the pixels equal the source.
func TestDICOMInferredOrderGenerated(t *testing.T) {
	for _, col := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "x.dcm")
		src := dcmPattern(300, 200, 0)
		// 60-px frames: the pattern's wrap at x = 256 is inside a frame
		// (a hard edge right on a frame border would look like a seam).
		writeDICOM(t, p, genDICOM{img: src, fw: 60, fh: 48, series: "1", noDimOrg: true, colMajor: col})
		s, err := slide.Open(p, slide.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := "row-major, inferred"
		if col {
			want = "column-major, inferred"
		}
		if o := s.Meta.Properties["dicom.level[0].frame-order"]; !strings.HasPrefix(o, want) {
			t.Errorf("column-major %v: frame order %q", col, o)
		}
		got, err := s.ReadRegion(0, 0, 0, 300, 200)
		if err != nil {
			t.Fatal(err)
		}
		if mx, _ := diff(got, src); mx != 0 {
			t.Errorf("column-major %v: differs from the source by %d", col, mx)
		}
		s.Close()
	}
}

// noise is an image whose frame borders say nothing about the frame order.
func noise(w, h int) *raster.RGB {
	m := raster.New(w, h)
	x := uint32(12345)
	for i := range m.Pix {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		m.Pix[i] = uint8(x)
	}
	return m
}

// Every truncation of a series file fails with one line naming the file (or,
// cut only after the pixel data's end, opens); none crashes.
func TestDICOMTruncatedAnywhere(t *testing.T) {
	dir := t.TempDir()
	for _, jp := range []bool{false, true} {
		whole := filepath.Join(dir, fmt.Sprint("whole-", jp, ".dcm"))
		writeDICOM(t, whole, genDICOM{img: dcmPattern(130, 70, 0), fw: 64, fh: 32, series: "1", jpeg: jp, sparse: jp, skip: -1, spacingMM: `0.0005\0.0005`})
		b, err := os.ReadFile(whole)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "cut.dcm")
		for n := 133; n < len(b); n += 1 + n/40 {
			if err := os.WriteFile(p, b[:n], 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := slide.Open(p, slide.Options{})
			if err != nil {
				if msg := err.Error(); !strings.HasPrefix(msg, "slide: "+p+": ") || strings.Contains(msg, "\n") {
					t.Fatalf("cut at %d: %q", n, msg)
				}
				continue
			}
			// Opened: then reading must fail cleanly or succeed.
			_, _ = s.ReadRegion(0, 0, 0, 130, 70)
			s.Close()
		}
	}
}

// Many goroutines reading one DICOM slide (sharing its frame cache) get the
// same pixels as one reader.
func TestDICOMConcurrentReads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.dcm")
	src := dcmPattern(300, 200, 0)
	writeDICOM(t, p, genDICOM{img: src, fw: 32, fh: 32, series: "3"})
	s := openSlide(t, p, slide.Options{})
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 40; i++ {
				x, y := (g*37+i*13)%280, (g*11+i*29)%180
				got, err := s.ReadRegion(0, x, y, 40, 30)
				if err == nil {
					if mx, _ := diff(got, crop(src, x, y, 40, 30)); mx != 0 {
						err = fmt.Errorf("region at (%d,%d) differs by %d", x, y, mx)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkDICOMReadPath compares the patch read path (tiling.PatchReader
// over Slide.ReadRegionBoxInto: 512×512 at level 0 averaged to 256×256, as
// for a 40× slide with no 20× level) on a generated 40× slide stored as an
// Aperio SVS (tiffload) and as a DICOM series of the same pixels
// (synth.WriteDICOM), with 1 and 2 goroutines. Each round opens the slides
// afresh (cold caches) and reads every patch over the tissue once; the two
// alternate round by round so machine noise hits both alike. ratio is the
// median over back-to-back pairs of svs time / dicom time (the goal:
// ≥ 0.9); cpu_ratio the same from the process' CPU time. Run: make
// bench-dicom.
func BenchmarkDICOMReadPath(b *testing.B) {
	dir := b.TempDir()
	const w, h = 12288, 8192
	o := synth.SlideOptions{Width: w, Height: h, Tissue: synth.Layout(w, h, 3), MPP: 0.25, AppMag: 40,
		Aperio: true, Pyramid4: true, Quality: 85, Seed: 1}
	svs := filepath.Join(dir, "b.svs")
	if err := synth.WriteSlide(svs, o); err != nil {
		b.Fatal(err)
	}
	files, err := synth.WriteDICOM(dir, "b", o)
	if err != nil {
		b.Fatal(err)
	}
	dcm := files[0]
	open := func(p string) *slide.Slide {
		s, err := slide.Open(p, slide.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	s := open(dcm)
	levels := make([]tiling.LevelInfo, len(s.Meta.Levels))
	for i, lv := range s.Meta.Levels {
		levels[i] = tiling.LevelInfo{Width: lv.Width, Height: lv.Height, Downsample: lv.Downsample}
	}
	s.Close()
	plan, err := tiling.PlanRead(levels, 0.25, tiling.DefaultGridConfig())
	if err != nil || plan.Level != 0 || plan.ReadSize != 512 {
		b.Fatalf("plan %+v, %v: want 512 px at level 0", plan, err)
	}
	var patches [][2]int64
	for _, r := range o.Tissue {
		for y := r.Min.Y; y+512 <= r.Max.Y; y += 512 {
			for x := r.Min.X; x+512 <= r.Max.X; x += 512 {
				patches = append(patches, [2]int64{int64(x), int64(y)})
			}
		}
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			// round returns the wall and the process CPU time of one pass.
			round := func(p string) (time.Duration, time.Duration) {
				t0, c0 := time.Now(), testutil.ProcessCPU()
				s := open(p)
				defer s.Close()
				var wg sync.WaitGroup
				for g := 0; g < workers; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						pr := tiling.NewPatchReader(s, plan)
						dst := raster.New(256, 256)
						for i := g; i < len(patches); i += workers {
							if err := pr.Read(patches[i][0], patches[i][1], dst); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				return time.Since(t0), testutil.ProcessCPU() - c0
			}
			round(svs) // the page cache
			round(dcm)
			var tSVS, tDCM, cSVS, cDCM time.Duration
			var pairs []float64 // svs/dicom wall time of rounds run back to back
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for r := 0; r < 6; r++ {
					var ws, wd, cs, cd time.Duration
					if r%2 == 0 {
						ws, cs = round(svs)
						wd, cd = round(dcm)
					} else {
						wd, cd = round(dcm)
						ws, cs = round(svs)
					}
					tSVS, tDCM, cSVS, cDCM = tSVS+ws, tDCM+wd, cSVS+cs, cDCM+cd
					pairs = append(pairs, ws.Seconds()/wd.Seconds())
				}
			}
			b.StopTimer()
			sort.Float64s(pairs)
			n := float64(6 * len(patches) * b.N)
			b.ReportMetric(n/tDCM.Seconds(), "dicom_patches/s")
			b.ReportMetric(n/tSVS.Seconds(), "svs_patches/s")
			// The ratio of the median pair (wall time, as the pipeline
			// sees it) and of the CPU time the process spent (what the
			// read path costs, less exposed to other processes on a
			// shared machine).
			b.ReportMetric(pairs[len(pairs)/2], "ratio")
			b.ReportMetric(cSVS.Seconds()/cDCM.Seconds(), "cpu_ratio")
		})
	}
}

// A frame with corrupt JPEG data fails the read with one line naming the
// file and the frame, rather than decoding into garbage.
func TestDICOMCorruptFrame(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.dcm")
	writeDICOM(t, p, genDICOM{img: dcmPattern(128, 64, 0), fw: 64, fh: 64, series: "1", jpeg: true})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The second frame's entropy-coded data ends early: an EOI marker
	// soon after its (last) SOS marker.
	sos := bytes.LastIndex(b, []byte{0xFF, 0xDA})
	b[sos+60], b[sos+61] = 0xFF, 0xD9
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := openSlide(t, p, slide.Options{})
	if _, err := s.ReadRegion(0, 0, 0, 64, 64); err != nil {
		t.Errorf("the first frame is intact: %v", err)
	}
	_, err = s.ReadRegion(0, 60, 0, 20, 20)
	if err == nil || !strings.Contains(err.Error(), "frame 2 (jpeg baseline): jpeg: Corrupt JPEG data") || !strings.HasPrefix(err.Error(), "slide: "+p+": ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("want one line naming %s and frame 2, got %v", p, err)
	}
}

// Whatever the bytes, opening and reading a .dcm file returns a slide or
// one error line naming the file; it never panics.
func FuzzDICOM(f *testing.F) {
	dir := f.TempDir()
	for i, g := range []genDICOM{
		{img: dcmPattern(70, 40, 0), fw: 32, fh: 32, series: "1", spacingMM: `0.0005\0.0005`},
		{img: dcmPattern(70, 40, 0), fw: 32, fh: 16, series: "1", jpeg: true, sparse: true, skip: 1},
		{img: dcmPattern(64, 48, 0), fw: 16, fh: 16, series: "1", ts: "1.2.840.10008.1.2", noDimOrg: true, colMajor: true},
	} {
		p := filepath.Join(dir, fmt.Sprint(i, ".dcm"))
		writeDICOM(f, p, g)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		p := filepath.Join(t.TempDir(), "f.dcm")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := slide.Open(p, slide.Options{})
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "slide: "+p+": ") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q", msg)
			}
			return
		}
		defer s.Close()
		if lv := s.Meta.Levels[0]; lv.TileWidth*lv.TileHeight <= 1<<20 {
			_, _ = s.ReadRegion(0, 0, 0, int(min(lv.Width, 64)), int(min(lv.Height, 64)))
		}
	})
}
