package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth/caseset"
)

// Compare trains every (variant, seed, fold) run; the runs' predictions do
// not depend on how many train at once; a rerun reads finished runs back
// instead of training them; other settings in the same folder are refused.
func TestCompareRunsResumesAndIsScheduleIndependent(t *testing.T) {
	opt := caseset.DefaultOptions()
	opt.Cases, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.Folds = 16, 16, 40, 60, 2
	work, cs := generatedCases(t, opt)
	tc := model.DefaultTrainConfig()
	tc.Epochs, tc.EffectiveBatch, tc.LR, tc.Seed = 1, 4, 1e-3, 5
	base := pipeline.CompareOptions{
		Cases: cs, Work: work, Encoder: opt.Encoder, Model: fixture.SmallModel(model.VariantIPCA),
		Variants: []string{model.VariantIPCA, model.VariantABMIL}, Train: tc, Seeds: []uint64{5, 6}, CV: 2,
		Sampling: "first", Cache: true,
	}
	type call struct {
		job     pipeline.CompareJob
		skipped bool
	}
	run := func(out string, jobs int) ([]pipeline.CompareRun, []call, error) {
		o := base
		o.Out, o.Jobs = out, jobs
		var mu sync.Mutex
		var calls []call
		o.Done = func(r pipeline.CompareRun, skipped bool, _, _ int) {
			mu.Lock()
			calls = append(calls, call{r.CompareJob, skipped})
			mu.Unlock()
		}
		rs, err := pipeline.Compare(context.Background(), o)
		return rs, calls, err
	}
	out2 := filepath.Join(t.TempDir(), "two")
	par, calls, err := run(out2, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.CompareJobs(base.Variants, base.Seeds, 2)
	if len(par) != 8 || len(want) != 8 || len(calls) != 8 {
		t.Fatalf("%d runs, %d jobs, %d Done calls; want 8 each", len(par), len(want), len(calls))
	}
	test := 0
	for _, c := range cs {
		if c.Split == "test" {
			test++
		}
	}
	for i, r := range par {
		if r.CompareJob != want[i] || len(r.Test) != test || calls[i].skipped {
			t.Errorf("run %d: %+v with %d test predictions (want %+v, %d)", i, r.CompareJob, len(r.Test), want[i], test)
		}
		for _, f := range []string{"compare-run.json", "model.safetensors", "test/metrics.json", "validation/metrics.json", "report.json"} {
			if _, err := os.Stat(filepath.Join(r.Dir(out2), f)); err != nil {
				t.Errorf("%s: %v", r.Dir(out2), err)
			}
		}
	}
	// The same runs one at a time: the same predictions.
	seq, _, err := run(filepath.Join(t.TempDir(), "one"), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range seq {
		if !reflect.DeepEqual(seq[i].Test, par[i].Test) {
			t.Errorf("%+v: predictions differ between 1 and 2 runs at once", seq[i].CompareJob)
		}
	}
	// Seeds differ: so do their runs.
	if reflect.DeepEqual(par[0].Test, par[4].Test) {
		t.Error("seeds 5 and 6 gave the same predictions")
	}
	// Rerun: everything read back.
	again, calls, err := run(out2, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range calls {
		if !c.skipped {
			t.Errorf("rerun trained %+v again", c.job)
		}
		if !reflect.DeepEqual(again[i].Test, par[i].Test) {
			t.Errorf("rerun read back other predictions for %+v", again[i].CompareJob)
		}
	}
	// Other settings in the same folder: refused, naming the folder.
	o := base
	o.Out, o.Train.Epochs = out2, 2
	if _, err := pipeline.Compare(context.Background(), o); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("other settings: %v", err)
	}
	// The same settings over re-embedded features (same name, new file):
	// not taken as finished.
	feat := work.FeaturesH5(cs[0].HE, opt.Encoder)
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(feat, later, later); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(out2, 2); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("re-embedded features: %v", err)
	}
	// No test split: one clear error.
	noTest := base
	noTest.Out = t.TempDir()
	noTest.Cases = nil
	for _, c := range cs {
		if c.Split != "test" {
			noTest.Cases = append(noTest.Cases, c)
		}
	}
	if _, err := pipeline.Compare(context.Background(), noTest); err == nil || !strings.Contains(err.Error(), "no test cases") {
		t.Errorf("no test cases: %v", err)
	}
}

// BenchmarkCompareJobs: the same comparison (ipca and pama, 2 seeds × 2
// folds, 3 epochs, a small generated case set) with one run at a time and
// with one per CPU, alternating round by round in fresh folders; reports
// runs per minute of each and their ratio, and the IPCA training time per
// case-step (epoch seconds / cases) in each, so a faster whole does not
// hide a slower step.
func BenchmarkCompareJobs(b *testing.B) {
	b.ReportAllocs()
	opt := caseset.DefaultOptions()
	opt.Cases, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.Folds = 24, 64, 80, 240, 2
	work, cs := generatedCases(b, opt)
	c := model.DefaultConfig()
	c.InDim, c.EDim, c.Depth, c.Heads, c.MLPRatio, c.Prompts, c.MaxAnchors, c.MaxPatches, c.MaxIHC = 64, 64, 2, 4, 2, 32, 64, 1024, 1024
	tc := model.DefaultTrainConfig()
	tc.Epochs, tc.EffectiveBatch, tc.LR, tc.Patience = 3, 4, 5e-4, 0
	n := runtime.NumCPU()
	var secs [2]time.Duration
	var stepSecs [2]float64
	var steps [2]int
	runs := 0
	for i := 0; i < b.N; i++ {
		for k, jobs := range []int{1, n} {
			out := filepath.Join(b.TempDir(), "cmp")
			start := time.Now()
			rs, err := pipeline.Compare(context.Background(), pipeline.CompareOptions{
				Cases: cs, Work: work, Encoder: opt.Encoder, Model: c, Variants: []string{model.VariantIPCA, model.VariantPAMA},
				Train: tc, Seeds: []uint64{1, 2}, CV: 2, Out: out, Jobs: jobs, Sampling: "first", Cache: true,
			})
			if err != nil {
				b.Fatal(err)
			}
			secs[k] += time.Since(start)
			if k == 0 {
				runs += len(rs)
			}
			for _, r := range rs {
				if r.Variant != model.VariantIPCA {
					continue
				}
				logs, err := os.ReadFile(filepath.Join(r.Dir(out), "log.jsonl"))
				if err != nil {
					b.Fatal(err)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(logs)), "\n") {
					var l model.EpochLog
					if err := json.Unmarshal([]byte(line), &l); err != nil {
						b.Fatal(err)
					}
					stepSecs[k] += l.Seconds
				}
				steps[k] += tc.Epochs * (len(cs) - len(testCasesOf(cs))) / 2
			}
		}
	}
	one := float64(runs) / secs[0].Minutes()
	all := float64(runs) / secs[1].Minutes()
	b.ReportMetric(one, "runs/min_1job")
	b.ReportMetric(all, fmt.Sprintf("runs/min_%djobs", n))
	b.ReportMetric(all/one, "ratio")
	b.ReportMetric(1000*stepSecs[0]/float64(steps[0]), "ipca_ms/case_1job")
	b.ReportMetric(1000*stepSecs[1]/float64(steps[1]), fmt.Sprintf("ipca_ms/case_%djobs", n))
	b.ReportMetric(0, "ns/op")
}

