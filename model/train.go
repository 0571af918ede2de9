package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
	"github.com/her2wsi/her2wsi/model/metrics"
)

// Source gives the training code its cases: labels up front, examples on
// demand (streamed from the work folder by the pipeline). train says
// whether the load is for a training step (random patch sampling may apply)
// and rng drives any sampling.
type Source interface {
	Len() int
	ID(i int) string
	Label(i int) int
	Load(i int, train bool, rng *rand.Rand) (*Example, error)
}

// TrainConfig sets the optimisation. Defaults (DefaultTrainConfig) follow
// the paper: Adam, lr 1e-4 with cosine decay, effective batch 16;
// ReferenceTrainConfig is the reference code's.
type TrainConfig struct {
	Optimizer      string  `json:"optimizer"`
	LR             float64 `json:"lr"`
	MinLR          float64 `json:"min_lr"`
	WeightDecay    float64 `json:"weight_decay"`
	WarmupEpochs   int     `json:"warmup_epochs"`
	Epochs         int     `json:"epochs"`
	Patience       int     `json:"patience"`        // epochs without a better validation macro-AUC before stopping (0: never)
	EffectiveBatch int     `json:"effective_batch"` // slides per optimiser step (gradient accumulation)
	ClassBalanced  bool    `json:"class_balanced"`  // inverse-frequency class sampling (with replacement)
	Seed           uint64  `json:"seed"`
	// Schedule is ScheduleCosine (default: warm-up, then cosine from lr to
	// min_lr over the run's optimiser steps) or ScheduleEpochCosine (the
	// reference's CosineAnnealingLR, stepped once per epoch before it).
	Schedule string `json:"lr_schedule"`
	// CosineEpochs is ScheduleEpochCosine's T_max (0: epochs). The
	// reference sets it to --epochs (50) and trains to --end-epoch (100), so
	// the rate falls to min_lr at T_max and comes back up to lr by 2·T_max.
	CosineEpochs int `json:"cosine_epochs"`
}

// Learning-rate schedules.
const (
	ScheduleCosine      = "cosine"
	ScheduleEpochCosine = "epoch-cosine"
)

// DefaultTrainConfig is the paper's setting.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{Optimizer: OptAdam, LR: 1e-4, MinLR: 1e-6, Epochs: 100, Patience: 20,
		EffectiveBatch: 16, ClassBalanced: true, Seed: 2024, Schedule: ScheduleCosine}
}

// ReferenceTrainConfig is the reference code's (IPCA_main.py): AdamW lr
// 1e-5, wd 1e-4, batch 1, CosineAnnealingLR(T_max = --epochs 50,
// eta_min 1e-6) stepped once per epoch, training to --end-epoch 100.
func ReferenceTrainConfig() TrainConfig {
	t := DefaultTrainConfig()
	t.Optimizer, t.LR, t.WeightDecay, t.EffectiveBatch = OptAdamW, 1e-5, 1e-4, 1
	t.Schedule, t.CosineEpochs, t.Epochs = ScheduleEpochCosine, 50, 100
	return t
}

// Validate checks the training configuration.
func (t TrainConfig) Validate() error {
	switch {
	case t.Optimizer != OptAdam && t.Optimizer != OptAdamW:
		return fmt.Errorf("model: optimizer %q (adam or adamw)", t.Optimizer)
	case t.LR <= 0 || t.MinLR < 0 || t.MinLR > t.LR:
		return fmt.Errorf("model: learning rate %g → %g", t.LR, t.MinLR)
	case t.Epochs <= 0 || t.EffectiveBatch <= 0 || t.WarmupEpochs < 0 || t.Patience < 0 || t.WeightDecay < 0 || t.CosineEpochs < 0:
		return fmt.Errorf("model: epochs %d, effective batch %d, warm-up %d, patience %d, weight decay %g, cosine epochs %d", t.Epochs, t.EffectiveBatch, t.WarmupEpochs, t.Patience, t.WeightDecay, t.CosineEpochs)
	case t.Schedule != "" && t.Schedule != ScheduleCosine && t.Schedule != ScheduleEpochCosine:
		return fmt.Errorf("model: lr_schedule %q (%s or %s)", t.Schedule, ScheduleCosine, ScheduleEpochCosine)
	case t.Schedule == ScheduleEpochCosine && t.WarmupEpochs > 0:
		return fmt.Errorf("model: lr_schedule %s has no warm-up (the reference's main run uses none); set warmup_epochs 0", ScheduleEpochCosine)
	}
	return nil
}

