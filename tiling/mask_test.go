package tiling

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// canvas builds synthetic slides: a near-white glass background with noise,
// filled shapes in stain colours, pen strokes, and the ground-truth tissue
// map of what was drawn as tissue.
type canvas struct {
	img   *raster.RGB
	truth []uint8
	rng   *rand.Rand
}

func newCanvas(w, h int, glass [3]uint8, noise int, seed uint64) *canvas {
	c := &canvas{img: raster.New(w, h), truth: make([]uint8, w*h), rng: rand.New(rand.NewPCG(seed, 1))}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c.set(x, y, glass, noise)
		}
	}
	return c
}

func clampByte(v int) uint8 { return uint8(min(max(v, 0), 255)) }

// set paints a pixel with colour col plus uniform noise in [-noise, noise]
// (the same offset on all channels plus a smaller independent part, as in
// JPEG-compressed scans).
func (c *canvas) set(x, y int, col [3]uint8, noise int) {
	var common int
	if noise > 0 {
		common = c.rng.IntN(2*noise+1) - noise
	}
	var ch [3]uint8
	for k := 0; k < 3; k++ {
		v := int(col[k]) + common
		if noise > 1 {
			v += c.rng.IntN(noise+1) - noise/2
		}
		ch[k] = clampByte(v)
	}
	c.img.Set(x, y, ch[0], ch[1], ch[2])
}

// ellipse fills an axis-aligned ellipse. tissue marks it in the truth map;
// texture mixes in a darker nucleus colour on a random 15 % of pixels.
func (c *canvas) ellipse(cx, cy, rx, ry float64, col [3]uint8, tissue bool, nuclei *[3]uint8) {
	for y := max(0, int(cy-ry)); y <= min(c.img.H-1, int(cy+ry)+1); y++ {
		for x := max(0, int(cx-rx)); x <= min(c.img.W-1, int(cx+rx)+1); x++ {
			dx, dy := (float64(x)+0.5-cx)/rx, (float64(y)+0.5-cy)/ry
			if dx*dx+dy*dy > 1 {
				continue
			}
			col := col
			if nuclei != nil && c.rng.IntN(100) < 15 {
				col = *nuclei
			}
			c.set(x, y, col, 6)
			if tissue {
				c.truth[y*c.img.W+x] = 1
			} else {
				c.truth[y*c.img.W+x] = 0
			}
		}
	}
}

// rect fills [x0,x1)×[y0,y1).
func (c *canvas) rect(x0, y0, x1, y1 int, col [3]uint8, tissue bool) {
	for y := max(0, y0); y < min(c.img.H, y1); y++ {
		for x := max(0, x0); x < min(c.img.W, x1); x++ {
			c.set(x, y, col, 4)
			if tissue {
				c.truth[y*c.img.W+x] = 1
			} else {
				c.truth[y*c.img.W+x] = 0
			}
		}
	}
}

// stroke draws a thick line from (x0,y0) to (x1,y1) of width wd, with a soft
// edge (the ink fades to the underlying colour over the outer third), as a
// felt-tip marker looks at low resolution. The stroke is never tissue.
func (c *canvas) stroke(x0, y0, x1, y1, wd float64, col [3]uint8) {
	minX, maxX := int(math.Min(x0, x1)-wd), int(math.Max(x0, x1)+wd)
	minY, maxY := int(math.Min(y0, y1)-wd), int(math.Max(y0, y1)+wd)
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	for y := max(0, minY); y <= min(c.img.H-1, maxY); y++ {
		for x := max(0, minX); x <= min(c.img.W-1, maxX); x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			t := math.Max(0, math.Min(1, ((px-x0)*dx+(py-y0)*dy)/l2))
			d := math.Hypot(px-(x0+t*dx), py-(y0+t*dy))
			if d > wd/2 {
				continue
			}
			a := 1.0
			if edge := wd / 6; d > wd/2-edge {
				a = (wd/2 - d) / edge
			}
			r, g, b := c.img.At(x, y)
			mix := func(u, v uint8) uint8 { return uint8(math.Round(a*float64(v) + (1-a)*float64(u))) }
			c.img.Set(x, y, mix(r, col[0]), mix(g, col[1]), mix(b, col[2]))
			c.truth[y*c.img.W+x] = 0
		}
	}
}

