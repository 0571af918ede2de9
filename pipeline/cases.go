package pipeline

import (
	"fmt"

	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/store"
)

// SlideChecker says whether a slide is ready for the model: tiled, embedded
// with the encoder (features belonging to its coordinates) and, for H&E
// slides, anchored with the ppk group the model uses.
type SlideChecker struct {
	Work        Work
	Encoder     string
	PPK         int
	NeedAnchors func(id string) bool // nil: every slide
}

// Check implements cases.WorkChecker.
func (c SlideChecker) Check(id string) error {
	rec, err := c.Work.ReadSlideRecord(id)
	if err != nil {
		return fmt.Errorf("not tiled (no slide.json)")
	}
	info, n, _, err := featfile.ReadInfo(c.Work.FeaturesH5(id, c.Encoder))
	if err != nil {
		return fmt.Errorf("not embedded with encoder %s", c.Encoder)
	}
	if info.CoordsSHA256 != rec.CoordsSHA256 || n != rec.NumPatches {
		return fmt.Errorf("features/%s.h5 is stale (made from other coordinates): rerun the embed stage", c.Encoder)
	}
	if c.NeedAnchors != nil && !c.NeedAnchors(id) {
		return nil
	}
	r, err := store.OpenH5(c.Work.AnchorsH5(id))
	if err != nil {
		return fmt.Errorf("not anchored (no anchors.h5)")
	}
	defer r.Close()
	if sum, _ := r.Attr("", "coords_sha256"); sum != rec.CoordsSHA256 {
		return fmt.Errorf("anchors.h5 is stale (made from other coordinates): rerun the anchors stage")
	}
	if !r.Has(PPKGroup(c.PPK) + "/anchor_index") {
		return fmt.Errorf("anchors.h5 has no group %s: run the anchors stage with --ppk including %d", PPKGroup(c.PPK), c.PPK)
	}
	return nil
}
