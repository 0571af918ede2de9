package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth/caseset"
)

// The anchors stage builds the slide graph over the features it names (an
// output of the stage, its features part of the stage's key); the
// slidegraph variant loads it, trains on it and predicts through the
// same calls as the other variants.
func TestSlideGraphStageTrainPredict(t *testing.T) {
	opt := caseset.DefaultOptions()
	opt.Cases, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.Folds, opt.SlideGraph = 8, 16, 60, 120, 2, true
	work, cs := generatedCases(t, opt)
	id := cs[0].HE
	gpath := work.SlideGraphH5(id, opt.Encoder)
	if _, err := os.Stat(gpath); err != nil {
		t.Fatalf("no slide graph: %v", err)
	}
	// Stage plan: the graph is an output and the features are an input.
	aopt := pipeline.DefaultAnchorOptions()
	fp := func(p string) (string, error) {
		b, err := os.ReadFile(p)
		return fmt.Sprint(len(b)), err
	}
	keyPlain, outPlain, err := pipeline.NewAnchorStage(work, aopt, 1).Plan(pipeline.Input{ID: id}, fp)
	if err != nil {
		t.Fatal(err)
	}
	aopt.GraphFeatures = opt.Encoder
	keyGraph, outGraph, err := pipeline.NewAnchorStage(work, aopt, 1).Plan(pipeline.Input{ID: id}, fp)
	if err != nil {
		t.Fatal(err)
	}
	if keyPlain == keyGraph || !slices.Contains(outGraph, gpath) || slices.Contains(outPlain, gpath) {
		t.Errorf("plan: keys equal %v, graph output listed %v/%v", keyPlain == keyGraph, slices.Contains(outGraph, gpath), slices.Contains(outPlain, gpath))
	}

	c := model.DefaultConfig()
	c.Variant, c.InDim = model.VariantSlideGraph, opt.Dim
	l, err := pipeline.PredictLoader(c, false)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := pipeline.LoadExample(work, opt.Encoder, id, c, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ex.V < 2 || ex.V >= ex.N || len(ex.Edges) == 0 || len(ex.Assign) != ex.N || len(ex.NodeX) != ex.V*opt.Dim {
		t.Fatalf("graph: %d nodes for %d patches, %d edges, %d assigned", ex.V, ex.N, len(ex.Edges), len(ex.Assign))
	}
	rt := testRuntime(t, c)
	tc := model.DefaultTrainConfig()
	tc.Epochs, tc.EffectiveBatch, tc.LR = 2, 2, 1e-3
	out := filepath.Join(t.TempDir(), "run")
	rep, err := pipeline.Train(context.Background(), pipeline.TrainOptions{Cases: cs, Work: work, Encoder: opt.Encoder, Model: c, Train: tc, Out: out, Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Test == nil || rep.Test.N == 0 {
		t.Fatalf("no test metrics: %+v", rep.Test)
	}
	p, err := model.LoadWeights(filepath.Join(out, "model.safetensors"), c)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := rt.Predict(p, ex)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Attention) != ex.N {
		t.Fatalf("%d node contributions for %d patches", len(pr.Attention), ex.N)
	}
	// Patches of one node carry its one contribution.
	for i := range ex.Assign {
		for j := range ex.Assign {
			if ex.Assign[i] == ex.Assign[j] && pr.Attention[i] != pr.Attention[j] {
				t.Fatalf("patches %d and %d share node %d but not its contribution", i, j, ex.Assign[i])
			}
		}
	}
	// Without the graph file: one clear error naming the slide.
	if err := os.Remove(gpath); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.LoadExample(work, opt.Encoder, id, c, l, nil); err == nil {
		t.Error("loaded a slidegraph example without its graph")
	} else if !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "slide graph") {
		t.Errorf("error %q does not name the slide and the missing graph", err)
	}
}
