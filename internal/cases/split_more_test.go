package cases

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The split of a fixed set is pinned, so a change of algorithm (or of Go's
// random number code) that would silently move cases between train and test
// shows up here.
func TestSplitGolden(t *testing.T) {
	cs := synthCases([4]int{4, 3, 5, 2})
	out, err := Split(cs, 2024, 0.3, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range out {
		got = append(got, fmt.Sprintf("%s:%s:%d", c.ID, c.Split, c.Fold))
	}
	want := goldenSplit
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}

const goldenSplit = "c0_0:test:-1 c0_1:train:1 c0_2:train:0 c0_3:train:2 c1_0:train:0 c1_1:train:1 c1_2:test:-1 c2_0:train:0 c2_1:train:2 c2_2:test:-1 c2_3:test:-1 c2_4:train:1 c3_0:test:-1 c3_1:train:2"

// The split depends on the set of cases, not on their row order, and a new
// case of one label leaves the other labels' train/test membership alone.
func TestSplitStable(t *testing.T) {
	cs := synthCases([4]int{17, 11, 9, 6})
	base, err := Split(cs, 7, 0.3, 5)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Case{}
	for _, c := range base {
		byID[c.ID] = c
	}
	shuffled := slices.Clone(cs)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	out, err := Split(shuffled, 7, 0.3, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range out {
		if c.ID != shuffled[i].ID {
			t.Fatal("order not kept")
		}
		if b := byID[c.ID]; b.Split != c.Split || b.Fold != c.Fold {
			t.Errorf("%s: %s/%d after reordering rows, %s/%d before", c.ID, c.Split, c.Fold, b.Split, b.Fold)
		}
	}
	more := append(slices.Clone(cs), Case{ID: "new", HE: "new_he", Label: 0, Fold: -1})
	out, err = Split(more, 7, 0.3, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range out {
		if b, ok := byID[c.ID]; ok && c.Label != 0 && b.Split != c.Split {
			t.Errorf("%s (label %d) moved from %s to %s when a label-0 case was added", c.ID, c.Label, b.Split, c.Split)
		}
	}
}

// Property test over random label distributions (empty and tiny labels
// included), fold counts and test fractions.
func TestSplitProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	for trial := range 500 {
		var counts [4]int
		for l := range counts {
			switch rng.IntN(4) {
			case 0:
				counts[l] = rng.IntN(3) // 0..2
			default:
				counts[l] = rng.IntN(80)
			}
		}
		folds := 2 + rng.IntN(9)
		testFrac := []float64{0, 0.3, 0.3, 0.2, 0.5, 0.9}[rng.IntN(6)]
		seed := rng.Uint64()
		cs := synthCases(counts)
		for i := range cs { // stale values are ignored
			cs[i].Split, cs[i].Fold = Test, 3
		}
		before := slices.Clone(cs)
		out, err := Split(cs, seed, testFrac, folds)
		if !slices.Equal(cs, before) {
			t.Fatal("input changed")
		}
		nTrain := 0
		for _, n := range counts {
			nTrain += n - int(math.Round(float64(n)*testFrac))
		}
		if nTrain < folds {
			if err == nil {
				t.Fatalf("trial %d: %d training cases in %d folds: no error", trial, nTrain, folds)
			}
			continue
		}
		if err != nil {
			t.Fatalf("trial %d (%v, %d folds, %g): %v", trial, counts, folds, testFrac, err)
		}
		if len(out) != len(cs) {
			t.Fatal("cases lost")
		}
		all := make([]int, folds)
		for l := range 4 {
			test := 0
			per := make([]int, folds)
			for i, c := range out {
				if c.ID != cs[i].ID || c.HE != cs[i].HE || c.Label != cs[i].Label {
					t.Fatal("case changed or moved")
				}
				if c.Label != l {
					continue
				}
				switch {
				case c.Split == Test && c.Fold == -1:
					test++
				case c.Split == Train && c.Fold >= 0 && c.Fold < folds:
					per[c.Fold]++
					all[c.Fold]++
				default:
					t.Fatalf("case %s: split %q fold %d", c.ID, c.Split, c.Fold)
				}
			}
			if d := math.Abs(float64(test) - testFrac*float64(counts[l])); d > 0.5 {
				t.Errorf("trial %d label %d: %d of %d in test (fraction %g)", trial, l, test, counts[l], testFrac)
			}
			if slices.Max(per)-slices.Min(per) > 1 {
				t.Errorf("trial %d label %d: folds %v", trial, l, per)
			}
		}
		if slices.Max(all)-slices.Min(all) > 1 || slices.Min(all) == 0 {
			t.Errorf("trial %d: fold sizes %v", trial, all)
		}
		if ps := Validate(out); len(ps) > 0 {
			t.Fatalf("split output invalid: %v", Problems(ps))
		}
		again, _ := Split(cs, seed, testFrac, folds)
		if !slices.Equal(out, again) {
			t.Fatal("not deterministic")
		}
	}
}

func TestSplitDifferentSeeds(t *testing.T) {
	cs := synthCases([4]int{30, 30, 30, 30})
	seen := map[string]bool{}
	for seed := range uint64(20) {
		out, err := Split(cs, seed, 0.3, 5)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, c := range out {
			fmt.Fprintf(&b, "%s%d,", c.Split, c.Fold)
		}
		seen[b.String()] = true
	}
	if len(seen) != 20 {
		t.Errorf("20 seeds gave %d different splits", len(seen))
	}
}

func TestSplitErrors(t *testing.T) {
	ok := synthCases([4]int{5, 5, 5, 5})
	dup := synthCases([4]int{5, 5, 5, 5})
	dup[3].ID = dup[0].ID
	dup[7].IHC = dup[1].HE
	tests := []struct {
		name     string
		cs       []Case
		frac     float64
		folds    int
		want     string
		problems int
	}{
		{"negative fraction", ok, -0.1, 5, "cases: test fraction -0.1 outside [0, 1)", 0},
		{"fraction 1", ok, 1, 5, "cases: test fraction 1 outside [0, 1)", 0},
		{"fraction NaN", ok, math.NaN(), 5, "cases: test fraction NaN outside [0, 1)", 0},
		{"one fold", ok, 0.3, 1, "cases: 1 folds (at least 2)", 0},
		{"no cases", nil, 0.3, 5, "cases: no cases to split", 0},
		{"too few", synthCases([4]int{1, 1, 1, 1}), 0.3, 5, "cases: 4 training cases for 5 folds (need at least one per fold)", 0},
		{"invalid set", dup, 0.3, 5, "cases: cannot split an invalid case set:\n" +
			`cases.csv:4: case "c0_0" appears twice (row 1 and row 4)` + "\n" +
			`cases.csv:8: slide "c0_1_he" is in two cases: H&E of case "c0_1" (row 2) and IHC of case "c1_2" (row 8)`, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Split(tc.cs, 1, tc.frac, tc.folds)
			if out != nil || err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			var ps Problems
			if errors.As(err, &ps) != (tc.problems > 0) || len(ps) != tc.problems {
				t.Errorf("problems %v", ps)
			}
		})
	}
}

func TestSplitSummary(t *testing.T) {
	cs := []Case{
		{ID: "a", HE: "a", Label: 0, Split: Train, Fold: 0},
		{ID: "b", HE: "b", Label: 0, Split: Train, Fold: 1},
		{ID: "c", HE: "c", Label: 3, Split: Train, Fold: 1},
		{ID: "d", HE: "d", Label: 2, Split: Test, Fold: -1},
		{ID: "e", HE: "e", Label: 1, Fold: -1},
	}
	want := "" +
		"         HER2 0     1+     2+     3+    all\n" +
		"cases         2      1      1      1      5\n" +
		"train         2      0      0      1      3\n" +
		"test          0      0      1      0      1\n" +
		"no split      0      1      0      0      1\n" +
		"fold 0        1      0      0      0      1\n" +
		"fold 1        1      0      0      1      2\n"
	if got := SplitSummary(cs); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// The shuffle's bounded draw is uniform and the shuffle a permutation.
func TestShuffleUniform(t *testing.T) {
	src := rand.NewPCG(3, 4)
	const n, draws = 7, 70000
	var count [n]int
	for range draws {
		count[uintN(src, n)]++
	}
	for v, c := range count {
		if math.Abs(float64(c)-draws/n) > 5*math.Sqrt(draws/n) {
			t.Errorf("value %d drawn %d times of %d", v, c, draws)
		}
	}
	// Each of the 6 orders of 3 elements comes up about equally often.
	orders := map[[3]int]int{}
	for range 60000 {
		idx := []int{0, 1, 2}
		shuffle(src, idx)
		orders[[3]int(idx)]++
	}
	if len(orders) != 6 {
		t.Fatalf("orders %v", orders)
	}
	for o, c := range orders {
		if math.Abs(float64(c)-10000) > 500 {
			t.Errorf("order %v came up %d times of 60000", o, c)
		}
	}
}
