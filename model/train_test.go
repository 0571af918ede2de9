package model

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// memSource serves fixed random examples whose label shows in the
// features: class l adds l·0.8 to the first feature of every patch.
type memSource struct{ ex []*Example }

func newMemSource(c Config, n int, seed uint64) *memSource {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := &memSource{}
	for i := 0; i < n; i++ {
		e := randomExample(c, rng, 10+rng.IntN(20), 1+rng.IntN(4), 8+rng.IntN(15), i%c.Classes)
		e.ID = "case" + itoa(i)
		for j := 0; j < e.N; j++ {
			e.HE[j*c.InDim] += 0.8 * float32(e.Label)
		}
		for j := 0; j < e.M; j++ {
			e.IHC[j*c.InDim] += 1.5 * float32(e.Label)
		}
		s.ex = append(s.ex, e)
	}
	return s
}

func (s *memSource) Len() int        { return len(s.ex) }
func (s *memSource) ID(i int) string { return s.ex[i].ID }
func (s *memSource) Label(i int) int { return s.ex[i].Label }
func (s *memSource) Load(i int, _ bool, _ *rand.Rand) (*Example, error) {
	return s.ex[i], nil
}

func trainSetup(t *testing.T) (Config, TrainConfig, *Runtime) {
	t.Helper()
	c := tinyConfig(VariantIPCA)
	c.MaskRatio = 0.5
	tc := DefaultTrainConfig()
	tc.LR, tc.Epochs, tc.EffectiveBatch, tc.Patience = 3e-3, 4, 4, 0
	be := testBackend(t)
	rt := testRuntime(t, be, c)
	return c, tc, rt
}

// A run stopped after some epochs and resumed on its folder ends with
// exactly the weights, log and best epoch of an uninterrupted run.
func TestTrainResumeIsExact(t *testing.T) {
	c, tc, rt := trainSetup(t)
	train, val := newMemSource(c, 16, 1), newMemSource(c, 8, 2)
	full := &Trainer{Config: c, Train: tc, Runtime: rt, Dir: t.TempDir()}
	want, err := full.Fit(context.Background(), train, val)
	if err != nil {
		t.Fatal(err)
	}
	// Interrupt after two epochs by cancelling from the epoch callback.
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	part := &Trainer{Config: c, Train: tc, Runtime: rt, Dir: dir, Progress: func(l EpochLog) {
		if l.Epoch == 1 {
			cancel()
		}
	}}
	if _, err := part.Fit(ctx, train, val); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	resumed := &Trainer{Config: c, Train: tc, Runtime: rt, Dir: dir}
	got, err := resumed.Fit(context.Background(), train, val)
	if err != nil {
		t.Fatal(err)
	}
	if got.BestEpoch != want.BestEpoch || got.Epochs != want.Epochs {
		t.Fatalf("resumed: best epoch %d of %d, uninterrupted %d of %d", got.BestEpoch, got.Epochs, want.BestEpoch, want.Epochs)
	}
	if ModelID(got.Params) != ModelID(want.Params) {
		t.Fatal("resumed run's weights differ from the uninterrupted run's")
	}
	a, _ := os.ReadFile(filepath.Join(full.Dir, "log.jsonl"))
	b, _ := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	if len(readLogBytes(a)) != len(readLogBytes(b)) || len(readLogBytes(a)) != tc.Epochs {
		t.Fatalf("log lines: uninterrupted %d, resumed %d, want %d", len(readLogBytes(a)), len(readLogBytes(b)), tc.Epochs)
	}
	// A different training config refuses the folder instead of mixing runs.
	tc2 := tc
	tc2.LR *= 2
	if _, err := (&Trainer{Config: c, Train: tc2, Runtime: rt, Dir: dir}).Fit(context.Background(), train, val); err == nil {
		t.Fatal("a checkpoint of another training config was resumed")
	}
}

func readLogBytes(b []byte) []EpochLog {
	var out []EpochLog
	for _, l := range splitLines(b) {
		if len(l) > 0 {
			out = append(out, EpochLog{})
		}
	}
	return out
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return out
}

