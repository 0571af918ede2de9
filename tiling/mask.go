// Package tiling finds the tissue on a slide, lays the 20× patch grid over it
// and draws the QC picture.
//
// # Tissue mask
//
// TissueMask works on a low-resolution view of the slide (typically 2–16
// µm/px; the caller reads it from a pyramid level, never a full-resolution
// level). Every size in MaskConfig is physical (µm, µm²), so the result does
// not depend on which level was read. The method:
//
//  1. Glass colour. The background is the per-channel median of the
//     brightest pixels (R+G+B at or above BackgroundQuantile). If that colour
//     is not plausibly glass (a channel below GlassMinValue or saturation
//     above GlassMaxSat: an image without glass), white is assumed. The
//     image is white-balanced on it, so grey, warm or bluish glass all
//     become neutral white.
//  2. Ink and black. Pen ink is found by hue and saturation with hysteresis
//     (PenRules; green, blue and red marker by default): "strong" pixels,
//     cleaned of specks smaller than PenMinAreaUM2, seed the pen regions,
//     which then take in every connected "weak" pixel (the same ink, paler or
//     mixed with tissue). The hue ranges avoid the stains: haematoxylin is
//     purple in H&E (250–300°) and a pale blue in IHC (saturation far below
//     marker ink), eosin is pink-magenta (320–345°), blood 340–350°, DAB
//     brown 15–45°, and nothing is green. Black marker, slide edges and dirt
//     are strong "black" pixels (value below BlackValue, or below
//     GreyDarkValue with saturation below GreyMaxSat). The pen regions are
//     grown by PenMarginUM (at least one pixel) to take the blurred rim of
//     the ink.
//  3. Tissue-coloured pixels: either
//     (a) white-balanced HSV saturation (0–255) at or above an Otsu
//     threshold clamped to [SatFloor, SatCeil] (CLAM's criterion; the clamp
//     keeps Otsu sane on glass-only and tissue-only images), or
//     (b) optical density above the glass, averaged over the channels, at
//     least MinDensity, with a spread between channels (max−min) of at least
//     MinChroma and at least MinChromaRatio times the mean: the stain has a
//     colour, grey shading (out-of-coverslip glass, bubbles, slide edges)
//     has none. (b) keeps pale tissue with little saturation, e.g. HER2 0/1+
//     IHC with its faint haematoxylin counterstain.
//  4. Clean-up on the binary image: a median filter of radius MedianRadiusUM
//     (as a majority vote, which equals median-then-threshold), removal of
//     the pen regions, a morphological closing with a disk of radius
//     CloseRadiusUM, filling of enclosed holes up to MaxHoleAreaUM2, removal
//     of the pen regions again (closing and hole filling must not bring ink
//     back), and removal of tissue objects smaller than MinObjectAreaUM2.
//
// All steps are O(pixels): disk dilation and erosion are exact (column
// distances plus the disk's chord intervals per row, whatever the radius),
// the median filter and Mask.Fraction use summed-area tables, connected
// components use run-length union-find. A 2500×1900 mask takes about 0.35 s
// on one core.
//
// Defaults (DefaultMaskConfig), chosen on H&E and HER2 IHC crops (see the
// real-data tests): glass from the brightest 1 % (accepted if every channel
// ≥ 200 and saturation ≤ 40); saturation threshold Otsu clamped to [15, 40];
// pale tissue at mean density ≥ 0.015 with spread ≥ 0.008 and ≥ 0.2×mean;
// black below value 40, grey-dark below value 120 with saturation < 30;
// pens on (DefaultPenRules), specks under 400 µm² ignored, margin 30 µm;
// median radius 8 µm, closing radius 32 µm, objects under 4000 µm² dropped,
// holes up to 100 000 µm² filled.
//
// Relation to the reference methods. PAMA thresholds HSV value < 210 and hue
// ≥ 10 (OpenCV 0–180 scale) on a ~5× overview and closes with a 61-px
// ellipse (about 60 µm radius at 2 µm/px); it keeps a patch when its blurred
// mask mean exceeds 25/255. A fixed value cut misses pale IHC tissue on
// bright glass and takes grey shading on dark glass, and the hue cut keeps
// green, blue and black pen. CLAM median-blurs (7 px) the saturation,
// thresholds it at 8 (or Otsu), closes with 4 px and filters contours and
// holes by area: a fixed low threshold is sensitive to tinted glass, plain
// Otsu collapses on images with only glass or only tissue, and neither
// removes pen. This method keeps CLAM's saturation/Otsu criterion (on
// white-balanced colour, clamped), adds the glass-relative density criterion
// for pale stains, PAMA's closing and CLAM's object and hole filters in
// physical units, and explicit ink and black exclusion. PAMA's patch rule is
// the grid's: a patch is kept when Mask.Fraction over it reaches the
// configured minimum (10 % by default).
package tiling

