package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"golang.org/x/sync/errgroup"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/model"
)

// CompareOptions configure Compare: every variant trained with every seed
// on every fold of the same case set, with the same model and training
// settings otherwise.
type CompareOptions struct {
	Cases   []cases.Case
	Work    Work
	Encoder string
	Model   model.Config // the shared settings; Variant is set per run
	// VariantModels holds a variant's own settings where they differ from
	// Model (e.g. TransMIL's width); its Variant must be the key.
	VariantModels map[string]model.Config
	Variants      []string
	Train         model.TrainConfig // Seed is set per run
	Seeds         []uint64
	// CV > 0: for each seed, one run per fold f < CV, trained on the other
	// training folds and validated on f (best epoch); 0: one run per seed
	// on every training case, for Train.Epochs epochs (the last kept).
	CV       int
	Out      string // OUT/runs/<variant>/seed<S>/fold<F>|all/
	Jobs     int    // runs trained at once (0: one per CPU)
	Backend  string // GoMLX backend config (model.NewBackend)
	Sampling string
	Cache    bool
	// Done is called after each run (skipped: finished by an earlier call);
	// from the worker goroutines, one at a time.
	Done func(r CompareRun, skipped bool, finished, total int)
}

// CompareJob is one run of Compare.
type CompareJob struct {
	Variant string `json:"variant"`
	Seed    uint64 `json:"seed"`
	Fold    int    `json:"fold"` // validation fold; −1: none
}

// Dir is the job's run folder under out.
func (j CompareJob) Dir(out string) string {
	f := "all"
	if j.Fold >= 0 {
		f = "fold" + strconv.Itoa(j.Fold)
	}
	return filepath.Join(out, "runs", j.Variant, "seed"+strconv.FormatUint(j.Seed, 10), f)
}

// CompareRun is a finished job: its H&E-only test predictions
// (RUN/compare-run.json; the run folder also holds what train writes).
type CompareRun struct {
	CompareJob
	Key       string        `json:"key"` // the settings it was made with
	BestEpoch int           `json:"best_epoch"`
	Seconds   float64       `json:"seconds"`
	Test      []CompareCase `json:"test"`
}

// CompareCase is one test case's H&E-only prediction in a run.
type CompareCase struct {
	ID    string    `json:"id"`
	Label int       `json:"label"`
	Probs []float64 `json:"probs"`
}

// compareRunFile marks a finished run (written last).
const compareRunFile = "compare-run.json"

// CompareJobs lists the jobs in the order Compare starts them: seed by
// seed, fold by fold, every variant of a (seed, fold) together, so an
// interrupted comparison has whole pairs done.
func CompareJobs(variants []string, seeds []uint64, cv int) []CompareJob {
	folds := []int{-1}
	if cv > 0 {
		folds = folds[:0]
		for f := range cv {
			folds = append(folds, f)
		}
	}
	var jobs []CompareJob
	for _, s := range seeds {
		for _, f := range folds {
			for _, v := range variants {
				jobs = append(jobs, CompareJob{Variant: v, Seed: s, Fold: f})
			}
		}
	}
	return jobs
}

