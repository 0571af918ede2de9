package metrics

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// onehot returns score rows whose argmax is preds[i]: 0.7 there, 0.1
// elsewhere.
func onehot(preds []int, classes int) [][]float64 {
	rows := make([][]float64, len(preds))
	for i, p := range preds {
		rows[i] = make([]float64, classes)
		for c := range rows[i] {
			rows[i][c] = 0.1
		}
		rows[i][p] = 0.7
	}
	return rows
}

type classWant struct{ precision, recall, f1 float64 }

func TestComputeF1(t *testing.T) {
	tests := []struct {
		name                string
		labels, preds       []int
		classes             int
		confusion           [][]int
		accuracy            float64
		perClass            []classWant
		support, predicted  []int
		macroF1, weightedF1 float64
	}{
		{
			// true -> predicted: 0->0, 0->0, 0->1, 1->1, 1->1, 1->3, 2->0, 2->1.
			// Class 2 is never predicted, class 3 never present.
			name:    "4 classes, one never predicted, one never present",
			labels:  []int{0, 0, 0, 1, 1, 1, 2, 2},
			preds:   []int{0, 0, 1, 1, 1, 3, 0, 1},
			classes: 4,
			confusion: [][]int{
				{2, 1, 0, 0},
				{0, 2, 0, 1},
				{1, 1, 0, 0},
				{0, 0, 0, 0},
			},
			// 4 correct of 8.
			accuracy:  0.5,
			support:   []int{3, 3, 2, 0},
			predicted: []int{3, 4, 0, 1},
			perClass: []classWant{
				{2. / 3, 2. / 3, 2. / 3}, // TP 2, FP 1, FN 1
				{2. / 4, 2. / 3, 4. / 7}, // TP 2, FP 2, FN 1: F1 = 4/(4+2+1)
				{0, 0, 0},                // never predicted: precision 0
				{0, 0, 0},                // no support: recall 0; FP 1
			},
			// All four classes occur in labels or predictions:
			// (2/3 + 4/7 + 0 + 0)/4 = (14/21 + 12/21)/4 = 13/42.
			macroF1: 13. / 42,
			// (3·2/3 + 3·4/7 + 2·0 + 0·0)/8 = (2 + 12/7)/8 = 13/28.
			weightedF1: 13. / 28,
		},
		{
			// Classes 2 and 3 occur nowhere: the macro average is over {0,1}.
			name:      "absent classes left out of macro",
			labels:    []int{0, 0, 1, 1},
			preds:     []int{0, 1, 1, 1},
			classes:   4,
			confusion: [][]int{{1, 1, 0, 0}, {0, 2, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
			accuracy:  0.75,
			support:   []int{2, 2, 0, 0},
			predicted: []int{1, 3, 0, 0},
			perClass: []classWant{
				{1, 0.5, 2. / 3},     // TP 1, FP 0, FN 1: 2/(2+0+1)
				{2. / 3, 1, 4. / 5},  // TP 2, FP 1, FN 0: 4/(4+1+0)
				{0, 0, 0}, {0, 0, 0}, // 0/0 everywhere
			},
			// (2/3 + 4/5)/2 = 11/15; weighted (2·2/3 + 2·4/5)/4 = 11/15 too.
			macroF1:    11. / 15,
			weightedF1: 11. / 15,
		},
		{
			// Unequal supports make macro and weighted differ.
			// 0->0, 1->1, 1->1, 1->0: class 0 P 1/2 R 1 F1 2/3;
			// class 1 P 1 R 2/3 F1 4/5.
			name:      "weighted differs from macro",
			labels:    []int{0, 1, 1, 1},
			preds:     []int{0, 1, 1, 0},
			classes:   2,
			confusion: [][]int{{1, 0}, {1, 2}},
			accuracy:  0.75,
			support:   []int{1, 3},
			predicted: []int{2, 2},
			perClass:  []classWant{{0.5, 1, 2. / 3}, {1, 2. / 3, 4. / 5}},
			// macro (2/3 + 4/5)/2 = 11/15; weighted (1·2/3 + 3·4/5)/4 = (10/15 + 36/15)/4 = 23/30.
			macroF1:    11. / 15,
			weightedF1: 23. / 30,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compute(tc.labels, onehot(tc.preds, tc.classes), tc.classes)
			if err != nil {
				t.Fatal(err)
			}
			if m.N != len(tc.labels) || m.Classes != tc.classes {
				t.Errorf("N, Classes = %d, %d", m.N, m.Classes)
			}
			if !reflect.DeepEqual(m.Confusion, tc.confusion) {
				t.Errorf("confusion = %v; want %v", m.Confusion, tc.confusion)
			}
			if !near(m.Accuracy, tc.accuracy) {
				t.Errorf("accuracy = %v; want %v", m.Accuracy, tc.accuracy)
			}
			for c, w := range tc.perClass {
				st := m.PerClass[c]
				if st.Class != c || st.Support != tc.support[c] || st.Predicted != tc.predicted[c] {
					t.Errorf("class %d: class, support, predicted = %d, %d, %d; want %d, %d, %d",
						c, st.Class, st.Support, st.Predicted, c, tc.support[c], tc.predicted[c])
				}
				if !near(st.Precision, w.precision) || !near(st.Recall, w.recall) || !near(st.F1, w.f1) {
					t.Errorf("class %d: P, R, F1 = %v, %v, %v; want %v, %v, %v",
						c, st.Precision, st.Recall, st.F1, w.precision, w.recall, w.f1)
				}
			}
			if !near(m.MacroF1, tc.macroF1) || !near(m.WeightedF1, tc.weightedF1) {
				t.Errorf("macro, weighted F1 = %v, %v; want %v, %v", m.MacroF1, m.WeightedF1, tc.macroF1, tc.weightedF1)
			}
		})
	}
}

func TestComputeUndefinedAUC(t *testing.T) {
	// Three classes; class 2 is absent from this fold (no positives).
	labels := []int{0, 0, 1, 1, 1}
	probs := [][]float64{
		{0.6, 0.3, 0.1},
		{0.3, 0.5, 0.2},
		{0.4, 0.4, 0.2}, // tie between 0 and 1: predicted 0 (first max)
		{0.2, 0.45, 0.35},
		{0.1, 0.8, 0.1},
	}
	m, err := Compute(labels, probs, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Predictions 0, 1, 0, 1, 1.
	wantConf := [][]int{{1, 1, 0}, {1, 2, 0}, {0, 0, 0}}
	if !reflect.DeepEqual(m.Confusion, wantConf) {
		t.Errorf("confusion = %v; want %v", m.Confusion, wantConf)
	}
	// Class 0: positives 0.6, 0.3; negatives 0.4, 0.2, 0.1. 0.6 beats 3,
	// 0.3 beats 2: 5/6.
	// Class 1: positives 0.4, 0.45, 0.8; negatives 0.3, 0.5. 0.4 beats 1,
	// 0.45 beats 1, 0.8 beats 2: 4/6.
	if a := m.PerClass[0].AUC; a == nil || !near(*a, 5./6) {
		t.Errorf("class 0 AUC = %v; want 5/6", a)
	}
	if a := m.PerClass[1].AUC; a == nil || !near(*a, 4./6) {
		t.Errorf("class 1 AUC = %v; want 4/6", a)
	}
	if a := m.PerClass[2].AUC; a != nil {
		t.Errorf("class 2 AUC = %v; want undefined", *a)
	}
	if !reflect.DeepEqual(m.UndefinedAUC, []int{2}) {
		t.Errorf("UndefinedAUC = %v; want [2]", m.UndefinedAUC)
	}
	// Macro (5/6 + 4/6)/2 = 3/4; weighted (2·5/6 + 3·4/6)/5 = (5/3 + 2)/5 = 11/15.
	if !near(m.MacroAUC, 0.75) || !near(m.WeightedAUC, 11./15) {
		t.Errorf("macro, weighted AUC = %v, %v; want 0.75, 11/15", m.MacroAUC, m.WeightedAUC)
	}
	// F1: class 0 P 1/2 R 1/2 F1 1/2; class 1 P 2/3 R 2/3 F1 2/3; class 2
	// neither true nor predicted, so macro over {0,1}: (1/2 + 2/3)/2 = 7/12;
	// weighted (2·1/2 + 3·2/3)/5 = 3/5. Accuracy 3/5.
	if !near(m.MacroF1, 7./12) || !near(m.WeightedF1, 0.6) || !near(m.Accuracy, 0.6) {
		t.Errorf("macro F1, weighted F1, accuracy = %v, %v, %v", m.MacroF1, m.WeightedF1, m.Accuracy)
	}

	// JSON: class 2 has no "auc" key, the others do; undefined_auc is [2].
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		PerClass     []map[string]any `json:"per_class"`
		UndefinedAUC []int            `json:"undefined_auc"`
		MacroAUC     *float64         `json:"macro_auc"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for c, pc := range raw.PerClass {
		if _, has := pc["auc"]; has != (c != 2) {
			t.Errorf("class %d: auc key present = %v in %s", c, has, data)
		}
	}
	if !reflect.DeepEqual(raw.UndefinedAUC, []int{2}) || raw.MacroAUC == nil || !near(*raw.MacroAUC, 0.75) {
		t.Errorf("JSON %s", data)
	}
	var back Metrics
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip: %+v; want %+v", back, m)
	}
}

func TestComputePerfectAndInverted(t *testing.T) {
	labels := []int{0, 1, 2, 3, 0, 1, 2, 3}
	perfect := onehot(labels, 4)
	m, err := Compute(labels, perfect, 4)
	if err != nil {
		t.Fatal(err)
	}
	if m.Accuracy != 1 || m.MacroAUC != 1 || m.WeightedAUC != 1 || m.MacroF1 != 1 || m.WeightedF1 != 1 {
		t.Errorf("perfect: %+v", m)
	}
	// Inverted: the true class gets the lowest score, all others tie above
	// it, so every positive is below every negative: AUC 0, and the argmax
	// is never the label (accuracy 0, F1 0).
	inverted := make([][]float64, len(labels))
	for i, y := range labels {
		inverted[i] = []float64{0.3, 0.3, 0.3, 0.3}
		inverted[i][y] = 0.1
	}
	m, err = Compute(labels, inverted, 4)
	if err != nil {
		t.Fatal(err)
	}
	if m.Accuracy != 0 || m.MacroAUC != 0 || m.WeightedAUC != 0 || m.MacroF1 != 0 || m.WeightedF1 != 0 {
		t.Errorf("inverted: %+v", m)
	}
	if m.UndefinedAUC != nil {
		t.Errorf("inverted: UndefinedAUC = %v", m.UndefinedAUC)
	}
}

func TestComputeNoDefinedAUC(t *testing.T) {
	// Only class 1 occurs: class 1 has no negatives, the others no
	// positives. The averages are NaN, null in JSON.
	m, err := Compute([]int{1, 1}, [][]float64{{0.2, 0.8}, {0.6, 0.4}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(m.MacroAUC) || !math.IsNaN(m.WeightedAUC) || !reflect.DeepEqual(m.UndefinedAUC, []int{0, 1}) {
		t.Errorf("macro, weighted, undefined = %v, %v, %v", m.MacroAUC, m.WeightedAUC, m.UndefinedAUC)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"macro_auc":null`) || !strings.Contains(string(data), `"weighted_auc":null`) {
		t.Errorf("JSON %s", data)
	}
	var back Metrics
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back.MacroAUC) || !math.IsNaN(back.WeightedAUC) {
		t.Errorf("round trip: %v, %v", back.MacroAUC, back.WeightedAUC)
	}
}