import (
	"errors"
	"fmt"
	"math"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// HueRange is a range of HSV hue in degrees, [Min, Max); Min > Max wraps
// through 0 (e.g. 350 to 10 for red).
type HueRange struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

func (h HueRange) contains(hue float64) bool {
	if h.Min <= h.Max {
		return hue >= h.Min && hue < h.Max
	}
	return hue >= h.Min || hue < h.Max
}

func (h HueRange) valid() bool {
	return h.Min >= 0 && h.Min <= 360 && h.Max >= 0 && h.Max <= 360
}

// PenRule describes one ink colour on the white-balanced image. A pixel is
// strong ink when its hue is in Hue and its saturation (0–255) reaches
// MinSat; weak ink when its hue is in WeakHue and saturation reaches WeakSat.
// Weak pixels count as ink only when connected to strong ink.
type PenRule struct {
	Name    string   `json:"name"`
	Hue     HueRange `json:"hue"`
	MinSat  int      `json:"min_sat"`
	WeakHue HueRange `json:"weak_hue"`
	WeakSat int      `json:"weak_sat"`
}

// MaskConfig holds every parameter of TissueMask. Sizes are physical (µm,
// µm²) so one config works at any resolution; colour values are on 0–255
// scales, hues in degrees.
type MaskConfig struct {
	// BackgroundQuantile: the glass colour is the per-channel median of the
	// pixels whose R+G+B is at or above this quantile, in [0.5, 1].
	BackgroundQuantile float64 `json:"background_quantile"`
	// GlassMinValue, GlassMaxSat: the estimate is used only when every
	// channel is at least GlassMinValue and its saturation is at most
	// GlassMaxSat; otherwise (no glass in the image) white is assumed.
	GlassMinValue int `json:"glass_min_value"`
	GlassMaxSat   int `json:"glass_max_sat"`

	// SatFloor, SatCeil clamp the Otsu threshold on white-balanced HSV
	// saturation.
	SatFloor int `json:"sat_floor"`
	SatCeil  int `json:"sat_ceil"`

	// Pale-tissue criterion on optical density (log10) relative to the glass:
	// mean over channels ≥ MinDensity, spread (max−min) ≥ MinChroma and
	// spread ≥ MinChromaRatio·mean. PaleTissue false disables it.
	PaleTissue     bool    `json:"pale_tissue"`
	MinDensity     float64 `json:"min_density"`
	MinChroma      float64 `json:"min_chroma"`
	MinChromaRatio float64 `json:"min_chroma_ratio"`

	// BlackValue: pixels whose HSV value (max of R, G, B) is below it are
	// never tissue (black marker, slide edges, dirt); 0 disables.
	BlackValue int `json:"black_value"`
	// GreyDarkValue, GreyMaxSat: pixels darker than GreyDarkValue whose
	// saturation is below GreyMaxSat are never tissue (grey-black lines and
	// edges; stained tissue is coloured); GreyDarkValue 0 disables.
	GreyDarkValue int `json:"grey_dark_value"`
	GreyMaxSat    int `json:"grey_max_sat"`

	// RemovePens switches the ink filters on or off (black is separate).
	RemovePens bool      `json:"remove_pens"`
	PenRules   []PenRule `json:"pen_rules"`
	// PenMinAreaUM2: strong ink or black regions smaller than this are
	// noise, not ink. PenMarginUM: pen regions are grown by this radius (at
	// least one pixel when > 0) to take the faint rim of the ink.
	PenMinAreaUM2 float64 `json:"pen_min_area_um2"`
	PenMarginUM   float64 `json:"pen_margin_um"`

	// MedianRadiusUM: radius of the square median (majority) filter on the
	// candidate mask; 0: none.
	MedianRadiusUM float64 `json:"median_radius_um"`
	// CloseRadiusUM: radius of the disk of the morphological closing; 0: none.
	CloseRadiusUM float64 `json:"close_radius_um"`
	// MinObjectAreaUM2: 8-connected tissue objects smaller than this are
	// dropped; 0 keeps all.
	MinObjectAreaUM2 float64 `json:"min_object_area_um2"`
	// MaxHoleAreaUM2: enclosed 4-connected background holes up to this size
	// are filled; 0 fills none.
	MaxHoleAreaUM2 float64 `json:"max_hole_area_um2"`
}

// DefaultPenRules are the inks removed by default (hues on the
// white-balanced image; see the package documentation for the stains' hues).
// Green/teal marker (strong 75–195°, saturation ≥ 40): nothing in H&E or DAB
// IHC is green; its weak range reaches 240° because green ink over purple
// tissue turns blue-teal. Blue marker (195–240°, ≥ 120): stops at 240°, as
// lymphocyte-dense H&E reaches 240° and beyond; IHC haematoxylin is blue but
// far below that saturation. Red marker (350–10°, ≥ 200): a purer and far
// more saturated red than eosin (320–345°) or blood (340–350°); its weak
// range (340–15°, ≥ 50) takes the maroon and pink rim of red ink, but only
// where connected to strong red, so eosin-red stroma alone is safe.
func DefaultPenRules() []PenRule {
	return []PenRule{
		{Name: "green", Hue: HueRange{75, 195}, MinSat: 40, WeakHue: HueRange{70, 240}, WeakSat: 15},
		{Name: "blue", Hue: HueRange{195, 240}, MinSat: 120, WeakHue: HueRange{180, 245}, WeakSat: 30},
		{Name: "red", Hue: HueRange{350, 10}, MinSat: 200, WeakHue: HueRange{340, 15}, WeakSat: 50},
	}
}

// DefaultMaskConfig returns defaults that work on H&E and on HER2 IHC
// (including pale 0/1+ slides) at 2–16 µm/px.
func DefaultMaskConfig() MaskConfig {
	return MaskConfig{
		BackgroundQuantile: 0.99,
		GlassMinValue:      200,
		GlassMaxSat:        40,
		SatFloor:           15,
		SatCeil:            40,
		PaleTissue:         true,
		MinDensity:         0.015,
		MinChroma:          0.008,
		MinChromaRatio:     0.2,
		BlackValue:         40,
		GreyDarkValue:      120,
		GreyMaxSat:         30,
		RemovePens:         true,
		PenRules:           DefaultPenRules(),
		PenMinAreaUM2:      400,
		PenMarginUM:        30,
		MedianRadiusUM:     8,
		CloseRadiusUM:      32,
		MinObjectAreaUM2:   4000,
		MaxHoleAreaUM2:     100000,
	}
}

// Validate reports the first invalid parameter.
func (c MaskConfig) Validate() error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("tiling: mask config: %s = %v, want %s", name, v, want)
	}
	byteRange := func(name string, v int) error {
		if v < 0 || v > 255 {
			return bad(name, v, "in [0, 255]")
		}
		return nil
	}
	finite := func(name string, v float64) error {
		if !(v >= 0) || math.IsInf(v, 0) {
			return bad(name, v, "finite and ≥ 0")
		}
		return nil
	}
	if !(c.BackgroundQuantile >= 0.5 && c.BackgroundQuantile <= 1) {
		return bad("background_quantile", c.BackgroundQuantile, "in [0.5, 1]")
	}
	if c.SatCeil < c.SatFloor {
		return bad("sat_ceil", c.SatCeil, fmt.Sprintf("≥ sat_floor (%d)", c.SatFloor))
	}
	for _, e := range []error{
		byteRange("glass_min_value", c.GlassMinValue),
		byteRange("glass_max_sat", c.GlassMaxSat),
		byteRange("sat_floor", c.SatFloor),
		byteRange("sat_ceil", c.SatCeil),
		byteRange("black_value", c.BlackValue),
		byteRange("grey_dark_value", c.GreyDarkValue),
		byteRange("grey_max_sat", c.GreyMaxSat),
		finite("min_density", c.MinDensity),
		finite("min_chroma", c.MinChroma),
		finite("min_chroma_ratio", c.MinChromaRatio),
		finite("pen_min_area_um2", c.PenMinAreaUM2),
		finite("pen_margin_um", c.PenMarginUM),
		finite("median_radius_um", c.MedianRadiusUM),
		finite("close_radius_um", c.CloseRadiusUM),
		finite("min_object_area_um2", c.MinObjectAreaUM2),
		finite("max_hole_area_um2", c.MaxHoleAreaUM2),
	} {
		if e != nil {
			return e
		}
	}
	for i, r := range c.PenRules {
		if !r.Hue.valid() || !r.WeakHue.valid() {
			return fmt.Errorf("tiling: mask config: pen_rules[%d] (%s): hue outside [0, 360]", i, r.Name)
		}
		if r.MinSat < 0 || r.MinSat > 255 || r.WeakSat < 0 || r.WeakSat > 255 {
			return fmt.Errorf("tiling: mask config: pen_rules[%d] (%s): saturation outside [0, 255]", i, r.Name)
		}
	}
	return nil
}

