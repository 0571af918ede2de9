package pipeline

import (
	"math"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/model/metrics"
)

// ExplainTest: the numbers in words, a verdict against chance, and what
// generated training data mean; nothing without test cases.
func TestExplainTest(t *testing.T) {
	gen := &TrainingData{Slides: 8, Generated: 8}
	good := metrics.Metrics{N: 4, Accuracy: 0.75, MacroAUC: 0.9, Confusion: [][]int{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 1, 0, 0}, {0, 0, 0, 1}}}
	chance := metrics.Metrics{N: 40, Accuracy: 0.25, MacroAUC: 0.48}
	undefined := metrics.Metrics{N: 2, Accuracy: 0.5, MacroAUC: math.NaN()}
	for _, c := range []struct {
		r       TrainReport
		want    []string
		notWant []string
	}{
		{TrainReport{Test: &good, Data: gen}, []string{
			"what this means: on 4 held-out test cases (never seen in training), for each HER2 score, a case of that score gets a higher probability of it than a case of another score 90% of the time (macro-AUC 0.90; chance is 0.5, perfect 1), and the model gives the right score to 3 of 4 (accuracy 0.75; chance is 0.25). That is far above chance.",
			"one case moves these numbers", "generated data: every slide was made by the case generator"}, nil},
		{TrainReport{Test: &chance, Data: &TrainingData{Slides: 80, Generated: 8}}, []string{"no better than chance", "partly generated data: 8 of 80 slides"}, []string{"one case moves", "every slide"}},
		{TrainReport{Test: &undefined}, []string{"the AUC is undefined", "right score to 1 of 2", "judge by the accuracy"}, []string{"generated"}},
	} {
		s := c.r.ExplainTest()
		for _, w := range c.want {
			if !strings.Contains(s, w) {
				t.Errorf("explanation lacks %q:\n%s", w, s)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(s, w) {
				t.Errorf("explanation has %q:\n%s", w, s)
			}
		}
	}
	if s := (TrainReport{Data: gen}).ExplainTest(); s != "" {
		t.Errorf("no test cases: %q", s)
	}
}
