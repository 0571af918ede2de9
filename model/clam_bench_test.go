package model

import "testing"

// BenchmarkCLAMTrainStep: one CLAM training step at 2048 patches of
// in_dim 512 (official defaults otherwise: gated, small, k_sample 8,
// bag_weight 0.7): forward with the instance clustering loss, gradients of
// every parameter, Adam update. scripts/clam_ref.py bench --repo CLAM times
// the official code's step on the same input size (make bench-clam).
func BenchmarkCLAMTrainStep(b *testing.B) {
	be := testBackend(b)
	for _, v := range []string{VariantCLAMSB, VariantCLAMMB} {
		b.Run(v+"/N=2048/backend="+be.Name(), func(b *testing.B) {
			c := DefaultConfig()
			c.Variant = v
			benchStep(b, be, stepBench{c: c, e: benchExample(c, 2048, 0, 0), lr: 2e-4})
		})
	}
}
