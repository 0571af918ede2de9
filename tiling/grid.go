package tiling

import (
	"errors"
	"fmt"
	"math"
)

// GridConfig sets the patch grid: patch size in output pixels at the target
// resolution, and the share of tissue a patch needs to be kept.
type GridConfig struct {
	PatchSize int     `json:"patch_size"` // output pixels per side (256)
	TargetMPP float64 `json:"target_mpp"` // µm per output pixel (0.5 = 20×)
	// MPPTolerance is how far (relative) a level's resolution may be from an
	// integer multiple of the target and still be read as that multiple
	// (0.499 µm/px is 20×, 0.2527 is 40×). Beyond it the read is resampled.
	MPPTolerance float64 `json:"mpp_tolerance"`
	// MinTissue is the tissue fraction at which a patch is kept (0..1].
	MinTissue float64 `json:"min_tissue"`
	// MaskMPP is the resolution (µm per pixel) the tissue mask is computed
	// at; a low-resolution level is read and reduced to it.
	MaskMPP float64 `json:"mask_mpp"`
	// MaxMaskSide caps the mask's long side in pixels (memory bound).
	MaxMaskSide int `json:"max_mask_side"`
}

// DefaultGridConfig is the paper's setting: 256×256 patches at 20×
// (0.5 µm/px), kept at ≥ 10 % tissue (PAMA keeps a patch when its blurred
// mask mean exceeds 25/255 ≈ 10 %).
func DefaultGridConfig() GridConfig {
	return GridConfig{PatchSize: 256, TargetMPP: 0.5, MPPTolerance: 0.05, MinTissue: 0.10, MaskMPP: 4, MaxMaskSide: 4096}
}

// Validate reports the first bad parameter.
func (c GridConfig) Validate() error {
	switch {
	case c.PatchSize < 16 || c.PatchSize > 4096:
		return fmt.Errorf("tiling: patch size %d outside 16..4096", c.PatchSize)
	case !(c.TargetMPP > 0) || c.TargetMPP > 100:
		return fmt.Errorf("tiling: target mpp %g must be in (0, 100]", c.TargetMPP)
	case c.MPPTolerance < 0 || c.MPPTolerance >= 0.5:
		return fmt.Errorf("tiling: mpp tolerance %g must be in [0, 0.5)", c.MPPTolerance)
	case !(c.MinTissue > 0) || c.MinTissue > 1:
		return fmt.Errorf("tiling: min tissue %g must be in (0, 1]", c.MinTissue)
	case !(c.MaskMPP > 0):
		return fmt.Errorf("tiling: mask mpp %g must be > 0", c.MaskMPP)
	case c.MaxMaskSide < 64:
		return fmt.Errorf("tiling: max mask side %d must be ≥ 64", c.MaxMaskSide)
	}
	return nil
}

// LevelInfo is what the planner needs of a pyramid level.
type LevelInfo struct {
	Width, Height int64
	Downsample    float64 // level-0 pixels per level pixel
}

// ReadPlan says how to read one patch: a ReadSize×ReadSize region of Level
// at level-0 position (x, y) / Downsample, resized to PatchSize.
type ReadPlan struct {
	Level           int     `json:"level"`
	LevelMPP        float64 `json:"level_mpp"`
	ReadSize        int     `json:"read_size"`         // pixels read at Level per side
	PatchSize       int     `json:"patch_size"`        // pixels per side after resizing
	PatchSizeLevel0 int     `json:"patch_size_level0"` // grid step in level-0 pixels
	Scale           float64 `json:"scale"`             // ReadSize / PatchSize
	TargetMPP       float64 `json:"target_mpp"`
	Resample        bool    `json:"resample"` // false when ReadSize == PatchSize
	Downsample      float64 `json:"downsample"`
}

// ErrTooCoarse is wrapped when even the finest level is coarser than the
// target resolution.
var ErrTooCoarse = errors.New("slide resolution is coarser than the target")

