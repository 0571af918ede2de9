package tiling

import (
	"fmt"
	"math"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// RegionReader is the part of slide.Slide the patch reader needs.
type RegionReader interface {
	ReadRegionInto(level, x, y int, dst *raster.RGB) error
	// ReadRegionBoxInto reads factor·dst.W × factor·dst.H and averages
	// each factor×factor block into dst.
	ReadRegionBoxInto(level, x, y, factor int, dst *raster.RGB) error
}

// PatchReader reads patches at the target resolution following a ReadPlan.
// It keeps one scratch buffer, so each goroutine needs its own PatchReader
// (the RegionReader underneath may be shared).
type PatchReader struct {
	src     RegionReader
	plan    ReadPlan
	buf     *raster.RGB
	resizer *raster.Resizer
}

// NewPatchReader returns a reader for plan over src.
func NewPatchReader(src RegionReader, plan ReadPlan) *PatchReader {
	r := &PatchReader{src: src, plan: plan}
	if plan.Resample && plan.ReadSize%plan.PatchSize != 0 {
		r.buf = raster.New(plan.ReadSize, plan.ReadSize)
		r.resizer = raster.NewResizer(plan.ReadSize, plan.ReadSize, plan.PatchSize, plan.PatchSize)
	}
	return r
}

// Read fills dst (PatchSize×PatchSize) with the patch whose level-0 top-left
// corner is (x0, y0).
func (r *PatchReader) Read(x0, y0 int64, dst *raster.RGB) error {
	p := r.plan
	if dst.W != p.PatchSize || dst.H != p.PatchSize {
		return fmt.Errorf("tiling: patch buffer %dx%d, want %d", dst.W, dst.H, p.PatchSize)
	}
	lx := int(math.Round(float64(x0) / p.Downsample))
	ly := int(math.Round(float64(y0) / p.Downsample))
	switch {
	case !p.Resample:
		return r.src.ReadRegionInto(p.Level, lx, ly, dst)
	case r.resizer == nil: // integer ratio, e.g. 512 px at 40× → 256 at 20×
		return r.src.ReadRegionBoxInto(p.Level, lx, ly, p.ReadSize/p.PatchSize, dst)
	}
	if err := r.src.ReadRegionInto(p.Level, lx, ly, r.buf); err != nil {
		return err
	}
	return r.resizer.Resize(r.buf, dst)
}
