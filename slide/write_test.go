package slide_test

import (
	"bytes"
	"errors"
	"image"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/slide"
)

// pattern is a pixel function with no period a tile could hide.
func pattern(x, y int) (r, g, b uint8) {
	return uint8(x*7 + y*3), uint8(x ^ y), uint8((x*x + y) >> 3)
}

func fillPattern(dst *raster.RGB, at image.Point) error {
	for y := range dst.H {
		for x := range dst.W {
			r, g, b := pattern(at.X+x, at.Y+y)
			dst.Set(x, y, r, g, b)
		}
	}
	return nil
}

func TestWriteTIFFLossless(t *testing.T) {
	const w, h = 1100, 700
	dir := t.TempDir()
	p := filepath.Join(dir, "fill.tif")
	var calls atomic.Int64
	fill := func(dst *raster.RGB, at image.Point) error {
		calls.Add(1)
		return fillPattern(dst, at)
	}
	if err := slide.WriteTIFF(p, w, h, fill, slide.TIFFOptions{MPP: 0.5, Pyramid: true, Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if calls.Load() < 2 {
		t.Errorf("fill called %d times: not region by region", calls.Load())
	}
	// The same pixels from memory give the same file.
	img := raster.New(w, h)
	fillPattern(img, image.Point{})
	q := filepath.Join(dir, "image.tif")
	if err := slide.WriteImage(q, img, 0.5, true); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(p)
	b, _ := os.ReadFile(q)
	if !bytes.Equal(a, b) {
		t.Errorf("WriteTIFF and WriteImage differ for the same pixels (%d and %d bytes)", len(a), len(b))
	}
	s := openSlide(t, p, slide.Options{})
	if got := s.Meta.Levels; len(got) < 3 || got[0].Width != w || got[1].Width != w/2 || got[0].TileWidth != 256 {
		t.Fatalf("levels %+v", got)
	}
	for _, r := range []image.Rectangle{image.Rect(0, 0, 64, 64), image.Rect(250, 250, 270, 263), image.Rect(w-40, h-30, w, h)} {
		got, err := s.ReadRegion(0, r.Min.X, r.Min.Y, r.Dx(), r.Dy())
		if err != nil {
			t.Fatal(err)
		}
		want := raster.New(r.Dx(), r.Dy())
		fillPattern(want, r.Min)
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("region %v: pixels differ from the fill", r)
		}
	}
}

func TestWriteTIFFJPEGAperio4(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.svs")
	desc := "Aperio Image Library v12.0.0 (test)\r\n2048x1536 (128x128) JPEG/RGB Q=70|AppMag = 40|MPP = 0.2500"
	o := slide.TIFFOptions{Description: desc, MPP: 0.25, TileSize: 128, JPEG: true, Quality: 70, Pyramid4: true}
	if err := slide.WriteTIFF(p, 2048, 1536, fillPattern, o); err != nil {
		t.Fatal(err)
	}
	s := openSlide(t, p, slide.Options{})
	m := s.Meta
	if m.Vendor != "aperio" || m.ObjectivePower != 40 || m.MPPX != 0.25 || m.Compression != "jpeg" {
		t.Errorf("vendor %s, power %g, mpp %g, compression %s", m.Vendor, m.ObjectivePower, m.MPPX, m.Compression)
	}
	var ds []float64
	for _, l := range m.Levels {
		ds = append(ds, l.Downsample)
		if l.TileWidth != 128 {
			t.Errorf("tile width %d", l.TileWidth)
		}
	}
	if len(ds) != 3 || ds[1] != 4 || ds[2] != 16 {
		t.Errorf("downsamples %v, want 1, 4, 16", ds)
	}
}

func TestWriteTIFFFailures(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	fails := map[string]slide.FillFunc{
		"error": func(dst *raster.RGB, at image.Point) error {
			if at.Y >= 512 {
				return boom
			}
			return fillPattern(dst, at)
		},
		"panic": func(dst *raster.RGB, at image.Point) error { panic("oops") },
	}
	for name, fill := range fails {
		p := filepath.Join(dir, name+".tif")
		err := slide.WriteTIFF(p, 1024, 1024, fill, slide.TIFFOptions{JPEG: true, Pyramid: true})
		switch {
		case err == nil:
			t.Errorf("%s: no error", name)
		case name == "error" && !errors.Is(err, boom):
			t.Errorf("%s: %v does not wrap the fill's error", name, err)
		case name == "panic" && !strings.Contains(err.Error(), "oops"):
			t.Errorf("%s: %v", name, err)
		case !strings.HasPrefix(err.Error(), "slide: write "+name+".tif: "):
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := slide.WriteTIFF(filepath.Join(dir, "empty.tif"), 0, 10, fillPattern, slide.TIFFOptions{}); err == nil {
		t.Error("0×10 image written")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %d files behind, e.g. %s", len(ents), ents[0].Name())
	}
}
