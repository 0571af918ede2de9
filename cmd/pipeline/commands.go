package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
)

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return "her2wsi " + s.Value
			}
		}
	}
	return "her2wsi " + pipeline.Version
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runInfo(ctx context.Context, args []string) error {
	fs := newFlags("info", "[--json] [--mpp X] SLIDE...")
	asJSON := fs.Bool("json", false, "print JSON lines: one object per slide and line, all properties included")
	mpp := fs.Float64("mpp", 0, "microns per pixel at level 0, overriding the metadata")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	setupLogging(logf, false)
	if fs.NArg() == 0 {
		return usageError{errors.New("no slide given")}
	}
	failed := 0
	for _, p := range fs.Args() {
		meta, err := slide.ReadMetadata(p, slide.Options{MPP: *mpp})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed++
			continue
		}
		if *asJSON {
			b, _ := json.Marshal(meta)
			fmt.Println(string(b))
		} else {
			printInfo(os.Stdout, meta)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d slides could not be read", failed, fs.NArg())
	}
	return nil
}

func printInfo(w io.Writer, m slide.Metadata) {
	fmt.Fprintf(w, "%s\n", m.Path)
	fmt.Fprintf(w, "  slide id:        %s\n", m.ID)
	fmt.Fprintf(w, "  format:          %s, vendor %s, %d bytes\n", m.Format, m.Vendor, m.SizeBytes)
	comp := m.Compression
	if comp == "" {
		comp = "-"
	}
	fmt.Fprintf(w, "  reader:          %s (compression %s)\n", m.Reader, comp)
	if m.MPPX > 0 {
		fmt.Fprintf(w, "  mpp:             %.4f x %.4f µm/px (%s)\n", m.MPPX, m.MPPY, m.MPPSource)
	} else {
		fmt.Fprintf(w, "  mpp:             unknown (pass --mpp)\n")
	}
	if m.ObjectivePower > 0 {
		fmt.Fprintf(w, "  objective power: %gx\n", m.ObjectivePower)
	} else {
		fmt.Fprintf(w, "  objective power: unknown\n")
	}
	assoc := "none"
	if len(m.Associated) > 0 {
		assoc = strings.Join(m.Associated, ", ")
	}
	fmt.Fprintf(w, "  associated:      %s\n", assoc)
	fmt.Fprintf(w, "  levels:          %d\n", len(m.Levels))
	for i, lv := range m.Levels {
		mpp := ""
		if lv.MPPX > 0 {
			mpp = fmt.Sprintf("  %.4f µm/px", lv.MPPX)
		}
		tile := ""
		if lv.TileWidth > 0 {
			kind := "tile"
			if m.Format == "dicom" {
				kind = "frame"
			}
			tile = fmt.Sprintf("  %s %d x %d", kind, lv.TileWidth, lv.TileHeight)
		}
		fmt.Fprintf(w, "    %d: %d x %d  downsample %.4g%s%s\n", i, lv.Width, lv.Height, lv.Downsample, mpp, tile)
		if m.Format == "dicom" {
			key := fmt.Sprintf("dicom.level[%d].", i)
			org := m.Properties[key+"dimension-organization"]
			if org == "" {
				org = "not stated"
			}
			fmt.Fprintf(w, "       %s: %s frames, %s (%s), dimension organization %s\n", m.Properties[key+"file"],
				m.Properties[key+"frames"], m.Properties[key+"transfer-syntax-name"], m.Properties[key+"transfer-syntax"], org)
			if o := m.Properties[key+"frame-order"]; o != "" {
				fmt.Fprintf(w, "       frame order: %s\n", o)
			}
		}
	}
}

func runTile(ctx context.Context, args []string) error {
	return runStages(ctx, "tile", args)
}

func runRun(ctx context.Context, args []string) error {
	return runStages(ctx, "run", args)
}

func runSynth(ctx context.Context, args []string) error {
	if synthCasesRequested(args) {
		return runSynthCases(ctx, args)
	}
	fs := newFlags("synth", "--out FILE.svs [flags] | --dicom --out FOLDER [flags]")
	out := fs.String("out", "", "output file (required)")
	o := synth.SlideOptions{Aperio: true, Pyramid4: true}
	fs.IntVar(&o.Width, "width", 16384, "level-0 width in pixels")
	fs.IntVar(&o.Height, "height", 12288, "level-0 height in pixels")
	fs.Float64Var(&o.MPP, "mpp", 0.25, "µm per pixel written to the header (0: none)")
	fs.Float64Var(&o.AppMag, "mag", 40, "objective power written to the header (0: none)")
	fs.BoolVar(&o.BigTIFF, "bigtiff", false, "write BigTIFF")
	stain := fs.String("stain", "he", "texture: he or ihc")
	blobs := fs.Int("blobs", 3, "number of tissue pieces")
	seed := fs.Uint64("seed", 1, "random seed")
	dicom := fs.Bool("dicom", false, "write a DICOM WSI series instead: --out is a folder, one TILED_FULL JPEG .dcm per level")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, errHelp) { // and the case-set form's flags
			fmt.Println()
			_ = runSynthCases(ctx, []string{"-h"})
		}
		return err
	}
	if *out == "" {
		return usageError{errors.New("--out is required")}
	}
	o.Stain, o.Seed = *stain, *seed
	o.Tissue = synth.Layout(o.Width, o.Height, *blobs)
	if o.MPP == 0 && o.AppMag == 0 {
		o.Aperio = false
	}
	if *dicom {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		files, err := synth.WriteDICOM(*out, filepath.Base(*out), o)
		if err != nil {
			return err
		}
		fmt.Printf("wrote %s: %d DICOM instances (%dx%d, %g µm/px)\n", *out, len(files), o.Width, o.Height, o.MPP)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := synth.WriteSlide(*out, o); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%dx%d, %g µm/px)\n", *out, o.Width, o.Height, o.MPP)
	return nil
}

// logFlags choose the log format.
type logFlags struct {
	format  *string
	verbose *bool
}

func addLogFlags(fs *flag.FlagSet) logFlags {
	return logFlags{
		format:  fs.String("log-format", "auto", "log format: auto (text with a progress bar on a terminal), text or json"),
		verbose: fs.Bool("v", false, "verbose (debug) logging"),
	}
}