// EpochCosineLR is the learning rate of epoch e (0-based) under the
// reference's schedule: torch's CosineAnnealingLR(T_max = tMax, eta_min =
// minLR) stepped once before each epoch, so epoch e runs at step e+1:
// minLR + (lr − minLR)·(1 + cos(π·(e+1)/tMax))/2. Past tMax the cosine
// rises again (back to lr at 2·tMax), as the reference's 100 epochs over
// T_max 50 do.
func EpochCosineLR(e, tMax int, lr, minLR float64) float64 {
	if tMax <= 0 {
		return lr
	}
	return minLR + 0.5*(lr-minLR)*(1+math.Cos(math.Pi*float64(e+1)/float64(tMax)))
}

// lrAt is the rate of an optimiser update at step s (of total, warm-up
// warm) in epoch e.
func (t TrainConfig) lrAt(e, s, total, warm int) float64 {
	if t.Schedule == ScheduleEpochCosine {
		tMax := t.CosineEpochs
		if tMax == 0 {
			tMax = t.Epochs
		}
		return EpochCosineLR(e, tMax, t.LR, t.MinLR)
	}
	return CosineLR(s, total, warm, t.LR, t.MinLR)
}

// EpochLog is one line of log.jsonl.
type EpochLog struct {
	Epoch     int      `json:"epoch"`
	Step      int64    `json:"step"`
	LR        float64  `json:"lr"`
	TrainLoss float64  `json:"train_loss"`
	ValAUC    *float64 `json:"val_macro_auc,omitempty"`
	ValAcc    *float64 `json:"val_accuracy,omitempty"`
	Best      bool     `json:"best"`
	Seconds   float64  `json:"seconds"`
}

// Trainer trains one model into a run folder:
//
//	RUNDIR/config.json             model config
//	RUNDIR/train.json              training config
//	RUNDIR/checkpoint.safetensors  weights + optimiser state, after every epoch
//	RUNDIR/model.safetensors       the best weights (validation macro-AUC), reference names
//	RUNDIR/log.jsonl               one line per epoch
//
// A run restarted on the same folder resumes from the checkpoint and ends
// with the same weights as an uninterrupted run.
type Trainer struct {
	Config   Config
	Train    TrainConfig
	Runtime  *Runtime
	Dir      string
	Progress func(EpochLog) // optional, after each epoch
	Step     func(done, total int, loss float64)
}

// TrainResult summarises a finished run.
type TrainResult struct {
	BestEpoch int
	BestAUC   float64
	Epochs    int
	Params    *Params
}

