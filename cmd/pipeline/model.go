package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/model/metrics"
	"github.com/her2wsi/her2wsi/pipeline"
)

// modelFlags are the model-config flags shared by train.
type modelFlags struct {
	config, variant, backend *string
	reference                *bool
}

func addModelFlags(fs *flag.FlagSet) modelFlags {
	m := modelFlags{
		config:    fs.String("model-config", "", "model-config JSON (keys as README; missing keys take the defaults)"),
		variant:   fs.String("variant", "", "model variant: "+strings.Join(model.Variants, ", ")+" (overrides the model config)"),
		backend:   fs.String("backend", "", "GoMLX backend (default $GOMLX_BACKEND, else "+model.DefaultBackend+"; xla:/abs/path/plugin.so on a GPU)"),
		reference: fs.Bool("reference", false, "the reference code's settings (128 prompts, no kernel masking, reference padding, evaluation and first-N patch sampling, AdamW 1e-5, batch 1, per-epoch cosine T_max 50 over 100 epochs; with --input, PAMA's grid subsample above 4096 patches)"),
	}
	alias(fs, "config", "model-config") // before the vocabulary was one
	alias(fs, "model", "variant")
	return m
}

func (m modelFlags) resolve() (model.Config, error) {
	c := model.DefaultConfig()
	if *m.reference {
		c = model.ReferenceCodeConfig()
	}
	if *m.config != "" {
		var err error
		if c, err = model.ReadConfig(*m.config); err != nil {
			return c, err
		}
	}
	if *m.variant != "" {
		c.Variant = *m.variant
	}
	return c, c.Validate()
}

// trainConfigOf is the training config train and compare run with: the
// defaults (the reference's with reference), replaced by file when given,
// then --epochs (> 0) and --seed (≥ 0) over it, validated.
func trainConfigOf(reference bool, file string, epochs int, seed int64) (model.TrainConfig, error) {
	tc := model.DefaultTrainConfig()
	if reference {
		tc = model.ReferenceTrainConfig()
	}
	if file != "" {
		var err error
		if tc, err = model.ReadTrainConfig(file); err != nil {
			return tc, err
		}
	}
	if epochs > 0 {
		tc.Epochs = epochs
	}
	if seed >= 0 {
		tc.Seed = uint64(seed)
	}
	return tc, tc.Validate()
}

// checkSampling checks --sampling: empty (the default) or a bundle sampling.
func checkSampling(s string) error {
	if s != "" && s != bundle.SampleSpatial && s != bundle.SampleFirst && s != bundle.SampleRandom {
		return fmt.Errorf("--sampling %q: spatial, first or random", s)
	}
	return nil
}

