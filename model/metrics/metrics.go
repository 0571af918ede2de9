package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
)

// ClassStat holds the one-vs-rest statistics of one class.
type ClassStat struct {
	Class int `json:"class"`
	// AUC is nil (omitted from JSON) when undefined: the class has no
	// positives or no negatives.
	AUC       *float64 `json:"auc,omitempty"`
	Precision float64  `json:"precision"`
	Recall    float64  `json:"recall"`
	F1        float64  `json:"f1"`
	Support   int      `json:"support"`   // true cases of the class
	Predicted int      `json:"predicted"` // cases predicted as the class
}

// Metrics of a set of predictions; JSON is what metrics.json holds.
type Metrics struct {
	N        int     `json:"n"`
	Classes  int     `json:"classes"`
	Accuracy float64 `json:"accuracy"`
	// MacroAUC is the mean one-vs-rest AUC over the classes where it is
	// defined (both positives and negatives exist); NaN (JSON null) when no
	// class is defined.
	MacroAUC float64 `json:"macro_auc"`
	// WeightedAUC weights the same classes by support; NaN (JSON null) when no
	// class is defined.
	WeightedAUC float64     `json:"weighted_auc"`
	MacroF1     float64     `json:"macro_f1"`
	WeightedF1  float64     `json:"weighted_f1"`
	PerClass    []ClassStat `json:"per_class"`
	Confusion   [][]int     `json:"confusion"` // [true][predicted]
	// UndefinedAUC lists the classes left out of the AUC averages (no
	// positives or no negatives), ascending.
	UndefinedAUC []int `json:"undefined_auc,omitempty"`
	// CI holds bootstrap 95 % confidence intervals of the summary metrics
	// (ComputeWithCI, Bootstrap); nil when not computed.
	CI *Intervals `json:"ci95,omitempty"`
}

// ErrInput is wrapped by every error about malformed input.
var ErrInput = errors.New("metrics: invalid input")

// validate checks the inputs of Compute (and of the functions built on it).
func validate(labels []int, probs [][]float64, classes int) error {
	if classes < 1 {
		return fmt.Errorf("%w: %d classes", ErrInput, classes)
	}
	if len(labels) != len(probs) {
		return fmt.Errorf("%w: %d labels but %d probability rows", ErrInput, len(labels), len(probs))
	}
	if len(labels) == 0 {
		return fmt.Errorf("%w: no predictions", ErrInput)
	}
	for i, y := range labels {
		if y < 0 || y >= classes {
			return fmt.Errorf("%w: case %d: label %d outside [0, %d)", ErrInput, i, y, classes)
		}
		row := probs[i]
		if len(row) != classes {
			return fmt.Errorf("%w: case %d: %d scores for %d classes", ErrInput, i, len(row), classes)
		}
		for c, p := range row {
			if math.IsNaN(p) {
				return fmt.Errorf("%w: case %d: score of class %d is NaN", ErrInput, i, c)
			}
		}
	}
	return nil
}

// Argmax returns the index of the largest value, the first one on ties; -1
// for an empty row. NaN never wins.
func Argmax(row []float64) int {
	best := -1
	for c, p := range row {
		if best < 0 && !math.IsNaN(p) || best >= 0 && p > row[best] {
			best = c
		}
	}
	return best
}

