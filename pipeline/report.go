package pipeline

import (
	"bytes"
	"fmt"
	"html/template"
	"net/url"
	"os"
	"time"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/model/metrics"
)

// ReportData is what a slide's report shows besides the pictures.
type ReportData struct {
	SlideName string     // the slide's file name
	Row       PredictRow // the prediction (its SlideID names the slide folder)
	Encoder   string     // features used
	Model     ModelInfo  // the model: variant, run folder, training and test (zero: not shown)
}

type reportClass struct {
	Name      string
	Prob      float64
	Percent   string
	Predicted bool
}

type reportView struct {
	ReportData
	ID             string
	Classes        []reportClass
	Predicted      string
	Time           string
	Version        string
	HasQC, HasHeat bool
	ViewURL        string // the slide viewer's page, when attention.json is there
	MapLabel       string // what the heatmap shows (model.Config.MapLabel)
	Patches        int
	Tissue         string
	MPP            string
	Size           string
	M              reportModel
}

// reportModel is the report's model section.
type reportModel struct {
	Variant       string
	RunDir        string
	Weights       string
	Epochs        int
	Data          string // what it was trained on
	Generated     bool   // every slide generated
	GeneratedNote string // said near the prediction when any slide was generated
	CV            string
	Test          string // held-out test metrics
	TestMeaning   string // the same in plain words
}

