package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/her2wsi/her2wsi/pipeline"
)

func runImport(ctx context.Context, args []string) error {
	fs := newFlags("import-features", "--work WORK --features NAME [--slide ID] FILE.h5...")
	work := fs.String("work", "", "work folder (required)")
	var opt pipeline.ImportOptions
	fs.StringVar(&opt.Encoder, "features", "", "features name to store them under (features/<NAME>.h5), e.g. uni or conch (required)")
	alias(fs, "encoder", "features")
	fs.StringVar(&opt.SlideID, "slide", "", "slide id (default: each file's name without extension; only with one file)")
	fs.IntVar(&opt.PatchSizeLevel0, "patch-size-level0", 0, "grid step in level-0 pixels, for files that do not record it")
	fs.Float64Var(&opt.TargetMPP, "target-mpp", 0, "µm/px of the patches, for files that do not record it (default 0.5)")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	setupLogging(logf, false)
	if *work == "" || opt.Encoder == "" || fs.NArg() == 0 {
		return usageError{errors.New("--work, --features and at least one FILE.h5 are required")}
	}
	if opt.SlideID != "" && fs.NArg() > 1 {
		return usageError{errors.New("--slide names one slide: give one file with it")}
	}
	failed := 0
	for _, f := range fs.Args() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := pipeline.ImportFeatures(f, pipeline.Work{Dir: *work}, opt)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed++
			continue
		}
		fmt.Printf("imported %s: %d patches → %s\n", f, r.NumPatches, pipeline.Work{Dir: *work}.FeaturesH5(r.ID, opt.Encoder))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files could not be imported", failed, fs.NArg())
	}
	return nil
}
