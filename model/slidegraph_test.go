package model

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sgParityDir = "testdata/parity/slidegraph"

// sgCase reads a SlideGraph+ golden case as an Example whose patches are
// its nodes (one patch per node) and the reference outputs.
func sgCase(t *testing.T, c Config, path string) (*Example, map[string][]float32) {
	t.Helper()
	f := readGolden(t, path)
	x := f32Of(t, f, "x")
	ei, _ := i64Of(t, f, "edge_index")
	lab, _ := i64Of(t, f, "label")
	v := len(x) / c.InDim
	e := &Example{ID: filepath.Base(path), N: v, HE: x, V: v, NodeX: x, Label: int(lab[0]), Assign: make([]int32, v)}
	for i := range e.Assign {
		e.Assign[i] = int32(i)
	}
	E := len(ei) / 2
	for k := 0; k < E; k++ {
		e.Edges = append(e.Edges, [2]int32{int32(ei[k]), int32(ei[E+k])})
	}
	out := map[string][]float32{}
	for _, n := range f.Names() {
		if n == "x" || n == "edge_index" || n == "label" {
			continue
		}
		out[n] = f32Of(t, f, n)
	}
	return e, out
}

// sgOutputs computes with the Go model what the reference script reports.
func sgOutputs(t *testing.T, r *Runtime, p *Params, e *Example) map[string][]float32 {
	t.Helper()
	pr, g := predictGrad(t, r, p, e)
	out := map[string][]float32{"out_eval_logits": pr.Logits, "out_train_logits": g.Logits, "loss": {float32(g.Loss)}}
	for i, s := range p.Specs {
		if !s.Buffer {
			out["grad."+s.Name] = g.Grads[i]
		}
	}
	for i, name := range r.Config.bnNames() {
		out["stat."+name+".mean"] = g.BNStats[2*i]
		out["stat."+name+".var"] = g.BNStats[2*i+1]
	}
	return out
}

func sgCompare(t *testing.T, what string, got, want map[string][]float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d outputs, the reference has %d", what, len(got), len(want))
	}
	for n, w := range want {
		g, ok := got[n]
		if !ok || len(g) != len(w) {
			t.Errorf("%s: %s: %d values, want %d", what, n, len(g), len(w))
			continue
		}
		worst := 0.0
		for i := range w {
			worst = max(worst, math.Abs(float64(g[i])-float64(w[i]))/max(1, math.Abs(float64(w[i]))))
		}
		if worst > tol {
			t.Errorf("%s: %s differs by %.3g (tolerance %g): got %v want %v", what, n, worst, tol, g[:min(4, len(g))], w[:min(4, len(w))])
		}
	}
}

// TestSlideGraphParity: logits (eval and train mode), CE gradients and
// BatchNorm batch statistics equal the PyTorch reference's
// (scripts/slidegraph_ref.py) within 1e-5 on the goldens, for EdgeConv
// (max aggregation, mean pooling) and GINConv (max pooling); the official
// state_dict (aliases and num_batches_tracked included) loads as is.
func TestSlideGraphParity(t *testing.T) {
	be := testBackend(t)
	for _, tag := range []string{"", "_gin"} {
		c, p := goldenModel(t, sgParityDir, "config"+tag+".json", "weights"+tag+".safetensors")
		r := testRuntime(t, be, c)
		paths, _ := filepath.Glob(filepath.Join(sgParityDir, "case"+tag+"_?.safetensors"))
		if len(paths) != 3 {
			t.Fatalf("%d golden cases for %q", len(paths), tag)
		}
		for _, path := range paths {
			e, want := sgCase(t, c, path)
			sgCompare(t, path, sgOutputs(t, r, p, e), want, 1e-5)
		}
	}
}