// Stain colours used by the synthetic tests.
var (
	glassWhite  = [3]uint8{243, 243, 242}
	hePink      = [3]uint8{232, 160, 200}
	hePurple    = [3]uint8{160, 100, 170}
	heNuclei    = [3]uint8{90, 60, 130}
	dabBrown    = [3]uint8{195, 145, 105}
	dabDark     = [3]uint8{140, 90, 60}
	ihcPale     = [3]uint8{222, 224, 234} // HER2 0: haematoxylin-only, pale blue-grey
	ihcBeige    = [3]uint8{234, 226, 214} // HER2 1+: faint membrane, beige
	ihcNuclei   = [3]uint8{185, 190, 215}
	greenPen    = [3]uint8{30, 140, 120}
	bluePen     = [3]uint8{50, 100, 200}
	redPen      = [3]uint8{200, 20, 25}
	blackMarker = [3]uint8{25, 25, 30}
)

func iou(a, b []uint8) float64 {
	var inter, union int
	for i := range a {
		if a[i] != 0 && b[i] != 0 {
			inter++
		}
		if a[i] != 0 || b[i] != 0 {
			union++
		}
	}
	if union == 0 {
		return 1
	}
	return float64(inter) / float64(union)
}

func count(m []uint8) int {
	n := 0
	for _, v := range m {
		if v != 0 {
			n++
		}
	}
	return n
}

func TestTissueMaskSynthetic(t *testing.T) {
	const mpp = 4.0 // µm per pixel, the pipeline's default mask resolution
	tests := []struct {
		name  string
		build func(c *canvas)
		// minIoU against the drawn tissue; for images without tissue,
		// maxFrac bounds the tissue fraction instead.
		minIoU  float64
		maxFrac float64
	}{
		{"he blobs", func(c *canvas) {
			c.ellipse(100, 90, 60, 45, hePink, true, &heNuclei)
			c.ellipse(260, 180, 70, 60, hePurple, true, &heNuclei)
			c.rect(40, 200, 140, 270, hePink, true)
		}, 0.95, 0},
		{"dab blobs", func(c *canvas) {
			c.ellipse(110, 100, 70, 55, dabBrown, true, &dabDark)
			c.ellipse(280, 190, 60, 50, dabBrown, true, &ihcNuclei)
		}, 0.95, 0},
		{"pale ihc 0 and 1+", func(c *canvas) {
			c.ellipse(110, 100, 70, 55, ihcPale, true, &ihcNuclei)
			c.ellipse(280, 190, 60, 50, ihcBeige, true, &ihcNuclei)
			c.rect(30, 210, 150, 280, ihcPale, true)
		}, 0.95, 0},
		{"tissue with hole and gap", func(c *canvas) {
			// A lumen inside tissue is filled, a 20 µm crack is closed.
			c.ellipse(200, 150, 120, 90, hePink, true, &heNuclei)
			c.ellipse(200, 150, 20, 15, glassWhite, true, nil)
			c.rect(80, 147, 320, 152, glassWhite, true)
		}, 0.95, 0},
		{"blank glass", func(c *canvas) {}, 0, 0},
		{"pure white", func(c *canvas) {
			c.rect(0, 0, 400, 300, [3]uint8{255, 255, 255}, false)
		}, 0, 0},
		{"pen strokes on glass", func(c *canvas) {
			c.stroke(20, 30, 380, 60, 24, greenPen)
			c.stroke(30, 120, 370, 110, 24, bluePen)
			c.stroke(40, 200, 360, 230, 24, redPen)
			c.stroke(60, 270, 340, 280, 16, blackMarker)
		}, 0, 0.002},
		{"black border and slide edge", func(c *canvas) {
			c.rect(0, 0, 400, 12, blackMarker, false)
			c.rect(0, 0, 10, 300, [3]uint8{0, 0, 0}, false)
			c.rect(380, 0, 400, 300, [3]uint8{70, 70, 72}, false)    // dark grey edge
			c.rect(0, 285, 400, 300, [3]uint8{150, 150, 150}, false) // grey shading
		}, 0, 0.002},
		{"tissue with border and pens", func(c *canvas) {
			c.rect(0, 0, 400, 10, blackMarker, false)
			c.ellipse(200, 150, 110, 80, hePink, true, &heNuclei)
			c.stroke(20, 270, 380, 260, 20, greenPen)
			c.stroke(360, 20, 380, 280, 20, bluePen)
		}, 0.93, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCanvas(400, 300, glassWhite, 3, 7)
			tc.build(c)
			m, err := TissueMask(c.img, mpp, DefaultMaskConfig())
			if err != nil {
				t.Fatal(err)
			}
			if m.W != 400 || m.H != 300 || m.MPP != mpp || len(m.Tissue) != 400*300 {
				t.Fatalf("mask %dx%d mpp %v len %d", m.W, m.H, m.MPP, len(m.Tissue))
			}
			if count(c.truth) == 0 {
				if f := m.TissueFraction(); f > tc.maxFrac {
					t.Errorf("tissue fraction %.4f, want ≤ %.4f", f, tc.maxFrac)
				}
				return
			}
			if got := iou(m.Tissue, c.truth); got < tc.minIoU {
				t.Errorf("IoU with drawn tissue %.3f, want ≥ %.2f (mask %d px, truth %d px)", got, tc.minIoU, count(m.Tissue), count(c.truth))
			}
		})
	}
}