// The same seed gives the same weights; training lowers the loss and the
// saved model reloads with identical predictions.
func TestTrainReproducibleAndLearns(t *testing.T) {
	c, tc, rt := trainSetup(t)
	tc.Epochs = 6
	train := newMemSource(c, 24, 3)
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := (&Trainer{Config: c, Train: tc, Runtime: rt, Dir: dirA}).Fit(context.Background(), train, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&Trainer{Config: c, Train: tc, Runtime: rt, Dir: dirB}).Fit(context.Background(), train, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ModelID(a.Params) != ModelID(b.Params) {
		t.Fatal("two runs with one seed differ")
	}
	logs, err := readLog(filepath.Join(dirA, "log.jsonl"))
	if err != nil || len(logs) != tc.Epochs {
		t.Fatalf("log: %v, %d lines", err, len(logs))
	}
	if !(logs[len(logs)-1].TrainLoss < logs[0].TrainLoss) {
		t.Fatalf("training loss did not fall: %.3f → %.3f", logs[0].TrainLoss, logs[len(logs)-1].TrainLoss)
	}
	p, err := LoadWeights(filepath.Join(dirA, "model.safetensors"), c)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < train.Len(); i++ {
		x, _ := rt.Predict(a.Params, train.ex[i])
		y, _ := rt.Predict(p, train.ex[i])
		for k := range x.Logits {
			if x.Logits[k] != y.Logits[k] {
				t.Fatalf("reloaded weights predict %v, trained %v", y.Logits, x.Logits)
			}
		}
	}
}

// torchCosineStep is torch's CosineAnnealingLR.get_lr, the recursive form
// step() applies (written from PyTorch's documented recurrence): from the
// rate cur at step t−1 to step t.
func torchCosineStep(cur, base, minLR float64, t, tMax int) float64 {
	switch {
	case t == 0:
		return base
	case (t-1-tMax)%(2*tMax) == 0:
		return cur + (base-minLR)*(1-math.Cos(math.Pi/float64(tMax)))/2
	}
	return (1+math.Cos(math.Pi*float64(t)/float64(tMax)))/(1+math.Cos(math.Pi*float64(t-1)/float64(tMax)))*(cur-minLR) + minLR
}

// The reference schedule: CosineAnnealingLR(T_max 50, eta_min 1e-6)
// stepped before each of 100 epochs equals torch's recurrence, reaches
// min_lr at epoch 49 and climbs back to lr by epoch 99; a training run
// logs those rates per epoch.
func TestEpochCosineSchedule(t *testing.T) {
	tc := ReferenceTrainConfig()
	if tc.Schedule != ScheduleEpochCosine || tc.CosineEpochs != 50 || tc.Epochs != 100 {
		t.Fatalf("reference schedule %q T_max %d epochs %d", tc.Schedule, tc.CosineEpochs, tc.Epochs)
	}
	cur := tc.LR
	for e := 0; e < tc.Epochs; e++ {
		cur = torchCosineStep(cur, tc.LR, tc.MinLR, e+1, tc.CosineEpochs)
		got := tc.lrAt(e, 0, 0, 0)
		if math.Abs(got-cur) > 1e-12 {
			t.Fatalf("epoch %d: %g, torch's recurrence %g", e, got, cur)
		}
	}
	for _, c := range []struct {
		epoch int
		want  float64
	}{{49, tc.MinLR}, {99, tc.LR}, {24, (tc.LR + tc.MinLR) / 2}, {74, (tc.LR + tc.MinLR) / 2}} {
		if got := tc.lrAt(c.epoch, 0, 0, 0); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("epoch %d: lr %g, want %g", c.epoch, got, c.want)
		}
	}
	bad := tc
	bad.WarmupEpochs = 2
	if bad.Validate() == nil {
		t.Error("warm-up with the epoch schedule accepted")
	}
	bad = tc
	bad.Schedule = "linear"
	if bad.Validate() == nil {
		t.Error("unknown schedule accepted")
	}

	c, small, rt := trainSetup(t)
	small.Schedule, small.CosineEpochs, small.Epochs, small.LR, small.MinLR = ScheduleEpochCosine, 2, 4, 1e-3, 1e-5
	tr := &Trainer{Config: c, Train: small, Runtime: rt, Dir: t.TempDir()}
	if _, err := tr.Fit(context.Background(), newMemSource(c, 8, 1), nil); err != nil {
		t.Fatal(err)
	}
	logs, err := readLog(filepath.Join(tr.Dir, "log.jsonl"))
	if err != nil || len(logs) != 4 {
		t.Fatalf("log: %v, %d epochs", err, len(logs))
	}
	want := []float64{(1e-3 + 1e-5) / 2, 1e-5, (1e-3 + 1e-5) / 2, 1e-3} // down to min at T_max, back up
	for i, l := range logs {
		if math.Abs(l.LR-want[i]) > 1e-12 {
			t.Errorf("epoch %d logged lr %g, want %g", i, l.LR, want[i])
		}
	}
}
