package viewer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"

	"github.com/her2wsi/her2wsi/pipeline"
)

// TilingOverlay is tiling.json: what the tile stage kept, for the viewer's
// second overlay. Coordinates are level-0 pixels.
type TilingOverlay struct {
	PatchSizeLevel0 int64 `json:"patch_size_level0"`
	// Coords are the patches of coords.h5, in its order: x0, y0, x1, y1, …
	// (top-left corners).
	Coords         []int64 `json:"coords"`
	TissueFraction float64 `json:"tissue_fraction"`
	MinTissue      float64 `json:"min_tissue"`
	MaskMPP        float64 `json:"mask_mpp"`
	// Outline is the tissue mask's boundary (tissue.png), one flat list
	// of points per loop; none when the slide was tiled before the tile
	// stage wrote its mask (Note says so).
	Outline [][]int64 `json:"outline"`
	Note    string    `json:"note,omitempty"`
}

// Tiling reads slide id's tiling outputs: coords.h5 (checked against
// slide.json) and the outline of tissue.png.
func (s *Server) Tiling(id string) (*TilingOverlay, error) {
	rec, err := s.record(id)
	if err != nil {
		return nil, err
	}
	if len(rec.Slide.Levels) == 0 || rec.Plan.PatchSizeLevel0 <= 0 {
		return nil, fmt.Errorf("%w: slide %s: slide.json has no tiling", errNotFound, id)
	}
	w := s.opt.Work
	if _, err := os.Stat(w.CoordsH5(id)); err != nil {
		return nil, fmt.Errorf("%w: slide %s has no coords.h5", errNotFound, id)
	}
	coords, err := w.ReadCoords(id, rec)
	if err != nil {
		return nil, fmt.Errorf("viewer: slide %s: %w", id, err)
	}
	t := &TilingOverlay{PatchSizeLevel0: int64(rec.Plan.PatchSizeLevel0), Coords: coords, TissueFraction: rec.TissueFraction,
		MinTissue: rec.Params.Grid.MinTissue, MaskMPP: rec.MaskMPP, Outline: [][]int64{}}
	mw, mh, tissue, err := pipeline.ReadMask(w.TissuePNG(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		t.Note = "no tissue outline: the slide was tiled before the tile stage kept its mask (tissue.png); tile it again to see it"
		return t, nil
	case err != nil: // the patches still show
		slog.Warn("viewer: tissue outline", "slide", id, "err", err)
		t.Note = "no tissue outline: " + err.Error() + "; tile the slide again"
		return t, nil
	case mw != rec.MaskWidth || mh != rec.MaskHeight:
		t.Note = fmt.Sprintf("no tissue outline: tissue.png is %dx%d, slide.json's mask %dx%d; tile the slide again", mw, mh, rec.MaskWidth, rec.MaskHeight)
		return t, nil
	}
	l0 := rec.Slide.Levels[0]
	sx, sy := float64(l0.Width)/float64(mw), float64(l0.Height)/float64(mh)
	for _, loop := range Outline(mw, mh, tissue) {
		out := make([]int64, len(loop))
		for i := 0; i < len(loop); i += 2 {
			out[i], out[i+1] = int64(math.Round(loop[i]*sx)), int64(math.Round(loop[i+1]*sy))
		}
		t.Outline = append(t.Outline, out)
	}
	return t, nil
}

func (s *Server) serveTiling(w http.ResponseWriter, r *http.Request, id string) {
	if !validID(id) {
		http.NotFound(w, r)
		return
	}
	t, err := s.Tiling(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := json.Marshal(t)
	if err != nil {
		s.fail(w, r, fmt.Errorf("viewer: slide %s: tiling.json: %w", id, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}
