package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/her2wsi/her2wsi/compare"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/model/metrics"
	"github.com/her2wsi/her2wsi/pipeline"
)

// runCompare is `pipeline compare`: every variant trained with the same
// seeds on the same folds, tested on the same held-out cases, compared
// with bootstrap intervals and paired differences.
func runCompare(ctx context.Context, args []string) error {
	fs := newFlags("compare", "--cases cases.csv --work WORK --features NAME --out DIR [--variants ipca,pama,abmil] [--seeds 5] [--cv 5] [flags]")
	file := fs.String("cases", "", "case set CSV with split and folds (pipeline cases split)")
	work := workFlag(fs, "work folder holding the cases' features and anchors")
	out := fs.String("out", "", "output folder: compare.json, compare.md, forest.png, roc.png, runs/ (a rerun skips finished runs)")
	encoder := featuresFlag(fs, "features name (features/<NAME>.h5) the models read", true)
	variants := fs.String("variants", "ipca,pama,abmil", "variants to compare, comma-separated: "+strings.Join(model.Variants, ", "))
	seeds := fs.Int("seeds", 5, "training seeds per variant (each sets data order, initialisation and kernel masking)")
	seed := fs.Int64("seed", -1, "first seed; the others follow it (default: the training config's)")
	cv := fs.Int("cv", 5, "folds: per seed one run per fold, validated on it (best epoch), trained on the other training folds; 0: one run per seed on every training case, last epoch")
	jobs := fs.Int("jobs", 0, "runs trained at once (0: one per CPU)")
	modelCfg := fs.String("model-config", "", "model-config JSON shared by the variants (its variant key is ignored)")
	own := variantConfigs{}
	fs.Var(own, "variant-config", "a variant's own model-config keys over the shared ones, as `VARIANT=FILE` (repeatable; e.g. transmil=small.json)")
	trainCfg := fs.String("train-config", "", "training-config JSON shared by the variants (its seed is the first seed)")
	reference := fs.Bool("reference", false, "the reference code's settings (see train)")
	epochs := fs.Int("epochs", 0, "epochs (overrides the training config)")
	backend := fs.String("backend", "", "GoMLX backend (default $GOMLX_BACKEND, else "+model.DefaultBackend+")")
	sampling := fs.String("sampling", "", "training patch sampling for slides over max_patches: spatial (default), first (default with --reference) or random (as train)")
	cache := fs.Bool("cache", true, "keep bundles in memory between epochs")
	replicates := fs.Int("replicates", metrics.DefaultReplicates, "bootstrap replicates")
	pairs := fs.String("pairs", compare.PairsAuto, "paired differences: all (every pair), first (the first variant against each other) or auto (all up to three variants, else first)")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	if *file == "" || *work == "" || *out == "" || *encoder == "" {
		return usageError{errors.New("--cases, --work, --out and --features are required")}
	}
	var names []string
	for _, v := range strings.Split(*variants, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if _, err := model.VariantOf(v); err != nil {
			return usageError{fmt.Errorf("--variants: %w", err)}
		}
		for _, w := range names {
			if w == v {
				return usageError{fmt.Errorf("--variants: %s given twice", v)}
			}
		}
		names = append(names, v)
	}
	pairsErr := compare.CheckPairs(*pairs)
	switch {
	case len(names) < 2:
		return usageError{errors.New("--variants: at least two variants to compare")}
	case *seeds < 1 || *seeds > 1000:
		return usageError{fmt.Errorf("--seeds %d: 1 to 1000", *seeds)}
	case *cv < 0 || *cv == 1:
		return usageError{fmt.Errorf("--cv %d: 0 (no cross-validation) or at least 2 folds", *cv)}
	case *jobs < 0:
		return usageError{fmt.Errorf("--jobs %d must not be negative", *jobs)}
	case pairsErr != nil:
		return usageError{fmt.Errorf("--%w", pairsErr)}
	case *replicates < 100:
		return usageError{fmt.Errorf("--replicates %d: at least 100", *replicates)}
	}
	if err := checkSampling(*sampling); err != nil {
		return usageError{err}
	}
	c := model.DefaultConfig()
	if *reference {
		c = model.ReferenceCodeConfig()
	}
	var err error
	if *modelCfg != "" {
		if c, err = model.ReadConfig(*modelCfg); err != nil {
			return usageError{err}
		}
	}
	ownModels := map[string]model.Config{}
	ownNotes := map[string]string{}
	for v, path := range own {
		if !slices.Contains(names, v) {
			return usageError{fmt.Errorf("--variant-config %s=%s: %s is not in --variants", v, path, v)}
		}
		base := c
		base.Variant = v
		vc, err := model.ReadConfigOver(base, path)
		if err != nil {
			return usageError{fmt.Errorf("--variant-config %s: %w", v, err)}
		}
		if vc.Variant != v {
			return usageError{fmt.Errorf("--variant-config %s=%s: the file is for variant %q", v, path, vc.Variant)}
		}
		note, err := compactJSONFile(path)
		if err != nil {
			return usageError{fmt.Errorf("--variant-config %s: %w", v, err)}
		}
		ownModels[v], ownNotes[v] = vc, note
	}
	tc, err := trainConfigOf(*reference, *trainCfg, *epochs, *seed)
	if err != nil {
		return usageError{err}
	}
	seedList := make([]uint64, *seeds)
	for i := range seedList {
		seedList[i] = tc.Seed + uint64(i)
	}
	cs, err := cases.Read(*file)
	if err != nil {
		return reportProblems(err)
	}
	setupLogging(logf, false).Finish()
	feat := featuresOf(*encoder)
	runs, err := pipeline.Compare(ctx, pipeline.CompareOptions{
		Cases: cs, Work: pipeline.Work{Dir: *work}, Encoder: feat, Model: c, VariantModels: ownModels, Variants: names, Train: tc,
		Seeds: seedList, CV: *cv, Out: *out, Jobs: *jobs, Backend: *backend, Sampling: *sampling, Cache: *cache,
		Done: func(r pipeline.CompareRun, skipped bool, finished, total int) {
			attrs := []any{"variant", r.Variant, "seed", r.Seed, "fold", r.Fold, "runs", fmt.Sprintf("%d/%d", finished, total)}
			if skipped {
				slog.Info("compare: run done earlier", attrs...)
				return
			}
			slog.Info("compare: run done", append(attrs, "best_epoch", r.BestEpoch+1, "seconds", fmt.Sprintf("%.0f", r.Seconds))...)
		},
	})
	if err != nil {
		return err
	}
	in := make([]compare.Run, len(runs))
	for i, r := range runs {
		cr := compare.Run{Variant: r.Variant, Seed: r.Seed, Fold: r.Fold}
		for _, t := range r.Test {
			cr.IDs, cr.Labels, cr.Probs = append(cr.IDs, t.ID), append(cr.Labels, t.Label), append(cr.Probs, t.Probs)
		}
		in[i] = cr
	}
	res, err := compare.Analyse(in, names, compare.Options{Classes: c.Classes, Replicates: *replicates, Seed: tc.Seed, Pairs: *pairs})
	if err != nil {
		return err
	}
	trainNoSeed := tc
	trainNoSeed.Seed = 0
	res.Settings = map[string]any{"cases": *file, "work": *work, "features": feat, "cv": *cv, "model": c, "train": trainNoSeed, "sampling": *sampling}
	if len(ownModels) > 0 {
		res.Settings["variant_models"] = ownModels
		res.OwnSettings = ownNotes
	}
	if err := compare.Write(*out, res); err != nil {
		return err
	}
	fmt.Print(res.Markdown())
	fmt.Printf("\ncompare: %s, %s, %s, %s\n", filepath.Join(*out, compare.FileJSON), filepath.Join(*out, compare.FileMarkdown),
		filepath.Join(*out, compare.FileForest), filepath.Join(*out, compare.FileROC))
	return nil
}

// variantConfigs is --variant-config VARIANT=FILE, repeatable.
type variantConfigs map[string]string

func (v variantConfigs) String() string {
	var parts []string
	for k, f := range v {
		parts = append(parts, k+"="+f)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (v variantConfigs) Set(s string) error {
	name, path, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || path == "" {
		return fmt.Errorf("%q: want VARIANT=FILE", s)
	}
	if _, err := model.VariantOf(name); err != nil {
		return err
	}
	if _, dup := v[name]; dup {
		return fmt.Errorf("%s given twice", name)
	}
	v[name] = path
	return nil
}

// compactJSONFile is a JSON file's content on one line (for the report).
func compactJSONFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return out.String(), nil
}
