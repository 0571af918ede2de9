package slide

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
	"github.com/her2wsi/her2wsi/internal/raster"
)

// DICOMOptions say how WriteDICOM lays out a series.
type DICOMOptions struct {
	FrameSize int // frame side in pixels (a multiple of 16), default 256
	Quality   int // JPEG quality, default 85
}

// WriteDICOM writes every level of s as a DICOM WSI series (VL Whole Slide
// Microscopy Image Storage) into dir: one instance per level,
// <name>-level-<i>.dcm, TILED_FULL with JPEG baseline frames (edge frames
// padded white), PixelSpacing in the Shared Functional Groups when s has a
// resolution. Each file appears complete or not at all. It returns the
// files written, level 0 first. For generated test series and benchmarks
// (the same pixels as a generated SVS); it is not a general converter (no
// label, no study metadata beyond UIDs derived from name).
func WriteDICOM(s *Slide, dir, name string, o DICOMOptions) ([]string, error) {
	if o.FrameSize == 0 {
		o.FrameSize = 256
	}
	if o.Quality == 0 {
		o.Quality = 85
	}
	if o.FrameSize <= 0 || o.FrameSize%16 != 0 || o.FrameSize > 4096 {
		return nil, fmt.Errorf("slide: write DICOM %s: frame size %d (want a multiple of 16 up to 4096)", name, o.FrameSize)
	}
	series, study := dicomUID(name, "series"), dicomUID(name, "study")
	var out []string
	for i, lv := range s.Meta.Levels {
		p := filepath.Join(dir, fmt.Sprintf("%s-level-%d.dcm", name, i))
		if err := writeDICOMLevel(s, i, p, series, study, o); err != nil {
			return out, fmt.Errorf("slide: write DICOM %s level %d (%dx%d): %w", p, i, lv.Width, lv.Height, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// dicomUID is a UID under the 2.25 root (a UUID-sized integer), derived
// from the given parts so the same series gets the same UIDs.
func dicomUID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	return "2.25." + new(big.Int).SetBytes(sum[:15]).String()
}

func writeDICOMLevel(s *Slide, level int, path, series, study string, o DICOMOptions) error {
	lv := s.Meta.Levels[level]
	fs := o.FrameSize
	across, down := int((lv.Width+int64(fs)-1)/int64(fs)), int((lv.Height+int64(fs)-1)/int64(fs))
	if lv.Width > 1<<31-1 || lv.Height > 1<<31-1 || across*down > 1<<24 {
		return fmt.Errorf("too large for one instance")
	}
	inst := dicomUID(series, "instance", strconv.Itoa(level))
	var meta dcmWriter
	meta.el(0x00020001, "OB", []byte{0, 1})
	meta.str(0x00020002, "UI", sopWSM)
	meta.str(0x00020003, "UI", inst)
	meta.str(0x00020010, "UI", tsJPEGBase)
	meta.str(0x00020012, "UI", "2.25.1")
	var hdr dcmWriter
	hdr.Write(make([]byte, 128))
	hdr.WriteString("DICM")
	hdr.ul(0x00020000, uint32(meta.Len()))
	hdr.Write(meta.Bytes())
	imageType := `ORIGINAL\PRIMARY\VOLUME\NONE`
	if level > 0 {
		imageType = `DERIVED\PRIMARY\VOLUME\RESAMPLED`
	}
	hdr.str(tagImageType, "CS", imageType)
	hdr.str(tagSOPClass, "UI", sopWSM)
	hdr.str(tagSOPInstance, "UI", inst)
	hdr.str(0x00080060, "CS", "SM")
	hdr.str(tagManufacturer, "LO", "her2wsi")
	hdr.str(0x0020000D, "UI", study)
	hdr.str(tagSeriesUID, "UI", series)
	hdr.str(0x00200013, "IS", strconv.Itoa(level+1))
	hdr.str(tagDimOrg, "CS", "TILED_FULL")
	hdr.us(tagSamples, 3)
	hdr.str(tagPhotometric, "CS", "YBR_FULL_422")
	hdr.us(tagPlanar, 0)
	hdr.str(tagNumFrames, "IS", strconv.Itoa(across*down))
	hdr.us(tagRows, uint16(fs))
	hdr.us(tagColumns, uint16(fs))
	hdr.us(tagBitsAllocated, 8)
	hdr.us(0x00280101, 8)
	hdr.us(0x00280102, 7)
	hdr.us(0x00280103, 0)
	hdr.ul(tagTotalCols, uint32(lv.Width))
	hdr.ul(tagTotalRows, uint32(lv.Height))
	if s.Meta.MPPX > 0 && s.Meta.MPPY > 0 && !strings.HasPrefix(s.Meta.MPPSource, "objective power") { // a measurement, not an assumption
		sp := strconv.FormatFloat(s.Meta.MPPY*lv.Downsample/1000, 'g', 10, 64) + `\` +
			strconv.FormatFloat(s.Meta.MPPX*lv.Downsample/1000, 'g', 10, 64)
		var pm, shared dcmWriter
		pm.str(tagPixelSpacing, "DS", sp)
		shared.seq(tagPixelMeasures, pm.Bytes())
		hdr.seq(tagSharedGroups, shared.Bytes())
	}
	hdr.tag(tagPixelData)
	hdr.WriteString("OB\x00\x00")
	hdr.u32(undefinedLength)
	hdr.tag(tagItem) // an empty basic offset table
	hdr.u32(0)

	f, err := atomicfile.CreateAtomic(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(hdr.Bytes())
	tile := raster.New(fs, fs)
	var item [8]byte
	for cy := 0; cy < down; cy++ {
		for cx := 0; cx < across; cx++ {
			if err := s.ReadRegionInto(level, cx*fs, cy*fs, tile); err != nil {
				return err
			}
			j, err := EncodeJPEG(tile, o.Quality)
			if err != nil {
				return err
			}
			if len(j)%2 == 1 {
				j = append(j, 0)
			}
			binary.LittleEndian.PutUint16(item[0:], 0xFFFE)
			binary.LittleEndian.PutUint16(item[2:], 0xE000)
			binary.LittleEndian.PutUint32(item[4:], uint32(len(j)))
			w.Write(item[:])
			if _, err := w.Write(j); err != nil {
				return err
			}
		}
	}
	binary.LittleEndian.PutUint16(item[0:], 0xFFFE)
	binary.LittleEndian.PutUint16(item[2:], 0xE0DD)
	binary.LittleEndian.PutUint32(item[4:], 0)
	w.Write(item[:])
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Commit()
}

// dcmWriter writes explicit VR little endian elements.
type dcmWriter struct{ bytes.Buffer }

func (b *dcmWriter) u32(v uint32) { b.Write(binary.LittleEndian.AppendUint32(nil, v)) }

func (b *dcmWriter) tag(tag uint32) {
	b.Write(binary.LittleEndian.AppendUint16(nil, uint16(tag>>16)))
	b.Write(binary.LittleEndian.AppendUint16(nil, uint16(tag)))
}

func (b *dcmWriter) el(tag uint32, vr string, val []byte) {
	if len(val)%2 == 1 {
		pad := byte(' ')
		if vr == "UI" || vr == "OB" {
			pad = 0
		}
		val = append(val, pad)
	}
	b.tag(tag)
	b.WriteString(vr)
	switch vr {
	case "OB", "OW", "SQ", "UN", "UT":
		b.Write([]byte{0, 0})
		b.u32(uint32(len(val)))
	default:
		b.Write(binary.LittleEndian.AppendUint16(nil, uint16(len(val))))
	}
	b.Write(val)
}

func (b *dcmWriter) str(tag uint32, vr, s string) { b.el(tag, vr, []byte(s)) }
func (b *dcmWriter) us(tag uint32, v uint16) {
	b.el(tag, "US", binary.LittleEndian.AppendUint16(nil, v))
}
func (b *dcmWriter) ul(tag uint32, v uint32) {
	b.el(tag, "UL", binary.LittleEndian.AppendUint32(nil, v))
}

// seq writes a sequence of undefined length whose items have defined length.
func (b *dcmWriter) seq(tag uint32, items ...[]byte) {
	b.tag(tag)
	b.WriteString("SQ\x00\x00")
	b.u32(undefinedLength)
	for _, it := range items {
		b.tag(tagItem)
		b.u32(uint32(len(it)))
		b.Write(it)
	}
	b.tag(tagSeqDelim)
	b.u32(0)
}