// TestTissueMaskPenOverTissue checks that a stroke across tissue is cut out of
// the mask although the tissue on both sides is kept.
func TestTissueMaskPenOverTissue(t *testing.T) {
	for _, pen := range []struct {
		name string
		col  [3]uint8
	}{{"green", greenPen}, {"blue", bluePen}, {"red", redPen}, {"black", blackMarker}} {
		t.Run(pen.name, func(t *testing.T) {
			c := newCanvas(400, 300, glassWhite, 3, 11)
			c.ellipse(200, 150, 160, 120, hePink, true, &heNuclei)
			// Ink over tissue: darken the tissue colour towards the ink.
			c.stroke(60, 40, 340, 260, 30, pen.col)
			m, err := TissueMask(c.img, 4, DefaultMaskConfig())
			if err != nil {
				t.Fatal(err)
			}
			// The stroke's centre line must not be tissue.
			for s := 0.1; s <= 0.9; s += 0.05 {
				x, y := int(60+s*280), int(40+s*220)
				if m.At(x, y) {
					t.Errorf("pen centre (%d,%d) counted as tissue", x, y)
				}
			}
			if got := iou(m.Tissue, c.truth); got < 0.85 {
				t.Errorf("IoU with tissue outside the stroke %.3f, want ≥ 0.85", got)
			}
		})
	}
}

func TestTissueMaskResolutionIndependent(t *testing.T) {
	// The same scene at 4 and 8 µm/px gives the same tissue fraction.
	c := newCanvas(800, 600, glassWhite, 3, 5)
	c.ellipse(250, 250, 150, 120, hePink, true, &heNuclei)
	c.ellipse(560, 360, 140, 150, ihcPale, true, &ihcNuclei)
	fine, err := TissueMask(c.img, 2, DefaultMaskConfig())
	if err != nil {
		t.Fatal(err)
	}
	half := raster.Halve(c.img, nil)
	coarse, err := TissueMask(half, 4, DefaultMaskConfig())
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(fine.TissueFraction() - coarse.TissueFraction()); d > 0.01 {
		t.Errorf("tissue fraction %.4f at 2 µm/px vs %.4f at 4 µm/px", fine.TissueFraction(), coarse.TissueFraction())
	}
}

func TestTissueMaskErrors(t *testing.T) {
	good := raster.New(8, 8)
	bad := DefaultMaskConfig()
	bad.SatCeil = 3
	tests := []struct {
		name string
		img  *raster.RGB
		mpp  float64
		cfg  MaskConfig
		want string
	}{
		{"nil image", nil, 4, DefaultMaskConfig(), "nil image"},
		{"short buffer", &raster.RGB{W: 4, H: 4, Pix: make([]uint8, 5)}, 4, DefaultMaskConfig(), "raster"},
		{"zero mpp", good, 0, DefaultMaskConfig(), "mpp"},
		{"nan mpp", good, math.NaN(), DefaultMaskConfig(), "mpp"},
		{"inf mpp", good, math.Inf(1), DefaultMaskConfig(), "mpp"},
		{"bad config", good, 4, bad, "sat_ceil"},
		{"too large", &raster.RGB{W: MaxMaskSide + 1, H: 1, Pix: make([]uint8, 3*(MaxMaskSide+1))}, 4, DefaultMaskConfig(), "lower-resolution level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TissueMask(tc.img, tc.mpp, tc.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "tiling: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want prefix \"tiling: \" and %q", err, tc.want)
			}
		})
	}
}

