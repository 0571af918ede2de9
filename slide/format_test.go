package slide

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// withFormats registers fs for the test's duration; the registry is restored
// after. Tests that use it must not run in parallel with Open callers.
func withFormats(t *testing.T, fs ...Format) {
	t.Helper()
	saved := registered()
	t.Cleanup(func() {
		formatsMu.Lock()
		defer formatsMu.Unlock()
		formats.Store(&saved)
	})
	for _, f := range fs {
		RegisterFormat(f)
	}
}

// Crafted headers.
var (
	hdrTIFFLE   = []byte("II*\x00\x08\x00\x00\x00")
	hdrTIFFBE   = []byte("MM\x00*\x00\x00\x00\x08")
	hdrBigLE    = []byte("II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00")
	hdrBigBE    = []byte("MM\x00+\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10")
	hdrBigBadSz = []byte("II+\x00\x04\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00") // BigTIFF with 4-byte offsets: not TIFF
	hdrDICOM    = dicomHeader(make([]byte, 128))
	hdrDualDCM  = dicomHeader(append(bytes.Clone(hdrTIFFLE), make([]byte, 120)...)) // TIFF header in the DICOM preamble
	hdrJPEG     = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")
	hdrPNG      = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	hdrGIF      = []byte("GIF89a\x01\x00\x01\x00")
	hdrWebP     = []byte("RIFF\x24\x00\x00\x00WEBPVP8 ")
	hdrSQLite   = []byte("SQLite format 3\x00\x10\x00")
	hdrText     = []byte("this is not a slide\n")
	hdrGarbage  = []byte{0x00, 0x01, 0x02, 0x03, 0xde, 0xad, 0xbe, 0xef}
)

func dicomHeader(preamble []byte) []byte {
	return append(append(preamble, "DICM"...), "\x02\x00\x00\x00UL\x04\x00"...)
}

func TestSniffHeaders(t *testing.T) {
	cases := []struct {
		name   string
		header []byte
		file   string
		want   string // "" = unknown
	}{
		{"classic TIFF little-endian", hdrTIFFLE, "a.tif", "tiff"},
		{"classic TIFF big-endian", hdrTIFFBE, "a.tiff", "tiff"},
		{"Aperio SVS", hdrTIFFLE, "a.svs", "tiff"},
		{"BigTIFF little-endian", hdrBigLE, "a.btf", "tiff"},
		{"BigTIFF big-endian", hdrBigBE, "a.tif", "tiff"},
		{"TIFF, unknown extension", hdrTIFFLE, "a.dat", "tiff"},
		{"TIFF, no extension", hdrTIFFBE, "slide", "tiff"},
		{"TIFF named .ndpi", hdrTIFFLE, "a.ndpi", "ndpi"},
		{"TIFF named .NDPI", hdrTIFFLE, "a.NDPI", "ndpi"},
		{"TIFF named .scn", hdrBigLE, "a.scn", "scn"},
		{"BigTIFF named .bif", hdrBigLE, "a.bif", "bif"},
		{"BigTIFF with bad offset size", hdrBigBadSz, "a.tif", ""},
		{"short TIFF magic", []byte("II*\x00"), "a.tif", ""},
		{"DICOM", hdrDICOM, "a.dcm", "dicom"},
		{"DICOM, other extension", hdrDICOM, "a.dicom", "dicom"},
		{"DICOM named .svs", hdrDICOM, "a.svs", "dicom"},
		{"dual DICOM/TIFF named .dcm", hdrDualDCM, "a.dcm", "dicom"},
		{"dual DICOM/TIFF named .dicom", hdrDualDCM, "a.dicom", "dicom"},
		{"dual DICOM/TIFF named .tif", hdrDualDCM, "a.tif", "tiff"},
		{"DICM at offset 0", []byte("DICM" + strings.Repeat("\x00", 200)), "a.dcm", ""},
		{"DICM cut short", hdrDICOM[:131], "a.dcm", ""},
		{"JPEG", hdrJPEG, "a.jpg", "image"},
		{"PNG", hdrPNG, "a.png", "image"},
		{"GIF", hdrGIF, "a.gif", "image"},
		{"WebP", hdrWebP, "a.webp", "image"},
		{"JPEG named .png", hdrJPEG, "a.png", "image"},
		{"PNG named .JPG", hdrPNG, "a.JPG", "image"},
		{"TIFF named .png", hdrTIFFLE, "a.png", "tiff"},
		{"text named .png", hdrText, "a.png", ""},
		{"JPEG named .svs", hdrJPEG, "a.svs", "image"},
		{"JPEG named .mrxs", hdrJPEG, "a.mrxs", "mrxs"},
		{"text named .mrxs", hdrText, "a.mrxs", "mrxs"},
		{"text named .vms", hdrText, "a.vms", "vms"},
		{"text named .vmu", hdrText, "a.VMU", "vms"},
		{"SQLite named .svslide", hdrSQLite, "a.svslide", "svslide"},
		{"SQLite, other extension", hdrSQLite, "a.db", "svslide"},
		{"text named .svs", hdrText, "notes.svs", ""},
		{"text named .ndpi", hdrText, "a.ndpi", ""},
		{"text named .dcm", hdrText, "a.dcm", ""},
		{"garbage", hdrGarbage, "a.bin", ""},
		{"empty header", nil, "a.tif", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, ok := lookupFormat(c.header, c.file)
			got := ""
			if ok {
				got = f.Name
			}
			if got != c.want {
				t.Errorf("%s with header %q: format %q, want %q", c.file, c.header, got, c.want)
			}
		})
	}
}

