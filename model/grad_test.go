package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Automatic gradients equal central finite differences on a tiny
// configuration, for every parameter tensor of every variant (a few
// entries each).
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	be := testBackend(t)
	type run struct {
		v    string
		drop float64
	}
	var runs []run
	for _, v := range Variants {
		runs = append(runs, run{v, 0})
	}
	// With dropout the masks are fixed by the step's seed, so the loss is a
	// smooth function of the parameters for that seed.
	runs = append(runs, run{VariantIPCA, 0.3}, run{VariantABMIL, 0.3}, run{VariantTransMIL, 0.3}, run{VariantNystromformer, 0.3})
	for _, r := range runs {
		v := r.v
		name := v
		if r.drop > 0 {
			name = fmt.Sprintf("%s/dropout=%g", v, r.drop)
		}
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			c.Variant, c.Dropout = v, Rate(r.drop)
			c.InDim, c.EDim, c.Depth, c.Heads, c.Prompts, c.MLPRatio = 6, 8, 2, 2, 3, 2
			c.MaxAnchors, c.MaxPatches, c.MaxIHC = 4, 16, 16
			if c.Spec().SquarePad { // 9 patches: 3² slots, 10 tokens, 3 groups of 4 landmarks
				c.NystromConfig = NystromConfig{Dim: 16, NumLandmarks: 4, ResidualConvKernel: 5}
			}
			rt := testRuntime(t, be, c)
			p := InitParams(c, 7)
			rng := rand.New(rand.NewPCG(3, 4))
			// Larger values than the initialisation so every path carries signal.
			for i := range p.Values {
				for j := range p.Values[i] {
					p.Values[i][j] += float32(0.3 * rng.NormFloat64())
				}
			}
			p.Touch()
			// The main orientation is an argmax: the loss jumps where it
			// flips. An entry whose finite differences at h and h/2 disagree
			// straddles such a jump and is skipped; an example where many do
			// sits on a near-tie and is replaced by another.
			loss := func(e *Example) float64 {
				g, err := rt.GradSeed(p, e, nil, 42)
				if err != nil {
					t.Fatal(err)
				}
				return g.Loss
			}
			fdAt := func(e *Example, i, j int, h float32) float64 {
				old := p.Values[i][j]
				p.Values[i][j] = old + h
				p.Touch()
				lp := loss(e)
				p.Values[i][j] = old - h
				p.Touch()
				lm := loss(e)
				p.Values[i][j] = old
				p.Touch()
				return (lp - lm) / (2 * float64(h))
			}
			h := float32(1e-2)
			if c.Spec().SquarePad {
				// ReLU after _fc1 and the maxima in the pseudo-inverse's
				// scaling put kinks closer than 1e-2 to a random point.
				h = 1e-3
			}
			tol := func(fd float64) float64 { return 2e-3 + 3e-2*math.Abs(fd) }
			for try := 0; try < 5; try++ {
				e := randomExample(c, rng, 9, 3, 7, 1)
				g, err := rt.GradSeed(p, e, nil, 42)
				if err != nil {
					t.Fatal(err)
				}
				type miss struct {
					name   string
					j      int
					ad, fd float64
				}
				var misses []miss
				checked, skipped := 0, 0
				for i, s := range p.Specs {
					for n := 0; n < min(3, s.Size()); n++ {
						j := rng.IntN(s.Size())
						fd, fd2 := fdAt(e, i, j, h), fdAt(e, i, j, h/2)
						if math.Abs(fd-fd2) > tol(fd) {
							skipped++
							continue
						}
						checked++
						if ad := float64(g.Grads[i][j]); math.Abs(fd-ad) > tol(fd) {
							misses = append(misses, miss{s.Name, j, ad, fd})
						}
					}
				}
				if skipped*4 > checked+skipped {
					t.Logf("example %d sits near an orientation tie (%d of %d entries non-smooth); drawing another", try, skipped, checked+skipped)
					continue
				}
				for _, m := range misses {
					t.Errorf("%s[%d]: autodiff %.6f, finite difference %.6f", m.name, m.j, m.ad, m.fd)
				}
				t.Logf("%d entries checked, %d skipped as non-smooth, %d off", checked, skipped, len(misses))
				return
			}
			t.Fatal("every example drawn sat near an orientation tie")
		})
	}
}

// Dropout is on in training steps only: a step's masks follow its seed
// (same seed, same loss and gradients; another seed, another loss), and
// prediction with a dropout config equals prediction without dropout.
func TestDropout(t *testing.T) {
	be := testBackend(t)
	c := tinyConfig(VariantIPCA)
	c.Dropout = Rate(0.1) // the reference runs' setting
	rt := testRuntime(t, be, c)
	off := c
	off.Dropout = Rate(0)
	rt0 := testRuntime(t, be, off)
	p := InitParams(c, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	e := randomExample(c, rng, 20, 3, 10, 2)
	a, err := rt.GradSeed(p, e, nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := rt.GradSeed(p, e, nil, 7)
	d, _ := rt.GradSeed(p, e, nil, 8)
	ref, _ := rt0.GradSeed(p, e, nil, 7)
	if a.Loss != b.Loss || a.Grads[0][0] != b.Grads[0][0] {
		t.Errorf("same seed: loss %v then %v", a.Loss, b.Loss)
	}
	if a.Loss == d.Loss || a.Loss == ref.Loss {
		t.Errorf("dropout masks do not change the loss: seed 7 %v, seed 8 %v, no dropout %v", a.Loss, d.Loss, ref.Loss)
	}
	pa, err := rt.Predict(p, e)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := rt0.Predict(p, e)
	for i := range pa.Logits {
		if pa.Logits[i] != pb.Logits[i] {
			t.Fatalf("prediction with dropout %v, without %v", pa.Logits, pb.Logits)
		}
	}
}
