package model

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
)

// benchExample is a full-size case: N patches on a square grid, K anchors,
// M IHC patches, features N(0,1).
func benchExample(c Config, n, k, m int) *Example {
	rng := rand.New(rand.NewPCG(5, 6))
	e := &Example{ID: "bench", N: n, K: k, M: m, Label: 2}
	e.HE = make([]float32, n*c.InDim)
	for i := range e.HE {
		e.HE[i] = float32(rng.NormFloat64())
	}
	e.IHC = make([]float32, m*c.InDim)
	for i := range e.IHC {
		e.IHC[i] = float32(rng.NormFloat64())
	}
	e.Dist, e.Polar = make([]uint8, k*n), make([]uint8, k*n)
	for i := range e.Dist {
		e.Dist[i], e.Polar[i] = uint8(rng.IntN(65)), uint8(rng.IntN(8))
	}
	return e
}

// BenchmarkTrainStep: one full training step (forward with IHC, loss,
// gradients of every parameter) of the default configuration at 2048
// patches, 128 anchors, 256 prompts, 2048 IHC patches, with and without
// kernel masking. The optimiser update (Go, ~4M parameters) is included.
func BenchmarkTrainStep(b *testing.B) {
	be, err := NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []string{VariantIPCA, VariantPAMA} {
		for _, r := range []float64{0, DefaultMaskRatio} {
			if v == VariantPAMA && r == 0 {
				continue
			}
			b.Run(fmt.Sprintf("%s/mask=%.2f/backend=%s", v, r, be.Name()), func(b *testing.B) {
				c := DefaultConfig()
				c.Variant, c.MaskRatio = v, r
				rt, err := NewRuntime(c, be)
				if err != nil {
					b.Fatal(err)
				}
				defer rt.Close()
				p := InitParams(c, 1)
				opt, _ := NewAdam(OptAdam, 0, p)
				e := benchExample(c, 2048, 128, 2048)
				rng := rand.New(rand.NewPCG(1, 1))
				step := func() {
					var kept []int
					if r > 0 {
						kept = maskAnchors(c, e.K, r, rng)
					}
					g, err := rt.Grad(p, e, kept)
					if err != nil {
						b.Fatal(err)
					}
					opt.Update(p, g.Grads, 1e-4)
				}
				step() // compile
				runtime.GC()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					step()
				}
				b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
			})
		}
	}
}

// BenchmarkTrainStepDropout: the paper's step (kernel masking 0.75) with
// dropout 0.1, the reference runs' setting, to compare with
// BenchmarkTrainStep/ipca/mask=0.75 (dropout 0).
func BenchmarkTrainStepDropout(b *testing.B) {
	be, err := NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	c := DefaultConfig()
	c.Dropout = Rate(0.1)
	rt, err := NewRuntime(c, be)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	p := InitParams(c, 1)
	opt, _ := NewAdam(OptAdam, 0, p)
	e := benchExample(c, 2048, 128, 2048)
	rng := rand.New(rand.NewPCG(1, 1))
	step := func() {
		g, err := rt.GradSeed(p, e, maskAnchors(c, e.K, c.MaskRatio, rng), rng.Uint64())
		if err != nil {
			b.Fatal(err)
		}
		opt.Update(p, g.Grads, 1e-4)
	}
	step() // compile
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
}

// BenchmarkPredict: H&E-only prediction of one slide at 2048 patches and
// 128 anchors.
func BenchmarkPredict(b *testing.B) {
	be, err := NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	c := DefaultConfig()
	rt, err := NewRuntime(c, be)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	p := InitParams(c, 1)
	e := benchExample(c, 2048, 128, 0)
	if _, err := rt.Predict(p, e); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rt.Predict(p, e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
}

// BenchmarkPredictLarge: H&E-only prediction of a whole slide, at 2048
// patches (the reference's cap: the baseline), 20k and 50k patches (a real
// 40× breast slide at 20×), 128 anchors. Run each size in its own process
// (make bench-predict-large) for its peak RSS.
func BenchmarkPredictLarge(b *testing.B) {
	be, err := NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{2048, 20000, 50000} {
		b.Run(fmt.Sprintf("patches=%d", n), func(b *testing.B) {
			c := DefaultConfig()
			rt, err := NewRuntime(c, be)
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close()
			p := InitParams(c, 1)
			e := benchExample(c, n, 128, 0)
			if _, err := rt.Predict(p, e); err != nil { // compile
				b.Fatal(err)
			}
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pr, err := rt.Predict(p, e)
				if err != nil {
					b.Fatal(err)
				}
				if len(pr.Attention) != n {
					b.Fatalf("attention over %d patches, want %d", len(pr.Attention), n)
				}
			}
			b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
		})
	}
}

// peakRSSMB is the process's peak resident memory (run one benchmark per
// process for it to be that benchmark's).
func peakRSSMB() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