// PlanRead chooses the level and region size for patches at the target
// resolution. It reads from the coarsest level that is still at least as fine
// as the target (within tolerance), so a 40× slide with a 20× level reads
// that level directly, and one without reads 2·256 px at level 0 and halves.
// mpp0 is the level-0 resolution in µm/px.
func PlanRead(levels []LevelInfo, mpp0 float64, c GridConfig) (ReadPlan, error) {
	if err := c.Validate(); err != nil {
		return ReadPlan{}, err
	}
	if len(levels) == 0 || !(mpp0 > 0) {
		return ReadPlan{}, fmt.Errorf("tiling: no levels or no resolution")
	}
	best := -1
	for i, lv := range levels {
		m := mpp0 * lv.Downsample
		if m <= c.TargetMPP*(1+c.MPPTolerance) && (best < 0 || m > mpp0*levels[best].Downsample) {
			best = i
		}
	}
	if best < 0 {
		return ReadPlan{}, fmt.Errorf("tiling: %w: level 0 is %.4g µm/px, target %.4g µm/px (lower --target-mpp or check --mpp)", ErrTooCoarse, mpp0, c.TargetMPP)
	}
	lv := levels[best]
	lmpp := mpp0 * lv.Downsample
	ratio := c.TargetMPP / lmpp
	if r := math.Round(ratio); r >= 1 && math.Abs(ratio/r-1) <= c.MPPTolerance {
		ratio = r
	}
	read := int(math.Round(float64(c.PatchSize) * ratio))
	p := ReadPlan{
		Level:     best,
		LevelMPP:  lmpp,
		ReadSize:  read,
		PatchSize: c.PatchSize,
		Scale:     float64(read) / float64(c.PatchSize),
		TargetMPP: c.TargetMPP,
		Resample:  read != c.PatchSize,
		// The grid step at level 0 is the read size mapped to level 0.
		PatchSizeLevel0: int(math.Round(float64(read) * lv.Downsample)),
		Downsample:      lv.Downsample,
	}
	return p, nil
}

// Patch is one kept grid cell: its level-0 top-left corner, grid position
// and tissue fraction.
type Patch struct {
	X, Y     int64 // level-0 pixels, top-left (CLAM/TRIDENT convention)
	Row, Col int32 // grid position
	Tissue   float32
}

// Grid lays the non-overlapping patch grid over a level-0 image of w0×h0
// pixels (full patches only) and keeps the cells whose tissue fraction in
// mask reaches MinTissue. The mask covers the whole slide: mask pixel (i, j)
// spans level-0 pixels scaled by w0/mask.W, h0/mask.H. Patches come in
// raster order (row by row), the order the later stages rely on.
func Grid(w0, h0 int64, step int, mask *Mask, minTissue float64) []Patch {
	if step <= 0 || w0 < int64(step) || h0 < int64(step) || mask == nil || mask.W == 0 || mask.H == 0 {
		return nil
	}
	nx, ny := w0/int64(step), h0/int64(step)
	sx := float64(mask.W) / float64(w0)
	sy := float64(mask.H) / float64(h0)
	var out []Patch
	for r := int64(0); r < ny; r++ {
		y := r * int64(step)
		for c := int64(0); c < nx; c++ {
			x := c * int64(step)
			f := mask.Fraction(float64(x)*sx, float64(y)*sy, float64(x+int64(step))*sx, float64(y+int64(step))*sy)
			if f >= minTissue {
				out = append(out, Patch{X: x, Y: y, Row: int32(r), Col: int32(c), Tissue: float32(f)})
			}
		}
	}
	return out
}

// MaskSize returns the size of the tissue-mask image for a w0×h0 slide at
// mpp0: the slide at cfg.MaskMPP, capped at cfg.MaxMaskSide, never larger
// than level 0.
func MaskSize(w0, h0 int64, mpp0 float64, c GridConfig) (w, h int, mpp float64) {
	scale := mpp0 / c.MaskMPP // mask pixels per level-0 pixel
	if scale > 1 {
		scale = 1
	}
	if long := float64(max(w0, h0)) * scale; long > float64(c.MaxMaskSide) {
		scale *= float64(c.MaxMaskSide) / long
	}
	w = max(1, int(math.Round(float64(w0)*scale)))
	h = max(1, int(math.Round(float64(h0)*scale)))
	return w, h, mpp0 * float64(w0) / float64(w)
}
