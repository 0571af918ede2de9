package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/store"
)

// AttentionJSON is WORK/slides/<id>/attention.json: the model's attention
// per patch, for the slide viewer's overlay.
func (w Work) AttentionJSON(id string) string { return filepath.Join(w.SlideDir(id), "attention.json") }

// ModelAttentionJSON is WORK/slides/<id>/attention/<model id>.json: the
// same as attention.json for each model that predicted the slide, kept
// when another model predicts it later (attention.json is the latest).
func (w Work) ModelAttentionJSON(id, modelID string) string {
	return filepath.Join(w.SlideDir(id), "attention", modelID+".json")
}

// AttentionDir is WORK/slides/<id>/attention (ModelAttentionJSON's folder).
func (w Work) AttentionDir(id string) string { return filepath.Join(w.SlideDir(id), "attention") }

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
	Variant         string       `json:"variant,omitempty"` // the model's variant
	RunDir          string       `json:"run_dir,omitempty"` // the run folder it was loaded from
	Time            string       `json:"time,omitempty"`    // when it predicted (RFC 3339)
}

// writeAttention writes attention.json beside heatmap.png, and the same as
// attention/<model id>.json.
func writeAttention(work Work, id string, sd *bundle.SlideData, attn []float32, probs []float64, predicted int, m *LoadedModel, when time.Time) error {
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
	a.Prediction, a.Probabilities, a.Model = cases.LabelName(predicted), probs, m.ID
	a.Variant, a.RunDir, a.Time = m.Info.Variant, m.Info.RunDir, when.UTC().Format(time.RFC3339)
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("pipeline: slide %s: attention: %w", id, err)
	}
	b = append(b, '\n')
	if m.ID != "" && !strings.ContainsAny(m.ID, `/\.`) {
		if err := os.MkdirAll(work.AttentionDir(id), 0o755); err != nil {
			return fmt.Errorf("pipeline: slide %s: attention: %w", id, err)
		}
		if err := store.WriteFileAtomic(work.ModelAttentionJSON(id, m.ID), b, 0o644); err != nil {
			return fmt.Errorf("pipeline: slide %s: attention: %w", id, err)
		}
	}
	if err := store.WriteFileAtomic(work.AttentionJSON(id), b, 0o644); err != nil {
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
