package slide

import (
	"bytes"
	"fmt"
	"strings"
)

// Plain images (JPEG, PNG, GIF, WebP) open as one-level slides, read by
// libvips' own loader for the file. JPEG's and PNG's extensions are
// registered, so a directory scan picks up folders of image patches (as
// datasets such as BCI ship them); TIFF images are the TIFF family's
// (format_tiff.go). GIF and WebP are not histology formats: they open when
// named explicitly but a scan passes them by. Images carry no resolution
// the pipeline trusts: they need --mpp.
func init() {
	RegisterFormat(Format{
		Name:         "image",
		Extensions:   []string{".jpg", ".jpeg", ".png"},
		Sniff:        isPlainImage,
		ReadMetadata: readImageMetadata,
	})
}

func isPlainImage(h []byte) bool {
	switch {
	case len(h) >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF: // JPEG SOI + marker
		return true
	case bytes.HasPrefix(h, []byte("\x89PNG\r\n\x1a\n")):
		return true
	case bytes.HasPrefix(h, []byte("GIF8")):
		return true
	case len(h) >= 12 && string(h[:4]) == "RIFF" && string(h[8:12]) == "WEBP":
		return true
	}
	return false
}

func readImageMetadata(path string, _ Options) (Metadata, error) {
	header, err := readHeader(path)
	if err != nil {
		return Metadata{}, unwrapPathError(err)
	}
	lv, err := imageLevel(path)
	if err != nil {
		return Metadata{}, err
	}
	return Metadata{
		Format: sniffImageFormat(header),
		Vendor: "image",
		Reader: ReaderImage,
		Levels: []Level{lv},
	}, nil
}

// imageLevel opens path with libvips' loader for it and returns its size as
// the one level of a slide.
func imageLevel(path string) (Level, error) {
	img, err := openGeneric(path)
	if err != nil {
		msg := firstLine(err.Error())
		if strings.Contains(msg, "is not a known file format") {
			msg = "unrecognised file format"
		}
		return Level{}, fmt.Errorf("not a slide or image libvips can read: %s", msg)
	}
	w, h := img.size()
	img.close()
	return Level{Width: int64(w), Height: int64(h), Downsample: 1}, nil
}

// sniffImageFormat names the container of a plain image for
// Metadata.Format.
func sniffImageFormat(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "jpeg"
	case len(b) >= 8 && string(b[1:4]) == "PNG":
		return "png"
	}
	return "image"
}
