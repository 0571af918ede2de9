package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

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
	work := pipeline.Work{Dir: t.TempDir()}
	opt := caseset.DefaultOptions()
	opt.Cases, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.Folds = 16, 16, 40, 60, 2
	csv, err := caseset.Generate(context.Background(), work, opt)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := cases.Read(csv)
	if err != nil {
		t.Fatal(err)
	}
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