// Mask is a binary tissue map at the resolution of the image it was computed
// from. Tissue holds W*H values, row-major, 1 = tissue, 0 = not. MPP is the
// size of a mask pixel in µm.
//
// Fraction uses a summed-area table built by TissueMask and NewMask; a Mask
// assembled by hand gets it on its first query (not safe to do from several
// goroutines at once), and after changing Tissue call Reindex.
type Mask struct {
	W, H   int
	MPP    float64
	Tissue []uint8

	sum []uint32 // (W+1)×(H+1) summed-area table of Tissue
}

// NewMask wraps a tissue map (values 0/1; non-zero counts as 1) and builds
// its summed-area table. tissue is used, not copied.
func NewMask(w, h int, mpp float64, tissue []uint8) (*Mask, error) {
	if w <= 0 || h <= 0 || len(tissue) != w*h {
		return nil, fmt.Errorf("tiling: mask %dx%d with %d values", w, h, len(tissue))
	}
	if !(mpp > 0) || math.IsInf(mpp, 0) {
		return nil, fmt.Errorf("tiling: mask mpp %v, want > 0", mpp)
	}
	for i, v := range tissue {
		if v > 1 {
			tissue[i] = 1
		}
	}
	m := &Mask{W: w, H: h, MPP: mpp, Tissue: tissue}
	m.Reindex()
	return m, nil
}

