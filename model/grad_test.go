package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Automatic gradients equal central finite differences on a tiny
// configuration, for every parameter tensor of every variant (a few
// entries each).
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	be, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Variants {
		t.Run(v, func(t *testing.T) {
			c := DefaultConfig()
			c.Variant = v
			c.InDim, c.EDim, c.Depth, c.Heads, c.Prompts, c.MLPRatio = 6, 8, 2, 2, 3, 2
			c.MaxAnchors, c.MaxPatches, c.MaxIHC = 4, 16, 16
			if c.Spec().SquarePad { // 9 patches: 3² slots, 10 tokens, 3 groups of 4 landmarks
				c.NystromConfig = NystromConfig{Dim: 16, NumLandmarks: 4, ResidualConvKernel: 5}
			}
			rt, err := NewRuntime(c, be)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
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
				g, err := rt.Grad(p, e, nil)
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
				g, err := rt.Grad(p, e, nil)
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
