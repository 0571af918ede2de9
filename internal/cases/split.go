package cases

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
)

// splitStream is the PCG stream of label 0; label l uses splitStream+l, so
// each label is shuffled by its own sequence.
const splitStream = 0xca5e5

// Split assigns a stratified train/test split and stratified folds, and
// returns the cases in their input order with Split and Fold set (test cases
// get Fold -1); the input is not changed and its existing split and folds are
// ignored.
//
// Within each label the cases are put in order of case id and shuffled with a
// PCG generator seeded by (seed, splitStream+label); the first
// round(testFrac·n) go to test, the rest to train. The training cases then get
// folds 0..folds-1 round-robin down each label's shuffled list, each label
// starting at the fold after the one where the previous label stopped, so
// every fold differs from every other by at most one case per label and one
// case overall. The result depends only on the set of cases and the seed: not
// on row order, and adding a case of one label leaves the other labels as
// they were.
//
// Split returns an error, wrapping Problems, when the cases are invalid (see
// Validate; split and fold are not looked at), when testFrac is outside
// [0, 1), when folds < 2, or when fewer cases are left for training than there
// are folds. A label may have too few training cases to reach every fold.
func Split(cs []Case, seed uint64, testFrac float64, folds int) ([]Case, error) {
	if !(testFrac >= 0 && testFrac < 1) {
		return nil, fmt.Errorf("cases: test fraction %g outside [0, 1)", testFrac)
	}
	if folds < 2 {
		return nil, fmt.Errorf("cases: %d folds (at least 2)", folds)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("cases: no cases to split")
	}
	out := slices.Clone(cs)
	for i := range out {
		out[i].Split, out[i].Fold = "", -1
	}
	if ps := Validate(out); len(ps) > 0 {
		return nil, fmt.Errorf("cases: cannot split an invalid case set:\n%w", Problems(ps))
	}
	byLabel := make([][]int, NumClasses)
	for i, c := range out {
		byLabel[c.Label] = append(byLabel[c.Label], i)
	}
	nTrain, next := 0, 0
	for label, idx := range byLabel {
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(out[a].ID, out[b].ID) })
		shuffle(rand.NewPCG(seed, splitStream+uint64(label)), idx)
		nTest := int(math.Round(float64(len(idx)) * testFrac))
		for j, i := range idx {
			if j < nTest {
				out[i].Split = Test
				continue
			}
			out[i].Split, out[i].Fold = Train, next
			next = (next + 1) % folds
			nTrain++
		}
	}
	if nTrain < folds {
		return nil, fmt.Errorf("cases: %d training cases for %d folds (need at least one per fold)", nTrain, folds)
	}
	return out, nil
}

// shuffle is a Fisher–Yates shuffle drawing from src with Lemire's unbiased
// bounded method. It is written out rather than taken from rand.Rand.Shuffle
// so that a split stays the same across Go releases: only the PCG sequence,
// which is fixed by its definition, is relied on.
func shuffle(src *rand.PCG, idx []int) {
	for i := len(idx) - 1; i > 0; i-- {
		j := uintN(src, uint64(i+1))
		idx[i], idx[j] = idx[j], idx[i]
	}
}

// uintN returns a uniform number in [0, n), n > 0.
func uintN(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}

// SplitSummary tabulates the cases per label: all of them, train, test (and
// those without a split, if any) and each fold.
func SplitSummary(cs []Case) string {
	folds := 0
	unsplit := false
	for _, c := range cs {
		folds = max(folds, c.Fold+1)
		unsplit = unsplit || c.Split == ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %6s %6s %6s %6s %6s\n", "", "HER2 0", "1+", "2+", "3+", "all")
	row := func(name string, keep func(Case) bool) {
		var n [NumClasses + 1]int
		for _, c := range cs {
			if keep(c) && c.Label >= 0 && c.Label < NumClasses {
				n[c.Label]++
				n[NumClasses]++
			}
		}
		fmt.Fprintf(&b, "%-8s %6d %6d %6d %6d %6d\n", name, n[0], n[1], n[2], n[3], n[4])
	}
	row("cases", func(Case) bool { return true })
	row("train", func(c Case) bool { return c.Split == Train })
	row("test", func(c Case) bool { return c.Split == Test })
	if unsplit {
		row("no split", func(c Case) bool { return c.Split == "" })
	}
	for f := range folds {
		row(fmt.Sprintf("fold %d", f), func(c Case) bool { return c.Split == Train && c.Fold == f })
	}
	return b.String()
}
