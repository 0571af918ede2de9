package slide

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// noOpenSlideOnce: the warning that libvips lacks its OpenSlide module is
// given once per process.
var noOpenSlideOnce sync.Once

// The TIFF family: Aperio SVS, generic pyramidal TIFF, BigTIFF, flat TIFF.
// OpenSlide reads the header (vendor, levels, resolution, associated
// images); when every level is a tiled TIFF page in a compression libvips
// decodes correctly, the levels are read with tiffload page by page (the
// fast path), else with openslideload. A TIFF OpenSlide does not take (a
// flat or stripped TIFF) opens as a one-level image. TIFF-based vendor
// formats with their own extension (NDPI, SCN, BIF) are registered in
// format_openslide.go and always read through OpenSlide.
func init() {
	RegisterFormat(Format{
		Name:         "tiff",
		Extensions:   []string{".svs", ".tif", ".tiff", ".btf"},
		Sniff:        func(h []byte) bool { return tiffContainer(h) != "" },
		ReadMetadata: readTIFFMetadata,
	})
}

func readTIFFMetadata(path string, opt Options) (Metadata, error) {
	f, err := os.Open(path)
	if err != nil {
		return Metadata{}, unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Metadata{}, unwrapPathError(err)
	}
	header := make([]byte, HeaderLen)
	n, _ := f.ReadAt(header, 0)
	header = header[:n]

	meta := Metadata{Properties: map[string]string{}}
	var tinfo *tiffInfo
	if ti, terr := parseTIFF(f, fi.Size()); terr == nil {
		tinfo = ti
		meta.Format = "tiff"
		if ti.BigTIFF {
			meta.Format = "bigtiff"
		}
	} else if !errors.Is(terr, errNotTIFF) {
		return Metadata{}, fmt.Errorf("damaged TIFF: %w", terr)
	}

	props, oserr := openSlideProperties(path)
	if oserr == nil {
		meta.Properties = props
		if err := fillFromOpenSlide(&meta, props); err != nil {
			return Metadata{}, err
		}
		meta.Reader = ReaderOpenSlide
		if tinfo != nil && opt.Reader != ReaderOpenSlide {
			if pages, comp, ok := matchTIFFPages(tinfo, meta.Levels); ok {
				for i := range meta.Levels {
					meta.Levels[i].page = pages[i]
				}
				meta.Reader = ReaderTIFF
				meta.Compression = comp
			} else if comp != "" {
				meta.Compression = comp
			}
		}
		if opt.Reader == ReaderTIFF && meta.Reader != ReaderTIFF {
			return Metadata{}, errNoTIFFReader(meta.Compression)
		}
		return meta, nil
	}

	// Not an OpenSlide slide: a TIFF libvips can load (flat, stripped)
	// becomes a one-level slide.
	if strings.Contains(oserr.Error(), `class "openslideload" not found`) {
		noOpenSlideOnce.Do(func() {
			slog.Warn("libvips has no OpenSlide loader (its vips-openslide module was not found; a bundle needs VIPSHOME): pyramidal slides open as one-level images, without their levels and vendor metadata", "slide", ID(path))
		})
	}
	lv, gerr := imageLevel(path)
	if gerr != nil {
		if tinfo != nil {
			return Metadata{}, fmt.Errorf("unreadable TIFF: %w", oserr)
		}
		return Metadata{}, gerr
	}
	meta.Reader = ReaderImage
	meta.Vendor = "image"
	if meta.Format == "" {
		meta.Format = sniffImageFormat(header)
	}
	meta.Levels = []Level{lv}
	if tinfo != nil {
		p := tinfo.Pages[0]
		meta.Compression = compressionName(p.Compression)
		meta.Properties["tiff.ImageDescription"] = p.Description
		if mx, ok := tiffMPP(p); ok {
			meta.MPPX, meta.MPPY, meta.MPPSource = mx, mx*p.XRes/nonzero(p.YRes), "tiff resolution"
		}
		if _, fields, ok := parseAperioDescription(p.Description); ok {
			applyAperioFields(&meta, fields)
		}
	}
	return meta, nil
}

func errNoTIFFReader(compression string) error {
	return fmt.Errorf("reader tiffload cannot decode this slide (compression %q): use the openslide reader", compression)
}

// matchTIFFPages maps each OpenSlide level to the TIFF page holding it, when
// every level is a tiled 8-bit RGB/YCbCr page whose compression libtiff and
// libvips decode correctly. JPEG 2000 (Aperio 33003/33005) is not: libvips'
// tiffload decodes it with the wrong colours, so such slides stay on
// OpenSlide.
func matchTIFFPages(ti *tiffInfo, levels []Level) (pages []int, comp string, ok bool) {
	used := map[int]bool{}
	for _, lv := range levels {
		found := -1
		for _, p := range ti.Pages {
			if used[p.Index] || p.Width != lv.Width || p.Height != lv.Height || p.TileW == 0 {
				continue
			}
			found = p.Index
			break
		}
		if found < 0 {
			return nil, comp, false
		}
		p := ti.Pages[found]
		comp = compressionName(p.Compression)
		switch p.Compression {
		case compJPEG, compNone, compLZW, compDeflate, compAdobeZIP:
		default:
			return nil, comp, false
		}
		if p.SamplesPerPx != 3 || p.BitsPerSample != 8 || (p.Photometric != 2 && p.Photometric != 6) || p.MissingChunks > 0 {
			return nil, comp, false
		}
		used[found] = true
		pages = append(pages, found)
	}
	return pages, comp, true
}

func nonzero(v float64) float64 {
	if v == 0 {
		return 1
	}
	return v
}
