package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

const tol = 1e-12

func near(a, b float64) bool { return math.Abs(a-b) <= tol }

// bools turns 0/1 labels into positives.
func bools(xs ...int) []bool {
	out := make([]bool, len(xs))
	for i, x := range xs {
		out[i] = x == 1
	}
	return out
}

func TestAUC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		pos    []bool
		want   float64
		ok     bool
	}{
		// Positives 0.35, 0.8; negatives 0.1, 0.4. 0.35 beats 0.1 only (1),
		// 0.8 beats both (2): 3 of 4 pairs.
		{"sklearn example", []float64{0.1, 0.4, 0.35, 0.8}, bools(0, 0, 1, 1), 0.75, true},
		// Positives 0.5, 0.9; negatives 0.2, 0.5. 0.5 beats 0.2 (1) and ties
		// 0.5 (1/2); 0.9 beats both (2): 3.5/4.
		{"tie between pos and neg", []float64{0.2, 0.5, 0.5, 0.9}, bools(0, 1, 0, 1), 0.875, true},
		// One pair, tied: half credit.
		{"single tied pair", []float64{0.5, 0.5}, bools(1, 0), 0.5, true},
		// Every pair tied: 2 pairs, 1/2 each.
		{"all tied", []float64{0.3, 0.3, 0.3}, bools(1, 0, 0), 0.5, true},
		// Positives 0.7, 0.7; negatives 0.7, 0.1: each positive ties one
		// negative (1/2) and beats the other (1): 3/4.
		{"tied positives and negatives", []float64{0.7, 0.7, 0.7, 0.1}, bools(1, 1, 0, 0), 0.75, true},
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, bools(0, 0, 1, 1), 1, true},
		{"inverted", []float64{0.9, 0.8, 0.2, 0.1}, bools(0, 0, 1, 1), 0, true},
		// Infinite scores still order.
		{"infinities", []float64{math.Inf(-1), math.Inf(1)}, bools(0, 1), 1, true},
		{"no positives", []float64{0.1, 0.2}, bools(0, 0), 0, false},
		{"no negatives", []float64{0.1, 0.2}, bools(1, 1), 0, false},
		{"empty", nil, nil, 0, false},
		{"NaN score", []float64{0.1, math.NaN()}, bools(0, 1), 0, false},
		{"length mismatch", []float64{0.1, 0.2, 0.3}, bools(0, 1), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AUC(tc.scores, tc.pos)
			if ok != tc.ok || !near(got, tc.want) {
				t.Errorf("AUC = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func pointsNear(a, b []ROCPoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i].FPR, b[i].FPR) || !near(a[i].TPR, b[i].TPR) {
			return false
		}
	}
	return true
}

func TestROC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		pos    []bool
		want   []ROCPoint
	}{
		// 2 positives, 2 negatives. Thresholds from the top: 0.9 (P) ->
		// (0, 1/2); 0.5 holds one P and one N -> one diagonal step to
		// (1/2, 1); 0.2 (N) -> (1, 1).
		{"tied", []float64{0.2, 0.5, 0.5, 0.9}, bools(0, 1, 0, 1),
			[]ROCPoint{{0, 0}, {0, 0.5}, {0.5, 1}, {1, 1}}},
		// 0.8 P, 0.4 N, 0.35 P, 0.1 N.
		{"no ties", []float64{0.1, 0.4, 0.35, 0.8}, bools(0, 0, 1, 1),
			[]ROCPoint{{0, 0}, {0, 0.5}, {0.5, 0.5}, {0.5, 1}, {1, 1}}},
		// All tied: the diagonal in one step.
		{"all tied", []float64{0.3, 0.3, 0.3}, bools(1, 0, 0),
			[]ROCPoint{{0, 0}, {1, 1}}},
		{"perfect", []float64{0.1, 0.9}, bools(0, 1),
			[]ROCPoint{{0, 0}, {0, 1}, {1, 1}}},
		{"no negatives", []float64{0.1, 0.9}, bools(1, 1), nil},
		{"NaN", []float64{math.NaN(), 0.9}, bools(0, 1), nil},
		{"length mismatch", []float64{0.9}, bools(0, 1), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ROC(tc.scores, tc.pos)
			if !pointsNear(got, tc.want) {
				t.Errorf("ROC = %v; want %v", got, tc.want)
			}
		})
	}
}

// The trapezoidal area of ROC equals the Mann–Whitney AUC, ties included.
func TestROCAreaEqualsAUC(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		n := 2 + r.IntN(40)
		scores := make([]float64, n)
		pos := make([]bool, n)
		for i := range n {
			scores[i] = float64(r.IntN(6)) / 5 // many ties
			pos[i] = r.IntN(3) == 0
		}
		auc, ok := AUC(scores, pos)
		curve := ROC(scores, pos)
		if !ok {
			if curve != nil {
				t.Fatalf("trial %d: AUC undefined but ROC = %v", trial, curve)
			}
			continue
		}
		if a := Area(curve); math.Abs(a-auc) > 1e-9 {
			t.Fatalf("trial %d: area %v, AUC %v", trial, a, auc)
		}
		if curve[0] != (ROCPoint{0, 0}) || curve[len(curve)-1] != (ROCPoint{1, 1}) {
			t.Fatalf("trial %d: curve ends %v, %v", trial, curve[0], curve[len(curve)-1])
		}
	}
}