// Fit trains on train and selects the epoch on val (nil: the last epoch).
func (t *Trainer) Fit(ctx context.Context, train, val Source) (TrainResult, error) {
	c, tc := t.Config.Normalized(), t.Train
	if err := tc.Validate(); err != nil {
		return TrainResult{}, err
	}
	if train.Len() == 0 {
		return TrainResult{}, errors.New("model: no training cases")
	}
	if err := os.MkdirAll(t.Dir, 0o755); err != nil {
		return TrainResult{}, fmt.Errorf("model: %w", err)
	}
	if err := writeJSON(filepath.Join(t.Dir, "config.json"), c); err != nil {
		return TrainResult{}, err
	}
	if err := writeJSON(filepath.Join(t.Dir, "train.json"), tc); err != nil {
		return TrainResult{}, err
	}
	params := InitParams(c, tc.Seed)
	opt, err := NewAdam(tc.Optimizer, tc.WeightDecay, params)
	if err != nil {
		return TrainResult{}, err
	}
	st := trainState{BestAUC: math.Inf(-1), BestEpoch: -1}
	ckpt := filepath.Join(t.Dir, "checkpoint.safetensors")
	var logs []EpochLog
	if _, err := os.Stat(ckpt); err == nil {
		if st, err = loadCheckpoint(ckpt, c, tc, params, opt); err != nil {
			return TrainResult{}, err
		}
		logs, _ = readLog(filepath.Join(t.Dir, "log.jsonl"))
		logs = keepEpochs(logs, st.Epoch)
	}
	best := params.Clone()
	if st.BestEpoch >= 0 {
		if err := LoadWeightsInto(filepath.Join(t.Dir, "model.safetensors"), best, false); err != nil {
			return TrainResult{}, fmt.Errorf("model: resuming %s: %w", t.Dir, err)
		}
	}
	stepsPerEpoch := (train.Len() + tc.EffectiveBatch - 1) / tc.EffectiveBatch
	total := stepsPerEpoch * tc.Epochs
	warm := stepsPerEpoch * tc.WarmupEpochs
	grads := make([][]float32, len(params.Values))
	for i, v := range params.Values {
		grads[i] = make([]float32, len(v))
	}
	for epoch := st.Epoch; epoch < tc.Epochs; epoch++ {
		if tc.Patience > 0 && st.BestEpoch >= 0 && epoch-st.BestEpoch > tc.Patience {
			break
		}
		start := time.Now()
		rng := rand.New(rand.NewPCG(tc.Seed, uint64(epoch)+1))
		order := sampleOrder(train, tc.ClassBalanced, rng)
		var lossSum float64
		acc := 0
		var lr float64
		for i, idx := range order {
			if err := ctx.Err(); err != nil {
				return TrainResult{}, err
			}
			ex, err := train.Load(idx, true, rng)
			if err != nil {
				return TrainResult{}, fmt.Errorf("model: training case %s: %w", train.ID(idx), err)
			}
			var kept []int
			if c.Spec().NeedsAnchors && c.MaskRatio > 0 {
				kept = maskAnchors(c, ex.K, c.MaskRatio, rng)
			}
			var seed uint64
			if c.DropoutRate() > 0 { // drawn only then: runs without dropout keep their streams
				seed = rng.Uint64()
			}
			res, err := t.Runtime.GradSeed(params, ex, kept, seed)
			if err != nil {
				return TrainResult{}, err
			}
			if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
				return TrainResult{}, fmt.Errorf("model: training diverged at epoch %d on %s (loss %v); lower the learning rate", epoch, ex.ID, res.Loss)
			}
			lossSum += res.Loss
			t.Runtime.UpdateRunningStats(params, res.BNStats)
			for k, g := range res.Grads {
				dst := grads[k]
				for j := range g {
					dst[j] += g[j]
				}
			}
			acc++
			if acc == tc.EffectiveBatch || i == len(order)-1 {
				lr = tc.lrAt(epoch, int(opt.Step), total, warm)
				inv := 1 / float32(acc)
				for _, g := range grads {
					for j := range g {
						g[j] *= inv
					}
				}
				opt.Update(params, grads, lr)
				for _, g := range grads {
					clear(g)
				}
				acc = 0
			}
			if t.Step != nil {
				t.Step(i+1, len(order), lossSum/float64(i+1))
			}
		}
		l := EpochLog{Epoch: epoch, Step: opt.Step, LR: lr, TrainLoss: lossSum / float64(len(order))}
		if val != nil && val.Len() > 0 {
			m, _, err := Evaluate(t.Runtime, params, val)
			if err != nil {
				return TrainResult{}, err
			}
			auc, accu := m.MacroAUC, m.Accuracy
			l.ValAcc = &accu
			if !math.IsNaN(auc) { // NaN: no class has both positives and negatives in val
				l.ValAUC = &auc
			}
			if auc > st.BestAUC || (st.BestEpoch < 0 && math.IsNaN(auc)) {
				st.BestAUC, st.BestEpoch, l.Best = auc, epoch, true
			}
		} else {
			st.BestAUC, st.BestEpoch, l.Best = math.NaN(), epoch, true
		}
		if l.Best {
			best = params.Clone()
			if err := SaveWeights(filepath.Join(t.Dir, "model.safetensors"), c, best, map[string]string{"epoch": fmt.Sprint(epoch)}); err != nil {
				return TrainResult{}, err
			}
		}
		st.Epoch = epoch + 1
		if err := saveCheckpoint(ckpt, c, tc, params, opt, st); err != nil {
			return TrainResult{}, err
		}
		l.Seconds = time.Since(start).Seconds()
		logs = append(logs, l)
		if err := writeLog(filepath.Join(t.Dir, "log.jsonl"), logs); err != nil {
			return TrainResult{}, err
		}
		if t.Progress != nil {
			t.Progress(l)
		}
	}
	return TrainResult{BestEpoch: st.BestEpoch, BestAUC: st.BestAUC, Epochs: st.Epoch, Params: best}, nil
}