// The report is one page, readable offline next to its pictures (referred
// to relatively). Every name goes through html/template's escaping.
var reportTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>HER2 report: {{.SlideName}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.predicted { background: #fde8c8; font-weight: bold; }
.bar { display: inline-block; height: .8em; background: #c0392b; vertical-align: middle; }
.pictures { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; max-width: 48%; min-width: 300px; }
figure img { max-width: 100%; border: 1px solid #ccc; }
.meta { color: #555; font-size: .9em; }
.note { color: #8a6d3b; }
.warn { background: #fff3cd; border: 1px solid #e0c36c; padding: .5em .8em; max-width: 60em; }
h2 { font-size: 1.1em; margin-top: 1.5em; }
#model th { white-space: nowrap; }
</style>
</head>
<body>
<h1>HER2 report: <span id="slide-name">{{.SlideName}}</span></h1>
<p>Predicted HER2 score: <strong id="predicted">{{.Predicted}}</strong> (from H&amp;E alone)</p>
{{if .M.GeneratedNote}}<p id="generated" class="warn">{{.M.GeneratedNote}}</p>
{{end}}<table id="probabilities">
<tr><th>HER2 score</th><th>probability</th><th></th></tr>
{{range .Classes}}<tr{{if .Predicted}} class="predicted"{{end}}><td>{{.Name}}</td><td class="num">{{printf "%.3f" .Prob}}</td><td><span class="bar" style="width: {{.Percent}}"></span></td></tr>
{{end}}</table>
<div class="pictures">
<figure>{{if .HasQC}}<a href="qc.png" title="full size"><img src="qc.png" alt="thumbnail with tissue outline"></a>{{else}}<p class="note">no thumbnail</p>{{end}}
<figcaption>Thumbnail: tissue outline and the patches kept (click for full size)</figcaption></figure>
<figure>{{if .HasHeat}}<a href="heatmap.png" title="full size"><img src="heatmap.png" alt="{{.MapLabel}} heatmap"></a>{{else}}<p class="note">no heatmap</p>{{end}}
<figcaption>Heatmap of {{if eq .MapLabel "attention"}}the model's attention{{else}}{{.MapLabel}}{{end}}: dark violet low, yellow high (relative within the slide){{if .ViewURL}} · <a id="viewer" href="{{.ViewURL}}">zoom in: the slide viewer</a> (when served by <code>pipeline serve</code>){{end}}</figcaption></figure>
</div>
{{with .M}}{{if .Variant}}<h2>Model</h2>
<table class="meta" id="model">
<tr><th>variant</th><td id="model-variant">{{.Variant}}</td></tr>
{{if .RunDir}}<tr><th>trained in</th><td><code id="model-run">{{.RunDir}}</code></td></tr>
{{else if .Weights}}<tr><th>weights</th><td><code id="model-weights">{{.Weights}}</code></td></tr>
{{end}}{{if .Epochs}}<tr><th>epochs</th><td id="model-epochs">{{.Epochs}}</td></tr>
{{end}}{{if .Data}}<tr><th>trained on</th><td id="model-data">{{.Data}}</td></tr>
{{end}}{{if .CV}}<tr><th>cross-validation</th><td id="model-cv">{{.CV}}</td></tr>
{{end}}<tr><th>test metrics</th><td id="model-test">{{if .Test}}{{.Test}}<br>{{.TestMeaning}}{{else}}none recorded (no held-out test cases, or no report.json of these weights in the run folder){{end}}</td></tr>
</table>
{{end}}{{end}}<table class="meta">
<tr><th>slide id</th><td id="slide-id">{{.ID}}</td></tr>
<tr><th>patches</th><td>{{.Patches}}{{if .Row.PatchesRead}}; the model read {{if .Row.PatchNote}}{{.Row.PatchesRead}}<div id="patch-note" class="warn" style="margin-top: .3em">{{.Row.PatchNote}}</div>{{else}}all of them{{end}}{{end}}</td></tr>
{{if .Tissue}}<tr><th>tissue</th><td>{{.Tissue}} of the slide</td></tr>{{end}}
{{if .Size}}<tr><th>level 0</th><td>{{.Size}}{{if .MPP}}, {{.MPP}}{{end}}</td></tr>{{end}}
<tr><th>features</th><td>{{.Encoder}}</td></tr>
<tr><th>model id</th><td><code id="model-id">{{.Row.ModelID}}</code></td></tr>
<tr><th>predicted at</th><td>{{.Time}}</td></tr>
<tr><th>her2wsi</th><td>{{.Version}}</td></tr>
</table>
<p class="meta">A research tool's output, not a diagnosis.</p>
</body>
</html>
`))

// WriteReport writes WORK/slides/<id>/report.html (atomically): the
// prediction with its probabilities, the thumbnail with the tissue outline
// (qc.png, from the tile stage) and the attention heatmap (heatmap.png,
// from prediction), both referred to relatively.
func WriteReport(work Work, d ReportData) error {
	id := d.Row.SlideID
	v := reportView{ReportData: d, ID: id, Time: d.Row.Time.UTC().Format(time.RFC3339), Version: Version}
	if v.SlideName == "" {
		v.SlideName = id
	}
	for i, p := range d.Row.Probs {
		v.Classes = append(v.Classes, reportClass{Name: cases.LabelName(i), Prob: p, Percent: fmt.Sprintf("%.0fpx", 200*p), Predicted: i == d.Row.Predicted})
	}
	v.Predicted = cases.LabelName(d.Row.Predicted)
	_, errQC := os.Stat(work.QCPNG(id))
	_, errHeat := os.Stat(work.HeatmapPNG(id))
	v.HasQC, v.HasHeat = errQC == nil, errHeat == nil
	if _, err := os.Stat(work.AttentionJSON(id)); err == nil {
		v.ViewURL = ViewerURL(id)
		// the attention of the model this report is about, kept when
		// another model predicts the slide later
		if mid := d.Row.ModelID; mid != "" {
			if _, err := os.Stat(work.ModelAttentionJSON(id, mid)); err == nil {
				v.ViewURL += "?model=" + url.QueryEscape(mid)
			}
		}
	}
	if rec, err := work.ReadSlideRecord(id); err == nil {
		v.Patches = rec.NumPatches
		v.Tissue = fmt.Sprintf("%.1f%%", 100*rec.TissueFraction)
		if len(rec.Slide.Levels) > 0 {
			v.Size = fmt.Sprintf("%d × %d px", rec.Slide.Levels[0].Width, rec.Slide.Levels[0].Height)
		}
		if rec.Slide.MPPX > 0 {
			v.MPP = fmt.Sprintf("%.4g µm/px", rec.Slide.MPPX)
		}
	}
	v.M = newReportModel(d.Model)
	v.MapLabel = model.Config{Variant: d.Model.Variant}.MapLabel()
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, v); err != nil {
		return fmt.Errorf("pipeline: slide %s: report: %w", id, err)
	}
	if err := store.WriteFileAtomic(work.ReportHTML(id), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("pipeline: slide %s: report: %w", id, err)
	}
	return nil
}

// newReportModel words the model section: where the model was trained, for
// how long, on what, and how it did on its held-out test cases.
func newReportModel(mi ModelInfo) reportModel {
	rm := reportModel{Variant: mi.Variant, RunDir: mi.RunDir, Weights: mi.Weights}
	r := mi.Train
	if r == nil {
		return rm
	}
	rm.Epochs = r.Epochs
	if d := r.Data; d != nil {
		rm.Data = fmt.Sprintf("%d training cases (%d more held out for test), %d slides, features %s", d.TrainCases, d.TestCases, d.Slides, d.Encoder)
		gen := "the case generator"
		if d.Generator != "" {
			gen += " (" + d.Generator + ")"
		}
		switch {
		case d.AllGenerated():
			rm.Generated = true
			rm.Data += "; every slide generated by " + gen
			rm.GeneratedNote = "Trained on generated data: the model learned from cases made by " + gen + ", not from real slides, " +
				"so this prediction shows that the pipeline runs end to end, not this slide's HER2 status."
		case d.Generated > 0:
			rm.Data += fmt.Sprintf("; %d of the slides generated by %s", d.Generated, gen)
			rm.GeneratedNote = fmt.Sprintf("Trained partly on generated data: %d of the %d training and test slides were made by %s.", d.Generated, d.Slides, gen)
		}
	}
	if len(r.CV) > 0 {
		rm.CV = fmt.Sprintf("%d folds: macro-AUC %.3f ± %.3f, accuracy %.3f ± %.3f", len(r.CV),
			r.CVMean["macro_auc"], r.CVStd["macro_auc"], r.CVMean["accuracy"], r.CVStd["accuracy"])
	}
	if m := r.Test; m != nil && m.N > 0 {
		ci := ""
		if m.CI != nil {
			ci = "; [95 % CI] by stratified bootstrap over the test cases"
		}
		rm.Test = fmt.Sprintf("%d held-out cases: macro-AUC %s, accuracy %s, macro-F1 %s (chance: AUC 0.5, accuracy 0.25%s)", m.N,
			m.WithCI(metrics.NameMacroAUC), m.WithCI(metrics.NameAccuracy), m.WithCI(metrics.NameMacroF1), ci)
		rm.TestMeaning = "In plain words: " + explainMetrics(*m)
	}
	return rm
}
