// Package synth generates synthetic data for tests, benchmarks and the demo
// (no private slides needed): pyramidal test slides with stained tissue on
// glass (WriteSlide, `pipeline synth --out FILE.svs`). Paired H&E/IHC case
// sets written into a work folder (`pipeline synth --cases N`) are made by
// its subpackage caseset, which needs the pipeline's work-folder layout;
// this package needs only slide, so the pipeline's own tests can use it.
package synth

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/slide"
)

// SlideOptions describe a generated test slide: stained texture inside the
// given rectangles on a glass-coloured background, saved as a tiled,
// JPEG-compressed pyramidal TIFF. With Aperio set it carries an Aperio
// ImageDescription (so OpenSlide reads it as an SVS).
type SlideOptions struct {
	Width, Height int
	Tissue        []image.Rectangle // level-0 pixels; later pieces cover earlier ones
	MPP           float64           // 0: no resolution anywhere in the file
	AppMag        float64           // written to the Aperio description when > 0
	Aperio        bool
	BigTIFF       bool
	Pyramid       bool // false: one level only
	// Pyramid4 keeps only the levels at downsample 1, 4, 16, ... like an
	// Aperio scanner (so a 40× slide has no 20× level). Implies Pyramid.
	Pyramid4 bool
	TileSize int    // default 256
	Quality  int    // JPEG quality, default 85
	Stain    string // texture: "he" (default) or "ihc"
	Seed     uint64 // the texture's
}

// Glass is the background grey of a generated slide.
const Glass = 243

// TextureSize is the side of the tileable stain texture a slide repeats.
const TextureSize = 512

// WriteSlide generates the slide described by o at path (atomically: it
// appears complete or not at all). Generation streams, so slides far larger
// than memory can be made. The same options give the same bytes.
func WriteSlide(path string, o SlideOptions) error {
	if o.Width <= 0 || o.Height <= 0 {
		return fmt.Errorf("synth: slide size %dx%d", o.Width, o.Height)
	}
	if o.TileSize == 0 {
		o.TileSize = 256
	}
	if o.Quality == 0 {
		o.Quality = 85
	}
	p := newPainter(o)
	return slide.WriteTIFF(path, o.Width, o.Height, p.fill, slide.TIFFOptions{
		Description: aperioDescription(o), MPP: o.MPP, TileSize: o.TileSize, JPEG: true, Quality: o.Quality,
		BigTIFF: o.BigTIFF, Pyramid: o.Pyramid, Pyramid4: o.Pyramid4,
	})
}

// aperioDescription is the ImageDescription of an Aperio-style slide ("" if
// not o.Aperio); TileSize and Quality are set.
func aperioDescription(o SlideOptions) string {
	if !o.Aperio {
		return ""
	}
	desc := fmt.Sprintf("Aperio Image Library v12.0.0 (her2wsi synthetic)\r\n%dx%d (%dx%d) JPEG/RGB Q=%d", o.Width, o.Height, o.TileSize, o.TileSize, o.Quality)
	if o.AppMag > 0 {
		desc += fmt.Sprintf("|AppMag = %g", o.AppMag)
	}
	if o.MPP > 0 {
		desc += fmt.Sprintf("|MPP = %.4f", o.MPP)
	}
	return desc
}

// painter draws a slide's pixels: Glass everywhere, and inside each tissue
// rectangle (clipped to the slide) the texture repeated from the
// rectangle's top-left corner.
type painter struct {
	tex   *raster.RGB
	rects []image.Rectangle
}

func newPainter(o SlideOptions) *painter {
	p := &painter{tex: StainTexture(TextureSize, o.Stain, o.Seed)}
	for _, r := range o.Tissue {
		if r = r.Intersect(image.Rect(0, 0, o.Width, o.Height)); !r.Empty() {
			p.rects = append(p.rects, r)
		}
	}
	return p
}

