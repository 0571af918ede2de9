package slide

import "fmt"

// DICOM WSI (the 128-byte preamble, then "DICM"): recognised and refused,
// since libvips 8.14 and OpenSlide 3.4.1 cannot read it. Registered before
// the TIFF family (file-name order), so a dual-personality file, a TIFF
// header in the DICOM preamble, is DICOM unless its extension is a TIFF
// one.
func init() {
	RegisterFormat(Format{
		Name:       "dicom",
		Extensions: []string{".dcm"},
		Sniff:      isDICOM,
		ReadMetadata: func(string, Options) (Metadata, error) {
			return Metadata{}, fmt.Errorf("%w: DICOM WSI (libvips 8.14 and OpenSlide 3.4.1 cannot read DICOM; OpenSlide ≥ 4.0 can)", ErrUnsupported)
		},
	})
}

func isDICOM(h []byte) bool { return len(h) >= 132 && string(h[128:132]) == "DICM" }
