// Package compare turns the test predictions of several model variants,
// each trained with the same seeds on the same folds, into an honest
// comparison (`pipeline compare`): every metric with a confidence interval
// that holds both the sampling of the test cases and the spread over
// training seeds, and paired differences between variants with intervals
// and p-values. It writes compare.json, compare.md, forest.png (the paired
// differences) and roc.png (macro-average ROC curves with bands). It is
// synchronous; pipeline.Compare trains the runs (several at once).
//
// # Method
//
// A run is one trained model (variant, seed, fold) and its H&E-only
// predictions of the same held-out test cases. The point estimate of a
// metric is its mean over a variant's runs, each computed on all the test
// cases. Its interval comes from B bootstrap replicates; replicate b draws a
// stratified resample of the test cases (with replacement within each true
// class, so class counts are kept) and one (seed, fold) uniformly, and
// evaluates every variant's run of that (seed, fold) on that resample. The
// 2.5 and 97.5 percentiles of a variant's B values are its 95 % interval: a
// mixture over seeds of the case-bootstrap distributions, so it is wide when
// either the test set is small or the result depends on the seed. The
// paired difference A − B uses the same replicates: the same cases and the
// same (seed, fold) for both, so what the two share (hard cases, the split)
// cancels. Its p-value is two-sided, from the bootstrap distribution of the
// difference: p = min(1, 2·min(1 + #{d ≤ 0}, 1 + #{d ≥ 0}) / (B + 1)), the
// smallest level at which the percentile interval excludes 0. The ROC band
// of a variant is, at each false positive rate of a 101-point grid, the
// percentile interval of the replicates' macro-average ROC curves around the
// mean of its runs' curves.
package compare

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/her2wsi/her2wsi/model/metrics"
)

// Metrics are the compared metrics, in report order.
var Metrics = []string{metrics.NameAccuracy, metrics.NameMacroAUC, metrics.NameWeightedAUC, metrics.NameMacroF1, metrics.NameWeightedF1}

// metricTitle names a metric in tables and plots.
var metricTitle = map[string]string{
	metrics.NameAccuracy: "accuracy", metrics.NameMacroAUC: "macro-AUC",
	metrics.NameWeightedAUC: "weighted-AUC", metrics.NameMacroF1: "macro-F1", metrics.NameWeightedF1: "weighted-F1",
}

// Method is the method as compare.json states it.
const Method = "metric: mean over a variant's (seed, fold) runs on all test cases; 95 % CI: percentile bootstrap, each replicate a stratified resample of the test cases (within each true class, with replacement) and one (seed, fold) drawn uniformly, so it holds case sampling and seed spread; differences: paired bootstrap (same cases, same seed and fold for both variants), two-sided p = min(1, 2·min(1+#{d≤0}, 1+#{d≥0})/(B+1))"

// Run is one trained model's H&E-only predictions of the test cases.
type Run struct {
	Variant string
	Seed    uint64
	Fold    int // the validation fold; −1 without cross-validation
	IDs     []string
	Labels  []int
	Probs   [][]float64
}

// Options set the bootstrap.
type Options struct {
	Classes    int    // 4 for HER2 0/1+/2+/3+
	Replicates int    // bootstrap replicates (default metrics.DefaultReplicates)
	Seed       uint64 // the bootstrap's random stream
	// Pairs chooses the paired differences: PairsAll (every pair),
	// PairsFirst (the first variant against each other, as a paper
	// compares its method with each baseline) or "" (PairsAuto: every pair
	// up to three variants, the first against each other beyond).
	Pairs string
}

// The choices of Options.Pairs.
const (
	PairsAuto  = "auto"
	PairsAll   = "all"
	PairsFirst = "first"
)

// CheckPairs checks an Options.Pairs choice ("" is PairsAuto).
func CheckPairs(p string) error {
	switch p {
	case "", PairsAuto, PairsAll, PairsFirst:
		return nil
	}
	return fmt.Errorf("pairs %q: %s, %s or %s", p, PairsAuto, PairsAll, PairsFirst)
}

// pairs lists the compared (a, b) pairs in report order.
func pairs(variants []string, mode string) [][2]string {
	if mode == "" || mode == PairsAuto {
		mode = PairsAll
		if len(variants) > 3 {
			mode = PairsFirst
		}
	}
	var out [][2]string
	for i, a := range variants {
		for _, b := range variants[i+1:] {
			out = append(out, [2]string{a, b})
		}
		if mode == PairsFirst {
			break
		}
	}
	return out
}

