package pipeline_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/her2wsi/her2wsi/pipeline"
)

// checkAttentionJSON checks a predicted slide's attention.json: a patch
// size, every patch of coords.h5 in order with a score in [0, 1] spanning
// it, and the prediction.
func checkAttentionJSON(t *testing.T, work pipeline.Work, id string) {
	t.Helper()
	b, err := os.ReadFile(work.AttentionJSON(id))
	if err != nil {
		t.Errorf("%s: %v", id, err)
		return
	}
	var a pipeline.Attention
	if err := json.Unmarshal(b, &a); err != nil {
		t.Errorf("%s: attention.json: %v", id, err)
		return
	}
	// the same kept under the model's id
	if kept, err := os.ReadFile(work.ModelAttentionJSON(id, a.Model)); err != nil || string(kept) != string(b) || a.Model == "" || a.Time == "" {
		t.Errorf("%s: attention/%s.json: %v (model %q, time %q)", id, a.Model, err, a.Model, a.Time)
	}
	rec, coords := slideCoords(t, work, id)
	if a.PatchSizeLevel0 != int64(rec.Plan.PatchSizeLevel0) || len(a.Patches) == 0 || len(a.Patches) > len(coords)/2 ||
		len(a.Probabilities) != 4 || a.Prediction == "" {
		t.Errorf("%s: attention.json: patch size %d, %d patches of %d, prediction %q %v", id, a.PatchSizeLevel0, len(a.Patches), len(coords)/2, a.Prediction, a.Probabilities)
		return
	}
	lo, hi, row := 1.0, 0.0, 0
	for _, p := range a.Patches {
		for row < len(coords)/2 && (float64(coords[2*row]) != p[0] || float64(coords[2*row+1]) != p[1]) {
			row++
		}
		if row == len(coords)/2 {
			t.Errorf("%s: patch %v not in coords order", id, p)
			return
		}
		lo, hi = min(lo, p[2]), max(hi, p[2])
	}
	if lo < 0 || hi > 1 || (len(a.Patches) > 1 && !(lo == 0 && hi == 1) && !(lo == 0.5 && hi == 0.5)) {
		t.Errorf("%s: scores span [%g, %g], want [0, 1]", id, lo, hi)
	}
}
