package slide_test

import (
	"image"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
)

// diffStats compares two images: per channel the mean and max absolute
// difference, and the PSNR over all channels (dB; +Inf when identical).
type diffStats struct {
	mean [3]float64
	max  [3]int
	psnr float64
}

func compareImages(a, b *raster.RGB) diffStats {
	var s diffStats
	var sum [3]float64
	se := 0.0
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		se += float64(d * d)
		if d < 0 {
			d = -d
		}
		c := i % 3
		sum[c] += float64(d)
		s.max[c] = max(s.max[c], d)
	}
	n := float64(len(a.Pix) / 3)
	for c := range sum {
		s.mean[c] = sum[c] / n
	}
	mse := se / float64(len(a.Pix))
	s.psnr = math.Inf(1)
	if mse > 0 {
		s.psnr = 10 * math.Log10(255*255/mse)
	}
	return s
}

// Scaled JPEG decoding against the exact box average of the full decode,
// on generated 40× slides (tiles of 256 as libvips writes them, 240 as
// Aperio's scanners do, BigTIFF) and the real CMU slide: the same picture
// within the README's figures (mean difference per channel under 2 grey
// levels, PSNR over 35 dB), and the cropped decode (only the needed columns
// and rows of each tile) gives exactly the pixels of whole-tile decoding.
func TestScaledDecodeFidelity(t *testing.T) {
	dir := t.TempDir()
	full := []image.Rectangle{image.Rect(0, 0, 6144, 4096)}
	type tc struct {
		name    string
		path    string
		factors []int
	}
	cases := []tc{
		{"40x tiles 256", writeFixture(t, dir, fixture{"g256.svs", synth.SlideOptions{Width: 6144, Height: 4096, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: full}}), []int{2, 4}},
		{"40x tiles 240", writeFixture(t, dir, fixture{"g240.svs", synth.SlideOptions{Width: 6000, Height: 4000, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, TileSize: 240, Tissue: full}}), []int{2, 4}},
		{"80x bigtiff", writeFixture(t, dir, fixture{"g80.tif", synth.SlideOptions{Width: 4096, Height: 4096, MPP: 0.125, BigTIFF: true, Pyramid: true, Tissue: full}}), []int{4, 2}},
	}
	if testutil.SharedDataRoot() != "" {
		cases = append(cases, tc{"CMU-1-Small-Region", filepath.Join(dataDir(t, "openslide-cmu-1-small-region-svs"), "CMU-1-Small-Region.svs"), []int{2, 4}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fast := openSlide(t, c.path, slide.Options{})
			exact := openSlide(t, c.path, slide.Options{NoScaledDecode: true})
			l0 := fast.Meta.Levels[0]
			for _, f := range c.factors {
				if !fast.ScaledDecoding(0, f) || exact.ScaledDecoding(0, f) {
					t.Fatalf("factor %d: scaled decoding %v with it on, %v with it off", f, fast.ScaledDecoding(0, f), exact.ScaledDecoding(0, f))
				}
				const side = 256
				rng := rand.New(rand.NewPCG(uint64(f), 9))
				var all diffStats
				var sum [3]float64
				var se float64
				n := 0
				for k := 0; k < 12; k++ {
					// Aligned to the factor; k even: on the 512-grid as the
					// embed stage reads, k odd: anywhere (tile seams inside).
					x := rng.IntN(int(l0.Width)-f*side) / f * f
					y := rng.IntN(int(l0.Height)-f*side) / f * f
					if k%2 == 0 {
						x, y = x/(f*side)*(f*side), y/(f*side)*(f*side)
					}
					a, b, w := raster.New(side, side), raster.New(side, side), raster.New(side, side)
					if err := fast.ReadRegionBoxInto(0, x, y, f, a); err != nil {
						t.Fatal(err)
					}
					if err := exact.ReadRegionBoxInto(0, x, y, f, b); err != nil {
						t.Fatal(err)
					}
					if err := slide.ReadScaledWhole(fast, 0, x, y, f, w); err != nil {
						t.Fatal(err)
					}
					if d := maxDiff(a, w); d != 0 {
						t.Errorf("factor %d (%d,%d): cropped decode differs from whole-tile decode by %d", f, x, y, d)
					}
					s := compareImages(a, b)
					for ch := range 3 {
						sum[ch] += s.mean[ch]
						all.max[ch] = max(all.max[ch], s.max[ch])
					}
					se += 255 * 255 / math.Pow(10, s.psnr/10)
					n++
				}
				for ch := range 3 {
					all.mean[ch] = sum[ch] / float64(n)
				}
				all.psnr = 10 * math.Log10(255*255/(se/float64(n)))
				t.Logf("%s factor %d vs box average: mean |diff| R %.2f G %.2f B %.2f, max %d %d %d, PSNR %.1f dB",
					c.name, f, all.mean[0], all.mean[1], all.mean[2], all.max[0], all.max[1], all.max[2], all.psnr)
				for ch := range 3 {
					if all.mean[ch] >= 2 {
						t.Errorf("factor %d channel %d: mean difference %.2f, want < 2", f, ch, all.mean[ch])
					}
				}
				if all.psnr < 35 {
					t.Errorf("factor %d: PSNR %.1f dB, want ≥ 35", f, all.psnr)
				}
			}
			// Reads that do not qualify (unaligned, off the edge) take the
			// exact path and so equal it.
			for _, r := range [][2]int{{1, 0}, {int(l0.Width) - 100, 0}} {
				a, b := raster.New(64, 64), raster.New(64, 64)
				if err := fast.ReadRegionBoxInto(0, r[0], r[1], 2, a); err != nil {
					t.Fatal(err)
				}
				if err := exact.ReadRegionBoxInto(0, r[0], r[1], 2, b); err != nil {
					t.Fatal(err)
				}
				if d := maxDiff(a, b); d != 0 {
					t.Errorf("unqualified read at %v differs by %d", r, d)
				}
			}
		})
	}
}

