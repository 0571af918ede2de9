package synth

import (
	"bytes"
	"image"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/slide"
)

// The painter against its definition, pixel by pixel, on regions that
// cross piece edges, texture periods and the slide's border.
func TestPainterFill(t *testing.T) {
	o := SlideOptions{Width: 1300, Height: 900, Seed: 4, Tissue: []image.Rectangle{
		image.Rect(-20, 30, 700, 600), image.Rect(500, 400, 1400, 880), image.Rect(10, 10, 10, 500), // empty
	}}
	p := newPainter(o)
	tex := StainTexture(TextureSize, "", 4)
	want := func(x, y int) (r, g, b uint8) {
		r, g, b = Glass, Glass, Glass
		for _, rc := range []image.Rectangle{image.Rect(0, 30, 700, 600), image.Rect(500, 400, 1300, 880)} {
			if image.Pt(x, y).In(rc) {
				r, g, b = tex.At((x-rc.Min.X)%TextureSize, (y-rc.Min.Y)%TextureSize)
			}
		}
		return
	}
	for _, reg := range []image.Rectangle{
		image.Rect(0, 0, 1300, 900), image.Rect(490, 390, 1300, 900), image.Rect(511, 541, 1100, 560), image.Rect(7, 0, 8, 1),
	} {
		dst := raster.New(reg.Dx(), reg.Dy())
		if err := p.fill(dst, reg.Min); err != nil {
			t.Fatal(err)
		}
		for y := range dst.H {
			for x := range dst.W {
				r, g, b := dst.At(x, y)
				if wr, wg, wb := want(reg.Min.X+x, reg.Min.Y+y); r != wr || g != wg || b != wb {
					t.Fatalf("region %v: pixel (%d, %d) = %d,%d,%d, want %d,%d,%d", reg, reg.Min.X+x, reg.Min.Y+y, r, g, b, wr, wg, wb)
				}
			}
		}
	}
}

func TestLayout(t *testing.T) {
	for _, c := range []struct{ w, h, n int }{{16384, 12288, 3}, {3000, 2000, 1}, {2500, 1800, 5}, {1000, 800, 0}} {
		r := Layout(c.w, c.h, c.n)
		if len(r) != c.n {
			t.Fatalf("%+v: %d pieces", c, len(r))
		}
		for i, p := range r {
			if p.Empty() || !p.In(image.Rect(0, 0, c.w, c.h)) || (i > 0 && p.Min.X < r[i-1].Max.X) {
				t.Errorf("%+v: piece %d %v", c, i, p)
			}
		}
	}
	if got := Layout(3000, 2000, 2); got[0] != image.Rect(187, 333, 1313, 1667) || got[1] != image.Rect(1687, 499, 2813, 1501) {
		t.Errorf("Layout(3000, 2000, 2) = %v", got)
	}
}

func TestWriteSlideOpens(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.svs")
	o := SlideOptions{Width: 3000, Height: 2000, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: Layout(3000, 2000, 2)}
	if err := WriteSlide(p, o); err != nil {
		t.Fatal(err)
	}
	s, err := slide.Open(p, slide.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := s.Meta
	if m.Vendor != "aperio" || m.MPPX != 0.25 || m.ObjectivePower != 40 || len(m.Levels) != 3 || m.Levels[1].Downsample != 4 {
		t.Errorf("vendor %s, mpp %g, power %g, levels %+v", m.Vendor, m.MPPX, m.ObjectivePower, m.Levels)
	}
	glass, err := s.ReadRegion(0, 0, 0, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(glass.Pix, bytes.Repeat([]byte{Glass}, len(glass.Pix))) {
		t.Error("the corner is not glass")
	}
	if err := WriteSlide(filepath.Join(dir, "x.svs"), SlideOptions{Width: 0, Height: 10}); err == nil {
		t.Error("0×10 slide written")
	}
}

// A generated DICOM series opens as one slide from any of its instances,
// with the SVS's levels and resolution and its pixels (up to a second JPEG
// generation).
func TestWriteDICOMSeries(t *testing.T) {
	dir := t.TempDir()
	o := SlideOptions{Width: 2100, Height: 1300, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: Layout(2100, 1300, 2), Seed: 3}
	svs := filepath.Join(dir, "s.svs")
	if err := WriteSlide(svs, o); err != nil {
		t.Fatal(err)
	}
	files, err := WriteDICOM(dir, "s", o)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || filepath.Base(files[0]) != "s-level-0.dcm" || filepath.Base(files[2]) != "s-level-2.dcm" {
		t.Fatalf("files %v", files)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".synth-dicom-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	ref, err := slide.Open(svs, slide.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, f := range files {
		s, err := slide.Open(f, slide.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := s.Meta
		if m.Format != "dicom" || len(m.Levels) != 3 || m.Levels[0].Width != 2100 || m.Levels[1].Width != 525 || m.Levels[1].Downsample != 4 ||
			m.MPPX != 0.25 || m.MPPY != 0.25 || m.MPPSource != "dicom PixelSpacing" || m.Compression != "jpeg baseline" {
			t.Errorf("%s: meta %+v", f, m)
		}
		if got := slide.DICOMSeriesPrimary(f); got != files[0] {
			t.Errorf("primary of %s: %s", f, got)
		}
		for lv, r := range [][4]int{{900, 500, 400, 300}, {100, 100, 300, 200}} {
			a, err := s.ReadRegion(lv, r[0], r[1], r[2], r[3])
			if err != nil {
				t.Fatal(err)
			}
			b, err := ref.ReadRegion(lv, r[0], r[1], r[2], r[3])
			if err != nil {
				t.Fatal(err)
			}
			sum := 0
			for i := range a.Pix {
				d := int(a.Pix[i]) - int(b.Pix[i])
				sum += max(d, -d)
			}
			if mean := float64(sum) / float64(len(a.Pix)); mean > 3 {
				t.Errorf("%s level %d: mean difference %.2f from the SVS", f, lv, mean)
			}
		}
		s.Close()
	}
}