// Reindex rebuilds the summed-area table after Tissue was changed.
func (m *Mask) Reindex() {
	m.sum = integral(m.Tissue, m.W, m.H)
}

func (m *Mask) table() []uint32 {
	if len(m.sum) != (m.W+1)*(m.H+1) {
		m.Reindex()
	}
	return m.sum
}

// At reports whether mask pixel (x, y) is tissue; false outside the mask.
func (m *Mask) At(x, y int) bool {
	if x < 0 || y < 0 || x >= m.W || y >= m.H {
		return false
	}
	return m.Tissue[y*m.W+x] != 0
}

// area returns the tissue area in [0,x]×[0,y] for real x, y: the bilinear
// interpolation of the summed-area table, which is exact for a
// piecewise-constant image. Coordinates are clamped to the mask, so area
// outside it counts as non-tissue.
func (m *Mask) area(s []uint32, x, y float64) float64 {
	x = math.Max(0, math.Min(x, float64(m.W)))
	y = math.Max(0, math.Min(y, float64(m.H)))
	ix, iy := int(x), int(y)
	if ix == m.W {
		ix--
	}
	if iy == m.H {
		iy--
	}
	fx, fy := x-float64(ix), y-float64(iy)
	st := m.W + 1
	i00 := float64(s[iy*st+ix])
	i10 := float64(s[iy*st+ix+1])
	i01 := float64(s[(iy+1)*st+ix])
	i11 := float64(s[(iy+1)*st+ix+1])
	return i00 + fx*(i10-i00) + fy*(i01-i00) + fx*fy*(i11-i10-i01+i00)
}

// Fraction returns the tissue fraction of the rectangle [x0,x1)×[y0,y1) in
// mask-pixel coordinates (pixel (i, j) covers [i,i+1)×[j,j+1)). Edges may be
// fractional: partly covered pixels count by covered area. The part of the
// rectangle outside the mask counts as non-tissue. An empty rectangle (or a
// NaN edge) gives 0. O(1).
func (m *Mask) Fraction(x0, y0, x1, y1 float64) float64 {
	if !(x1 > x0) || !(y1 > y0) || m.W <= 0 || m.H <= 0 {
		return 0
	}
	s := m.table()
	a := m.area(s, x1, y1) - m.area(s, x0, y1) - m.area(s, x1, y0) + m.area(s, x0, y0)
	f := a / ((x1 - x0) * (y1 - y0))
	return math.Max(0, math.Min(1, f))
}