// A slide whose JPEG tiles are damaged fails scaled box reads with one
// line naming the file and the JPEG problem (the read falls back to
// OpenSlide, which fails on the damage), never with garbage pixels.
func TestScaledDecodeCorruptTiles(t *testing.T) {
	p := corruptFixture(t, t.TempDir())
	s := openSlide(t, p, slide.Options{})
	if !s.ScaledDecoding(0, 2) {
		t.Fatal("scaled decoding not in use")
	}
	var readErr error
	buf := raster.New(256, 256)
	for y := 0; y < 4096 && readErr == nil; y += 512 {
		for x := 0; x < 4096 && readErr == nil; x += 512 {
			readErr = s.ReadRegionBoxInto(0, x, y, 2, buf)
		}
	}
	wantJPEGError(t, readErr, "patch")
}

// Which reads go through scaled decoding: JPEG TIFF pages at factors 2, 4
// and 8 on the tiffload reader; not JPEG 2000 (OpenSlide), not a slide
// forced onto OpenSlide, not with NoScaledDecode, not factor 3.
func TestScaledDecodeEligibility(t *testing.T) {
	p := writeFixture(t, t.TempDir(), fixture{"e.svs", synth.SlideOptions{Width: 2048, Height: 2048, MPP: 0.25, Aperio: true, Pyramid4: true, Tissue: tissue}})
	cases := []struct {
		name   string
		path   string
		opt    slide.Options
		factor int
		want   bool
	}{
		{"jpeg svs 1/2", p, slide.Options{}, 2, true},
		{"jpeg svs 1/4", p, slide.Options{}, 4, true},
		{"jpeg svs 1/8", p, slide.Options{}, 8, true},
		{"factor 3", p, slide.Options{}, 3, false},
		{"turned off", p, slide.Options{NoScaledDecode: true}, 2, false},
		{"openslide reader", p, slide.Options{Reader: slide.ReaderOpenSlide}, 2, false},
	}
	if testutil.SharedDataRoot() != "" {
		cases = append(cases, struct {
			name   string
			path   string
			opt    slide.Options
			factor int
			want   bool
		}{"jpeg 2000 svs", filepath.Join(dataDir(t, "tcga-cr-7395-svs-j2k"), "tcga-cr-7395-01a-01-ts1.svs"), slide.Options{MPP: 0.25}, 2, false})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openSlide(t, c.path, c.opt)
			if got := s.ScaledDecoding(0, c.factor); got != c.want {
				t.Errorf("scaled decoding %v, want %v", got, c.want)
			}
			m := raster.New(128, 128)
			if err := s.ReadRegionBoxInto(0, 512, 512, 2, m); err != nil {
				t.Error(err)
			}
		})
	}
}

// Many goroutines doing scaled box reads on one slide get exactly what
// serial reads get.
func TestScaledDecodeConcurrent(t *testing.T) {
	p := writeFixture(t, t.TempDir(), fixture{"cc.svs", synth.SlideOptions{Width: 4096, Height: 4096, MPP: 0.25, Aperio: true, Pyramid4: true, TileSize: 240, Tissue: tissue}})
	s := openSlide(t, p, slide.Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	type req struct{ x, y int }
	var reqs []req
	for i := 0; i < 96; i++ {
		reqs = append(reqs, req{rng.IntN(3500) &^ 1, rng.IntN(3500) &^ 1})
	}
	sameUnderConcurrency(t, len(reqs), func(i int, dst *raster.RGB) (*raster.RGB, error) {
		return dst, s.ReadRegionBoxInto(0, reqs[i].x, reqs[i].y, 2, dst)
	})
}