func TestMaskConfigValidate(t *testing.T) {
	if err := DefaultMaskConfig().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	tests := []struct {
		name   string
		modify func(c *MaskConfig)
		want   string
	}{
		{"quantile low", func(c *MaskConfig) { c.BackgroundQuantile = 0.2 }, "background_quantile"},
		{"quantile nan", func(c *MaskConfig) { c.BackgroundQuantile = math.NaN() }, "background_quantile"},
		{"glass value", func(c *MaskConfig) { c.GlassMinValue = 300 }, "glass_min_value"},
		{"sat floor", func(c *MaskConfig) { c.SatFloor = -1 }, "sat_floor"},
		{"sat ceil below floor", func(c *MaskConfig) { c.SatFloor, c.SatCeil = 30, 20 }, "sat_ceil"},
		{"density negative", func(c *MaskConfig) { c.MinDensity = -0.1 }, "min_density"},
		{"chroma inf", func(c *MaskConfig) { c.MinChroma = math.Inf(1) }, "min_chroma"},
		{"black value", func(c *MaskConfig) { c.BlackValue = 256 }, "black_value"},
		{"close radius nan", func(c *MaskConfig) { c.CloseRadiusUM = math.NaN() }, "close_radius_um"},
		{"median negative", func(c *MaskConfig) { c.MedianRadiusUM = -1 }, "median_radius_um"},
		{"object area", func(c *MaskConfig) { c.MinObjectAreaUM2 = -5 }, "min_object_area_um2"},
		{"hole area", func(c *MaskConfig) { c.MaxHoleAreaUM2 = math.Inf(1) }, "max_hole_area_um2"},
		{"pen margin", func(c *MaskConfig) { c.PenMarginUM = -2 }, "pen_margin_um"},
		{"pen hue", func(c *MaskConfig) { c.PenRules[0].Hue.Max = 400 }, "pen_rules[0]"},
		{"pen sat", func(c *MaskConfig) { c.PenRules[2].WeakSat = 300 }, "pen_rules[2]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultMaskConfig()
			tc.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "tiling: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want prefix \"tiling: \" and %q", err, tc.want)
			}
		})
	}
}

func TestMaskConfigJSON(t *testing.T) {
	b, err := json.Marshal(DefaultMaskConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"sat_floor"`, `"close_radius_um"`, `"min_object_area_um2"`, `"max_hole_area_um2"`, `"median_radius_um"`, `"pen_rules"`, `"weak_hue"`, `"remove_pens"`, `"min_density"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	var back MaskConfig
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Errorf("round trip changed the config:\n%s\n%s", b, b2)
	}
}