// Compare trains every (variant, seed, fold) run with pipeline.Train
// (each validated on its fold, tested on the case set's test cases) and
// returns their test predictions, in CompareJobs order. Several runs train
// at once (Jobs), each worker with its own GoMLX backend and runtimes. A
// run finished by an earlier call with the same settings is read back, not
// trained again; one interrupted mid-way resumes from its checkpoint. A
// run folder made with other settings is an error (choose another Out).
func Compare(ctx context.Context, opt CompareOptions) ([]CompareRun, error) {
	if len(opt.Variants) == 0 || len(opt.Seeds) == 0 {
		return nil, errors.New("pipeline: compare: no variants or no seeds")
	}
	var test []cases.Case
	folds := map[int]int{}
	for _, c := range opt.Cases {
		if c.Split == "test" {
			test = append(test, c)
		} else {
			folds[c.Fold]++
		}
	}
	if len(test) == 0 {
		return nil, errors.New("pipeline: compare: the case set has no test cases; compare evaluates every run on the held-out test split (pipeline cases split)")
	}
	for f := range opt.CV {
		if folds[f] == 0 {
			return nil, fmt.Errorf("pipeline: compare: no training case is in fold %d; run `pipeline cases split --folds %d` first", f, opt.CV)
		}
	}
	for v, c := range opt.VariantModels {
		if c.Variant != v {
			return nil, fmt.Errorf("pipeline: compare: the settings given for %s are for variant %q", v, c.Variant)
		}
		if !slices.Contains(opt.Variants, v) {
			return nil, fmt.Errorf("pipeline: compare: settings given for %s, which is not compared", v)
		}
	}
	for _, v := range opt.Variants {
		if err := opt.modelFor(v).Validate(); err != nil {
			return nil, fmt.Errorf("pipeline: compare: %w", err)
		}
	}
	inputs, err := compareInputs(opt)
	if err != nil {
		return nil, err
	}
	jobs := CompareJobs(opt.Variants, opt.Seeds, opt.CV)
	out := make([]CompareRun, len(jobs))
	var pending []int
	for i, j := range jobs {
		key, err := compareKey(opt, j, inputs)
		if err != nil {
			return nil, err
		}
		r, ok, err := readCompareRun(j.Dir(opt.Out), key)
		if err != nil {
			return nil, err
		}
		if ok {
			out[i] = r
			continue
		}
		pending = append(pending, i)
	}
	nJobs := opt.Jobs
	if nJobs <= 0 {
		nJobs = runtime.NumCPU()
	}
	nJobs = max(1, min(nJobs, len(pending)))
	slog.Info("compare", "variants", opt.Variants, "seeds", len(opt.Seeds), "folds", max(opt.CV, 1), "runs", len(jobs), "done already", len(jobs)-len(pending), "at once", nJobs)
	var mu sync.Mutex
	finished := len(jobs) - len(pending)
	if opt.Done != nil {
		for i, r := range out {
			if r.Key != "" {
				opt.Done(out[i], true, i+1, len(jobs))
			}
		}
	}
	feed := make(chan int)
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		defer close(feed)
		for _, i := range pending {
			select {
			case feed <- i:
			case <-ectx.Done():
				return ectx.Err()
			}
		}
		return nil
	})
	for range nJobs {
		eg.Go(func() error {
			w, err := newCompareWorker(opt.Backend)
			if err != nil {
				return err
			}
			defer w.close()
			for i := range feed {
				r, err := w.run(ectx, opt, jobs[i], inputs)
				if err != nil {
					return err
				}
				mu.Lock()
				out[i] = r
				finished++
				if opt.Done != nil {
					opt.Done(r, false, finished, len(jobs))
				}
				mu.Unlock()
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return out, nil
}

// modelFor is variant v's model config: its own (VariantModels) or the
// shared one with Variant set.
func (opt CompareOptions) modelFor(v string) model.Config {
	if c, ok := opt.VariantModels[v]; ok {
		return c
	}
	c := opt.Model
	c.Variant = v
	return c
}

// compareWorker owns one GoMLX backend and a runtime per variant.
type compareWorker struct {
	backend string
	be      compute.Backend
	rts     map[string]*model.Runtime
}

func newCompareWorker(backend string) (*compareWorker, error) {
	return &compareWorker{backend: backend, rts: map[string]*model.Runtime{}}, nil
}

func (w *compareWorker) runtime(c model.Config) (*model.Runtime, error) {
	if rt := w.rts[c.Variant]; rt != nil {
		return rt, nil
	}
	if w.be == nil {
		be, err := model.NewBackend(w.backend)
		if err != nil {
			return nil, err
		}
		w.be = be
	}
	rt, err := model.NewRuntime(c, w.be)
	if err != nil {
		return nil, err
	}
	w.rts[c.Variant] = rt
	return rt, nil
}

func (w *compareWorker) close() {
	for _, rt := range w.rts {
		rt.Close()
	}
	if w.be != nil {
		w.be.Finalize()
	}
}

// run trains and tests one job and records it.
func (w *compareWorker) run(ctx context.Context, opt CompareOptions, j CompareJob, inputs string) (CompareRun, error) {
	c := opt.modelFor(j.Variant)
	rt, err := w.runtime(c)
	if err != nil {
		return CompareRun{}, err
	}
	tc := opt.Train
	tc.Seed = j.Seed
	dir := j.Dir(opt.Out)
	key, err := compareKey(opt, j, inputs)
	if err != nil {
		return CompareRun{}, err
	}
	start := time.Now()
	rep, err := Train(ctx, TrainOptions{
		Cases: opt.Cases, Work: opt.Work, Encoder: opt.Encoder, Model: c, Train: tc, Out: dir,
		ValFold: j.Fold, Sampling: opt.Sampling, Cache: opt.Cache, Runtime: rt,
	})
	if err != nil {
		return CompareRun{}, fmt.Errorf("pipeline: compare: %s seed %d fold %d: %w", j.Variant, j.Seed, j.Fold, err)
	}
	r := CompareRun{CompareJob: j, Key: key, BestEpoch: rep.bestEpoch, Seconds: time.Since(start).Seconds()}
	for _, p := range rep.testPreds {
		r.Test = append(r.Test, CompareCase{ID: p.ID, Label: p.Label, Probs: p.Probs})
	}
	if err := writeJSONFile(filepath.Join(dir, compareRunFile), r); err != nil {
		return r, err
	}
	return r, nil
}

// readCompareRun reads a finished run; ok is false when there is none.
func readCompareRun(dir, key string) (CompareRun, bool, error) {
	var r CompareRun
	b, err := os.ReadFile(filepath.Join(dir, compareRunFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("pipeline: compare: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("pipeline: compare: %s: %w (delete the file to train the run again)", filepath.Join(dir, compareRunFile), err)
	}
	if r.Key != key {
		return r, false, fmt.Errorf("pipeline: compare: %s holds a run made with other settings (cases, their feature, anchor or graph files, model or training); use another --out", dir)
	}
	return r, true, nil
}

// compareInputs fingerprints the files the runs read, by the stamps
// (size and modification time) freshness uses: each case's coordinates,
// features, anchors and SlideGraph+ graph, H&E and IHC ("-" where a file
// is absent). Re-embedding or re-anchoring under the same name changes it,
// so finished runs made from the old files are not taken as results of
// the new ones.
func compareInputs(opt CompareOptions) (string, error) {
	h := sha256.New()
	for _, c := range opt.Cases {
		for _, id := range []string{c.HE, c.IHC} {
			for _, p := range []string{opt.Work.CoordsH5(id), opt.Work.FeaturesH5(id, opt.Encoder), opt.Work.AnchorsH5(id), opt.Work.SlideGraphH5(id, opt.Encoder)} {
				st, err := stamp(p)
				if errors.Is(err, os.ErrNotExist) {
					st = "-"
				} else if err != nil {
					return "", fmt.Errorf("pipeline: compare: %s: %w", id, err)
				}
				fmt.Fprintf(h, "%s\x00%s\x00%s\n", id, filepath.Base(p), st)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// compareKey fingerprints what a job's result depends on: the settings,
// the cases and their files (inputs, compareInputs).
func compareKey(opt CompareOptions, j CompareJob, inputs string) (string, error) {
	c := opt.modelFor(j.Variant)
	tc := opt.Train
	tc.Seed = j.Seed
	b, err := json.Marshal(struct {
		Job      CompareJob
		Model    model.Config
		Train    model.TrainConfig
		Cases    []cases.Case
		Encoder  string
		Sampling string
		Inputs   string
	}{j, c, tc, opt.Cases, opt.Encoder, opt.Sampling, inputs})
	if err != nil {
		return "", fmt.Errorf("pipeline: compare: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
