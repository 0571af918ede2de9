package pipeline

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
)

// htmlEscape is how html/template writes s as text.
var htmlEscape = fixture.HTMLEscape

// The report: probabilities, the predicted class marked, model id and time,
// pictures only when they exist, every name escaped.
func TestWriteReport(t *testing.T) {
	work := Work{Dir: t.TempDir()}
	id := `r<1>&"x"`
	row := PredictRow{SlideID: id, Probs: []float64{0.05, 0.15, 0.7, 0.1}, Predicted: 2, ModelID: "abc<def>", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := os.MkdirAll(work.SlideDir(id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(work.HeatmapPNG(id), []byte("png"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(work, ReportData{SlideName: id + ".svs", Row: row, Encoder: "plip"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(work.ReportHTML(id))
	if err != nil {
		t.Fatal(err)
	}
	rep := string(b)
	for _, want := range []string{
		`<span id="slide-name">` + htmlEscape(id+".svs") + `</span>`,
		`<strong id="predicted">2&#43;</strong>`,
		`<tr class="predicted"><td>2&#43;</td><td class="num">0.700</td>`,
		`<td class="num">0.050</td>`,
		`<code id="model-id">abc&lt;def&gt;</code>`,
		`2026-01-02T03:04:05Z`,
		`<img src="heatmap.png"`,
		`no thumbnail`,
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(rep, `src="qc.png"`) || strings.Contains(rep, "<1>") {
		t.Error("report has a missing picture or an unescaped name")
	}
}
