package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/pipeline"
)

const casesUsage = "usage: pipeline cases check|split --cases FILE.csv [flags] | pipeline cases pair --he DIR --ihc DIR (--out FILE.csv | --work WORK) [flags]  ('pipeline cases SUB -h' lists a form's flags)"

func runCases(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Println(casesUsage)
		return nil
	}
	if len(args) > 0 && args[0] == "pair" {
		return runCasesPair(args[1:])
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

// runCasesPair builds a case set from an H&E folder and an IHC folder whose
// files are paired by name (pipeline cases pair).
func runCasesPair(args []string) error {
	fs := newFlags("cases pair", "--he DIR --ihc DIR [--labels LABELS.csv | --label-pattern REGEX] --out FILE.csv [flags]")
	heDir := fs.String("he", "", "folder of H&E slides or images (required)")
	ihcDir := fs.String("ihc", "", "folder of IHC slides or images with the same file names (required)")
	labels := fs.String("labels", "", "CSV with the columns name,label[,split]: each case's HER2 label by name (file name with or without extension)")
	pattern := fs.String("label-pattern", cases.DefaultLabelPattern, "regular expression finding the label in a file name without extension: the group named label (else the first group) and, optionally, one named split; used without --labels (the default reads BCI's names: 00672_test_3+ is 3+, test)")
	out := fs.String("out", "", "case set CSV to write (default: WORK/cases.csv with --work)")
	work := fs.String("work", "", "work folder: --out defaults to its cases.csv")
	recursive := fs.Bool("recursive", false, "descend into sub-folders (a file's path below its folder pairs it); give the run --recursive too")
	allow := fs.Bool("allow-unmatched", false, "write the set even when some files have no partner: an H&E file becomes an H&E-only case, an IHC file is left out (each is listed)")
	force := fs.Bool("force", false, "overwrite an existing --out")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *heDir == "" || *ihcDir == "" {
		return usageError{errors.New("--he and --ihc are required")}
	}
	dst := *out
	if dst == "" && *work != "" {
		dst = filepath.Join(*work, cases.DefaultName)
	}
	if dst == "" {
		return usageError{errors.New("--out (or --work) is required")}
	}
	patternSet := false
	fs.Visit(func(f *flag.Flag) { patternSet = patternSet || f.Name == "label-pattern" })
	if *labels != "" && patternSet {
		return usageError{errors.New("give --labels or --label-pattern, not both")}
	}
	var opt cases.PairOptions
	opt.AllowUnmatched = *allow
	if *labels != "" {
		lt, err := cases.ReadLabels(*labels)
		if err != nil {
			return reportProblems(err)
		}
		opt.Labels = lt
	} else {
		re, err := regexp.Compile(*pattern)
		if err != nil {
			return usageError{fmt.Errorf("--label-pattern %q: %v", *pattern, err)}
		}
		if err := cases.CheckLabelPattern(re); err != nil {
			return usageError{err}
		}
		opt.Pattern = re
	}
	if !*force {
		if _, err := os.Stat(dst); err == nil {
			return usageError{fmt.Errorf("%s exists: pass --force to overwrite it, or choose another --out", dst)}
		}
	}
	he, ihc, err := pairFiles(*heDir, *ihcDir, *recursive)
	if err != nil {
		return err
	}
	res := cases.Pair(he, ihc, opt)
	for _, n := range res.Notes {
		fmt.Fprintf(os.Stderr, "note: %s\n", n)
	}
	if len(res.Problems) > 0 {
		if res.Unmatched > 0 && !*allow {
			defer fmt.Fprintf(os.Stderr, "%d file(s) have no partner of the same name: pass --allow-unmatched to write the set without them\n", res.Unmatched)
		}
		return reportProblems(cases.Problems(res.Problems))
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := cases.Write(dst, res.Cases); err != nil {
		return err
	}
	fmt.Print(cases.SplitSummary(res.Cases))
	fmt.Printf("wrote %s: %d cases from %s and %s\n", dst, len(res.Cases), *heDir, *ihcDir)
	return nil
}

// pairFiles lists the slides and images of the two folders for cases.Pair,
// with the slide ids pipeline.FindSlides gives them when both folders are
// the inputs of one run (`pipeline run --input HE --input IHC`).
func pairFiles(heDir, ihcDir string, recursive bool) (he, ihc []cases.PairFile, err error) {
	dirs := []string{heDir, ihcDir}
	abs := make([]string, 2)
	for i, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("%s: %w", d, unwrapPathErr(err))}
		}
		if !fi.IsDir() {
			return nil, nil, usageError{fmt.Errorf("%s is not a folder", d)}
		}
		if abs[i], err = filepath.Abs(d); err != nil {
			return nil, nil, err
		}
	}
	if abs[0] == abs[1] {
		return nil, nil, usageError{fmt.Errorf("--he and --ihc are the same folder (%s)", heDir)}
	}
	if recursive && (within(abs[0], abs[1]) || within(abs[1], abs[0])) {
		return nil, nil, usageError{fmt.Errorf("with --recursive, neither of --he %s and --ihc %s may be inside the other", heDir, ihcDir)}
	}
	slides, err := pipeline.FindSlides(dirs, recursive)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range slides {
		// The folder a file came from: the innermost that holds it.
		side := 0
		if within(abs[1], s.Path) && (!within(abs[0], s.Path) || len(abs[1]) > len(abs[0])) {
			side = 1
		}
		rel, err := filepath.Rel(abs[side], s.Path)
		if err != nil {
			return nil, nil, err
		}
		ext := filepath.Ext(rel)
		f := cases.PairFile{Path: filepath.Join(dirs[side], rel), Name: filepath.ToSlash(strings.TrimSuffix(rel, ext)), Ext: ext, ID: s.ID}
		if side == 0 {
			he = append(he, f)
		} else {
			ihc = append(ihc, f)
		}
	}
	for i, list := range [][]cases.PairFile{he, ihc} {
		if len(list) == 0 {
			return nil, nil, usageError{fmt.Errorf("no slides or images found in %s (extensions: %s)", dirs[i], strings.Join(pipeline.SlideExtensions, " "))}
		}
	}
	return he, ihc, nil
}

// within says whether path lies inside folder dir (both absolute and clean).
func within(dir, path string) bool {
	return strings.HasPrefix(path, dir+string(filepath.Separator))
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