// fill is a slide.FillFunc (safe for concurrent use: it only reads p).
func (p *painter) fill(dst *raster.RGB, at image.Point) error {
	pix := dst.Pix[:3*dst.W*dst.H]
	pix[0] = Glass
	for n := 1; n < len(pix); n *= 2 {
		copy(pix[n:], pix[:n])
	}
	region := image.Rectangle{Min: at, Max: at.Add(image.Pt(dst.W, dst.H))}
	n := p.tex.W
	for _, r := range p.rects {
		in := r.Intersect(region)
		if in.Empty() {
			continue
		}
		for y := in.Min.Y; y < in.Max.Y; y++ {
			ty := (y - r.Min.Y) % p.tex.H
			src := p.tex.Pix[3*ty*n : 3*(ty+1)*n]
			row := pix[3*((y-at.Y)*dst.W+in.Min.X-at.X) : 3*((y-at.Y)*dst.W+in.Max.X-at.X)]
			tx := (in.Min.X - r.Min.X) % n
			for len(row) > 0 {
				k := copy(row, src[3*tx:])
				row = row[k:]
				tx = 0
			}
		}
	}
	return nil
}

// StainTexture draws an n×n tileable texture that looks like stained tissue
// at 20×: for "he" (default) eosin-pink stroma with hematoxylin-purple
// nuclei; for "ihc" pale blue counterstained cells with DAB-brown membranes.
func StainTexture(n int, stain string, seed uint64) *raster.RGB {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	bg, nuc := [3]float64{232, 168, 200}, [3]float64{96, 62, 150}
	if stain == "ihc" {
		bg, nuc = [3]float64{222, 214, 222}, [3]float64{120, 130, 175}
	}
	img := raster.New(n, n)
	f := make([]float64, 3*n*n)
	for i := 0; i < n*n; i++ {
		v := rng.Float64()*24 - 12
		for c := 0; c < 3; c++ {
			f[3*i+c] = bg[c] + v
		}
	}
	// Nuclei: dark ellipses, with wrap-around so the texture tiles.
	cells := n * n / 900
	for k := 0; k < cells; k++ {
		cx, cy := rng.Float64()*float64(n), rng.Float64()*float64(n)
		rad := 4 + rng.Float64()*5
		for dy := -int(rad) - 1; dy <= int(rad)+1; dy++ {
			for dx := -int(rad) - 1; dx <= int(rad)+1; dx++ {
				d := math.Hypot(float64(dx), float64(dy))
				x := (int(cx) + dx + n) % n
				y := (int(cy) + dy + n) % n
				i := 3 * (y*n + x)
				switch {
				case d <= rad:
					for c := 0; c < 3; c++ {
						f[i+c] = nuc[c] + rng.Float64()*20 - 10
					}
				case stain == "ihc" && d <= rad+2.5:
					// DAB membrane ring.
					f[i], f[i+1], f[i+2] = 165, 110, 60
				}
			}
		}
	}
	for i, v := range f {
		img.Pix[i] = uint8(math.Max(0, math.Min(255, v)))
	}
	return img
}

// Layout places n rectangular tissue pieces in a row across a w×h slide,
// left to right, alternately a little taller and shorter (`pipeline synth
// --blobs n`).
func Layout(w, h, n int) []image.Rectangle {
	var r []image.Rectangle
	if n <= 0 {
		return r
	}
	cw := w / n
	for i := 0; i < n; i++ {
		r = append(r, image.Rect(i*cw+cw/8, h/6+(i%2)*h/12, (i+1)*cw-cw/8, h-h/6-(i%2)*h/12))
	}
	return r
}

// WriteDICOM generates the slide described by o as a DICOM WSI series in
// dir: the pyramidal TIFF WriteSlide makes (in a temporary folder), each
// level re-encoded as one TILED_FULL instance of JPEG frames of o.TileSize
// at o.Quality, <name>-level-<i>.dcm (see slide.WriteDICOM). So a series
// and a WriteSlide file of the same options hold the same pixels, up to a
// second JPEG generation. It returns the files, level 0 first.
func WriteDICOM(dir, name string, o SlideOptions) ([]string, error) {
	tmp, err := os.MkdirTemp(dir, ".synth-dicom-")
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, name+".tif")
	if err := WriteSlide(src, o); err != nil {
		return nil, err
	}
	s, err := slide.Open(src, slide.Options{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return slide.WriteDICOM(s, dir, name, slide.DICOMOptions{FrameSize: o.TileSize, Quality: o.Quality})
}
