package slide

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Formats only OpenSlide reads: every level goes through openslideload.
// NDPI, SCN and BIF are TIFF inside, but their levels are not plain TIFF
// pages (NDPI's JPEG restart-marker strips, SCN's composed images, BIF's
// overlapping tiles), so tiffload is never used for them; their TIFF magic
// is the TIFF family's, and the extension tells them apart. MIRAX and
// Hamamatsu VMS have no magic in the named file: OpenSlide itself knows
// them by extension.
func init() {
	isTIFF := func(h []byte) bool { return tiffContainer(h) != "" }
	for _, f := range []struct {
		name, label string
		exts        []string
		sniff       func([]byte) bool
		shared      bool // the magic is the TIFF family's
	}{
		{"ndpi", "Hamamatsu NDPI", []string{".ndpi"}, isTIFF, true},
		{"scn", "Leica SCN", []string{".scn"}, isTIFF, true},
		{"bif", "Ventana BIF", []string{".bif"}, isTIFF, true},
		{"mrxs", "MIRAX", []string{".mrxs"}, nil, false},
		{"vms", "Hamamatsu VMS", []string{".vms", ".vmu"}, nil, false},
		{"svslide", "Sakura SVSlide", []string{".svslide"}, isSQLite, false},
	} {
		RegisterFormat(Format{
			Name:         f.name,
			Extensions:   f.exts,
			Sniff:        f.sniff,
			SharedMagic:  f.shared,
			ReadMetadata: readOpenSlideMetadata(f.label),
		})
	}
}

// isSQLite: Sakura SVSlide files are SQLite databases.
func isSQLite(h []byte) bool { return strings.HasPrefix(string(h), "SQLite format 3\x00") }

// readOpenSlideMetadata reads a slide of an OpenSlide-only format; label
// names the format in errors.
func readOpenSlideMetadata(label string) func(string, Options) (Metadata, error) {
	return func(path string, opt Options) (Metadata, error) {
		props, err := openSlideProperties(path)
		if err != nil {
			return Metadata{}, fmt.Errorf("unreadable %s: %w", label, err)
		}
		meta := Metadata{Properties: props, Reader: ReaderOpenSlide}
		if err := fillFromOpenSlide(&meta, props); err != nil {
			return Metadata{}, err
		}
		if header, err := readHeader(path); err == nil {
			meta.Format = tiffContainer(header)
		}
		if meta.Format != "" && opt.Reader != ReaderOpenSlide {
			// As for the TIFF family: the compression of the pages that
			// hold the levels, when the directory says.
			if ti := parseTIFFFile(path); ti != nil {
				_, meta.Compression, _ = matchTIFFPages(ti, meta.Levels)
			}
		}
		if opt.Reader == ReaderTIFF {
			return Metadata{}, errNoTIFFReader(meta.Compression)
		}
		return meta, nil
	}
}

// parseTIFFFile parses the TIFF directory of path, or returns nil.
func parseTIFFFile(path string) *tiffInfo {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	ti, err := parseTIFF(f, fi.Size())
	if err != nil {
		return nil
	}
	return ti
}

// fillFromOpenSlide reads levels, MPP, objective power and associated images
// from OpenSlide's properties.
func fillFromOpenSlide(meta *Metadata, p map[string]string) error {
	meta.Vendor = p["openslide.vendor"]
	nl, err := strconv.Atoi(p["openslide.level-count"])
	if err != nil || nl < 1 || nl > 64 {
		return fmt.Errorf("bad openslide.level-count %q", p["openslide.level-count"])
	}
	for i := 0; i < nl; i++ {
		key := func(k string) string { return fmt.Sprintf("openslide.level[%d].%s", i, k) }
		w, _ := strconv.ParseInt(p[key("width")], 10, 64)
		h, _ := strconv.ParseInt(p[key("height")], 10, 64)
		ds, _ := strconv.ParseFloat(p[key("downsample")], 64)
		tw, _ := strconv.ParseInt(p[key("tile-width")], 10, 64)
		th, _ := strconv.ParseInt(p[key("tile-height")], 10, 64)
		if w <= 0 || h <= 0 || !(ds >= 1) {
			return fmt.Errorf("level %d: bad size %dx%d or downsample %q", i, w, h, p[key("downsample")])
		}
		meta.Levels = append(meta.Levels, Level{Width: w, Height: h, Downsample: ds, TileWidth: tw, TileHeight: th})
	}
	mx, okx := positiveFloat(p["openslide.mpp-x"])
	my, oky := positiveFloat(p["openslide.mpp-y"])
	switch {
	case okx && oky:
		meta.MPPX, meta.MPPY, meta.MPPSource = mx, my, "openslide.mpp-x/y"
	case p["aperio.MPP"] != "":
		if v, ok := positiveFloat(p["aperio.MPP"]); ok {
			meta.MPPX, meta.MPPY, meta.MPPSource = v, v, "aperio.MPP"
		}
	}
	if meta.MPPX == 0 {
		if v, ok := tiffResolutionMPP(p["tiff.XResolution"], p["tiff.ResolutionUnit"]); ok {
			vy, oky := tiffResolutionMPP(p["tiff.YResolution"], p["tiff.ResolutionUnit"])
			if !oky {
				vy = v
			}
			meta.MPPX, meta.MPPY, meta.MPPSource = v, vy, "tiff resolution"
		}
	}
	if v, ok := positiveFloat(p["openslide.objective-power"]); ok {
		meta.ObjectivePower = v
	} else if v, ok := positiveFloat(p["aperio.AppMag"]); ok {
		meta.ObjectivePower = v
	}
	if a := p["slide-associated-images"]; a != "" {
		for _, n := range strings.Split(a, ",") {
			if n = strings.TrimSpace(n); n != "" {
				meta.Associated = append(meta.Associated, n)
			}
		}
	}
	sort.Strings(meta.Associated)
	return nil
}