// Stat is one variant's metric: the mean over its runs, the interval, and
// the mean over folds for each seed (in Result.Seeds order).
type Stat struct {
	Mean    float64          `json:"mean"`
	CI      metrics.Interval `json:"ci"`
	PerSeed []float64        `json:"per_seed"`
}

// DiffStat is a paired difference A − B of one metric.
type DiffStat struct {
	Diff float64          `json:"diff"`
	CI   metrics.Interval `json:"ci"`
	P    float64          `json:"p"`
}

// Difference holds the paired differences of every metric between A and B;
// in JSON {"a": A, "b": B, METRIC: {"diff", "ci", "p"}, …}.
type Difference struct {
	A, B    string
	Metrics map[string]DiffStat
}

// MarshalJSON flattens the metrics beside "a" and "b".
func (d Difference) MarshalJSON() ([]byte, error) {
	m := map[string]any{"a": d.A, "b": d.B}
	for k, v := range d.Metrics {
		m[k] = jsonDiff(v)
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Difference) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	d.Metrics = map[string]DiffStat{}
	for k, v := range raw {
		var err error
		switch k {
		case "a":
			err = json.Unmarshal(v, &d.A)
		case "b":
			err = json.Unmarshal(v, &d.B)
		default:
			var j struct {
				Diff *float64         `json:"diff"`
				CI   metrics.Interval `json:"ci"`
				P    *float64         `json:"p"`
			}
			err = json.Unmarshal(v, &j)
			d.Metrics[k] = DiffStat{Diff: orNaN(j.Diff), CI: j.CI, P: orNaN(j.P)}
		}
		if err != nil {
			return fmt.Errorf("compare: difference %s: %w", k, err)
		}
	}
	return nil
}

func jsonDiff(s DiffStat) any {
	return struct {
		Diff *float64         `json:"diff"`
		CI   metrics.Interval `json:"ci"`
		P    *float64         `json:"p"`
	}{nullable(s.Diff), s.CI, nullable(s.P)}
}