// Compute returns the metrics of probs against labels for a classes-way
// problem; the predicted class is the argmax of each row (first max on
// ties). It returns an error wrapping ErrInput on a length mismatch, an empty
// input, a label outside [0, classes), a row whose width is not classes, or a
// NaN score. See the package documentation for the conventions.
func Compute(labels []int, probs [][]float64, classes int) (Metrics, error) {
	if err := validate(labels, probs, classes); err != nil {
		return Metrics{}, err
	}
	n := len(labels)
	m := Metrics{
		N:         n,
		Classes:   classes,
		PerClass:  make([]ClassStat, classes),
		Confusion: make([][]int, classes),
	}
	cells := make([]int, classes*classes)
	for t := range m.Confusion {
		m.Confusion[t] = cells[t*classes : (t+1)*classes : (t+1)*classes]
	}
	correct := 0
	for i, y := range labels {
		p := Argmax(probs[i])
		m.Confusion[y][p]++
		if p == y {
			correct++
		}
	}
	m.Accuracy = float64(correct) / float64(n)

	for c := range classes {
		st := &m.PerClass[c]
		st.Class = c
		tp := m.Confusion[c][c]
		for k := range classes {
			st.Support += m.Confusion[c][k]
			st.Predicted += m.Confusion[k][c]
		}
		fp, fn := st.Predicted-tp, st.Support-tp
		st.Precision = ratio(tp, st.Predicted)
		st.Recall = ratio(tp, st.Support)
		st.F1 = ratio(2*tp, 2*tp+fp+fn)
	}

	var f1Sum, f1Weighted float64
	f1Classes := 0
	for _, st := range m.PerClass {
		if st.Support > 0 || st.Predicted > 0 {
			f1Sum += st.F1
			f1Classes++
		}
		f1Weighted += float64(st.Support) * st.F1
	}
	m.MacroF1 = f1Sum / float64(f1Classes) // f1Classes >= 1 since n > 0
	m.WeightedF1 = f1Weighted / float64(n)

	buf := make([]scored, n)
	var aucSum, aucWeighted float64
	aucClasses, aucSupport := 0, 0
	for c := range classes {
		for i, y := range labels {
			buf[i] = scored{probs[i][c], y == c}
		}
		auc, ok := aucSorted(buf)
		if !ok {
			m.UndefinedAUC = append(m.UndefinedAUC, c)
			continue
		}
		m.PerClass[c].AUC = &auc
		aucSum += auc
		aucWeighted += float64(m.PerClass[c].Support) * auc
		aucClasses++
		aucSupport += m.PerClass[c].Support
	}
	if aucClasses == 0 {
		m.MacroAUC, m.WeightedAUC = math.NaN(), math.NaN()
	} else {
		m.MacroAUC = aucSum / float64(aucClasses)
		m.WeightedAUC = aucWeighted / float64(aucSupport) // defined classes have support > 0
	}
	return m, nil
}

// ratio returns num/den, 0 when den is 0 (zero_division=0).
func ratio(num, den int) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

// jsonMetrics is Metrics as written to JSON: the AUC averages are pointers so
// that NaN (no class defined) becomes null.
type jsonMetrics struct {
	N            int         `json:"n"`
	Classes      int         `json:"classes"`
	Accuracy     float64     `json:"accuracy"`
	MacroAUC     *float64    `json:"macro_auc"`
	WeightedAUC  *float64    `json:"weighted_auc"`
	MacroF1      float64     `json:"macro_f1"`
	WeightedF1   float64     `json:"weighted_f1"`
	PerClass     []ClassStat `json:"per_class"`
	Confusion    [][]int     `json:"confusion"`
	UndefinedAUC []int       `json:"undefined_auc,omitempty"`
	CI           *Intervals  `json:"ci95,omitempty"`
}

func nullable(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

func fromNullable(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// MarshalJSON writes m with NaN AUC averages as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonMetrics{
		N: m.N, Classes: m.Classes, Accuracy: m.Accuracy,
		MacroAUC: nullable(m.MacroAUC), WeightedAUC: nullable(m.WeightedAUC),
		MacroF1: m.MacroF1, WeightedF1: m.WeightedF1,
		PerClass: m.PerClass, Confusion: m.Confusion, UndefinedAUC: m.UndefinedAUC, CI: m.CI,
	})
}

// UnmarshalJSON reads what MarshalJSON writes; a null or missing AUC average
// becomes NaN.
func (m *Metrics) UnmarshalJSON(data []byte) error {
	var j jsonMetrics
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*m = Metrics{
		N: j.N, Classes: j.Classes, Accuracy: j.Accuracy,
		MacroAUC: fromNullable(j.MacroAUC), WeightedAUC: fromNullable(j.WeightedAUC),
		MacroF1: j.MacroF1, WeightedF1: j.WeightedF1,
		PerClass: j.PerClass, Confusion: j.Confusion, UndefinedAUC: j.UndefinedAUC, CI: j.CI,
	}
	return nil
}

// WriteJSON writes m, indented, to path atomically (metrics.json).
func WriteJSON(path string, m Metrics) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("metrics: %s: %w", path, err)
	}
	data = append(data, '\n')
	return writeAtomic(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}
