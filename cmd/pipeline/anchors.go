package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/her2wsi/her2wsi/pipeline"
)

const anchorsUsage = "usage: pipeline anchors bins --work WORK --slide ID --ppk V --out FILE.h5  ('pipeline anchors bins -h' lists the flags)"

func runAnchors(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Println(anchorsUsage)
		return nil
	}
	if len(args) == 0 || args[0] != "bins" {
		return usageError{errors.New(anchorsUsage)}
	}
	fs := newFlags("anchors bins", "--work WORK --slide ID --ppk V --out FILE.h5")
	work := fs.String("work", "", "work folder (required)")
	id := fs.String("slide", "", "slide id (required)")
	ppk := fs.Int("ppk", 18, "patches-per-anchor group")
	out := fs.String("out", "", "output HDF5 file (required)")
	maxMB := fs.Int64("max-mb", 1024, "refuse when one K×N matrix would exceed this many MB")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *work == "" || *id == "" || *out == "" {
		return usageError{errors.New("--work, --slide and --out are required")}
	}
	if err := pipeline.WriteBins(pipeline.Work{Dir: *work}, *id, *ppk, *out, *maxMB<<20); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", *out)
	return nil
}