func TestComputeErrors(t *testing.T) {
	good := [][]float64{{0.6, 0.4}, {0.3, 0.7}}
	tests := []struct {
		name    string
		labels  []int
		probs   [][]float64
		classes int
	}{
		{"length mismatch", []int{0}, good, 2},
		{"empty", nil, nil, 2},
		{"no classes", []int{0, 0}, [][]float64{{}, {}}, 0},
		{"negative label", []int{-1, 1}, good, 2},
		{"label too large", []int{0, 2}, good, 2},
		{"short row", []int{0, 1}, [][]float64{{0.6, 0.4}, {1}}, 2},
		{"long row", []int{0, 1}, [][]float64{{0.6, 0.4}, {0.1, 0.2, 0.7}}, 2},
		{"nil row", []int{0, 1}, [][]float64{{0.6, 0.4}, nil}, 2},
		{"NaN", []int{0, 1}, [][]float64{{0.6, 0.4}, {math.NaN(), 0.7}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compute(tc.labels, tc.probs, tc.classes); !errors.Is(err, ErrInput) {
				t.Errorf("Compute error = %v; want ErrInput", err)
			}
			if got := MacroROC(tc.labels, tc.probs, tc.classes); got != nil {
				t.Errorf("MacroROC = %v; want nil", got)
			}
		})
	}
}

