package model

import (
	"fmt"
	"math"
)

// Optimisers.
const (
	OptAdam  = "adam"  // the paper's (weight decay added to the gradient when set)
	OptAdamW = "adamw" // the reference code's (decoupled weight decay)
)

// Adam is Adam/AdamW over Params, in float32 state with float64 step
// arithmetic; betas 0.9/0.999, eps 1e-8 (PyTorch defaults).
type Adam struct {
	Kind        string
	WeightDecay float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	Step        int64       // optimiser steps taken
	M, V        [][]float32 // first and second moments, Specs order
}

// NewAdam makes zeroed state for p.
func NewAdam(kind string, wd float64, p *Params) (*Adam, error) {
	if kind != OptAdam && kind != OptAdamW {
		return nil, fmt.Errorf("model: optimiser %q (adam or adamw)", kind)
	}
	a := &Adam{Kind: kind, WeightDecay: wd, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		M: make([][]float32, len(p.Values)), V: make([][]float32, len(p.Values))}
	for i, v := range p.Values {
		a.M[i] = make([]float32, len(v))
		a.V[i] = make([]float32, len(v))
	}
	return a, nil
}

// Update applies one step with learning rate lr and gradients g (already
// averaged over the accumulated examples), as torch.optim.Adam/AdamW.
func (a *Adam) Update(p *Params, g [][]float32, lr float64) {
	a.Step++
	bc1 := 1 - math.Pow(a.Beta1, float64(a.Step))
	bc2 := 1 - math.Pow(a.Beta2, float64(a.Step))
	b1, b2 := float32(a.Beta1), float32(a.Beta2)
	for i, w := range p.Values {
		if p.Specs[i].Buffer {
			continue
		}
		m, v, gi := a.M[i], a.V[i], g[i]
		for j := range w {
			gj := gi[j]
			if a.Kind == OptAdam && a.WeightDecay != 0 {
				gj += float32(a.WeightDecay) * w[j]
			}
			if a.Kind == OptAdamW && a.WeightDecay != 0 {
				w[j] -= float32(lr*a.WeightDecay) * w[j]
			}
			m[j] = b1*m[j] + (1-b1)*gj
			v[j] = b2*v[j] + (1-b2)*gj*gj
			mh := float64(m[j]) / bc1
			vh := float64(v[j]) / bc2
			w[j] -= float32(lr * mh / (math.Sqrt(vh) + a.Eps))
		}
	}
	p.version++
}

// CosineLR is the learning rate at optimiser step s of total: linear
// warm-up over warmup steps, then cosine decay from lr to minLR.
func CosineLR(s, total, warmup int, lr, minLR float64) float64 {
	if warmup > 0 && s < warmup {
		return lr * float64(s+1) / float64(warmup)
	}
	span := total - warmup
	if span <= 0 {
		return lr
	}
	t := math.Min(1, float64(s-warmup)/float64(span))
	return minLR + 0.5*(lr-minLR)*(1+math.Cos(math.Pi*t))
}
