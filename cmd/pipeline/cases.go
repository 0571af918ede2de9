package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/pipeline"
)

const casesUsage = "usage: pipeline cases check|split --cases FILE.csv [flags]  ('pipeline cases check -h' lists the flags)"

func runCases(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Println(casesUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "check" && args[0] != "split") {
		return usageError{errors.New(casesUsage)}
	}
	sub := args[0]
	fs := newFlags("cases "+sub, "--cases FILE.csv [flags]")
	file := fs.String("cases", "", "case set CSV (required)")
	work := fs.String("work", "", "check: work folder (required)")
	encoder := featuresFlag(fs, "check: features name (features/<NAME>.h5) the model reads (required)", true)
	ppk := fs.Int("ppk", 18, "check: patches-per-anchor group the model reads")
	seed := fs.Uint64("seed", 2024, "split: random seed")
	testFrac := fs.Float64("test-frac", 0.3, "split: fraction of each label held out for test (7:3 → 0.3)")
	folds := fs.Int("folds", 5, "split: cross-validation folds on the training cases")
	out := fs.String("out", "", "split: output CSV (default: rewrite --cases in place)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *file == "" {
		return usageError{errors.New("--cases is required")}
	}
	cs, err := cases.Read(*file)
	if err != nil {
		return reportProblems(err)
	}
	switch sub {
	case "check":
		if *work == "" || *encoder == "" {
			return usageError{errors.New("check needs --work and --features")}
		}
		*encoder = featuresOf(*encoder)
		he := map[string]bool{}
		for _, c := range cs {
			he[c.HE] = true
		}
		chk := pipeline.SlideChecker{Work: pipeline.Work{Dir: *work}, Encoder: *encoder, PPK: *ppk, NeedAnchors: func(id string) bool { return he[id] }}
		if ps := cases.Check(cs, filepath.Base(*file), chk); len(ps) > 0 {
			return reportProblems(cases.Problems(ps))
		}
		fmt.Printf("%s: %d cases, every slide tiled, embedded with %s and (H&E) anchored\n", *file, len(cs), *encoder)
	case "split":
		split, err := cases.Split(cs, *seed, *testFrac, *folds)
		if err != nil {
			return err
		}
		dst := *out
		if dst == "" {
			dst = *file
		}
		if err := cases.Write(dst, split); err != nil {
			return err
		}
		fmt.Print(cases.SplitSummary(split))
		fmt.Printf("wrote %s\n", dst)
	}
	return nil
}

// reportProblems prints one line per problem and returns a short error.
func reportProblems(err error) error {
	var ps cases.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			fmt.Fprintln(os.Stderr, p)
		}
		return fmt.Errorf("%d problem(s); nothing written", len(ps))
	}
	return err
}
