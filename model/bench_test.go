package model

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/gomlx/compute"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

// benchExample is a full-size case: N patches on a square grid, K anchors,
// M IHC patches, features N(0,1).
func benchExample(c Config, n, k, m int) *Example {
	rng := rand.New(rand.NewPCG(5, 6))
	e := &Example{ID: "bench", N: n, K: k, M: m, Label: 2}
	e.HE, e.IHC = normals(rng, n*c.InDim), normals(rng, m*c.InDim)
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
	be := testBackend(b)
	for _, v := range []string{VariantIPCA, VariantPAMA} {
		for _, r := range []float64{0, DefaultMaskRatio} {
			if v == VariantPAMA && r == 0 {
				continue
			}
			b.Run(fmt.Sprintf("%s/mask=%.2f/backend=%s", v, r, be.Name()), func(b *testing.B) {
				c := DefaultConfig()
				c.Variant, c.MaskRatio = v, r
				rng := rand.New(rand.NewPCG(1, 1))
				benchStep(b, be, stepBench{c: c, e: benchExample(c, 2048, 128, 2048), lr: 1e-4,
					grad: func(rt *Runtime, p *Params, e *Example) (GradResult, error) {
						var kept []int
						if r > 0 {
							kept = maskAnchors(c, e.K, r, rng)
						}
						return rt.Grad(p, e, kept)
					}})
			})
		}
	}
}

// BenchmarkTrainStepDropout: the paper's step (kernel masking 0.75) with
// dropout 0.1, the reference runs' setting, to compare with
// BenchmarkTrainStep/ipca/mask=0.75 (dropout 0).
func BenchmarkTrainStepDropout(b *testing.B) {
	be := testBackend(b)
	c := DefaultConfig()
	c.Dropout = Rate(0.1)
	rng := rand.New(rand.NewPCG(1, 1))
	benchStep(b, be, stepBench{c: c, e: benchExample(c, 2048, 128, 2048), lr: 1e-4,
		grad: func(rt *Runtime, p *Params, e *Example) (GradResult, error) {
			return rt.GradSeed(p, e, maskAnchors(c, e.K, c.MaskRatio, rng), rng.Uint64())
		}})
}

// stepBench is one training-step benchmark: the configuration, the slide,
// the optimiser's weight decay and learning rate, and how a step takes its
// gradients (nil: rt.Grad(p, e, nil), every anchor, no dropout seed).
type stepBench struct {
	c    Config
	e    *Example
	wd   float64
	lr   float64
	grad func(rt *Runtime, p *Params, e *Example) (GradResult, error)
}

// benchStep times s's training step as the trainer takes it (gradients,
// BatchNorm running statistics, Adam update) on parameters InitParams(c, 1),
// after one untimed step that compiles the graph. Besides ns/op and the
// allocations it reports cpu-s/op (the process's CPU time per step, all
// threads: fairer than wall time on a shared machine) and peak-RSS-MB (run
// one benchmark per process for it to be that benchmark's).
func benchStep(b *testing.B, be compute.Backend, s stepBench) {
	b.Helper()
	rt := testRuntime(b, be, s.c)
	p := InitParams(s.c, 1)
	opt, err := NewAdam(OptAdam, s.wd, p)
	if err != nil {
		b.Fatal(err)
	}
	grad := s.grad
	if grad == nil {
		grad = func(rt *Runtime, p *Params, e *Example) (GradResult, error) { return rt.Grad(p, e, nil) }
	}
	step := func() {
		g, err := grad(rt, p, s.e)
		if err != nil {
			b.Fatal(err)
		}
		rt.UpdateRunningStats(p, g.BNStats)
		opt.Update(p, g.Grads, s.lr)
	}
	step() // compile
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testutil.ProcessCPU()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric((testutil.ProcessCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(testutil.PeakRSSMB(), "peak-RSS-MB")
}

// BenchmarkPredict: H&E-only prediction of one slide at 2048 patches and
// 128 anchors.
func BenchmarkPredict(b *testing.B) {
	c := DefaultConfig()
	benchPredict(b, testBackend(b), c, benchExample(c, 2048, 128, 0))
}

// BenchmarkPredictLarge: H&E-only prediction of a whole slide, at 2048
// patches (the reference's cap: the baseline), 20k and 50k patches (a real
// 40× breast slide at 20×), 128 anchors. Run each size in its own process
// (make bench-predict-large) for its peak RSS.
func BenchmarkPredictLarge(b *testing.B) {
	be := testBackend(b)
	for _, n := range []int{2048, 20000, 50000} {
		b.Run(fmt.Sprintf("patches=%d", n), func(b *testing.B) {
			c := DefaultConfig()
			benchPredict(b, be, c, benchExample(c, n, 128, 0))
		})
	}
}

// benchPredict times H&E-only prediction of e on parameters InitParams(c, 1)
// after one untimed prediction that compiles the graph; every prediction
// must attend over all e.N patches. It reports allocations and peak-RSS-MB.
func benchPredict(b *testing.B, be compute.Backend, c Config, e *Example) {
	b.Helper()
	rt := testRuntime(b, be, c)
	p := InitParams(c, 1)
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
		if len(pr.Attention) != e.N {
			b.Fatalf("attention over %d patches, want %d", len(pr.Attention), e.N)
		}
	}
	b.ReportMetric(testutil.PeakRSSMB(), "peak-RSS-MB")
}
