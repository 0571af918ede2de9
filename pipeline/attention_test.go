package pipeline

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestAttentionOf(t *testing.T) {
	coords := []int64{0, 0, 256, 0, 512, 0, 0, 256}
	// rows out of order, one row (2) the model did not see, one bad row
	a := attentionOf(coords, []int64{3, 0, 1, 9}, []float32{2, 4, 3, 100})
	want := [][3]float64{{0, 0, 1}, {256, 0, 0.5}, {0, 256, 0}}
	if len(a.Patches) != len(want) {
		t.Fatalf("patches %v, want %v", a.Patches, want)
	}
	for i := range want {
		if a.Patches[i] != want[i] {
			t.Errorf("patch %d: %v, want %v", i, a.Patches[i], want[i])
		}
	}
	// row 9 lies outside coords: left out, its 100 not in the range
	eq := attentionOf(coords, []int64{0, 1}, []float32{7, 7})
	for _, p := range eq.Patches {
		if p[2] != 0.5 {
			t.Errorf("equal attention: %v, want 0.5", p)
		}
	}
	a.PatchSizeLevel0, a.Prediction, a.Probabilities = 256, "2+", []float64{.1, .2, .6, .1}
	b, _ := json.Marshal(a)
	for _, k := range []string{`"patch_size_level0":256`, `"patches":[[0,0,1],[256,0,0.5],[0,256,0]]`, `"prediction":"2+"`, `"probabilities":[0.1,0.2,0.6,0.1]`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("attention.json %s lacks %s", b, k)
		}
	}
	if b, _ := json.Marshal(attentionOf(nil, nil, nil)); !strings.Contains(string(b), `"patches":[]`) {
		t.Errorf("no patches: %s", b)
	}
}

func TestViewerURL(t *testing.T) {
	for id, want := range map[string]string{"s1": "/slides/s1/view", "a b/c#1": "/slides/a%20b/c%231/view"} {
		if got := ViewerURL(id); got != want {
			t.Errorf("ViewerURL(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestReportLinksViewer(t *testing.T) {
	work := Work{Dir: t.TempDir()}
	row := PredictRow{SlideID: "s1", Probs: []float64{0.1, 0.2, 0.3, 0.4}, Predicted: 3}
	if err := os.MkdirAll(work.SlideDir("s1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, withAttention := range []bool{false, true} {
		if withAttention {
			if err := os.WriteFile(work.AttentionJSON("s1"), []byte(`{"patches":[]}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Contains(writeReport(t, work, ReportData{Row: row}), `<a id="viewer" href="/slides/s1/view">`); got != withAttention {
			t.Errorf("attention.json there %v: report links the viewer %v", withAttention, got)
		}
	}
	// with the model's own attention kept, the link opens that model's
	row.ModelID = "0123456789ab"
	if err := os.MkdirAll(work.AttentionDir("s1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(work.ModelAttentionJSON("s1", row.ModelID), []byte(`{"patches":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if b := writeReport(t, work, ReportData{Row: row}); !strings.Contains(b, `<a id="viewer" href="/slides/s1/view?model=0123456789ab">`) {
		t.Errorf("the report does not link its model's attention:\n%s", b)
	}
}