// TestSlideGraphTorchLoadsOurs: weights written here (random values, BN
// buffers included) load into the reference with load_state_dict(strict)
// and give the Go model's outputs within 1e-5 (skips without torch).
func TestSlideGraphTorchLoadsOurs(t *testing.T) {
	requireTorch(t)
	be := testBackend(t)
	for _, tag := range []string{"", "_gin"} {
		c, err := ReadConfig(filepath.Join(sgParityDir, "config"+tag+".json"))
		if err != nil {
			t.Fatal(err)
		}
		p := InitParams(c, 5)
		for i, s := range p.Specs { // non-trivial running statistics
			if strings.HasSuffix(s.Name, "running_var") || strings.HasSuffix(s.Name, "running_mean") {
				for j := range p.Values[i] {
					p.Values[i][j] += float32(j%3) * 0.3
				}
			}
		}
		w, cfgPath := writeForTorch(t, t.TempDir(), c, p)
		r := testRuntime(t, be, c)
		in := filepath.Join(sgParityDir, "case"+tag+"_b.safetensors")
		e, _ := sgCase(t, c, in)
		got := sgOutputs(t, r, p, e)
		cmd := exec.Command("/usr/bin/python3", "../scripts/slidegraph_ref.py", "check", "--weights", w, "--config", cfgPath, "--inputs", in)
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		var ref map[string][]float32
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatal(err)
		}
		sgCompare(t, fmt.Sprintf("torch loads ours%s", tag), got, ref, 1e-5)
	}
}

// BenchmarkSlideGraphStep is one training step (forward, CE, backward,
// Adam) of the notebook's SlideGraph+ (EdgeConv max, layers 16-16-8, mean
// pooling) on a graph of the size a 2048-patch slide gives (≈ 7 patches per
// node on the generated slides: 300 nodes, 6 nearest neighbours each,
// symmetrised); scripts/slidegraph_ref.py bench --nodes 300 times the same
// step in PyTorch (README "SlideGraph+").
func BenchmarkSlideGraphStep(b *testing.B) {
	c := DefaultConfig()
	c.Variant, c.InDim = VariantSlideGraph, 512
	benchStep(b, testBackend(b), stepBench{c: c, e: benchGraph(300, 6, c.InDim), wd: 1e-4, lr: 1e-3})
}

// benchGraph is a random graph of v nodes, each joined to its k nearest
// neighbours (both directions), one patch per node.
func benchGraph(v, k, in int) *Example {
	rng := rand.New(rand.NewPCG(3, 4))
	x := normals(rng, v*in)
	pos := make([][2]float64, v)
	for i := range pos {
		pos[i] = [2]float64{rng.Float64(), rng.Float64()}
	}
	seen := map[[2]int32]bool{}
	for i := range pos {
		idx := make([]int, v)
		for j := range idx {
			idx[j] = j
		}
		d := func(j int) float64 {
			return (pos[i][0]-pos[j][0])*(pos[i][0]-pos[j][0]) + (pos[i][1]-pos[j][1])*(pos[i][1]-pos[j][1])
		}
		slices.SortFunc(idx, func(a, b int) int { return cmpF(d(a), d(b)) })
		for _, j := range idx[1 : k+1] {
			seen[[2]int32{int32(i), int32(j)}] = true
			seen[[2]int32{int32(j), int32(i)}] = true
		}
	}
	e := &Example{ID: "bench", N: v, HE: x, V: v, NodeX: x, Label: 1, Assign: make([]int32, v)}
	for i := range e.Assign {
		e.Assign[i] = int32(i)
	}
	for ed := range seen {
		e.Edges = append(e.Edges, ed)
	}
	return e
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// graphBucket pads to quarter-octave steps: never below n, at most 25 %
// above it (16 at the least), and few sizes per octave.
func TestGraphBucket(t *testing.T) {
	for n, want := range map[int]int{1: 16, 16: 16, 17: 20, 20: 20, 21: 24, 33: 40, 300: 320, 512: 512, 513: 640, 2148: 2560} {
		if got := graphBucket(n); got != want {
			t.Errorf("graphBucket(%d) = %d, want %d", n, got, want)
		}
	}
	sizes := map[int]bool{}
	for n := 1; n <= 1<<16; n++ {
		b := graphBucket(n)
		if b < n || (n > 16 && float64(b) > 1.25*float64(n)) {
			t.Fatalf("graphBucket(%d) = %d", n, b)
		}
		sizes[b] = true
	}
	if len(sizes) > 4*13 {
		t.Errorf("%d sizes up to 65536, want at most 4 per octave", len(sizes))
	}
}