// The registered extensions are the ones the pipeline scanned for before
// formats were a registry, and JPEG's and PNG's (folders of image patches).
func TestExtensions(t *testing.T) {
	want := []string{".bif", ".btf", ".dcm", ".jpeg", ".jpg", ".mrxs", ".ndpi", ".png", ".scn", ".svs", ".svslide", ".tif", ".tiff", ".vms", ".vmu"}
	if got := Extensions(); !slices.Equal(got, want) {
		t.Errorf("Extensions() = %v, want %v", got, want)
	}
}

// A format registered from a _test.go file: its own magic and extension,
// its own level opener and associated image.
const fakeMagic = "FAKEWSI\x00"

func fakeFormat(opened *int) Format {
	level := func(w, h int, r, g, b uint8) *raster.RGB {
		img := raster.New(w, h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.Set(x, y, r, g, b)
			}
		}
		return img
	}
	meta := func() Metadata {
		return Metadata{
			Format: "fake", Vendor: "fake", Reader: "fake",
			Levels:         []Level{{Width: 64, Height: 48, Downsample: 1}, {Width: 16, Height: 12, Downsample: 4}},
			MPPX:           0.25,
			MPPY:           0.25,
			MPPSource:      "fake header",
			ObjectivePower: 40,
			Associated:     []string{"label"},
		}
	}
	return Format{
		Name:       "fakewsi",
		Extensions: []string{".fakewsi"},
		Sniff:      func(h []byte) bool { return bytes.HasPrefix(h, []byte(fakeMagic)) },
		ReadMetadata: func(string, Options) (Metadata, error) {
			return meta(), nil
		},
		Open: func(path string, opt Options) (*Slide, error) {
			*opened++
			s := newSlide(meta())
			s.openLevel = func(i int) (*vipsImage, error) {
				lv := s.Meta.Levels[i]
				return imageFromRGB(level(int(lv.Width), int(lv.Height), uint8(10*i+10), 20, 30))
			}
			s.readAssociated = func(name string) (*raster.RGB, error) { return level(8, 8, 1, 2, 3), nil }
			return s, nil
		},
	}
}