func runTrain(ctx context.Context, args []string) error {
	fs := newFlags("train", "--cases cases.csv --work WORK --features NAME --out RUNDIR [flags]")
	file := fs.String("cases", "", "case set CSV with split and folds (pipeline cases split)")
	work := fs.String("work", "", "work folder holding the cases' features and anchors")
	out := fs.String("out", "", "run folder (resumed when it holds a checkpoint of the same settings)")
	encoder := featuresFlag(fs, "features name (features/<NAME>.h5) the model reads; an encoder .onnx file names its features", true)
	mf := addModelFlags(fs)
	trainCfg := fs.String("train-config", "", "training-config JSON (optimizer, lr, min_lr, weight_decay, warmup_epochs, epochs, patience, effective_batch, class_balanced, seed)")
	cv := fs.Int("cv", 0, "cross-validate over this many folds, then train on every training case and test")
	valFold := fs.Int("val-fold", 0, "without --cv: the fold validated on (-1: none)")
	epochs := fs.Int("epochs", 0, "epochs (overrides the training config)")
	seed := fs.Int64("seed", -1, "seed (overrides the training config)")
	sampling := fs.String("sampling", "", "training patch sampling for slides over max_patches: spatial (spatially uniform random subsets; default), first (the reference's first N in raster order; default with --reference) or random")
	cache := fs.Bool("cache", true, "keep bundles in memory between epochs")
	var inputs stringList
	fs.Var(&inputs, "input", "slide file or folder holding the cases' slides: they are tiled, embedded (with --encoder FILE.onnx) and anchored first, skipping what is up to date (repeatable)")
	recursive := fs.Bool("recursive", false, "with --input: descend into sub-folders")
	mpp := fs.Float64("mpp", 0, "with --input: µm/px at level 0 for slides or images whose metadata has none")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" || *work == "" || *out == "" || *encoder == "" {
		return usageError{errors.New("--cases, --work, --out and --features are required")}
	}
	encoderFile := *encoder
	*encoder = featuresOf(*encoder)
	c, err := mf.resolve()
	if err != nil {
		return usageError{err}
	}
	tc, err := trainConfigOf(*mf.reference, *trainCfg, *epochs, *seed)
	if err != nil {
		return usageError{err}
	}
	if err := checkSampling(*sampling); err != nil {
		return usageError{err}
	}
	cs, err := cases.Read(*file)
	if err != nil {
		return reportProblems(err)
	}
	bar := setupLogging(logf, false)
	defer bar.Finish()
	if len(inputs) > 0 {
		if err := prepareCases(ctx, pipeline.Work{Dir: *work}, cs, inputs, *recursive, *mpp, encoderFile, c.PPK, *mf.reference, c.Spec().NeedsGraph); err != nil {
			return err
		}
	}
	be, err := model.NewBackend(*mf.backend)
	if err != nil {
		return err
	}
	rt, err := model.NewRuntime(c, be)
	if err != nil {
		return err
	}
	defer rt.Close()
	slog.Info("training", "variant", c.Variant, "backend", be.Name(), "cases", len(cs), "out", *out)
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	rep, err := pipeline.Train(ctx, pipeline.TrainOptions{
		Cases: cs, Work: pipeline.Work{Dir: *work}, Encoder: *encoder, Model: c, Train: tc, Out: *out,
		CV: *cv, ValFold: *valFold, Sampling: *sampling, Cache: *cache, Runtime: rt,
		Step: func(run string, d, n int, loss float64) {
			if tty {
				fmt.Fprintf(os.Stderr, "\r%s: %d/%d loss %.4f   ", run, d, n, loss)
			}
		},
		Epoch: func(run string, l model.EpochLog) {
			if tty {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			attrs := []any{"run", run, "epoch", l.Epoch, "loss", fmt.Sprintf("%.4f", l.TrainLoss), "lr", fmt.Sprintf("%.2g", l.LR), "elapsed", (time.Duration(l.Seconds * float64(time.Second))).Round(100 * time.Millisecond)}
			if l.ValAUC != nil {
				attrs = append(attrs, "val_macro_auc", fmt.Sprintf("%.3f", *l.ValAUC), "val_acc", fmt.Sprintf("%.3f", *l.ValAcc))
			}
			slog.Info("epoch", attrs...)
		},
	})
	if err != nil {
		return err
	}
	if len(rep.CV) > 0 {
		fmt.Printf("cross-validation (%d folds), mean ± std:\n", len(rep.CV))
		for _, k := range []string{"accuracy", "macro_auc", "weighted_auc", "macro_f1", "weighted_f1"} {
			fmt.Printf("  %-13s %.3f ± %.3f\n", k, rep.CVMean[k], rep.CVStd[k])
		}
	}
	if rep.Val != nil {
		fmt.Printf("validation: accuracy %s, macro-AUC %s, macro-F1 %s\n", rep.Val.WithCI(metrics.NameAccuracy), rep.Val.WithCI(metrics.NameMacroAUC), rep.Val.WithCI(metrics.NameMacroF1))
	}
	if rep.Test != nil {
		fmt.Printf("test (%d cases): accuracy %s, macro-AUC %s, weighted-AUC %s, macro-F1 %s, weighted-F1 %s\n", rep.Test.N,
			rep.Test.WithCI(metrics.NameAccuracy), rep.Test.WithCI(metrics.NameMacroAUC), rep.Test.WithCI(metrics.NameWeightedAUC),
			rep.Test.WithCI(metrics.NameMacroF1), rep.Test.WithCI(metrics.NameWeightedF1))
		if rep.Test.CI != nil {
			fmt.Printf("  [95 %% CI]: %s, %d replicates\n", rep.Test.CI.Method, rep.Test.CI.Replicates)
		}
		fmt.Print(rep.ExplainTest())
	}
	fmt.Printf("model %s (%s, %d epochs): %s\n", rep.ModelID, c.Variant, rep.Epochs, filepath.Join(*out, "model.safetensors"))
	return nil
}

func runPredict(ctx context.Context, args []string) error {
	fs := newFlags("predict", "(--model RUNDIR | --weights W.safetensors [--model-config C.json]) --work WORK [--features NAME] --input SLIDE...")
	var mo modelOptions
	mo.addFlags(fs, "")
	work := workFlag(fs, "work folder holding the slides' features and anchors (required)")
	encoder := featuresFlag(fs, "features name (features/<NAME>.h5; default: the slide's only features file)", true)
	var inputs stringList
	fs.Var(&inputs, "input", "slide file or id (repeatable; positional arguments too)")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	inputs = append(inputs, fs.Args()...)
	if (mo.runDir == "") == (mo.weights == "") || *work == "" || len(inputs) == 0 {
		return usageError{errors.New("one of --model or --weights, and --work and --input are required")}
	}
	setupLogging(logf, false).Finish()
	ps, err := pipeline.OpenPredictStage(pipeline.Work{Dir: *work}, featuresOf(*encoder), mo.runDir, mo.weights, mo.config, mo.backend)
	if err != nil {
		return err
	}
	ins := make([]pipeline.Input, len(inputs))
	for i, in := range inputs {
		id := slideIDOf(in)
		if fi, err := os.Stat(in); err == nil && !fi.IsDir() {
			if tiled, ok := (pipeline.Work{Dir: *work}).SlideIDOfFile(in); ok {
				id = tiled // the id it was tiled under (e.g. HE-x for HE/x.png beside IHC/x.png)
			}
		}
		ins[i] = pipeline.Input{ID: id}
	}
	return predictIDs(ctx, pipeline.Work{Dir: *work}, ins, ps)
}

