package model

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoakTraining runs many training steps (gradients + Adam) on a
// mid-size configuration, in several rounds with fresh runtimes, under a
// watchdog: a step that does not finish in time fails the test with every
// goroutine's stack (a hang must never pass silently). The backend is the
// default (or $GOMLX_BACKEND). HER2WSI_SOAK_STEPS / HER2WSI_SOAK_ROUNDS make
// it longer (make soak); -short runs a few steps.
func TestSoakTraining(t *testing.T) {
	steps, rounds := 40, 3
	if testing.Short() {
		steps, rounds = 5, 1
	}
	if v, err := strconv.Atoi(os.Getenv("HER2WSI_SOAK_STEPS")); err == nil && v > 0 {
		steps = v
	}
	if v, err := strconv.Atoi(os.Getenv("HER2WSI_SOAK_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	be := testBackend(t)
	c := DefaultConfig()
	c.InDim, c.EDim, c.Depth, c.Heads, c.Prompts = 64, 64, 2, 4, 32
	c.MaxAnchors, c.MaxPatches, c.MaxIHC = 32, 512, 512
	const stepTimeout = 120 * time.Second
	for round := 0; round < rounds; round++ {
		rt, err := NewRuntime(c, be)
		if err != nil {
			t.Fatal(err)
		}
		p := InitParams(c, uint64(round))
		opt, _ := NewAdam(OptAdam, 0, p)
		rng := rand.New(rand.NewPCG(uint64(round), 9))
		for s := 0; s < steps; s++ {
			// Varying sizes exercise several compiled shapes.
			e := randomExample(c, rng, 100+rng.IntN(400), 1+rng.IntN(20), 50+rng.IntN(400), rng.IntN(4))
			start := time.Now()
			done := make(chan error, 1)
			go func() {
				g, err := rt.Grad(p, e, maskAnchors(c, e.K, 0.5, rng))
				if err == nil {
					opt.Update(p, g.Grads, 1e-3)
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				if testing.Verbose() {
					t.Logf("round %d step %d: N %d K %d M %d: %v", round, s, e.N, e.K, e.M, time.Since(start).Round(time.Millisecond))
				}
			case <-time.After(stepTimeout):
				buf := make([]byte, 1<<22)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("round %d step %d did not finish in %v on backend %s: hung. Goroutines:\n%s", round, s, stepTimeout, be.Name(), summarizeStacks(string(buf)))
			}
		}
		rt.Close()
	}
}

// summarizeStacks keeps the stacks that mention the GoMLX worker pool or
// the executor, where hangs were seen.
func summarizeStacks(all string) string {
	var keep []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "workerspool") || strings.Contains(g, "gobackend") {
			keep = append(keep, g)
		}
	}
	if len(keep) == 0 {
		return all
	}
	return strings.Join(keep, "\n\n")
}
