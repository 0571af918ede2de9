package model

import (
	"fmt"
	"testing"
)

// BenchmarkTransMILStep: one training step (forward, loss, gradients of
// every parameter, Adam update) of transmil and nystromformer at the
// official size (in_dim 1024, dim 512, 256 landmarks) on 2048 patches
// (46² = 2116 square-padded slots, 2117 tokens, 2304 after landmark
// padding); cpu-s/op is the CPU time per step (all threads), a fairer
// figure than wall time on a shared machine. scripts/bench-transmil.sh times the official code on the same
// step and prints the ratio.
func BenchmarkTransMILStep(b *testing.B) {
	be := testBackend(b)
	for _, v := range []string{VariantTransMIL, VariantNystromformer} {
		b.Run(fmt.Sprintf("%s/N=2048/backend=%s", v, be.Name()), func(b *testing.B) {
			c := DefaultConfig()
			c.Variant, c.InDim = v, 1024
			benchStep(b, be, stepBench{c: c, e: benchExample(c, 2048, 0, 0), lr: 1e-4})
		})
	}
}