// predictIDs predicts slides through the runner (each slide locked, one
// bad slide does not stop the others, state.json recorded), then prints
// the rows written to predictions.csv.
func predictIDs(ctx context.Context, work pipeline.Work, ins []pipeline.Input, ps *pipeline.PredictStage) error {
	runner := &pipeline.Runner{Work: work, Stages: []pipeline.Stage{ps}}
	defer runner.Close()
	rep, stopped := runner.Run(ctx, ins, pipeline.RunOptions{})
	for _, r := range ps.Rows() {
		fmt.Printf("%s: HER2 %s (p = %s) report %s\n", r.SlideID, cases.LabelName(r.Predicted), fmtProbs(r.Probs), work.ReportHTML(r.SlideID))
	}
	if len(ps.Rows()) > 0 {
		fmt.Printf("predictions: %s (model %s)\n", work.PredictionsCSV(), ps.Model().ID)
	}
	for _, s := range rep.Summaries {
		if s.Failed > 0 || s.Interrupted > 0 || s.Stage == pipeline.StageLock {
			s.WriteSummary(os.Stderr)
		}
	}
	switch {
	case stopped != nil:
		return stopped
	case rep.Failed() > 0:
		return fmt.Errorf("%d slide(s) failed", rep.Failed())
	case rep.Locked > 0:
		return lockedError{n: rep.Locked}
	}
	return nil
}

func fmtProbs(p []float64) string {
	s := make([]string, len(p))
	for i, v := range p {
		s[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(s, "/")
}

// slideIDOf maps a slide path or id to the id.
func slideIDOf(s string) string {
	base := filepath.Base(s)
	if ext := filepath.Ext(base); ext != "" && slicesContainsFold(pipeline.SlideExtensions, ext) {
		return strings.TrimSuffix(base, ext)
	}
	return base
}

func slicesContainsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// featuresName is the features file name the predict stage reads: the
// given --features, else the encoder's manifest name, else the encoder
// argument's base name.
func featuresName(flagVal, encoder string) string {
	if flagVal != "" {
		return flagVal
	}
	if m, ok, err := features.ReadManifest(encoder); err == nil && ok && m.Name != "" {
		return m.Name
	}
	base := filepath.Base(encoder)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// featuresOf maps a --features value to the features name: an encoder
// file (.onnx, or one with a manifest) names its features as run does;
// anything else is the name itself.
func featuresOf(v string) string {
	if v == "" {
		return ""
	}
	if strings.HasSuffix(strings.ToLower(v), ".onnx") {
		return featuresName("", v)
	}
	if m, ok, err := features.ReadManifest(v); err == nil && ok && m.Name != "" {
		return m.Name
	}
	return v
}

// prepareCases is train --input: the cases' slides through the runner
// (tile, embed, anchors) before training.
// Reference mode adds PAMA's grid subsample above 4096 patches to the
// anchors stage.
func prepareCases(ctx context.Context, work pipeline.Work, cs []cases.Case, inputs []string, recursive bool, mpp float64, encoderFile string, ppk int, reference, graph bool) error {
	if fi, err := os.Stat(encoderFile); err != nil || fi.IsDir() {
		return usageError{fmt.Errorf("--input needs the encoder as a file (--features/--encoder FILE.onnx), not the name %q", encoderFile)}
	}
	slides, err := pipeline.FindSlides(inputs, recursive)
	if err != nil {
		return usageError{err}
	}
	topt := pipeline.DefaultTileOptions()
	topt.MPP = mpp
	if err := topt.Validate(); err != nil {
		return usageError{err}
	}
	aopt := pipeline.DefaultAnchorOptions()
	if reference {
		aopt = pipeline.ReferenceAnchorOptions()
	}
	if !slices.Contains(aopt.PPK, ppk) {
		aopt.PPK = append(aopt.PPK, ppk)
	}
	es, err := pipeline.OpenEmbedStage(work, encoderFile, features.Options{}, pipeline.DefaultEmbedOptions())
	if err != nil {
		return err
	}
	if graph { // the slidegraph variant: its graph is built in the anchors stage
		aopt.GraphFeatures = es.Encoder().Name()
	}
	r := &pipeline.Runner{Work: work, Stages: []pipeline.Stage{pipeline.NewTileStage(work, topt, 0), es, pipeline.NewAnchorStage(work, aopt, 0)}}
	defer r.Close()
	rep, missing, err := pipeline.PrepareCases(ctx, r, cs, slides)
	for _, s := range rep.Summaries {
		s.WriteSummary(os.Stderr)
	}
	if len(missing) > 0 {
		slog.Warn("case slides in no --input: their features must be in the work folder already", "slides", len(missing), "first", missing[0])
	}
	switch {
	case err != nil:
		return err
	case rep.Failed() > 0:
		return fmt.Errorf("preparing the cases' slides: %d slide-stage(s) failed; nothing trained", rep.Failed())
	case rep.Locked > 0:
		return lockedError{n: rep.Locked}
	}
	return nil
}