func TestDisablingFilters(t *testing.T) {
	// With pens off a green stroke on glass is tissue-coloured, so it is kept:
	// the switch works and the default really is what removes it.
	c := newCanvas(300, 200, glassWhite, 3, 3)
	c.stroke(20, 100, 280, 100, 30, greenPen)
	cfg := DefaultMaskConfig()
	cfg.RemovePens = false
	m, err := TissueMask(c.img, 4, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.TissueFraction() < 0.05 {
		t.Errorf("pens off: tissue fraction %.3f, want the stroke kept", m.TissueFraction())
	}
	m, err = TissueMask(c.img, 4, DefaultMaskConfig())
	if err != nil {
		t.Fatal(err)
	}
	if m.TissueFraction() > 0 {
		t.Errorf("pens on: tissue fraction %.3f, want 0", m.TissueFraction())
	}
}

// TestFraction checks Fraction against a brute-force area integral on random
// masks and rectangles with fractional and out-of-bounds edges.
func TestFraction(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 50; iter++ {
		w, h := 1+rng.IntN(20), 1+rng.IntN(20)
		tissue := make([]uint8, w*h)
		for i := range tissue {
			if rng.IntN(3) == 0 {
				tissue[i] = 1
			}
		}
		m, err := NewMask(w, h, 4, tissue)
		if err != nil {
			t.Fatal(err)
		}
		for q := 0; q < 40; q++ {
			x0 := rng.Float64()*float64(w+6) - 3
			y0 := rng.Float64()*float64(h+6) - 3
			x1 := x0 + rng.Float64()*float64(w+3)
			y1 := y0 + rng.Float64()*float64(h+3)
			switch q {
			case 0: // integer, whole mask
				x0, y0, x1, y1 = 0, 0, float64(w), float64(h)
			case 1: // entirely outside
				x0, y0, x1, y1 = float64(w)+1, 0, float64(w)+3, 2
			case 2: // integer edges inside
				x0, y0 = float64(rng.IntN(w)), float64(rng.IntN(h))
				x1, y1 = x0+1, y0+1
			}
			var area float64
			for y := 0; y < h; y++ {
				oy := math.Max(0, math.Min(y1, float64(y+1))-math.Max(y0, float64(y)))
				for x := 0; x < w; x++ {
					ox := math.Max(0, math.Min(x1, float64(x+1))-math.Max(x0, float64(x)))
					area += ox * oy * float64(tissue[y*w+x])
				}
			}
			want := 0.0
			if x1 > x0 && y1 > y0 {
				want = area / ((x1 - x0) * (y1 - y0))
			}
			if got := m.Fraction(x0, y0, x1, y1); math.Abs(got-want) > 1e-9 {
				t.Fatalf("%dx%d mask, rect (%.3f,%.3f)-(%.3f,%.3f): Fraction %.12f, brute force %.12f", w, h, x0, y0, x1, y1, got, want)
			}
		}
		if got, want := m.TissueFraction(), float64(count(tissue))/float64(w*h); math.Abs(got-want) > 1e-12 {
			t.Fatalf("TissueFraction %v, want %v", got, want)
		}
	}
}

func TestFractionEdgeCases(t *testing.T) {
	m, err := NewMask(2, 2, 1, []uint8{1, 0, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		x0, y0, x1, y1 float64
		want           float64
	}{
		{"empty", 1, 1, 1, 2, 0},
		{"inverted", 2, 2, 1, 1, 0},
		{"nan", math.NaN(), 0, 1, 1, 0},
		{"one pixel", 0, 0, 1, 1, 1},
		{"quarter of a pixel", 0.5, 0.5, 1, 1, 1},
		{"half outside", -1, 0, 1, 1, 0.5},
		{"all, padded", -2, -2, 4, 4, 2.0 / 36},
	}
	for _, tc := range tests {
		if got := m.Fraction(tc.x0, tc.y0, tc.x1, tc.y1); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: Fraction = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A hand-built Mask gets its table on first use; Reindex follows edits.
	h := &Mask{W: 2, H: 1, MPP: 1, Tissue: []uint8{1, 0}}
	if got := h.Fraction(0, 0, 2, 1); got != 0.5 {
		t.Errorf("hand-built mask: %v, want 0.5", got)
	}
	h.Tissue[1] = 1
	h.Reindex()
	if got := h.TissueFraction(); got != 1 {
		t.Errorf("after Reindex: %v, want 1", got)
	}
	if _, err := NewMask(2, 2, 1, []uint8{1}); err == nil || !strings.HasPrefix(err.Error(), "tiling: ") {
		t.Errorf("NewMask with short data: %v", err)
	}
	if _, err := NewMask(1, 1, 0, []uint8{1}); err == nil {
		t.Error("NewMask with mpp 0: no error")
	}
}

// synthSlide is a 2500×1900 low-resolution slide (4 µm/px: a 10×7.6 mm
// area) with H&E and IHC-like tissue pieces, pen strokes and a dark edge.
func synthSlide(seed uint64) *raster.RGB {
	c := newCanvas(2500, 1900, glassWhite, 3, seed)
	c.ellipse(700, 700, 500, 400, hePink, true, &heNuclei)
	c.ellipse(1700, 800, 450, 500, hePurple, true, &heNuclei)
	c.ellipse(1200, 1500, 600, 250, ihcPale, true, &ihcNuclei)
	c.ellipse(2200, 1600, 200, 200, dabBrown, true, &dabDark)
	c.stroke(100, 100, 2400, 300, 60, greenPen)
	c.stroke(300, 1800, 2300, 1700, 50, bluePen)
	c.rect(0, 1860, 2500, 1900, blackMarker, false)
	return c.img
}

func BenchmarkTissueMask(b *testing.B) {
	img := synthSlide(1)
	cfg := DefaultMaskConfig()
	b.SetBytes(int64(len(img.Pix)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := TissueMask(img, 4, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
