package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Summary metric names, as in metrics.json, in report order.
const (
	NameAccuracy    = "accuracy"
	NameMacroAUC    = "macro_auc"
	NameWeightedAUC = "weighted_auc"
	NameMacroF1     = "macro_f1"
	NameWeightedF1  = "weighted_f1"
)

// SummaryNames lists the summary metrics in report order.
var SummaryNames = []string{NameAccuracy, NameMacroAUC, NameWeightedAUC, NameMacroF1, NameWeightedF1}

// Value returns the summary metric called name (one of SummaryNames); NaN
// for an unknown name.
func (m Metrics) Value(name string) float64 {
	switch name {
	case NameAccuracy:
		return m.Accuracy
	case NameMacroAUC:
		return m.MacroAUC
	case NameWeightedAUC:
		return m.WeightedAUC
	case NameMacroF1:
		return m.MacroF1
	case NameWeightedF1:
		return m.WeightedF1
	}
	return math.NaN()
}

// DefaultReplicates is the number of bootstrap replicates reports use.
const DefaultReplicates = 2000

// BootstrapMethod describes how Bootstrap computes its intervals.
const BootstrapMethod = "stratified percentile bootstrap over cases (resampled with replacement within each true class, so class counts are kept)"

// Interval is a confidence interval [lo, hi]; JSON [lo, hi], or null when
// undefined (NaN).
type Interval [2]float64

// Undefined reports whether the interval is undefined.
func (iv Interval) Undefined() bool { return math.IsNaN(iv[0]) || math.IsNaN(iv[1]) }

// MarshalJSON writes [lo, hi], or null when undefined.
func (iv Interval) MarshalJSON() ([]byte, error) {
	if iv.Undefined() {
		return []byte("null"), nil
	}
	return json.Marshal([2]float64(iv))
}

// UnmarshalJSON reads [lo, hi]; null is the undefined interval.
func (iv *Interval) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*iv = Interval{math.NaN(), math.NaN()}
		return nil
	}
	var a [2]float64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*iv = Interval(a)
	return nil
}

// Intervals are bootstrap confidence intervals of the summary metrics
// (metrics.json's "ci95").
type Intervals struct {
	Level       float64  `json:"level"` // 0.95
	Replicates  int      `json:"replicates"`
	Seed        uint64   `json:"seed"`
	Method      string   `json:"method"`
	Accuracy    Interval `json:"accuracy"`
	MacroAUC    Interval `json:"macro_auc"`
	WeightedAUC Interval `json:"weighted_auc"`
	MacroF1     Interval `json:"macro_f1"`
	WeightedF1  Interval `json:"weighted_f1"`
}

// Of returns the interval of the summary metric called name.
func (iv *Intervals) Of(name string) Interval {
	switch name {
	case NameAccuracy:
		return iv.Accuracy
	case NameMacroAUC:
		return iv.MacroAUC
	case NameWeightedAUC:
		return iv.WeightedAUC
	case NameMacroF1:
		return iv.MacroF1
	case NameWeightedF1:
		return iv.WeightedF1
	}
	return Interval{math.NaN(), math.NaN()}
}

func (iv *Intervals) set(name string, v Interval) {
	switch name {
	case NameAccuracy:
		iv.Accuracy = v
	case NameMacroAUC:
		iv.MacroAUC = v
	case NameWeightedAUC:
		iv.WeightedAUC = v
	case NameMacroF1:
		iv.MacroF1 = v
	case NameWeightedF1:
		iv.WeightedF1 = v
	}
}

// Resampler draws stratified bootstrap samples of cases: as many cases of
// each true class as the set has, drawn with replacement among that class's
// cases. Keeping the class counts keeps every class's AUC defined in every
// replicate where it is defined in the set.
type Resampler struct {
	byClass [][]int
	n       int
}

// NewResampler groups the case indices by label (labels in [0, classes)).
func NewResampler(labels []int, classes int) *Resampler {
	r := &Resampler{byClass: make([][]int, classes), n: len(labels)}
	for i, y := range labels {
		if y >= 0 && y < classes {
			r.byClass[y] = append(r.byClass[y], i)
		}
	}
	return r
}

// Draw fills dst (grown as needed) with one stratified resample of case
// indices and returns it.
func (r *Resampler) Draw(rng *rand.Rand, dst []int) []int {
	dst = dst[:0]
	for _, idx := range r.byClass {
		for range idx {
			dst = append(dst, idx[rng.IntN(len(idx))])
		}
	}
	return dst
}

