package model

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"

	"github.com/her2wsi/her2wsi/internal/safetensors"
)

// Set-up shared by the model tests: backend and runtime, golden parity
// files of the PyTorch references, live torch runs, random features.

// testBackend is the default backend (pure Go unless $GOMLX_BACKEND says
// otherwise); the test fails when it cannot be made.
func testBackend(tb testing.TB) compute.Backend {
	tb.Helper()
	be, err := NewBackend("")
	if err != nil {
		tb.Fatal(err)
	}
	return be
}

// testRuntime compiles c on be; the runtime is closed when the test (or
// subtest, or benchmark) ends.
func testRuntime(tb testing.TB, be compute.Backend, c Config) *Runtime {
	tb.Helper()
	rt, err := NewRuntime(c, be)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rt.Close)
	return rt
}

// predictGrad is rt's H&E-only prediction of e and its training step's
// gradients (every anchor, no dropout seed).
func predictGrad(t *testing.T, rt *Runtime, p *Params, e *Example) (Prediction, GradResult) {
	t.Helper()
	pr, err := rt.Predict(p, e)
	if err != nil {
		t.Fatalf("%s: predict %s: %v", rt.Config.Variant, e.ID, err)
	}
	g, err := rt.Grad(p, e, nil)
	if err != nil {
		t.Fatalf("%s: gradients %s: %v", rt.Config.Variant, e.ID, err)
	}
	return pr, g
}

// goldenModel reads a parity folder's configuration and the weights the
// reference wrote for it.
func goldenModel(tb testing.TB, dir, config, weights string) (Config, *Params) {
	tb.Helper()
	c, err := ReadConfig(filepath.Join(dir, config))
	if err != nil {
		tb.Fatal(err)
	}
	p, err := LoadWeights(filepath.Join(dir, weights), c)
	if err != nil {
		tb.Fatal(err)
	}
	return c, p
}

// readGolden reads a golden (or reference-written) safetensors file.
func readGolden(tb testing.TB, path string) *safetensors.File {
	tb.Helper()
	f, err := safetensors.Read(path)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// f32Of is tensor name of f as float32; the test fails when f has no such
// tensor or it is of another type.
func f32Of(tb testing.TB, f *safetensors.File, name string) []float32 {
	tb.Helper()
	return tensorAs(tb, f, name, safetensors.Tensor.Float32)
}

// i64Of is tensor name of f as int64, with its shape; the test fails when
// f has no such tensor or it is of another type.
func i64Of(tb testing.TB, f *safetensors.File, name string) ([]int64, []int) {
	tb.Helper()
	return tensorAs(tb, f, name, safetensors.Tensor.Int64), f.Tensors[name].Shape
}

func tensorAs[T any](tb testing.TB, f *safetensors.File, name string, as func(safetensors.Tensor) ([]T, error)) []T {
	tb.Helper()
	tt, ok := f.Tensors[name]
	if !ok {
		tb.Fatalf("no %s", name)
	}
	v, err := as(tt)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return v
}

// regenGoldens runs `/usr/bin/python3 script golden --out dir` when the
// tests run with -update.
func regenGoldens(t *testing.T, script, dir string) {
	t.Helper()
	if !*update {
		return
	}
	cmd := exec.Command("/usr/bin/python3", script, "golden", "--out", dir)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("regenerating goldens: %v", err)
	}
}

// requireTorch skips a live reference test without /usr/bin/python3 and
// torch.
func requireTorch(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		t.Skip("no /usr/bin/python3 with torch")
	}
}

// writeForTorch writes p and c into dir as the reference scripts read them
// (--weights, --config) and returns the two paths.
func writeForTorch(t *testing.T, dir string, c Config, p *Params) (weights, config string) {
	t.Helper()
	weights, config = filepath.Join(dir, "w.safetensors"), filepath.Join(dir, "config.json")
	if err := SaveWeights(weights, c, p, nil); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(config, c); err != nil {
		t.Fatal(err)
	}
	return weights, config
}

// normals is n draws of N(0,1) from rng, as float32 features.
func normals(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