// sampleOrder is one epoch's training order: with class balancing, Len()
// draws with replacement, each case weighted by 1/(its class's count) (the
// reference's WeightedRandomSampler); else a permutation.
func sampleOrder(s Source, balanced bool, rng *rand.Rand) []int {
	n := s.Len()
	if !balanced {
		return rng.Perm(n)
	}
	count := map[int]int{}
	for i := 0; i < n; i++ {
		count[s.Label(i)]++
	}
	cum := make([]float64, n)
	var tot float64
	for i := 0; i < n; i++ {
		tot += 1 / float64(count[s.Label(i)])
		cum[i] = tot
	}
	out := make([]int, n)
	for k := range out {
		u := rng.Float64() * tot
		lo, hi := 0, n-1
		for lo < hi {
			mid := (lo + hi) / 2
			if cum[mid] > u {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		out[k] = lo
	}
	return out
}

// CasePrediction is one case's H&E-only prediction.
type CasePrediction struct {
	ID    string
	Label int
	Prediction
}

// Evaluate predicts every case of s (H&E only, deterministic loading) and
// computes the metrics.
func Evaluate(rt *Runtime, p *Params, s Source) (metrics.Metrics, []CasePrediction, error) {
	labels := make([]int, 0, s.Len())
	probs := make([][]float64, 0, s.Len())
	preds := make([]CasePrediction, 0, s.Len())
	for i := 0; i < s.Len(); i++ {
		ex, err := s.Load(i, false, nil)
		if err != nil {
			return metrics.Metrics{}, nil, fmt.Errorf("model: case %s: %w", s.ID(i), err)
		}
		pr, err := rt.Predict(p, ex)
		if err != nil {
			return metrics.Metrics{}, nil, err
		}
		labels = append(labels, s.Label(i))
		probs = append(probs, pr.Probs)
		preds = append(preds, CasePrediction{ID: s.ID(i), Label: s.Label(i), Prediction: pr})
	}
	m, err := metrics.Compute(labels, probs, rt.Config.Classes)
	if err != nil {
		return metrics.Metrics{}, nil, fmt.Errorf("model: %w", err)
	}
	return m, preds, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFileAtomic(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}

func readLog(path string) ([]EpochLog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []EpochLog
	dec := json.NewDecoder(bytesReader(b))
	for dec.More() {
		var l EpochLog
		if err := dec.Decode(&l); err != nil {
			break
		}
		out = append(out, l)
	}
	return out, nil
}

func keepEpochs(ls []EpochLog, n int) []EpochLog {
	var out []EpochLog
	for _, l := range ls {
		if l.Epoch < n {
			out = append(out, l)
		}
	}
	return out
}

func writeLog(path string, ls []EpochLog) error {
	var b []byte
	for _, l := range ls {
		j, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("model: %s: %w", path, err)
		}
		b = append(append(b, j...), '\n')
	}
	if err := atomicfile.WriteFileAtomic(path, b, 0o644); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	return nil
}

// ReadTrainConfig reads a training-config JSON over the paper's defaults;
// unknown keys are an error.
func ReadTrainConfig(path string) (TrainConfig, error) {
	t := DefaultTrainConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return t, fmt.Errorf("model: training config: %w", err)
	}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("model: training config %s: %w", path, err)
	}
	return t, t.Validate()
}
