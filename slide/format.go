package slide

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// A Format is one slide file format that Open can read, or recognise and
// refuse. Each format registers itself with RegisterFormat from an init
// function in its own file of this package (format_*.go), as image formats
// do with image.RegisterFormat.
//
// A format claims a file when Sniff accepts the file's first bytes (with
// SharedMagic, only when the file's extension is one of Extensions too), or,
// for a format without Sniff, when the extension is one of Extensions. When
// several formats claim a file, one that lists the file's extension wins;
// among the rest, the one registered first (package slide's files register
// in file-name order). A file no format claims fails with an error wrapping
// ErrUnknownFormat that names the known formats.
//
// Errors from ReadMetadata and Open are lower-case and do not name the file:
// the package's Open and ReadMetadata prefix them with "slide: <file name>: ".
type Format struct {
	// Name is short and lower-case ("tiff", "ndpi", "dicom"); it appears in
	// error messages.
	Name string
	// Extensions are the format's file-name extensions, lower-case with the
	// dot (".svs"). A directory scan picks up files with any registered
	// extension (see Extensions); an extension belongs to one format only.
	Extensions []string
	// Sniff reports whether header, the file's first HeaderLen bytes (all of
	// a shorter file), carries the format's magic. It must only look at
	// header. nil: the format has no magic and is known by its extension.
	Sniff func(header []byte) bool
	// SharedMagic marks a format whose magic is a family's (the TIFF-based
	// vendor formats: NDPI, SCN, BIF): Sniff matching is necessary, and the
	// extension decides.
	SharedMagic bool
	// ReadMetadata reads the header only (no pixels): container, vendor,
	// levels, resolution, associated images, and in Reader the libvips
	// loader that decodes the levels (ReaderTIFF, ReaderOpenSlide or
	// ReaderImage). Path, ID and SizeBytes are filled in by the caller, as
	// are the --mpp override and the resolution derived from the objective
	// power.
	ReadMetadata func(path string, opt Options) (Metadata, error)
	// Open, when set, opens the slide itself: for a format whose levels
	// libvips cannot load by path, its Slide carries its own level opener
	// (see newSlide). nil: Open is ReadMetadata's metadata with the loader
	// its Reader names.
	Open func(path string, opt Options) (*Slide, error)
}

// HeaderLen is how many leading bytes of a file Sniff sees.
const HeaderLen = 512

// ErrUnknownFormat is wrapped by the error for a file no registered format
// claims.
var ErrUnknownFormat = errors.New("unknown format")

var (
	formatsMu sync.Mutex               // serialises RegisterFormat
	formats   atomic.Pointer[[]Format] // read without a lock by Open
)

// RegisterFormat adds a format. It is meant for init functions and panics
// on a format that is incomplete or clashes with one already registered
// (same name or extension).
func RegisterFormat(f Format) {
	formatsMu.Lock()
	defer formatsMu.Unlock()
	if err := checkFormat(f, registered()); err != nil {
		panic("slide: RegisterFormat: " + err.Error())
	}
	f.Extensions = slices.Clone(f.Extensions)
	list := append(slices.Clone(registered()), f)
	formats.Store(&list)
}

func checkFormat(f Format, have []Format) error {
	switch {
	case f.Name == "" || f.Name != strings.ToLower(f.Name) || strings.ContainsAny(f.Name, " ,()"):
		return fmt.Errorf("format name %q: want a short lower-case word", f.Name)
	case f.ReadMetadata == nil && f.Open == nil:
		return fmt.Errorf("format %s has neither ReadMetadata nor Open", f.Name)
	case f.Sniff == nil && len(f.Extensions) == 0:
		return fmt.Errorf("format %s has neither Sniff nor Extensions: no file can be it", f.Name)
	case f.SharedMagic && (f.Sniff == nil || len(f.Extensions) == 0):
		return fmt.Errorf("format %s: SharedMagic needs Sniff and Extensions", f.Name)
	}
	for _, e := range f.Extensions {
		if len(e) < 2 || e[0] != '.' || e != strings.ToLower(e) || strings.ContainsAny(e[1:], "./ ") {
			return fmt.Errorf("format %s: extension %q: want lower-case with one leading dot", f.Name, e)
		}
	}
	for _, g := range have {
		if g.Name == f.Name {
			return fmt.Errorf("format %s registered twice", f.Name)
		}
		for _, e := range f.Extensions {
			if slices.Contains(g.Extensions, e) {
				return fmt.Errorf("format %s: extension %s already belongs to format %s", f.Name, e, g.Name)
			}
		}
	}
	return nil
}

func registered() []Format {
	if p := formats.Load(); p != nil {
		return *p
	}
	return nil
}

// Extensions returns the extensions of every registered format, sorted,
// lower-case with the dot: the files a directory scan picks up.
func Extensions() []string {
	var out []string
	for _, f := range registered() {
		out = append(out, f.Extensions...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// lookupFormat picks the format of a file from its first bytes and its name;
// ok is false when no registered format claims it.
func lookupFormat(header []byte, name string) (Format, bool) {
	return pickFormat(registered(), header, name)
}

func pickFormat(list []Format, header []byte, name string) (Format, bool) {
	ext := strings.ToLower(filepath.Ext(name))
	best := -1
	for i, f := range list {
		extOK := ext != "" && slices.Contains(f.Extensions, ext)
		var claims bool
		switch {
		case f.Sniff == nil:
			claims = extOK
		case f.SharedMagic:
			claims = extOK && f.Sniff(header)
		default:
			claims = f.Sniff(header)
		}
		if !claims {
			continue
		}
		if extOK {
			return f, true
		}
		if best < 0 {
			best = i
		}
	}
	if best < 0 {
		return Format{}, false
	}
	return list[best], true
}

// knownFormats lists the registered formats for error messages:
// "dicom (.dcm), image, tiff (.btf .svs .tif .tiff), ...".
func knownFormats() string {
	list := slices.Clone(registered())
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	parts := make([]string, len(list))
	for i, f := range list {
		parts[i] = f.Name
		if len(f.Extensions) > 0 {
			exts := slices.Clone(f.Extensions)
			sort.Strings(exts)
			parts[i] += " (" + strings.Join(exts, " ") + ")"
		}
	}
	return strings.Join(parts, ", ")
}

// formatOf checks that path is a non-empty regular file and picks its
// format. Its errors are complete ("slide: <file name>: ...").
func formatOf(path string) (Format, os.FileInfo, error) {
	if err := ensureInit(); err != nil {
		return Format{}, nil, err
	}
	name := path
	fail := func(format string, a ...any) error {
		return fmt.Errorf("slide: %s: "+format, append([]any{name}, a...)...)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Format{}, nil, fail("%w", unwrapPathError(err))
	}
	if fi.IsDir() {
		return Format{}, nil, fail("is a directory")
	}
	if fi.Size() == 0 {
		return Format{}, nil, fail("empty file (0 bytes)")
	}
	header, err := readHeader(path)
	if err != nil {
		return Format{}, nil, fail("%w", unwrapPathError(err))
	}
	f, ok := lookupFormat(header, name)
	if !ok {
		return Format{}, nil, fail("%w, not a slide or image this build can read (known formats: %s)", ErrUnknownFormat, knownFormats())
	}
	return f, fi, nil
}

// readHeader returns the first HeaderLen bytes of the file (all of a shorter
// one).
func readHeader(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, HeaderLen)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}
