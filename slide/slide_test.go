package slide_test

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
)

func dataDir(t testing.TB, sub string) string { return testutil.SharedData(t, sub) }

type fixture struct {
	name string
	opt  synth.SlideOptions
}

var tissue = []image.Rectangle{image.Rect(512, 512, 1536, 1280), image.Rect(2048, 1024, 3072, 2560)}

func writeFixture(t testing.TB, dir string, f fixture) string {
	t.Helper()
	p := filepath.Join(dir, f.name)
	if err := synth.WriteSlide(p, f.opt); err != nil {
		t.Fatalf("write %s: %v", f.name, err)
	}
	return p
}

// openSlide opens path; the slide is closed when the test ends.
func openSlide(t testing.TB, path string, opt slide.Options) *slide.Slide {
	t.Helper()
	s, err := slide.Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// corruptFixture writes bad.svs into dir, a 40× 4096² Aperio slide whose
// middle third (level 0 tile data; the header stays intact) is overwritten
// with noise.
func corruptFixture(t testing.TB, dir string) string {
	t.Helper()
	p := writeFixture(t, dir, fixture{"bad.svs", synth.SlideOptions{Width: 4096, Height: 4096, MPP: 0.25, Aperio: true, Pyramid4: true,
		Tissue: []image.Rectangle{image.Rect(0, 0, 4096, 4096)}}})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := len(b) / 3; i < 2*len(b)/3; i++ {
		b[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantJPEGError fails unless reading every unit (tile, patch) of
// corruptFixture's level 0 ended in err, one line naming bad.svs and the
// JPEG problem.
func wantJPEGError(t *testing.T, err error, unit string) {
	t.Helper()
	if err == nil {
		t.Fatalf("reading every %s of a corrupted level succeeded", unit)
	}
	msg := err.Error()
	if !strings.Contains(msg, "bad.svs") || !strings.Contains(strings.ToLower(msg), "jpeg") || strings.Contains(msg, "\n") {
		t.Errorf("error %q should be one line naming the file and the JPEG problem", msg)
	}
}

func TestOpenGeneratedFixtures(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		fixture
		format, vendor, reader string
		levels                 []int64 // widths
		downsamples            []float64
		mpp, power             float64
		mppSource              string
	}{
		{fixture{"aperio20.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, AppMag: 20, Aperio: true, Pyramid: true, Tissue: tissue}},
			"tiff", "aperio", slide.ReaderTIFF, []int64{4096, 2048, 1024, 512, 256}, []float64{1, 2, 4, 8, 16}, 0.5, 20, "openslide.mpp-x/y"},
		{fixture{"aperio40.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: tissue}},
			"tiff", "aperio", slide.ReaderTIFF, []int64{4096, 1024, 256}, []float64{1, 4, 16}, 0.25, 40, "openslide.mpp-x/y"},
		{fixture{"nompp.svs", synth.SlideOptions{Width: 2048, Height: 2048, Aperio: true, Pyramid: true, Tissue: tissue}},
			"tiff", "aperio", slide.ReaderTIFF, []int64{2048, 1024, 512, 256}, []float64{1, 2, 4, 8}, 0, 0, ""},
		{fixture{"big.tif", synth.SlideOptions{Width: 2048, Height: 1536, MPP: 0.5, BigTIFF: true, Pyramid: true, Tissue: tissue}},
			"bigtiff", "generic-tiff", slide.ReaderTIFF, []int64{2048, 1024, 512, 256}, []float64{1, 2, 4, 8}, 0.5, 0, "tiff resolution"},
		{fixture{"flat.tif", synth.SlideOptions{Width: 1024, Height: 768, MPP: 0.5, Tissue: tissue}},
			"tiff", "generic-tiff", slide.ReaderTIFF, []int64{1024}, []float64{1}, 0.5, 0, "tiff resolution"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFixture(t, dir, c.fixture)
			s := openSlide(t, p, slide.Options{})
			m := s.Meta
			if m.Format != c.format || m.Vendor != c.vendor || m.Reader != c.reader {
				t.Errorf("format/vendor/reader = %s/%s/%s, want %s/%s/%s", m.Format, m.Vendor, m.Reader, c.format, c.vendor, c.reader)
			}
			if m.ID != strings.TrimSuffix(c.name, filepath.Ext(c.name)) {
				t.Errorf("id %q", m.ID)
			}
			if len(m.Levels) != len(c.levels) {
				t.Fatalf("%d levels, want %d: %+v", len(m.Levels), len(c.levels), m.Levels)
			}
			for i, lv := range m.Levels {
				if lv.Width != c.levels[i] || math.Abs(lv.Downsample-c.downsamples[i]) > 1e-9 {
					t.Errorf("level %d: %dx%d ds %g, want width %d ds %g", i, lv.Width, lv.Height, lv.Downsample, c.levels[i], c.downsamples[i])
				}
			}
			if math.Abs(m.MPPX-c.mpp) > 1e-6 || m.ObjectivePower != c.power || m.MPPSource != c.mppSource {
				t.Errorf("mpp %g (%s) power %g, want %g (%s) %g", m.MPPX, m.MPPSource, m.ObjectivePower, c.mpp, c.mppSource, c.power)
			}
			_, _, err := s.MPP()
			if (c.mpp == 0) != errors.Is(err, slide.ErrNoMPP) {
				t.Errorf("MPP() error = %v", err)
			}
			if c.mpp == 0 && (err == nil || !strings.Contains(err.Error(), "--mpp") || !strings.Contains(err.Error(), c.name)) {
				t.Errorf("missing-MPP error must name the slide and --mpp: %v", err)
			}
		})
	}
}

func TestMPPOverride(t *testing.T) {
	p := writeFixture(t, t.TempDir(), fixture{"nompp.svs", synth.SlideOptions{Width: 1024, Height: 1024, Aperio: true, Pyramid: true}})
	s := openSlide(t, p, slide.Options{MPP: 0.4})
	if x, y, err := s.MPP(); err != nil || x != 0.4 || y != 0.4 || s.Meta.MPPSource != "--mpp override" {
		t.Fatalf("MPP = %g %g %v (%s)", x, y, err, s.Meta.MPPSource)
	}
	if s.Meta.Levels[1].MPPX != 0.8 {
		t.Errorf("level 1 mpp %g", s.Meta.Levels[1].MPPX)
	}
}

// The fast tiffload path must give exactly OpenSlide's pixels.
func TestTIFFReaderMatchesOpenSlide(t *testing.T) {
	paths := []string{writeFixture(t, t.TempDir(), fixture{"a.svs", synth.SlideOptions{Width: 3000, Height: 2000, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: tissue}})}
	if testutil.SharedDataRoot() != "" {
		paths = append(paths, filepath.Join(dataDir(t, "openslide-cmu-1-small-region-svs"), "CMU-1-Small-Region.svs"))
	}
	for _, p := range paths {
		fast, err := slide.Open(p, slide.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := slide.Open(p, slide.Options{Reader: slide.ReaderOpenSlide})
		if err != nil {
			t.Fatal(err)
		}
		if fast.Meta.Reader != slide.ReaderTIFF || ref.Meta.Reader != slide.ReaderOpenSlide {
			t.Fatalf("%s: readers %s %s", p, fast.Meta.Reader, ref.Meta.Reader)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for lvl, lv := range fast.Meta.Levels {
			for k := 0; k < 8; k++ {
				x, y := rng.IntN(int(lv.Width)), rng.IntN(int(lv.Height))
				w, h := 1+rng.IntN(300), 1+rng.IntN(300) // may run off the edge
				a, err := fast.ReadRegion(lvl, x, y, w, h)
				if err != nil {
					t.Fatal(err)
				}
				b, err := ref.ReadRegion(lvl, x, y, w, h)
				if err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(a, b); d != 0 {
					t.Errorf("%s level %d (%d,%d %dx%d): tiffload differs from openslide by %d", filepath.Base(p), lvl, x, y, w, h, d)
				}
			}
		}
		fast.Close()
		ref.Close()
	}
}

func maxDiff(a, b *raster.RGB) int {
	d := 0
	for i := range a.Pix {
		v := int(a.Pix[i]) - int(b.Pix[i])
		if v < 0 {
			v = -v
		}
		d = max(d, v)
	}
	return d
}

func TestReadRegionContentAndEdges(t *testing.T) {
	p := writeFixture(t, t.TempDir(), fixture{"c.svs", synth.SlideOptions{Width: 2048, Height: 1536, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: tissue}})
	s := openSlide(t, p, slide.Options{})
	// Inside a tissue rectangle: stained (not glass); outside: glass grey.
	in, err := s.ReadRegion(0, 600, 600, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.ReadRegion(0, 100, 100, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	if m := meanGreen(in); m > 200 {
		t.Errorf("tissue region mean green %.0f, want stained (< 200)", m)
	}
	if m := meanGreen(out); m < 235 {
		t.Errorf("glass region mean green %.0f, want ≥ 235", m)
	}
	// A region hanging off the bottom-right corner is white outside.
	edge, err := s.ReadRegion(0, 2048-10, 1536-10, 20, 20)
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b := edge.At(15, 15); r != 255 || g != 255 || b != 255 {
		t.Errorf("outside pixel = %d,%d,%d, want white", r, g, b)
	}
	if _, err := s.ReadRegion(9, 0, 0, 8, 8); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("bad level: %v", err)
	}
}

func meanGreen(m *raster.RGB) float64 {
	s := 0.0
	for i := 1; i < len(m.Pix); i += 3 {
		s += float64(m.Pix[i])
	}
	return s / float64(m.W*m.H)
}

// Many goroutines reading one slide get exactly what serial reads get.
func TestConcurrentReads(t *testing.T) {
	p := writeFixture(t, t.TempDir(), fixture{"conc.svs", synth.SlideOptions{Width: 4096, Height: 4096, MPP: 0.25, Aperio: true, Pyramid4: true, Tissue: tissue}})
	s := openSlide(t, p, slide.Options{})
	type req struct{ lvl, x, y int }
	rng := rand.New(rand.NewPCG(3, 4))
	var reqs []req
	for i := 0; i < 200; i++ {
		reqs = append(reqs, req{rng.IntN(2), rng.IntN(3800), rng.IntN(3800)})
	}
	sameUnderConcurrency(t, len(reqs), func(i int, _ *raster.RGB) (*raster.RGB, error) {
		r := reqs[i]
		return s.ReadRegion(r.lvl, r.x>>(2*r.lvl), r.y>>(2*r.lvl), 256, 256)
	})
}

// sameUnderConcurrency makes reads 0..n-1 one after the other, then again
// from 8 goroutines at once, and fails the test for every concurrent read
// that errs or differs from its serial result. read reads region i into
// dst (a fresh 256² raster for each serial read, one per goroutine for the
// concurrent ones) or returns its own.
func sameUnderConcurrency(t *testing.T, n int, read func(i int, dst *raster.RGB) (*raster.RGB, error)) {
	t.Helper()
	want := make([]*raster.RGB, n)
	for i := range want {
		var err error
		if want[i], err = read(i, raster.New(256, 256)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := raster.New(256, 256)
			for i := g; i < n; i += 8 {
				got, err := read(i, buf)
				if err != nil {
					errs <- err
					return
				}
				if maxDiff(got, want[i]) != 0 {
					errs <- fmt.Errorf("read %d differs under concurrency", i)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestThumbnail(t *testing.T) {
	p := writeFixture(t, t.TempDir(), fixture{"th.svs", synth.SlideOptions{Width: 8000, Height: 6000, MPP: 0.25, Aperio: true, Pyramid4: true, Tissue: []image.Rectangle{image.Rect(0, 0, 4000, 6000)}}})
	s := openSlide(t, p, slide.Options{})
	for _, c := range []struct{ side, want int }{{500, 2}, {501, 1}, {2000, 1}, {2001, 0}, {9000, 0}, {10, 2}} {
		if got := s.ThumbnailLevel(c.side); got != c.want {
			t.Errorf("ThumbnailLevel(%d) = %d, want %d (levels 8000, 2000, 500 wide)", c.side, got, c.want)
		}
	}
	th, scale, err := s.Thumbnail(400)
	if err != nil {
		t.Fatal(err)
	}
	if th.W != 400 || th.H != 300 || math.Abs(scale[0]-20) > 1e-9 {
		t.Fatalf("thumbnail %dx%d scale %v", th.W, th.H, scale)
	}
	// Left half is tissue, right half glass.
	_, gl, _ := th.At(100, 150)
	_, gr, _ := th.At(300, 150)
	if gl > 210 || gr < 235 {
		t.Errorf("thumbnail left green %d (tissue), right %d (glass)", gl, gr)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := writeFixture(t, dir, fixture{"good.svs", synth.SlideOptions{Width: 2048, Height: 2048, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: tissue}})
	data, _ := os.ReadFile(good)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path, want string
	}{
		{"zero bytes", write("empty.svs", nil), "empty file"},
		{"text", write("notes.svs", []byte("this is not a slide\n")), "not a slide"},
		{"truncated", write("trunc.svs", data[:len(data)/2]), "truncated"},
		{"tiff header only", write("hdr.tif", []byte("II*\x00\x08\x00\x00\x00")), "damaged TIFF"},
		{"missing", filepath.Join(dir, "nope.svs"), "no such file"},
		{"directory", dir, "is a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := slide.Open(c.path, slide.Options{})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded", c.path)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, filepath.Base(c.path)) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s and saying %q", msg, filepath.Base(c.path), c.want)
			}
		})
	}
}

// A slide whose JPEG tiles are damaged must fail with the decoder's message,
// not hand out garbage, on the fast tiffload path as on OpenSlide.
func TestCorruptTiles(t *testing.T) {
	p := corruptFixture(t, t.TempDir())
	for _, reader := range []string{"", slide.ReaderOpenSlide} {
		t.Run("reader="+reader, func(t *testing.T) {
			s, err := slide.Open(p, slide.Options{Reader: reader})
			if err != nil {
				t.Fatal(err) // the header is intact
			}
			defer s.Close()
			var readErr error
			buf := raster.New(256, 256)
			for y := 0; y < 4096 && readErr == nil; y += 256 {
				for x := 0; x < 4096 && readErr == nil; x += 256 {
					readErr = s.ReadRegionInto(0, x, y, buf)
				}
			}
			wantJPEGError(t, readErr, "tile")
		})
	}
}

func TestRealSlides(t *testing.T) {
	cases := []struct {
		dir, file      string
		vendor, reader string
		levels         int
		w0, h0         int64
		mpp, power     float64
		assoc          []string
		noMPP          bool
	}{
		{"openslide-cmu-1-small-region-svs", "CMU-1-Small-Region.svs", "aperio", slide.ReaderTIFF, 1, 2220, 2967, 0.499, 20, []string{"label", "macro", "thumbnail"}, false},
		{"tcga-cr-7395-svs-j2k", "tcga-cr-7395-01a-01-ts1.svs", "aperio", slide.ReaderOpenSlide, 2, 4443, 3567, 0, 0, []string{"thumbnail"}, true},
		{"hamamatsu-ndpi-fluorescence", "test3-DAPI-2-387.ndpi", "hamamatsu", slide.ReaderOpenSlide, 7, 3968, 4864, 0.2281750559028887, 40, []string{"macro"}, false},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			p := filepath.Join(dataDir(t, c.dir), c.file)
			s := openSlide(t, p, slide.Options{})
			m := s.Meta
			if m.Vendor != c.vendor || m.Reader != c.reader || len(m.Levels) != c.levels || m.Levels[0].Width != c.w0 || m.Levels[0].Height != c.h0 {
				t.Errorf("got vendor %s reader %s %d levels %dx%d", m.Vendor, m.Reader, len(m.Levels), m.Levels[0].Width, m.Levels[0].Height)
			}
			if math.Abs(m.MPPX-c.mpp) > 1e-9 || m.ObjectivePower != c.power {
				t.Errorf("mpp %g power %g, want %g %g", m.MPPX, m.ObjectivePower, c.mpp, c.power)
			}
			if strings.Join(m.Associated, ",") != strings.Join(c.assoc, ",") {
				t.Errorf("associated %v, want %v", m.Associated, c.assoc)
			}
			compareWithOpenSlideTool(t, p, m)
			for _, a := range m.Associated {
				img, err := s.Associated(a)
				if err != nil || img.W < 1 {
					t.Errorf("associated %s: %v", a, err)
				}
			}
			// Reads at every level, and a thumbnail.
			for lvl := range m.Levels {
				if _, err := s.ReadRegion(lvl, 0, 0, 64, 64); err != nil {
					t.Errorf("level %d: %v", lvl, err)
				}
			}
			if th, _, err := s.Thumbnail(256); err != nil || max(th.W, th.H) != 256 {
				t.Errorf("thumbnail: %v", err)
			}
			_, _, err := s.MPP()
			if c.noMPP {
				if !errors.Is(err, slide.ErrNoMPP) || !strings.Contains(err.Error(), "--mpp") {
					t.Errorf("want a no-MPP error naming --mpp, got %v", err)
				}
				s2, err := slide.Open(p, slide.Options{MPP: 0.5})
				if err != nil {
					t.Fatal(err)
				}
				if x, _, err := s2.MPP(); err != nil || x != 0.5 {
					t.Errorf("with --mpp: %g %v", x, err)
				}
				s2.Close()
			} else if err != nil {
				t.Error(err)
			}
		})
	}
}

// compareWithOpenSlideTool checks levels and MPP against
// openslide-show-properties, when the tool is installed.
func compareWithOpenSlideTool(t *testing.T, path string, m slide.Metadata) {
	t.Helper()
	out, err := exec.Command("openslide-show-properties", path).Output()
	if err != nil {
		t.Logf("openslide-show-properties unavailable: %v", err)
		return
	}
	props := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": '")
		if ok {
			props[k] = strings.TrimSuffix(v, "'")
		}
	}
	if n, _ := strconv.Atoi(props["openslide.level-count"]); n != len(m.Levels) {
		t.Errorf("level count %d, openslide says %d", len(m.Levels), n)
	}
	for i, lv := range m.Levels {
		w, _ := strconv.ParseInt(props[fmt.Sprintf("openslide.level[%d].width", i)], 10, 64)
		h, _ := strconv.ParseInt(props[fmt.Sprintf("openslide.level[%d].height", i)], 10, 64)
		d, _ := strconv.ParseFloat(props[fmt.Sprintf("openslide.level[%d].downsample", i)], 64)
		if w != lv.Width || h != lv.Height || math.Abs(d-lv.Downsample) > 1e-9 {
			t.Errorf("level %d %dx%d ds %g, openslide says %dx%d ds %g", i, lv.Width, lv.Height, lv.Downsample, w, h, d)
		}
	}
	if v, ok := props["openslide.mpp-x"]; ok {
		f, _ := strconv.ParseFloat(v, 64)
		if math.Abs(f-m.MPPX) > 1e-9 {
			t.Errorf("mpp %g, openslide says %g", m.MPPX, f)
		}
	}
}

func TestPlainImagesOpenAsOneLevel(t *testing.T) {
	p := filepath.Join(dataDir(t, "bci-he-ihc-her2-pairs"), "IHC", "00672_test_3+.jpg")
	s := openSlide(t, p, slide.Options{MPP: 0.46})
	if s.Meta.Reader != slide.ReaderImage || len(s.Meta.Levels) != 1 || s.Meta.Levels[0].Width != 1024 || s.Meta.ID != "00672_test_3+" {
		t.Errorf("meta %+v", s.Meta)
	}
	if _, err := s.ReadRegion(0, 1000, 1000, 48, 48); err != nil {
		t.Error(err)
	}
}