func TestRegisteredFormatIsUsed(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fake := append([]byte(fakeMagic), make([]byte, 100)...)
	byMagic := write("slide.bin", fake)
	byExt := write("other.fakewsi", fake)

	if _, err := Open(byMagic, Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("before registering: %v, want an unknown-format error", err)
	}
	opened := 0
	withFormats(t, fakeFormat(&opened))

	if !slices.Contains(Extensions(), ".fakewsi") {
		t.Errorf("Extensions() = %v lacks the registered .fakewsi", Extensions())
	}
	if !strings.Contains(knownFormats(), "fakewsi (.fakewsi)") {
		t.Errorf("known formats %q lack fakewsi", knownFormats())
	}
	for _, p := range []string{byMagic, byExt} {
		s, err := Open(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := s.Meta
		if m.Reader != "fake" || m.Path != p || m.ID != ID(p) || m.SizeBytes != int64(len(fake)) || m.Levels[1].MPPX != 1 {
			t.Errorf("%s: meta %+v", filepath.Base(p), m)
		}
		for lvl, want := range []uint8{10, 20} {
			img, err := s.ReadRegion(lvl, 2, 2, 4, 4)
			if err != nil {
				t.Fatal(err)
			}
			if r, g, b := img.At(1, 1); r != want || g != 20 || b != 30 {
				t.Errorf("level %d pixel %d,%d,%d, want %d,20,30 from the format's own opener", lvl, r, g, b, want)
			}
		}
		if a, err := s.Associated("label"); err != nil || a.W != 8 {
			t.Errorf("associated label: %v", err)
		}
		s.Close()
	}
	if opened != 2 {
		t.Errorf("format Open called %d times, want 2", opened)
	}
	// ReadMetadata uses the format's header reader, with the common
	// finishing (override, per-level resolution).
	m, err := ReadMetadata(byExt, Options{MPP: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if opened != 2 || m.MPPX != 0.5 || m.MPPSource != "--mpp override" || m.Levels[1].MPPX != 2 || m.ID != "other" {
		t.Errorf("ReadMetadata: opened %d, meta %+v", opened, m)
	}
	// A file the fake does not claim still goes to the built-in formats.
	if _, err := Open(write("notes.fakewsi.txt", []byte("text")), Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("text file: %v", err)
	}
}

// A format sharing the TIFF magic is chosen by its extension only.
func TestSharedMagicGoesByExtension(t *testing.T) {
	withFormats(t, Format{
		Name: "faketiff", Extensions: []string{".faketif"}, SharedMagic: true,
		Sniff:        func(h []byte) bool { return tiffContainer(h) != "" },
		ReadMetadata: func(string, Options) (Metadata, error) { return Metadata{}, errors.New("fake") },
	})
	for file, want := range map[string]string{"a.faketif": "faketiff", "a.FAKETIF": "faketiff", "a.tif": "tiff", "a.dat": "tiff"} {
		if f, _ := lookupFormat(hdrBigLE, file); f.Name != want {
			t.Errorf("%s: %q, want %q", file, f.Name, want)
		}
	}
	if f, ok := lookupFormat(hdrText, "a.faketif"); ok {
		t.Errorf("a text file named .faketif went to %s", f.Name)
	}
}

func TestRegisterFormatRejects(t *testing.T) {
	read := func(string, Options) (Metadata, error) { return Metadata{}, nil }
	sniff := func([]byte) bool { return false }
	cases := []struct {
		f    Format
		want string
	}{
		{Format{Extensions: []string{".x1"}, ReadMetadata: read}, "name"},
		{Format{Name: "Big", Extensions: []string{".x1"}, ReadMetadata: read}, "name"},
		{Format{Name: "x", Extensions: []string{".x1"}}, "neither ReadMetadata nor Open"},
		{Format{Name: "x", ReadMetadata: read}, "neither Sniff nor Extensions"},
		{Format{Name: "x", SharedMagic: true, Extensions: []string{".x1"}, ReadMetadata: read}, "SharedMagic"},
		{Format{Name: "x", Extensions: []string{"x1"}, ReadMetadata: read}, "extension"},
		{Format{Name: "x", Extensions: []string{".X1"}, ReadMetadata: read}, "extension"},
		{Format{Name: "x", Extensions: []string{".x.1"}, ReadMetadata: read}, "extension"},
		{Format{Name: "tiff", Sniff: sniff, ReadMetadata: read}, "registered twice"},
		{Format{Name: "x", Extensions: []string{".x1", ".svs"}, ReadMetadata: read}, "already belongs to format tiff"},
	}
	for _, c := range cases {
		func() {
			defer func() {
				r := recover()
				if msg := fmt.Sprint(r); r == nil || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "slide: RegisterFormat: ") {
					t.Errorf("RegisterFormat(%+v) panicked with %v, want a panic saying %q", c.f, r, c.want)
				}
			}()
			withFormats(t, c.f)
		}()
	}
	if got := Extensions(); slices.Contains(got, ".x1") {
		t.Errorf("a rejected format left its extension: %v", got)
	}
}

func TestUnknownFormatError(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"junk.bin":  hdrGarbage,
		"notes.svs": []byte("this is not a slide\n"),
		"short.dcm": []byte("DICM"),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p, Options{})
		_, merr := ReadMetadata(p, Options{})
		for _, err := range []error{err, merr} {
			if !errors.Is(err, ErrUnknownFormat) {
				t.Fatalf("%s: %v, want ErrUnknownFormat", name, err)
			}
			want := "slide: " + p + ": unknown format, not a slide or image this build can read (known formats: " +
				"bif (.bif), dicom (.dcm), image (.jpeg .jpg .png), mrxs (.mrxs), ndpi (.ndpi), scn (.scn), svslide (.svslide), " +
				"tiff (.btf .svs .tif .tiff), vms (.vms .vmu))"
			if err.Error() != want {
				t.Errorf("error\n %q\nwant\n %q", err, want)
			}
		}
	}
}

