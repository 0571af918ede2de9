package metrics

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// scored is one case's score for a class and whether it belongs to it.
type scored struct {
	score    float64
	positive bool
}

// byScore orders by score, ascending.
func byScore(a, b scored) int { return cmp.Compare(a.score, b.score) }

// aucSorted sorts buf by score (ascending) and returns the Mann–Whitney AUC,
// ties counting 1/2; ok is false without positives or without negatives.
// buf must hold no NaN.
func aucSorted(buf []scored) (float64, bool) {
	slices.SortFunc(buf, byScore)
	// halves counts correctly ordered (positive above negative) pairs twice
	// and tied pairs once, so the sum is exact in integers.
	var halves, negBelow, pos, neg int64
	for i := 0; i < len(buf); {
		j := i
		var p, q int64 // positives and negatives in the tie group buf[i:j]
		for ; j < len(buf) && buf[j].score == buf[i].score; j++ {
			if buf[j].positive {
				p++
			} else {
				q++
			}
		}
		halves += p * (2*negBelow + q)
		negBelow += q
		pos += p
		neg += q
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0, false
	}
	return float64(halves) / (2 * float64(pos) * float64(neg)), true
}

// collect pairs scores with positive; ok is false on a length mismatch or a
// NaN score.
func collect(scores []float64, positive []bool) ([]scored, bool) {
	if len(scores) != len(positive) {
		return nil, false
	}
	buf := make([]scored, len(scores))
	for i, s := range scores {
		if math.IsNaN(s) {
			return nil, false
		}
		buf[i] = scored{s, positive[i]}
	}
	return buf, true
}

// AUC returns the area under the ROC curve of scores for the binary labels
// positive: the exact Mann–Whitney statistic, the fraction of (positive,
// negative) pairs where the positive scores higher, a tie counting 1/2. ok is
// false (and the AUC 0) when there are no positives or no negatives, when the
// lengths differ or when a score is NaN.
func AUC(scores []float64, positive []bool) (float64, bool) {
	buf, ok := collect(scores, positive)
	if !ok {
		return 0, false
	}
	return aucSorted(buf)
}

// ROCPoint is a point of a ROC curve: false and true positive rates.
type ROCPoint struct{ FPR, TPR float64 }

// ROC returns the ROC curve of scores for the binary labels positive, from
// (0,0) to (1,1): one point per distinct score, thresholds from high to low,
// so scores tied between positives and negatives form one diagonal step. Its
// Area equals AUC. It returns nil when there are no positives or no
// negatives, when the lengths differ or when a score is NaN.
func ROC(scores []float64, positive []bool) []ROCPoint {
	buf, ok := collect(scores, positive)
	if !ok {
		return nil
	}
	return rocSorted(buf)
}

// rocSorted sorts buf by score and returns its ROC curve (nil if undefined).
func rocSorted(buf []scored) []ROCPoint {
	slices.SortFunc(buf, byScore)
	var pos, neg int
	for _, s := range buf {
		if s.positive {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return nil
	}
	pts := []ROCPoint{{0, 0}}
	tp, fp := 0, 0
	for j := len(buf); j > 0; { // descending score
		i := j - 1
		for i > 0 && buf[i-1].score == buf[j-1].score {
			i--
		}
		for _, s := range buf[i:j] {
			if s.positive {
				tp++
			} else {
				fp++
			}
		}
		pts = append(pts, ROCPoint{float64(fp) / float64(neg), float64(tp) / float64(pos)})
		j = i
	}
	return pts
}

// ClassROC returns the one-vs-rest ROC curve of class c (nil when undefined
// or on invalid input, as for MacroROC).
func ClassROC(labels []int, probs [][]float64, classes, c int) []ROCPoint {
	if validate(labels, probs, classes) != nil || c < 0 || c >= classes {
		return nil
	}
	return classROC(labels, probs, c)
}

func classROC(labels []int, probs [][]float64, c int) []ROCPoint {
	buf := make([]scored, len(labels))
	for i, y := range labels {
		buf[i] = scored{probs[i][c], y == c}
	}
	return rocSorted(buf)
}

// MacroROC returns the macro-average ROC curve over the classes whose
// one-vs-rest curve is defined (scikit-learn's recipe): at every FPR of the
// union of those curves' points, the mean of the curves' TPRs, each
// interpolated linearly (at an FPR where a curve is vertical, its upper
// point, as numpy.interp does). A leading (0,0) is added when the mean TPR at
// FPR 0 is above 0, so the curve starts at the origin like ROC. It returns
// nil on input that Compute rejects or when no class is defined.
func MacroROC(labels []int, probs [][]float64, classes int) []ROCPoint {
	if validate(labels, probs, classes) != nil {
		return nil
	}
	var curves [][]ROCPoint
	var grid []float64
	for c := range classes {
		if r := classROC(labels, probs, c); r != nil {
			curves = append(curves, r)
			for _, p := range r {
				grid = append(grid, p.FPR)
			}
		}
	}
	if len(curves) == 0 {
		return nil
	}
	slices.Sort(grid)
	grid = slices.Compact(grid)
	out := make([]ROCPoint, 0, len(grid)+1)
	for _, f := range grid {
		var sum float64
		for _, r := range curves {
			sum += interpTPR(r, f)
		}
		out = append(out, ROCPoint{f, sum / float64(len(curves))})
	}
	if out[0].TPR > 0 { // grid[0] is 0: every curve starts at (0,0)
		out = slices.Insert(out, 0, ROCPoint{0, 0})
	}
	return out
}

// interpTPR interpolates the curve r (FPR non-decreasing, starting at 0) at
// FPR f: the last point with FPR f if there is one, else linearly between
// the neighbours; beyond the ends, the end TPR.
func interpTPR(r []ROCPoint, f float64) float64 {
	k := sort.Search(len(r), func(i int) bool { return r[i].FPR > f }) // first point right of f
	switch {
	case k == 0:
		return r[0].TPR
	case k == len(r) || r[k-1].FPR == f:
		return r[k-1].TPR
	}
	a, b := r[k-1], r[k]
	return a.TPR + (b.TPR-a.TPR)*(f-a.FPR)/(b.FPR-a.FPR)
}

// Area returns the trapezoidal area under a curve given by points in
// non-decreasing FPR order (for a ROC curve, its AUC).
func Area(pts []ROCPoint) float64 {
	var a float64
	for i := 1; i < len(pts); i++ {
		a += (pts[i].FPR - pts[i-1].FPR) * (pts[i].TPR + pts[i-1].TPR) / 2
	}
	return a
}