func nullable(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// Result is compare.json.
type Result struct {
	Variants    map[string]map[string]Stat `json:"variants"`
	Differences []Difference               `json:"differences"`
	Order       []string                   `json:"order"` // the variants as given
	Seeds       []uint64                   `json:"seeds"`
	Folds       []int                      `json:"folds"` // validation folds (−1: none)
	TestCases   int                        `json:"test_cases"`
	ClassCounts []int                      `json:"class_counts"` // test cases per class
	Replicates  int                        `json:"replicates"`
	Method      string                     `json:"method"`
	Settings    map[string]any             `json:"settings,omitempty"` // what the caller ran (model, training, cases)
	// OwnSettings names, per variant that had them, the settings it ran
	// with instead of the shared ones (as the user gave them).
	OwnSettings map[string]string `json:"own_settings,omitempty"`
	// Bands are the macro-average ROC curves with their 95 % bands, in
	// Order (roc.png).
	Bands []metrics.ROCBand `json:"-"`
}

// MarshalJSON writes NaN means and per-seed values as null.
func (s Stat) MarshalJSON() ([]byte, error) {
	ps := make([]*float64, len(s.PerSeed))
	for i, v := range s.PerSeed {
		ps[i] = nullable(v)
	}
	return json.Marshal(struct {
		Mean    *float64         `json:"mean"`
		CI      metrics.Interval `json:"ci"`
		PerSeed []*float64       `json:"per_seed"`
	}{nullable(s.Mean), s.CI, ps})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stat) UnmarshalJSON(b []byte) error {
	var j struct {
		Mean    *float64         `json:"mean"`
		CI      metrics.Interval `json:"ci"`
		PerSeed []*float64       `json:"per_seed"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	s.Mean, s.CI = orNaN(j.Mean), j.CI
	s.PerSeed = make([]float64, len(j.PerSeed))
	for i, p := range j.PerSeed {
		s.PerSeed[i] = orNaN(p)
	}
	return nil
}

type runKey struct {
	seed uint64
	fold int
}

// Analyse computes the comparison of the variants (in that order) from
// their runs: every variant must have a run for the same (seed, fold)
// pairs, and every run must predict the same test cases with the same
// labels (in any order).
func Analyse(runs []Run, variants []string, opt Options) (*Result, error) {
	if len(variants) == 0 {
		return nil, errors.New("compare: no variants")
	}
	if opt.Classes < 2 {
		return nil, fmt.Errorf("compare: %d classes", opt.Classes)
	}
	if opt.Replicates == 0 {
		opt.Replicates = metrics.DefaultReplicates
	}
	if opt.Replicates < 1 {
		return nil, fmt.Errorf("compare: %d bootstrap replicates", opt.Replicates)
	}
	if err := CheckPairs(opt.Pairs); err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	byVar := map[string]map[runKey]*Run{}
	for _, v := range variants {
		if byVar[v] != nil {
			return nil, fmt.Errorf("compare: variant %s given twice", v)
		}
		byVar[v] = map[runKey]*Run{}
	}
	for i := range runs {
		r := &runs[i]
		m, ok := byVar[r.Variant]
		if !ok {
			return nil, fmt.Errorf("compare: run of variant %s, which is not compared", r.Variant)
		}
		k := runKey{r.Seed, r.Fold}
		if m[k] != nil {
			return nil, fmt.Errorf("compare: two runs of %s with seed %d, fold %d", r.Variant, r.Seed, r.Fold)
		}
		m[k] = r
	}
	// The (seed, fold) pairs: the first variant's, which every other must have.
	var keys []runKey
	for k := range byVar[variants[0]] {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("compare: no runs of %s", variants[0])
	}
	slices.SortFunc(keys, func(a, b runKey) int {
		return cmp.Or(cmp.Compare(a.seed, b.seed), cmp.Compare(a.fold, b.fold))
	})
	for _, v := range variants[1:] {
		if len(byVar[v]) != len(keys) {
			return nil, fmt.Errorf("compare: %s has %d runs, %s %d: every variant needs the same seeds and folds", v, len(byVar[v]), variants[0], len(keys))
		}
		for _, k := range keys {
			if byVar[v][k] == nil {
				return nil, fmt.Errorf("compare: %s has no run with seed %d, fold %d", v, k.seed, k.fold)
			}
		}
	}
	// Align every run's rows to the first run's case order.
	ref := byVar[variants[0]][keys[0]]
	n := len(ref.IDs)
	if n == 0 {
		return nil, errors.New("compare: the runs predict no test case")
	}
	pos := make(map[string]int, n)
	for i, id := range ref.IDs {
		if _, dup := pos[id]; dup {
			return nil, fmt.Errorf("compare: test case %s predicted twice", id)
		}
		pos[id] = i
	}
	labels := slices.Clone(ref.Labels)
	probs := map[string][][][]float64{} // variant → key index → case → class
	for _, v := range variants {
		probs[v] = make([][][]float64, len(keys))
		for ki, k := range keys {
			r := byVar[v][k]
			if len(r.IDs) != n || len(r.Labels) != n || len(r.Probs) != n {
				return nil, fmt.Errorf("compare: %s seed %d fold %d predicts %d cases, not the %d of the others", v, k.seed, k.fold, len(r.IDs), n)
			}
			rows := make([][]float64, n)
			for i, id := range r.IDs {
				j, ok := pos[id]
				if !ok || rows[j] != nil {
					return nil, fmt.Errorf("compare: %s seed %d fold %d: test case %s is not among the others' or is repeated", v, k.seed, k.fold, id)
				}
				if r.Labels[i] != labels[j] {
					return nil, fmt.Errorf("compare: test case %s has label %d in one run and %d in another", id, labels[j], r.Labels[i])
				}
				rows[j] = r.Probs[i]
			}
			probs[v][ki] = rows
		}
	}
	res := &Result{
		Variants: map[string]map[string]Stat{}, Order: slices.Clone(variants),
		TestCases: n, ClassCounts: make([]int, opt.Classes), Replicates: opt.Replicates, Method: Method,
	}
	for _, y := range labels {
		if y < 0 || y >= opt.Classes {
			return nil, fmt.Errorf("compare: label %d outside [0, %d)", y, opt.Classes)
		}
		res.ClassCounts[y]++
	}
	seedIdx := map[uint64]int{}
	foldSet := map[int]bool{}
	for _, k := range keys {
		if _, ok := seedIdx[k.seed]; !ok {
			seedIdx[k.seed] = len(res.Seeds)
			res.Seeds = append(res.Seeds, k.seed)
		}
		if !foldSet[k.fold] {
			foldSet[k.fold] = true
			res.Folds = append(res.Folds, k.fold)
		}
	}
	slices.Sort(res.Folds)

	// Every run on all the test cases.
	grid := metrics.ROCGrid(100)
	full := map[string][]metrics.Metrics{}
	fullROC := map[string][][]float64{}
	for _, v := range variants {
		for ki := range keys {
			m, err := metrics.Compute(labels, probs[v][ki], opt.Classes)
			if err != nil {
				return nil, fmt.Errorf("compare: %s: %w", v, err)
			}
			full[v] = append(full[v], m)
			fullROC[v] = append(fullROC[v], metrics.MacroROCAt(labels, probs[v][ki], opt.Classes, grid))
		}
	}

	// The replicates.
	B := opt.Replicates
	vals := map[string]map[string][]float64{} // variant → metric → replicate
	rocs := map[string][][]float64{}          // variant → grid point → replicate
	for _, v := range variants {
		vals[v] = map[string][]float64{}
		for _, m := range Metrics {
			vals[v][m] = make([]float64, B)
		}
		rocs[v] = make([][]float64, len(grid))
		for g := range grid {
			rocs[v][g] = make([]float64, B)
		}
	}
	rs := metrics.NewResampler(labels, opt.Classes)
	rng := rand.New(rand.NewPCG(opt.Seed, 2))
	var idx, ls []int
	var ps [][]float64
	for b := range B {
		idx = rs.Draw(rng, idx)
		ki := rng.IntN(len(keys))
		for _, v := range variants {
			ls, ps = metrics.Gather(labels, probs[v][ki], idx, ls, ps)
			m, err := metrics.Compute(ls, ps, opt.Classes)
			if err != nil {
				return nil, fmt.Errorf("compare: %s: %w", v, err)
			}
			for _, name := range Metrics {
				vals[v][name][b] = m.Value(name)
			}
			tpr := metrics.MacroROCAt(ls, ps, opt.Classes, grid)
			for g := range grid {
				if tpr == nil {
					rocs[v][g][b] = math.NaN()
				} else {
					rocs[v][g][b] = tpr[g]
				}
			}
		}
	}

	const level = 0.95
	for _, v := range variants {
		res.Variants[v] = map[string]Stat{}
		for _, name := range Metrics {
			st := Stat{Mean: meanOf(full[v], name, nil), PerSeed: make([]float64, len(res.Seeds))}
			for si, s := range res.Seeds {
				st.PerSeed[si] = meanOf(full[v], name, func(ki int) bool { return keys[ki].seed == s })
			}
			st.CI = metrics.PercentileInterval(slices.Clone(vals[v][name]), level)
			res.Variants[v][name] = st
		}
		band := metrics.ROCBand{Name: v, AUC: res.Variants[v][metrics.NameMacroAUC].Mean, AUCCI: res.Variants[v][metrics.NameMacroAUC].CI,
			FPR: grid, Mid: make([]float64, len(grid)), Lo: make([]float64, len(grid)), Hi: make([]float64, len(grid))}
		for g := range grid {
			var sum float64
			cnt := 0
			for _, c := range fullROC[v] {
				if c != nil {
					sum += c[g]
					cnt++
				}
			}
			band.Mid[g] = sum / float64(cnt) // NaN when no run has a curve
			iv := metrics.PercentileInterval(slices.Clone(rocs[v][g]), level)
			band.Lo[g], band.Hi[g] = iv[0], iv[1]
		}
		if cnt := countFinite(band.Mid); cnt == len(grid) && !band.AUCCI.Undefined() {
			res.Bands = append(res.Bands, band)
		}
	}
	for _, pair := range pairs(variants, opt.Pairs) {
		a, b := pair[0], pair[1]
		d := Difference{A: a, B: b, Metrics: map[string]DiffStat{}}
		for _, name := range Metrics {
			var sum float64
			for ki := range keys {
				sum += full[a][ki].Value(name) - full[b][ki].Value(name)
			}
			diffs := make([]float64, B)
			le, ge, defined := 0, 0, 0
			for r := range B {
				diffs[r] = vals[a][name][r] - vals[b][name][r]
				if math.IsNaN(diffs[r]) {
					continue
				}
				defined++
				if diffs[r] <= 0 {
					le++
				}
				if diffs[r] >= 0 {
					ge++
				}
			}
			p := math.NaN()
			if defined > 0 {
				p = math.Min(1, 2*float64(min(le, ge)+1)/float64(defined+1))
			}
			d.Metrics[name] = DiffStat{Diff: sum / float64(len(keys)), CI: metrics.PercentileInterval(diffs, level), P: p}
		}
		res.Differences = append(res.Differences, d)
	}
	return res, nil
}

// meanOf is the mean of metric name over the runs that keep accepts (all
// when nil), NaN values left out; NaN when none is left.
func meanOf(ms []metrics.Metrics, name string, keep func(int) bool) float64 {
	var sum float64
	n := 0
	for i, m := range ms {
		if keep != nil && !keep(i) {
			continue
		}
		if v := m.Value(name); !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

func countFinite(xs []float64) int {
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			n++
		}
	}
	return n
}

// Markdown is compare.md: the metrics table, the paired-differences table,
// the per-seed figures and the method.
func (r *Result) Markdown() string {
	var b strings.Builder
	classes := make([]string, len(r.ClassCounts))
	for c, k := range r.ClassCounts {
		classes[c] = fmt.Sprint(k)
	}
	folds := "no cross-validation (one run per seed on every training case, last epoch)"
	if len(r.Folds) > 0 && r.Folds[0] >= 0 {
		folds = fmt.Sprintf("%d folds (each run validated on one fold for its best epoch)", len(r.Folds))
	}
	fmt.Fprintf(&b, "H&E-only predictions of %d held-out test cases (per class %s); %s %v × %s; %d bootstrap replicates. Mean over runs, [95 %% CI].\n\n",
		r.TestCases, strings.Join(classes, "/"), plural(len(r.Seeds), "seed"), r.Seeds, folds, r.Replicates)
	if len(r.OwnSettings) > 0 {
		var own []string
		for _, v := range r.Order {
			if o, ok := r.OwnSettings[v]; ok {
				own = append(own, fmt.Sprintf("%s `%s`", v, o))
			}
		}
		b.WriteString("Settings of their own, over the shared ones: " + strings.Join(own, "; ") + ".\n\n")
	}
	b.WriteString("| variant |")
	for _, m := range Metrics {
		b.WriteString(" " + metricTitle[m] + " |")
	}
	b.WriteString("\n| --- |" + strings.Repeat(" --- |", len(Metrics)) + "\n")
	for _, v := range r.Order {
		b.WriteString("| " + v + " |")
		for _, m := range Metrics {
			s := r.Variants[v][m]
			fmt.Fprintf(&b, " %s |", fmtCI(s.Mean, s.CI, "%.3f"))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nPaired differences (same test cases, same seed and fold), [95 % CI], two-sided bootstrap p:\n\n| difference |")
	for _, m := range Metrics {
		b.WriteString(" " + metricTitle[m] + " |")
	}
	b.WriteString("\n| --- |" + strings.Repeat(" --- |", len(Metrics)) + "\n")
	for _, d := range r.Differences {
		fmt.Fprintf(&b, "| %s − %s |", d.A, d.B)
		for _, m := range Metrics {
			s := d.Metrics[m]
			fmt.Fprintf(&b, " %s |", strings.ReplaceAll(metrics.FormatDiff(s.Diff, s.CI, s.P), "-", "−"))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nPer seed (mean over folds):\n\n| variant | metric |")
	for _, s := range r.Seeds {
		fmt.Fprintf(&b, " seed %d |", s)
	}
	b.WriteString("\n| --- | --- |" + strings.Repeat(" --- |", len(r.Seeds)) + "\n")
	for _, v := range r.Order {
		for _, m := range []string{metrics.NameMacroAUC, metrics.NameAccuracy} {
			fmt.Fprintf(&b, "| %s | %s |", v, metricTitle[m])
			for _, x := range r.Variants[v][m].PerSeed {
				fmt.Fprintf(&b, " %.3f |", x)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nMethod: " + r.Method + ".\n")
	return b.String()
}

func fmtCI(x float64, ci metrics.Interval, f string) string {
	if math.IsNaN(x) {
		return "undefined"
	}
	s := fmt.Sprintf(f, x)
	if !ci.Undefined() {
		s += fmt.Sprintf(" ["+f+", "+f+"]", ci[0], ci[1])
	}
	return s
}

// ForestGroups are the paired differences as forest-plot blocks, one per
// metric.
func (r *Result) ForestGroups() []metrics.ForestGroup {
	var gs []metrics.ForestGroup
	for _, m := range Metrics {
		g := metrics.ForestGroup{Title: metricTitle[m]}
		for _, d := range r.Differences {
			s := d.Metrics[m]
			g.Rows = append(g.Rows, metrics.ForestRow{Label: d.A + " - " + d.B, Est: s.Diff, CI: s.CI, Note: metrics.FormatDiff(s.Diff, s.CI, s.P)})
		}
		gs = append(gs, g)
	}
	return gs
}
