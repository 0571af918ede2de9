package model

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute"
)

// BenchmarkTransMILStep: one training step (forward, loss, gradients of
// every parameter, Adam update) of transmil and nystromformer at the
// official size (in_dim 1024, dim 512, 256 landmarks, dropout 0.1) on 2048
// patches (46² = 2116 square-padded slots, 2117 tokens, 2304 after landmark
// padding); cpu-s/op is the CPU time per step (all threads), a fairer
// figure than wall time on a shared machine. scripts/bench-transmil.sh times the official code on the same
// step and prints the ratio.
func BenchmarkTransMILStep(b *testing.B) {
	be := testBackend(b)
	for _, v := range []string{VariantTransMIL, VariantNystromformer} {
		b.Run(fmt.Sprintf("%s/N=2048/backend=%s", v, be.Name()), func(b *testing.B) {
			c := DefaultConfig()
			c.Variant, c.InDim = v, 1024
			benchTransMILStep(b, c, be)
		})
	}
}

// BenchmarkTransMILDropout: the cost of the official dropout, transmil's
// step as BenchmarkTransMILStep with dropout 0.1 (the default) and 0.
func BenchmarkTransMILDropout(b *testing.B) {
	be := testBackend(b)
	for _, p := range []float64{0, TransMILDropout} {
		b.Run(fmt.Sprintf("dropout=%g", p), func(b *testing.B) {
			c := DefaultConfig()
			c.Variant, c.InDim, c.Dropout = VariantTransMIL, 1024, Rate(p)
			benchTransMILStep(b, c, be)
		})
	}
}

// benchTransMILStep times c's training step on 2048 patches, each step with
// its own dropout seed.
func benchTransMILStep(b *testing.B, c Config, be compute.Backend) {
	var seed uint64
	benchStep(b, be, stepBench{c: c, e: benchExample(c, 2048, 0, 0), lr: 1e-4,
		grad: func(rt *Runtime, p *Params, e *Example) (GradResult, error) {
			seed++ // a new dropout draw per step, as in training
			return rt.GradSeed(p, e, nil, seed)
		}})
}
