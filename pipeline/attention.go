package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/store"
)

// AttentionJSON is WORK/slides/<id>/attention.json: the model's attention
// per patch, for the slide viewer's overlay.
func (w Work) AttentionJSON(id string) string { return filepath.Join(w.SlideDir(id), "attention.json") }

// ViewerURL is the slide viewer's page of slide id (pipeline serve), from
// the server's root.
func ViewerURL(id string) string {
	segs := strings.Split(filepath.ToSlash(id), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/slides/" + strings.Join(segs, "/") + "/view"
}

// Attention is attention.json: each patch the model saw, in coords.h5
// order, as [x, y, score] (level-0 top-left corner; the [CLS]→patch
// attention min–max scaled to [0, 1] within the slide, all 0.5 when equal),
// with the prediction.
type Attention struct {
	PatchSizeLevel0 int64        `json:"patch_size_level0"`
	Patches         [][3]float64 `json:"patches"`
	Prediction      string       `json:"prediction"`
	Probabilities   []float64    `json:"probabilities"` // 0, 1+, 2+, 3+
	Model           string       `json:"model,omitempty"`
}

// writeAttention writes attention.json beside heatmap.png.
func writeAttention(work Work, id string, sd *bundle.SlideData, attn []float32, probs []float64, predicted int, modelID string) error {
	rec, err := work.ReadSlideRecord(id)
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: attention: %w", id, err)
	}
	coords, err := work.ReadCoords(id, rec)
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: attention: %w", id, err)
	}
	a := attentionOf(coords, sd.Rows, attn)
	a.PatchSizeLevel0 = int64(rec.Plan.PatchSizeLevel0)
	if a.PatchSizeLevel0 <= 0 {
		a.PatchSizeLevel0 = 256
	}
	a.Prediction, a.Probabilities, a.Model = cases.LabelName(predicted), probs, modelID
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: attention: %w", id, err)
	}
	if err := store.WriteFileAtomic(work.AttentionJSON(id), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("pipeline: slide %s: attention: %w", id, err)
	}
	return nil
}

// attentionOf pairs each of rows (rows of coords, [N,2]) with its
// attention, scaled to [0, 1], in coords order.
func attentionOf(coords, rows []int64, attn []float32) Attention {
	n := min(len(rows), len(attn))
	seen := map[int64]float32{}
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for i, row := range rows[:n] {
		if row < 0 || int(2*row+1) >= len(coords) {
			continue
		}
		seen[row] = attn[i]
		lo, hi = min(lo, attn[i]), max(hi, attn[i])
	}
	byRow := map[int64]float64{}
	for row, v := range seen {
		t := 0.5
		if hi > lo {
			t = float64((v - lo) / (hi - lo))
		}
		byRow[row] = t
	}
	a := Attention{Patches: [][3]float64{}}
	for row := int64(0); int(2*row+1) < len(coords); row++ {
		if t, ok := byRow[row]; ok {
			a.Patches = append(a.Patches, [3]float64{float64(coords[2*row]), float64(coords[2*row+1]), t})
		}
	}
	return a
}