func TestArgmax(t *testing.T) {
	for _, tc := range []struct {
		row  []float64
		want int
	}{
		{[]float64{0.2, 0.5, 0.3}, 1},
		{[]float64{0.4, 0.4, 0.2}, 0}, // first max
		{[]float64{0.1, 0.4, 0.4}, 1},
		{[]float64{math.Inf(-1), math.Inf(-1)}, 0},
		{[]float64{math.NaN(), 0.1}, 1},
		{nil, -1},
	} {
		if got := Argmax(tc.row); got != tc.want {
			t.Errorf("Argmax(%v) = %d; want %d", tc.row, got, tc.want)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	m, err := Compute([]int{0, 1}, [][]float64{{0.6, 0.4}, {0.3, 0.7}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "metrics.json")
	if err := WriteJSON(path, m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Metrics
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("read back %+v; want %+v", back, m)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries; want only metrics.json", len(entries))
	}
	// A path in a missing directory fails and leaves nothing behind.
	if err := WriteJSON(filepath.Join(dir, "missing", "metrics.json"), m); err == nil {
		t.Error("WriteJSON into a missing directory succeeded")
	}
}

// randomCases returns n cases of a classes-way problem with noisy scores
// that lean towards the label.
func randomCases(n, classes int, seed uint64) ([]int, [][]float64) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	labels := make([]int, n)
	probs := make([][]float64, n)
	for i := range n {
		y := r.IntN(classes)
		labels[i] = y
		row := make([]float64, classes)
		var s float64
		for c := range row {
			row[c] = r.Float64()
			if c == y {
				row[c] += 0.5
			}
			s += row[c]
		}
		for c := range row {
			row[c] /= s
		}
		probs[i] = row
	}
	return labels, probs
}

// Compute's per-class AUCs agree with AUC on the extracted columns.
func TestComputeMatchesAUC(t *testing.T) {
	labels, probs := randomCases(300, 4, 7)
	m, err := Compute(labels, probs, 4)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 4 {
		scores := make([]float64, len(labels))
		pos := make([]bool, len(labels))
		for i, y := range labels {
			scores[i], pos[i] = probs[i][c], y == c
		}
		want, ok := AUC(scores, pos)
		if !ok || m.PerClass[c].AUC == nil || *m.PerClass[c].AUC != want {
			t.Errorf("class %d: Compute AUC %v, AUC %v (%v)", c, m.PerClass[c].AUC, want, ok)
		}
	}
}

func BenchmarkCompute(b *testing.B) {
	labels, probs := randomCases(1000, 4, 11)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compute(labels, probs, 4); err != nil {
			b.Fatal(err)
		}
	}
}
