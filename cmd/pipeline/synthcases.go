package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth/caseset"
)

// synthCasesRequested reports whether synth's arguments ask for a synthetic
// case set (--cases N) rather than a synthetic slide.
func synthCasesRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "cases" {
			return true
		}
	}
	return false
}

// runSynthCases is `pipeline synth --cases N --out WORK`: a synthetic case
// set (paired H&E and IHC slides, features, anchors, cases.csv) for training
// and checking the model without private data.
func runSynthCases(ctx context.Context, args []string) error {
	fs := newFlags("synth", "--cases N --out WORK [flags]")
	o := caseset.DefaultOptions()
	fs.IntVar(&o.Cases, "cases", 0, "number of cases, each an H&E and an IHC slide (at least 4; required)")
	out := fs.String("out", "", "folder to write the case set into, a work folder for train (required; reused if it exists)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (layouts, features, labels and the split)")
	fs.IntVar(&o.Dim, "dim", o.Dim, "feature dimension")
	fs.StringVar(&o.Encoder, "features", o.Encoder, "features name they are stored under (features/<NAME>.h5)")
	alias(fs, "encoder", "features")
	fs.Float64Var(&o.HESignal, "he-signal", o.HESignal, "strength of the label in the H&E features (0: none)")
	fs.Float64Var(&o.IHCSignal, "ihc-signal", o.IHCSignal, "strength of the membrane stain in the IHC features")
	fs.IntVar(&o.MinPatches, "min-patches", o.MinPatches, "fewest H&E patches per slide")
	fs.IntVar(&o.MaxPatches, "max-patches", o.MaxPatches, "most H&E patches per slide")
	fs.Float64Var(&o.TestFrac, "test-frac", o.TestFrac, "fraction of each label held out for test")
	fs.IntVar(&o.Folds, "folds", o.Folds, "cross-validation folds on the training cases")
	fs.BoolVar(&o.SlideGraph, "slide-graph", false, "also build each slide's SlideGraph+ graph (anchors stage; the slidegraph variant reads it)")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	if *out == "" {
		return usageError{errors.New("--out is required")}
	}
	if o.Cases < 4 {
		return usageError{fmt.Errorf("--cases %d: at least 4", o.Cases)}
	}
	if o.MinPatches <= 0 || o.MaxPatches <= 0 || o.Dim <= 0 || o.Folds <= 0 {
		return usageError{errors.New("--dim, --min-patches, --max-patches and --folds must be positive")}
	}
	setupLogging(logf, false)
	start := time.Now()
	csv, err := caseset.Generate(ctx, pipeline.Work{Dir: *out}, o)
	if err != nil {
		return err
	}
	cs, err := cases.Read(csv)
	if err != nil {
		return err
	}
	fmt.Print(cases.SplitSummary(cs))
	fmt.Printf("wrote %d cases (%d slides: %s, %d-dim features, H&E signal %g, IHC signal %g) in %s\n",
		len(cs), 2*len(cs), filepath.Join(*out, "slides"), o.Dim, o.HESignal, o.IHCSignal, time.Since(start).Round(time.Millisecond))
	fmt.Printf("cases: %s\n", csv)
	fmt.Printf("check: pipeline cases check --cases %s --work %s --encoder %s\n", csv, *out, o.Encoder)
	return nil
}
