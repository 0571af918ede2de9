package model

import "math"

// Softmax64 is a numerically stable softmax in float64.
func Softmax64(logits []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	out := make([]float64, len(logits))
	var s float64
	for i, v := range logits {
		out[i] = math.Exp(float64(v) - m)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// argmax returns the first index of the largest value.
func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}
