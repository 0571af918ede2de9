package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/model/metrics"
)

// GeneratedProperty is the slide property (slide.json's slide.properties)
// that marks a slide made by the case generator (synth/caseset); its value
// names the generator's recipe, e.g. "synthcases/1".
const GeneratedProperty = "her2wsi.synthetic"

// TrainingData is what a model was trained on (RUNDIR/report.json "data"):
// how many cases and slides, and how many of the slides were generated
// (their slide.json carries GeneratedProperty), so that whoever uses the
// model later — the slide report — can say so.
type TrainingData struct {
	Encoder    string `json:"encoder"`
	TrainCases int    `json:"train_cases"` // training cases, validation included
	TestCases  int    `json:"test_cases"`  // held out, never trained on
	Slides     int    `json:"slides"`      // H&E and IHC slides of every case
	Generated  int    `json:"generated_slides"`
	Generator  string `json:"generator,omitempty"` // GeneratedProperty's value(s), comma-separated
}

// AllGenerated says whether every slide was generated.
func (d *TrainingData) AllGenerated() bool {
	return d != nil && d.Slides > 0 && d.Generated == d.Slides
}

// trainingData counts the case set's slides and the generated ones (a slide
// whose slide.json cannot be read counts as not generated).
func trainingData(work Work, encoder string, train, test []cases.Case) *TrainingData {
	d := &TrainingData{Encoder: encoder, TrainCases: len(train), TestCases: len(test)}
	var gens []string
	for _, cs := range [][]cases.Case{train, test} {
		for _, c := range cs {
			for _, id := range []string{c.HE, c.IHC} {
				if id == "" {
					continue
				}
				d.Slides++
				rec, err := work.ReadSlideRecord(id)
				if err != nil {
					continue
				}
				if g, ok := rec.Slide.Properties[GeneratedProperty]; ok {
					d.Generated++
					if g != "" && !slices.Contains(gens, g) {
						gens = append(gens, g)
					}
				}
			}
		}
	}
	d.Generator = strings.Join(gens, ",")
	return d
}

// ReadTrainReport reads RUNDIR/report.json.
func ReadTrainReport(runDir string) (*TrainReport, error) {
	b, err := os.ReadFile(filepath.Join(runDir, "report.json"))
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	var r TrainReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", filepath.Join(runDir, "report.json"), err)
	}
	return &r, nil
}

// ExplainTest says in plain words what the held-out test metrics mean, and,
// when the model was trained on generated data, what they do not mean. It
// is "" when the run had no test cases.
func (r TrainReport) ExplainTest() string {
	if r.Test == nil || r.Test.N == 0 {
		return ""
	}
	s := "what this means: " + explainMetrics(*r.Test) + "\n"
	if r.Data.AllGenerated() {
		s += "generated data: every slide was made by the case generator, so this says the pipeline learns what the generator put into the H&E features, not that the model reads real slides.\n"
	} else if r.Data != nil && r.Data.Generated > 0 {
		s += fmt.Sprintf("partly generated data: %d of %d slides were made by the case generator, so these numbers say little about real slides.\n", r.Data.Generated, r.Data.Slides)
	}
	return s
}

// explainMetrics puts test metrics in plain words.
func explainMetrics(m metrics.Metrics) string {
	var b strings.Builder
	fmt.Fprintf(&b, "on %d held-out test cases (never seen in training)", m.N)
	if math.IsNaN(m.MacroAUC) {
		b.WriteString(" the AUC is undefined (the test cases lack a class),")
	} else {
		fmt.Fprintf(&b, ", for each HER2 score, a case of that score gets a higher probability of it than a case of another score %.0f%% of the time (macro-AUC %.2f; chance is 0.5, perfect 1),",
			100*m.MacroAUC, m.MacroAUC)
	}
	fmt.Fprintf(&b, " and the model gives the right score to %d of %d (accuracy %.2f; chance is 0.25). %s",
		correctCount(m), m.N, m.Accuracy, verdict(m.MacroAUC))
	if m.CI != nil && !m.CI.MacroAUC.Undefined() && !math.IsNaN(m.MacroAUC) {
		lo, hi := m.CI.MacroAUC[0], m.CI.MacroAUC[1]
		if lo <= 0.5 {
			fmt.Fprintf(&b, " The macro-AUC's 95%% interval, %.2f to %.2f, includes chance: these test cases cannot tell this model from guessing.", lo, hi)
		} else {
			fmt.Fprintf(&b, " The macro-AUC's 95%% interval, %.2f to %.2f, lies above chance.", lo, hi)
		}
	}
	if m.N < 30 {
		fmt.Fprintf(&b, " With %d test cases one case moves these numbers by several points.", m.N)
	}
	return b.String()
}

// verdict puts a macro-AUC in words.
func verdict(auc float64) string {
	switch {
	case math.IsNaN(auc):
		return "Without an AUC, judge by the accuracy."
	case auc >= 0.9:
		return "That is far above chance."
	case auc >= 0.75:
		return "That is clearly above chance."
	case auc > 0.6:
		return "That is only a little above chance."
	}
	return "That is no better than chance: the model has not learned the task (too little training, data or signal)."
}

// correctCount is the number of test cases predicted right.
func correctCount(m metrics.Metrics) int {
	if len(m.Confusion) > 0 {
		k := 0
		for i, row := range m.Confusion {
			if i < len(row) {
				k += row[i]
			}
		}
		return k
	}
	return int(math.Round(m.Accuracy * float64(m.N)))
}

// ModelInfo names the model behind a prediction, for the slide report.
type ModelInfo struct {
	Variant string
	RunDir  string       // run folder the model was loaded from ("" for a weight file)
	Weights string       // the weight file
	Train   *TrainReport // RUNDIR/report.json, when it belongs to these weights
}

// modelInfo describes a model loaded by OpenModel: the run folder's
// report.json is kept only when its model id is the loaded weights'.
func modelInfo(variant, runDir, weights, id string) ModelInfo {
	mi := ModelInfo{Variant: variant, Weights: weights}
	if abs, err := filepath.Abs(weights); err == nil {
		mi.Weights = abs
	}
	if runDir == "" {
		return mi
	}
	mi.RunDir = runDir
	if abs, err := filepath.Abs(runDir); err == nil {
		mi.RunDir = abs
	}
	if r, err := ReadTrainReport(runDir); err == nil && r.ModelID == id {
		mi.Train = r
	}
	return mi
}
