package model

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/compute"
)

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTransMILStep: one training step (forward, loss, gradients of
// every parameter, Adam update) of transmil and nystromformer at the
// official size (in_dim 1024, dim 512, 256 landmarks, dropout 0.1) on 2048
// patches (46² = 2116 square-padded slots, 2117 tokens, 2304 after landmark
// padding); cpu-s/op is the CPU time per step (all threads), a fairer
// figure than wall time on a shared machine. scripts/bench-transmil.sh times the official code on the same
// step and prints the ratio.
func BenchmarkTransMILStep(b *testing.B) {
	be, err := NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
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
	be, err := NewBackend("")
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []float64{0, TransMILDropout} {
		b.Run(fmt.Sprintf("dropout=%g", p), func(b *testing.B) {
			c := DefaultConfig()
			c.Variant, c.InDim, c.Dropout = VariantTransMIL, 1024, Rate(p)
			benchTransMILStep(b, c, be)
		})
	}
}

func benchTransMILStep(b *testing.B, c Config, be compute.Backend) {
	rt, err := NewRuntime(c, be)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	p := InitParams(c, 1)
	opt, _ := NewAdam(OptAdam, 0, p)
	e := benchExample(c, 2048, 0, 0)
	var seed uint64
	step := func() {
		seed++ // a new dropout draw per step, as in training
		g, err := rt.GradSeed(p, e, nil, seed)
		if err != nil {
			b.Fatal(err)
		}
		opt.Update(p, g.Grads, 1e-4)
	}
	step() // compile
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
}