func testCasesOf(cs []cases.Case) []cases.Case {
	var out []cases.Case
	for _, c := range cs {
		if c.Split == "test" {
			out = append(out, c)
		}
	}
	return out
}

// A variant's own settings (VariantModels) are what its runs train with and
// are part of their fingerprint; settings for a variant not compared, or
// naming another variant, are refused.
func TestCompareVariantOwnSettings(t *testing.T) {
	opt := caseset.DefaultOptions()
	opt.Cases, opt.Dim, opt.MinPatches, opt.MaxPatches = 12, 16, 40, 60
	work, cs := generatedCases(t, opt)
	tc := model.DefaultTrainConfig()
	tc.Epochs, tc.EffectiveBatch, tc.LR, tc.Seed = 1, 4, 1e-3, 3
	shared := fixture.SmallModel(model.VariantIPCA)
	own := func(dim int) model.Config {
		c, err := model.ParseConfigOver(func() model.Config { c := shared; c.Variant = model.VariantTransMIL; return c }(),
			[]byte(fmt.Sprintf(`{"dim": %d}`, dim)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	out := t.TempDir()
	o := pipeline.CompareOptions{
		Cases: cs, Work: work, Encoder: opt.Encoder, Model: shared,
		VariantModels: map[string]model.Config{model.VariantTransMIL: own(16)},
		Variants:      []string{model.VariantABMIL, model.VariantTransMIL}, Train: tc, Seeds: []uint64{3}, Out: out, Jobs: 1,
	}
	rs, err := pipeline.Compare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	dims := map[string]int{}
	for _, r := range rs {
		c, err := model.ReadConfig(filepath.Join(r.Dir(out), "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		dims[r.Variant] = c.Dim
		if c.InDim != shared.InDim {
			t.Errorf("%s ran with in_dim %d, want the shared %d", r.Variant, c.InDim, shared.InDim)
		}
	}
	if dims[model.VariantTransMIL] != 16 || dims[model.VariantABMIL] != 0 {
		t.Errorf("dims per variant %v; want transmil 16 (its own), abmil unset", dims)
	}
	// Other own settings in the same folder: the fingerprint differs.
	o.VariantModels = map[string]model.Config{model.VariantTransMIL: own(32)}
	if _, err := pipeline.Compare(context.Background(), o); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("other own settings: %v", err)
	}
	for name, vm := range map[string]map[string]model.Config{
		"not compared":  {model.VariantPAMA: func() model.Config { c := shared; c.Variant = model.VariantPAMA; return c }()},
		"other variant": {model.VariantTransMIL: shared},
	} {
		o.Out, o.VariantModels = t.TempDir(), vm
		if _, err := pipeline.Compare(context.Background(), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
