package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
)

func tinyConfig(variant string) Config {
	c := DefaultConfig()
	c.Variant = variant
	c.InDim, c.EDim, c.Depth, c.Heads, c.Prompts = 24, 32, 2, 4, 8
	c.MaxAnchors, c.MaxPatches, c.MaxIHC = 6, 40, 30
	return c
}

// randomExample makes an example with n patches on a random grid, k anchors
// among them, m IHC patches.
func randomExample(c Config, rng *rand.Rand, n, k, m, label int) *Example {
	e := &Example{ID: "r", N: n, K: k, M: m, Label: label}
	e.HE, e.IHC = normals(rng, n*c.InDim), normals(rng, m*c.InDim)
	type pos struct{ r, c int }
	seen := map[pos]bool{}
	ps := make([]pos, 0, n)
	side := 12
	for side*side < 2*n {
		side *= 2
	}
	for len(ps) < n {
		p := pos{rng.IntN(side), rng.IntN(side)}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	var diam float64
	for i := range ps {
		for j := range ps {
			diam = math.Max(diam, math.Hypot(float64(ps[i].r-ps[j].r), float64(ps[i].c-ps[j].c)))
		}
	}
	w := diam / 64
	e.Dist, e.Polar = make([]uint8, k*n), make([]uint8, k*n)
	for a := 0; a < k; a++ {
		an := ps[rng.IntN(n)]
		for j, p := range ps {
			dr, dc := float64(p.r-an.r), float64(p.c-an.c)
			d := 0
			if w > 0 {
				d = min(64, int(math.Floor(math.Hypot(dr, dc)/w)))
			}
			s := min(7, int(math.Floor(math.Atan2(dc, dr)/(math.Pi/4)))+4)
			e.Dist[a*n+j], e.Polar[a*n+j] = uint8(d), uint8(s)
		}
	}
	if c.Spec().NeedsGraph { // graph variants: patches i and i+V share node i mod V; a ring of edges plus a chord
		e.V = max(2, n/2)
		e.Assign = make([]int32, n)
		for i := range e.Assign {
			e.Assign[i] = int32(i % e.V)
		}
		for v := 0; v < e.V; v++ {
			w := int32((v + 1) % e.V)
			e.Edges = append(e.Edges, [2]int32{int32(v), w}, [2]int32{w, int32(v)})
		}
		e.Edges = append(e.Edges, [2]int32{0, int32(e.V / 2)})
	}
	return e
}

// tinyModel is variant v in tinyConfig compiled on be, with parameters
// InitParams(c, 1).
func tinyModel(t *testing.T, be compute.Backend, v string) (Config, *Runtime, *Params) {
	t.Helper()
	c := tinyConfig(v)
	return c, testRuntime(t, be, c), InitParams(c, 1)
}

func TestSmoke(t *testing.T) {
	be := testBackend(t)
	for _, v := range Variants {
		c, rt, p := tinyModel(t, be, v)
		rng := rand.New(rand.NewPCG(1, 2))
		e := randomExample(c, rng, 25, 4, 17, 2)
		pr, g := predictGrad(t, rt, p, e)
		t.Logf("%s: probs %v loss %v attn[0:3] %v", v, pr.Probs, g.Loss, pr.Attention[:3])
	}
}

// Different slides give different predictions (the output depends on the
// input), for every variant, with random weights.
func TestPredictionDependsOnInput(t *testing.T) {
	be := testBackend(t)
	for _, v := range Variants {
		c, rt, p := tinyModel(t, be, v)
		rng := rand.New(rand.NewPCG(1, 2))
		a, err := rt.Predict(p, randomExample(c, rng, 25, 4, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		b, err := rt.Predict(p, randomExample(c, rng, 25, 4, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		same := true
		for i := range a.Logits {
			same = same && a.Logits[i] == b.Logits[i]
		}
		if same {
			t.Errorf("%s: two different slides give the same logits %v", v, a.Logits)
		}
	}
}