// FuzzSniff checks the format choice on arbitrary headers: no panic, the
// header untouched, the TIFF sniffer agreeing with the TIFF parser, and the
// choice following the registry's rules.
func FuzzSniff(f *testing.F) {
	for _, h := range [][]byte{hdrTIFFLE, hdrTIFFBE, hdrBigLE, hdrBigBE, hdrBigBadSz, hdrDICOM, hdrDualDCM,
		hdrJPEG, hdrPNG, hdrGIF, hdrWebP, hdrSQLite, hdrText, hdrGarbage, tinyTIFF(100, 50, "Aperio|MPP = 0.5", 16)} {
		f.Add(h, "a.svs")
		f.Add(h, "a.ndpi")
		f.Add(h, "a.dcm")
		f.Add(h, "a")
	}
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		if len(data) > HeaderLen {
			data = data[:HeaderLen]
		}
		orig := bytes.Clone(data)
		got, ok := lookupFormat(data, name)
		if !bytes.Equal(data, orig) {
			t.Fatalf("a sniffer changed the header")
		}
		again, ok2 := lookupFormat(data, name)
		if ok != ok2 || got.Name != again.Name {
			t.Fatalf("not deterministic: %q then %q", got.Name, again.Name)
		}
		_, perr := parseTIFF(bytes.NewReader(data), int64(len(data)))
		if isTIFF := tiffContainer(data) != ""; isTIFF == errors.Is(perr, errNotTIFF) {
			t.Fatalf("tiffContainer says TIFF=%v, parseTIFF says %v", isTIFF, perr)
		}
		if isDICOM(data) != (len(data) >= 132 && string(data[128:132]) == "DICM") {
			t.Fatalf("isDICOM disagrees with the DICM magic")
		}
		ext := strings.ToLower(filepath.Ext(name))
		extOK := ext != "" && slices.Contains(got.Extensions, ext)
		if !ok {
			for _, fm := range registered() {
				if fm.Sniff != nil && !fm.SharedMagic && fm.Sniff(data) {
					t.Fatalf("format %s sniffs the header but none was chosen", fm.Name)
				}
			}
			return
		}
		switch {
		case got.Sniff == nil || got.SharedMagic:
			if !extOK {
				t.Fatalf("%s chosen for %q without its extension", got.Name, name)
			}
		case !got.Sniff(data):
			t.Fatalf("%s chosen but its sniffer refuses the header", got.Name)
		}
		if got.Name == "tiff" && isDICOM(data) && !extOK {
			t.Fatalf("a DICOM file named %q went to tiff", name)
		}
		if !extOK {
			// Nothing that also has the extension may claim the file.
			for _, fm := range registered() {
				if slices.Contains(fm.Extensions, ext) && ext != "" && (fm.Sniff == nil || fm.Sniff(data)) {
					t.Fatalf("%s chosen for %q, but %s claims it by extension", got.Name, name, fm.Name)
				}
			}
		}
	})
}