func TestMacroROC(t *testing.T) {
	// Two classes, 3 cases of class 0 then 2 of class 1; the scores are not
	// complementary, so the two one-vs-rest curves differ.
	labels := []int{0, 0, 0, 1, 1}
	probs := [][]float64{
		{0.9, 0.1},
		{0.6, 0.3},
		{0.2, 0.8},
		{0.5, 0.7},
		{0.1, 0.3},
	}
	// Class 0: positives 0.9, 0.6, 0.2; negatives 0.5, 0.1. Descending:
	// 0.9 P, 0.6 P, 0.5 N, 0.2 P, 0.1 N:
	//   (0,0) (0,1/3) (0,2/3) (1/2,2/3) (1/2,1) (1,1); AUC (2+2+1)/6 = 5/6.
	// Class 1: positives 0.7, 0.3; negatives 0.1, 0.3, 0.8. Descending:
	// 0.8 N, 0.7 P, 0.3 {P,N} tied, 0.1 N:
	//   (0,0) (1/3,0) (1/3,1/2) (2/3,1) (1,1); AUC (4+3)/12 = 7/12.
	c0 := []ROCPoint{{0, 0}, {0, 1. / 3}, {0, 2. / 3}, {0.5, 2. / 3}, {0.5, 1}, {1, 1}}
	c1 := []ROCPoint{{0, 0}, {1. / 3, 0}, {1. / 3, 0.5}, {2. / 3, 1}, {1, 1}}
	if got := ClassROC(labels, probs, 2, 0); !pointsNear(got, c0) {
		t.Errorf("class 0 ROC = %v; want %v", got, c0)
	}
	if got := ClassROC(labels, probs, 2, 1); !pointsNear(got, c1) {
		t.Errorf("class 1 ROC = %v; want %v", got, c1)
	}
	// Union of FPRs: 0, 1/3, 1/2, 2/3, 1. TPR of each curve there (the
	// upper point where a curve is vertical):
	//   FPR 0:   c0 2/3,            c1 0            -> mean 1/3
	//   FPR 1/3: c0 2/3 (flat),     c1 1/2 (upper)  -> 7/12
	//   FPR 1/2: c0 1 (upper),      c1 1/2+1/4=3/4  -> 7/8
	//   FPR 2/3: c0 1,              c1 1            -> 1
	//   FPR 1:   1, 1                                -> 1
	// plus the leading (0,0).
	want := []ROCPoint{{0, 0}, {0, 1. / 3}, {1. / 3, 7. / 12}, {0.5, 7. / 8}, {2. / 3, 1}, {1, 1}}
	got := MacroROC(labels, probs, 2)
	if !pointsNear(got, want) {
		t.Errorf("MacroROC = %v; want %v", got, want)
	}
	// Area: 1/3·(1/3+7/12)/2 + 1/6·(7/12+7/8)/2 + 1/6·(7/8+1)/2 + 1/3
	//     = 11/72 + 35/288 + 15/96 + 1/3 = (44+35+45+96)/288 = 220/288.
	if a := Area(got); !near(a, 220./288) {
		t.Errorf("area of MacroROC = %v; want %v", a, 220./288)
	}
	m, err := Compute(labels, probs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !near(*m.PerClass[0].AUC, 5./6) || !near(*m.PerClass[1].AUC, 7./12) || !near(m.MacroAUC, (5./6+7./12)/2) {
		t.Errorf("AUCs %v %v macro %v", *m.PerClass[0].AUC, *m.PerClass[1].AUC, m.MacroAUC)
	}
}

func TestMacroROCUndefinedClassesAndBadInput(t *testing.T) {
	// Class 2 never occurs: only classes 0 and 1 are averaged, and each is
	// perfectly separated, so the macro curve is the perfect one.
	labels := []int{0, 1}
	probs := [][]float64{{0.8, 0.1, 0.1}, {0.1, 0.8, 0.1}}
	want := []ROCPoint{{0, 0}, {0, 1}, {1, 1}}
	if got := MacroROC(labels, probs, 3); !pointsNear(got, want) {
		t.Errorf("MacroROC = %v; want %v", got, want)
	}
	// A single class present: nothing defined.
	if got := MacroROC([]int{0, 0}, [][]float64{{0.6, 0.4}, {0.7, 0.3}}, 2); got != nil {
		t.Errorf("MacroROC with one class present = %v; want nil", got)
	}
	if got := MacroROC([]int{0, 3}, probs, 3); got != nil {
		t.Errorf("MacroROC with label out of range = %v; want nil", got)
	}
	if got := ClassROC(labels, probs, 3, 3); got != nil {
		t.Errorf("ClassROC of class 3 of 3 = %v; want nil", got)
	}
}

func TestInterpTPR(t *testing.T) {
	r := []ROCPoint{{0, 0}, {0, 0.5}, {0.5, 0.5}, {0.5, 1}, {1, 1}}
	for _, tc := range []struct{ f, want float64 }{
		{0, 0.5},    // vertical at 0: upper point
		{0.25, 0.5}, // flat
		{0.5, 1},    // vertical at 1/2: upper point
		{0.75, 1},
		{1, 1},
		{2, 1}, // beyond the end
	} {
		if got := interpTPR(r, tc.f); !near(got, tc.want) {
			t.Errorf("interpTPR(%v) = %v; want %v", tc.f, got, tc.want)
		}
	}
	// Linear between (0,0) and (1,1).
	if got := interpTPR([]ROCPoint{{0, 0}, {1, 1}}, 0.3); !near(got, 0.3) {
		t.Errorf("interpTPR on the diagonal = %v", got)
	}
}