// Gather picks labels and probability rows at idx (rows are shared, not
// copied) into the given slices, grown as needed.
func Gather(labels []int, probs [][]float64, idx []int, ls []int, ps [][]float64) ([]int, [][]float64) {
	ls, ps = ls[:0], ps[:0]
	for _, i := range idx {
		ls = append(ls, labels[i])
		ps = append(ps, probs[i])
	}
	return ls, ps
}

// Percentile returns the q-quantile (q in [0,1]) of the non-NaN values, by
// linear interpolation between order statistics (numpy's default); NaN when
// none is left. vals is sorted in place.
func Percentile(vals []float64, q float64) float64 {
	vals = slices.DeleteFunc(vals, math.IsNaN)
	if len(vals) == 0 {
		return math.NaN()
	}
	slices.Sort(vals)
	return percentileSorted(vals, q)
}

func percentileSorted(vals []float64, q float64) float64 {
	pos := q * float64(len(vals)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(vals)-1)
	return vals[lo] + (vals[hi]-vals[lo])*(pos-float64(lo))
}

// PercentileInterval is the central level-interval of the values (NaNs left
// out): [Percentile((1−level)/2), Percentile((1+level)/2)]; undefined when
// fewer than half the values are defined (a metric undefined in most
// replicates has no honest interval).
func PercentileInterval(vals []float64, level float64) Interval {
	n := len(vals)
	vals = slices.DeleteFunc(vals, math.IsNaN)
	if len(vals) == 0 || 2*len(vals) < n {
		return Interval{math.NaN(), math.NaN()}
	}
	slices.Sort(vals)
	return Interval{percentileSorted(vals, (1-level)/2), percentileSorted(vals, (1+level)/2)}
}

// Bootstrap returns 95 % confidence intervals of the summary metrics of
// probs against labels by the stratified percentile bootstrap
// (BootstrapMethod) with the given number of replicates, drawn from
// PCG(seed, 1): the same inputs and seed give the same intervals. The input
// is checked as by Compute.
func Bootstrap(labels []int, probs [][]float64, classes, replicates int, seed uint64) (Intervals, error) {
	if err := validate(labels, probs, classes); err != nil {
		return Intervals{}, err
	}
	if replicates < 1 {
		return Intervals{}, fmt.Errorf("%w: %d bootstrap replicates", ErrInput, replicates)
	}
	rs := NewResampler(labels, classes)
	rng := rand.New(rand.NewPCG(seed, 1))
	vals := make(map[string][]float64, len(SummaryNames))
	var idx, ls []int
	var ps [][]float64
	for range replicates {
		idx = rs.Draw(rng, idx)
		ls, ps = Gather(labels, probs, idx, ls, ps)
		m, err := Compute(ls, ps, classes)
		if err != nil {
			return Intervals{}, err
		}
		for _, name := range SummaryNames {
			vals[name] = append(vals[name], m.Value(name))
		}
	}
	iv := Intervals{Level: 0.95, Replicates: replicates, Seed: seed, Method: BootstrapMethod}
	for _, name := range SummaryNames {
		iv.set(name, PercentileInterval(vals[name], iv.Level))
	}
	return iv, nil
}

// ComputeWithCI is Compute with bootstrap intervals (Bootstrap with
// DefaultReplicates and seed 0) in m.CI.
func ComputeWithCI(labels []int, probs [][]float64, classes int) (Metrics, error) {
	m, err := Compute(labels, probs, classes)
	if err != nil {
		return m, err
	}
	iv, err := Bootstrap(labels, probs, classes, DefaultReplicates, 0)
	if err != nil {
		return m, err
	}
	m.CI = &iv
	return m, nil
}

// WithCI formats the summary metric called name as "0.651 [0.552, 0.744]"
// (three decimals; the interval only when m.CI has it).
func (m Metrics) WithCI(name string) string {
	v := m.Value(name)
	if math.IsNaN(v) {
		return "undefined"
	}
	s := fmt.Sprintf("%.3f", v)
	if m.CI != nil {
		if iv := m.CI.Of(name); !iv.Undefined() {
			s += fmt.Sprintf(" [%.3f, %.3f]", iv[0], iv[1])
		}
	}
	return s
}