// TissueFraction returns the fraction of the whole mask that is tissue.
func (m *Mask) TissueFraction() float64 {
	if m.W <= 0 || m.H <= 0 {
		return 0
	}
	s := m.table()
	return float64(s[len(s)-1]) / float64(m.W*m.H)
}

// MaxMaskSide is the largest image side TissueMask accepts: 32767 px is
// 65 mm at 2 µm/px, more than a slide; anything larger is a full-resolution
// level, which must not be read whole.
const MaxMaskSide = 32767

// TissueMask computes the tissue mask of img, a low-resolution view of a
// slide whose pixels are mpp µm wide; the mask has img's size. See the
// package documentation for the method. It allocates about 32 bytes per
// pixel in all and runs in time linear in the pixel count.
func TissueMask(img *raster.RGB, mpp float64, cfg MaskConfig) (*Mask, error) {
	if img == nil {
		return nil, errors.New("tiling: tissue mask: nil image")
	}
	if err := img.Valid(); err != nil {
		return nil, fmt.Errorf("tiling: tissue mask: %w", err)
	}
	if img.W > MaxMaskSide || img.H > MaxMaskSide {
		return nil, fmt.Errorf("tiling: tissue mask: image %dx%d exceeds %d px per side; read a lower-resolution level", img.W, img.H, MaxMaskSide)
	}
	if !(mpp > 0) || math.IsInf(mpp, 0) {
		return nil, fmt.Errorf("tiling: tissue mask: mpp %v, want > 0", mpp)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w, h := img.W, img.H
	n := w * h
	px := func(um float64) float64 { return um / mpp }
	area := func(um2 float64) int { return int(math.Ceil(um2 / (mpp * mpp))) }

	bg := glassColour(img, cfg.BackgroundQuantile)
	if !plausibleGlass(bg, cfg) {
		bg = [3]uint8{255, 255, 255}
	}
	// Per-channel tables: white-balanced value (glass → 255) and optical
	// density above the glass.
	var bal [3][256]uint8
	var od [3][256]float32
	for c := 0; c < 3; c++ {
		ref := math.Max(float64(bg[c]), 1)
		for v := 0; v < 256; v++ {
			bal[c][v] = uint8(math.Min(255, math.Round(float64(v)*255/ref)))
			od[c][v] = float32(math.Max(0, math.Log10(ref/math.Max(float64(v), 1))))
		}
	}
	var rules []PenRule
	if cfg.RemovePens {
		rules = cfg.PenRules
	}

	// satOf[v<<8|mn]: HSV saturation (0–255) from max and min channel.
	satOf := make([]uint8, 1<<16)
	for v := 1; v < 256; v++ {
		for mn := 0; mn <= v; mn++ {
			satOf[v<<8|mn] = uint8((255*(v-mn) + v/2) / v)
		}
	}
	minRuleSat := 256 // below this saturation no pen rule can match
	for _, rule := range rules {
		minRuleSat = min(minRuleSat, rule.MinSat, rule.WeakSat)
	}

	// Pass 1: saturation, strong and weak ink, saturation histogram of the
	// pixels that are not strong ink.
	sat := make([]uint8, n)
	strong := make([]uint8, n)
	weak := make([]uint8, n)
	var hist [256]int
	p := img.Pix
	for i := 0; i < n; i++ {
		r0, g0, b0 := p[3*i], p[3*i+1], p[3*i+2]
		v0 := int(max(r0, g0, b0))
		r, g, b := int(bal[0][r0]), int(bal[1][g0]), int(bal[2][b0])
		v, mn := max(r, g, b), min(r, g, b)
		s := int(satOf[v<<8|mn])
		sat[i] = uint8(s)
		if v0 < cfg.BlackValue || (v0 < cfg.GreyDarkValue && s < cfg.GreyMaxSat) {
			strong[i], weak[i] = 1, 1
			continue
		}
		if s >= minRuleSat && v > mn {
			hue := hueDeg(r, g, b, v, mn)
			for _, rule := range rules {
				if s >= rule.MinSat && rule.Hue.contains(hue) {
					strong[i], weak[i] = 1, 1
					break
				}
				if s >= rule.WeakSat && rule.WeakHue.contains(hue) {
					weak[i] = 1
				}
			}
			if strong[i] != 0 {
				continue
			}
		}
		hist[s]++
	}
	satT := uint8(min(max(otsu(&hist), cfg.SatFloor), cfg.SatCeil))

	// Pass 2: tissue-coloured candidates.
	cand := make([]uint8, n)
	for i := 0; i < n; i++ {
		if strong[i] != 0 {
			continue
		}
		if sat[i] >= satT {
			cand[i] = 1
			continue
		}
		if cfg.PaleTissue {
			a, b, c := od[0][p[3*i]], od[1][p[3*i+1]], od[2][p[3*i+2]]
			mean := float64(a+b+c) / 3
			spread := float64(max(a, b, c) - min(a, b, c))
			if mean >= cfg.MinDensity && spread >= cfg.MinChroma && spread >= cfg.MinChromaRatio*mean {
				cand[i] = 1
			}
		}
	}

	k := int(math.Round(px(cfg.MedianRadiusUM)))
	cand = majority(cand, w, h, k)

	// Ink regions: cleaned strong seeds grown through connected weak pixels,
	// then by the margin.
	strong = majority(strong, w, h, k)
	removeSmallObjects(strong, w, h, area(cfg.PenMinAreaUM2))
	pen := growInto(strong, weak, w, h)
	if cfg.PenMarginUM > 0 && count1(pen) > 0 {
		pen = dilate(pen, w, h, math.Max(1, px(cfg.PenMarginUM)))
	}
	andNot(cand, pen)

	cand = closeDisk(cand, w, h, px(cfg.CloseRadiusUM))
	andNot(cand, pen)
	if maxHole := int(cfg.MaxHoleAreaUM2 / (mpp * mpp)); maxHole > 0 {
		fillHoles(cand, w, h, maxHole)
		andNot(cand, pen)
	}
	removeSmallObjects(cand, w, h, area(cfg.MinObjectAreaUM2))

	return NewMask(w, h, mpp, cand)
}

// count1 returns the number of non-zero values.
func count1(m []uint8) int {
	n := 0
	for _, v := range m {
		if v != 0 {
			n++
		}
	}
	return n
}

func andNot(m, excl []uint8) {
	for i, e := range excl {
		m[i] &^= e
	}
}

// hueDeg returns the HSV hue in degrees [0, 360) given the max v and min mn
// of r, g, b (v > mn).
func hueDeg(r, g, b, v, mn int) float64 {
	d := float64(v - mn)
	var h float64
	switch v {
	case r:
		h = 60 * float64(g-b) / d
	case g:
		h = 120 + 60*float64(b-r)/d
	default:
		h = 240 + 60*float64(r-g)/d
	}
	if h < 0 {
		h += 360
	}
	return h
}

// plausibleGlass reports whether an estimated background colour can be
// glass: bright in every channel and nearly neutral. An image with no glass
// (a crop inside tissue) yields a tissue colour, which is then not used.
func plausibleGlass(bg [3]uint8, cfg MaskConfig) bool {
	v := int(max(bg[0], bg[1], bg[2]))
	mn := int(min(bg[0], bg[1], bg[2]))
	return mn >= cfg.GlassMinValue && v > 0 && 255*(v-mn) <= cfg.GlassMaxSat*v
}

// glassColour estimates the colour of empty glass: the per-channel median of
// the pixels whose R+G+B is at or above quantile q.
func glassColour(img *raster.RGB, q float64) [3]uint8 {
	var hist [766]int
	p := img.Pix
	n := img.W * img.H
	for i := 0; i < n; i++ {
		hist[int(p[3*i])+int(p[3*i+1])+int(p[3*i+2])]++
	}
	// The largest sum L with at least (1-q)·n pixels at or above it.
	need := max(int(math.Ceil((1-q)*float64(n))), 1)
	cut, acc := 765, 0
	for ; cut > 0; cut-- {
		acc += hist[cut]
		if acc >= need {
			break
		}
	}
	var ch [3][256]int
	cnt := 0
	for i := 0; i < n; i++ {
		if int(p[3*i])+int(p[3*i+1])+int(p[3*i+2]) >= cut {
			ch[0][p[3*i]]++
			ch[1][p[3*i+1]]++
			ch[2][p[3*i+2]]++
			cnt++
		}
	}
	var out [3]uint8
	for c := 0; c < 3; c++ {
		half, a := (cnt+1)/2, 0
		for v := 0; v < 256; v++ {
			a += ch[c][v]
			if a >= half {
				out[c] = uint8(v)
				break
			}
		}
	}
	return out
}
