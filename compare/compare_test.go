package compare

import (
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/model/metrics"
)

// testCases returns perClass cases of each of 4 classes.
func testCases(perClass int) ([]string, []int) {
	var ids []string
	var labels []int
	for c := range 4 {
		for i := range perClass {
			ids = append(ids, fmt.Sprintf("c%d-%d", c, i))
			labels = append(labels, c)
		}
	}
	return ids, labels
}

// scores gives each case a row whose true class gets strength plus N(0,1)
// noise, the others the noise alone (softmax).
func scores(rng *rand.Rand, labels []int, strength float64) [][]float64 {
	out := make([][]float64, len(labels))
	for i, y := range labels {
		row := make([]float64, 4)
		var sum float64
		for k := range row {
			z := rng.NormFloat64()
			if k == y {
				z += strength
			}
			row[k] = math.Exp(z)
			sum += row[k]
		}
		for k := range row {
			row[k] /= sum
		}
		out[i] = row
	}
	return out
}

// runsOf makes runs of variant v for seeds × folds with the given signal
// strength per seed.
func runsOf(rng *rand.Rand, v string, ids []string, labels []int, strength map[uint64]float64, folds []int) []Run {
	var rs []Run
	for s, st := range strength {
		for _, f := range folds {
			rs = append(rs, Run{Variant: v, Seed: s, Fold: f, IDs: ids, Labels: labels, Probs: scores(rng, labels, st)})
		}
	}
	return rs
}

func TestAnalyseFindsARealDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids, labels := testCases(20)
	seeds := map[uint64]float64{1: 2.5, 2: 2.5, 3: 2.5}
	runs := runsOf(rng, "good", ids, labels, seeds, []int{0, 1})
	runs = append(runs, runsOf(rng, "chance", ids, labels, map[uint64]float64{1: 0, 2: 0, 3: 0}, []int{0, 1})...)
	// A copy of "good" under another name: the same predictions.
	for _, r := range runs[:6] {
		r.Variant = "twin"
		runs = append(runs, r)
	}
	res, err := Analyse(runs, []string{"good", "chance", "twin"}, Options{Classes: 4, Replicates: 1000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	good, chance := res.Variants["good"][metrics.NameMacroAUC], res.Variants["chance"][metrics.NameMacroAUC]
	if good.Mean < 0.8 || good.CI[0] < 0.7 || !(good.CI[0] <= good.Mean && good.Mean <= good.CI[1]) {
		t.Errorf("good: %+v", good)
	}
	if chance.CI[0] > 0.5 || chance.CI[1] < 0.5 {
		t.Errorf("chance: interval %v excludes 0.5", chance.CI)
	}
	if len(good.PerSeed) != 3 || len(res.Seeds) != 3 || len(res.Folds) != 2 || res.TestCases != 80 {
		t.Errorf("shape: %d per-seed values, seeds %v, folds %v, %d cases", len(good.PerSeed), res.Seeds, res.Folds, res.TestCases)
	}
	byPair := map[string]Difference{}
	for _, d := range res.Differences {
		byPair[d.A+"-"+d.B] = d
	}
	if len(res.Differences) != 3 {
		t.Fatalf("%d differences, want 3 pairs", len(res.Differences))
	}
	gc := byPair["good-chance"].Metrics[metrics.NameMacroAUC]
	if gc.Diff < 0.3 || gc.CI[0] <= 0 || gc.P > 0.01 {
		t.Errorf("good − chance: %+v, want a clear positive difference with p < 0.01", gc)
	}
	gt := byPair["good-twin"].Metrics[metrics.NameMacroAUC]
	if gt.Diff != 0 || gt.CI != (metrics.Interval{0, 0}) || gt.P != 1 {
		t.Errorf("good − twin (same predictions): %+v, want 0 [0, 0] p=1", gt)
	}
	for _, want := range []string{"| good |", "| good − chance |", "Per seed", "Method:"} {
		if !strings.Contains(res.Markdown(), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
}

// Pairs: every pair up to three variants, the first against each other
// beyond (auto), or as asked; a pair's figures do not depend on which other
// pairs are computed; an unknown choice is refused.
func TestAnalysePairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ids, labels := testCases(8)
	names := []string{"a", "b", "c", "d"}
	var runs []Run
	for i, v := range names {
		runs = append(runs, runsOf(rng, v, ids, labels, map[uint64]float64{1: float64(i)}, []int{-1})...)
	}
	for _, tc := range []struct {
		variants []string
		pairs    string
		want     string
	}{
		{names[:3], "", "a-b a-c b-c"},
		{names, "", "a-b a-c a-d"},
		{names, PairsAuto, "a-b a-c a-d"},
		{names, PairsAll, "a-b a-c a-d b-c b-d c-d"},
		{names[:3], PairsFirst, "a-b a-c"},
	} {
		var in []Run
		for _, r := range runs {
			if slices.Contains(tc.variants, r.Variant) {
				in = append(in, r)
			}
		}
		res, err := Analyse(in, tc.variants, Options{Classes: 4, Replicates: 200, Seed: 1, Pairs: tc.pairs})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range res.Differences {
			got = append(got, d.A+"-"+d.B)
			if d.A == "a" && d.B == "b" && tc.pairs == PairsAll {
				first, _ := Analyse(runs, names, Options{Classes: 4, Replicates: 200, Seed: 1, Pairs: PairsFirst})
				if fmt.Sprint(first.Differences[0]) != fmt.Sprint(d) {
					t.Errorf("a − b differs between pairs all and first: %v vs %v", d, first.Differences[0])
				}
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%d variants, pairs %q: %v, want %s", len(tc.variants), tc.pairs, got, tc.want)
		}
	}
	// Own settings are named above the table, in the variants' order.
	res, err := Analyse(runs, names, Options{Classes: 4, Replicates: 100, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	res.OwnSettings = map[string]string{"d": `{"dim":64}`, "b": `{"dropout":0.5}`}
	if want := "Settings of their own, over the shared ones: b `{\"dropout\":0.5}`; d `{\"dim\":64}`.\n"; !strings.Contains(res.Markdown(), want) {
		t.Errorf("Markdown lacks %q", want)
	}
	if _, err := Analyse(runs, names, Options{Classes: 4, Pairs: "some"}); err == nil {
		t.Error("pairs \"some\" accepted")
	}
}

// The interval pools the spread over seeds: when the seeds disagree, it is
// wider than any one seed's case-bootstrap interval.
func TestAnalyseSeedSpreadWidensTheInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ids, labels := testCases(25)
	mixed := runsOf(rng, "a", ids, labels, map[uint64]float64{1: 0.2, 2: 3}, []int{-1})
	mixed = append(mixed, runsOf(rng, "b", ids, labels, map[uint64]float64{1: 1, 2: 1}, []int{-1})...)
	res, err := Analyse(mixed, []string{"a", "b"}, Options{Classes: 4, Replicates: 800})
	if err != nil {
		t.Fatal(err)
	}
	pooled := res.Variants["a"][metrics.NameMacroAUC].CI
	for _, r := range mixed[:2] {
		iv, err := metrics.Bootstrap(r.Labels, r.Probs, 4, 800, 0)
		if err != nil {
			t.Fatal(err)
		}
		if w, pw := iv.MacroAUC[1]-iv.MacroAUC[0], pooled[1]-pooled[0]; pw < 1.5*w {
			t.Errorf("pooled interval %v (width %.3f) is not much wider than seed %d's %v (width %.3f)", pooled, pw, r.Seed, iv.MacroAUC, w)
		}
	}
	ps := res.Variants["a"][metrics.NameMacroAUC].PerSeed
	if !(ps[0] < 0.7 && ps[1] > 0.9) {
		t.Errorf("per seed %v: want the weak seed first, then the strong one", ps)
	}
}

func TestAnalyseRefusesUnpairedRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ids, labels := testCases(3)
	a := runsOf(rng, "a", ids, labels, map[uint64]float64{1: 1, 2: 1}, []int{0})
	b := runsOf(rng, "b", ids, labels, map[uint64]float64{1: 1}, []int{0})
	shuffled := runsOf(rng, "b", ids, labels, map[uint64]float64{1: 1, 2: 1}, []int{0})
	shuffled[0].IDs = append([]string{"other"}, ids[1:]...)
	relabelled := runsOf(rng, "b", ids, labels, map[uint64]float64{1: 1, 2: 1}, []int{0})
	relabelled[1].Labels = append([]int{3}, labels[1:]...)
	for name, tc := range map[string]struct {
		runs []Run
		want string
	}{
		"missing seed":   {append(append([]Run{}, a...), b...), "every variant needs the same seeds and folds"},
		"other cases":    {append(append([]Run{}, a...), shuffled...), "not among the others'"},
		"other label":    {append(append([]Run{}, a...), relabelled...), "has label"},
		"unknown":        {append(append([]Run{}, a...), Run{Variant: "c"}), "not compared"},
		"no runs of one": {a, "every variant needs the same seeds and folds"},
	} {
		if _, err := Analyse(tc.runs, []string{"a", "b"}, Options{Classes: 4, Replicates: 100}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	// Rows in another order pair up by case id.
	rev := runsOf(rng, "b", ids, labels, map[uint64]float64{1: 1, 2: 1}, []int{0})
	for i := range rev {
		r := &rev[i]
		n := len(r.IDs)
		ri, rl, rp := make([]string, n), make([]int, n), make([][]float64, n)
		for k := range n {
			ri[k], rl[k], rp[k] = r.IDs[n-1-k], r.Labels[n-1-k], r.Probs[n-1-k]
		}
		r.IDs, r.Labels, r.Probs = ri, rl, rp
	}
	if _, err := Analyse(append(append([]Run{}, a...), rev...), []string{"a", "b"}, Options{Classes: 4, Replicates: 100}); err != nil {
		t.Errorf("reversed rows: %v", err)
	}
}

// compare.json has the documented schema; the pictures are written.
func TestWriteSchemaAndFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ids, labels := testCases(8)
	var runs []Run
	for _, v := range []string{"ipca", "pama", "abmil"} {
		runs = append(runs, runsOf(rng, v, ids, labels, map[uint64]float64{2024: 1.5, 2025: 1}, []int{0, 1, 2})...)
	}
	res, err := Analyse(runs, []string{"ipca", "pama", "abmil"}, Options{Classes: 4, Replicates: 300})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileJSON))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Variants map[string]map[string]struct {
			Mean    *float64    `json:"mean"`
			CI      *[2]float64 `json:"ci"`
			PerSeed []float64   `json:"per_seed"`
		} `json:"variants"`
		Differences []map[string]json.RawMessage `json:"differences"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"ipca", "pama", "abmil"} {
		for _, m := range []string{"accuracy", "macro_auc", "weighted_auc", "macro_f1"} {
			s, ok := doc.Variants[v][m]
			if !ok || s.Mean == nil || s.CI == nil || len(s.PerSeed) != 2 || s.CI[0] > *s.Mean || *s.Mean > s.CI[1] {
				t.Errorf("variants.%s.%s = %+v", v, m, s)
			}
		}
	}
	if len(doc.Differences) != 3 {
		t.Fatalf("%d differences", len(doc.Differences))
	}
	for _, d := range doc.Differences {
		var a, bb string
		json.Unmarshal(d["a"], &a)
		json.Unmarshal(d["b"], &bb)
		var st struct {
			Diff *float64    `json:"diff"`
			CI   *[2]float64 `json:"ci"`
			P    *float64    `json:"p"`
		}
		if err := json.Unmarshal(d["macro_auc"], &st); err != nil || a == "" || bb == "" || st.Diff == nil || st.CI == nil || st.P == nil || *st.P <= 0 || *st.P > 1 {
			t.Errorf("difference %s: %+v (%v)", d, st, err)
		}
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Differences[0].Metrics[metrics.NameMacroAUC] != res.Differences[0].Metrics[metrics.NameMacroAUC] {
		t.Errorf("compare.json does not read back: %v", err)
	}
	for _, f := range []string{FileForest, FileROC} {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil || img.Bounds().Dx() < 600 {
			t.Errorf("%s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, FileMarkdown))
	if !strings.Contains(string(md), "| ipca − pama |") {
		t.Errorf("compare.md:\n%s", md)
	}
}
