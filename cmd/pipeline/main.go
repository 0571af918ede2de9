// Command pipeline is the her2wsi command line: flags in, pipeline calls out.
//
//	pipeline info SLIDE...                     print a slide's metadata
//	pipeline run --input FILE|DIR --out WORK [--stage tile,embed] --encoder M.onnx
//	pipeline tile --input FILE|DIR --out WORK  tissue mask + 20× patch grid
//	pipeline synth --out FILE.svs              generate a synthetic test slide
//	pipeline synth --cases N --out WORK        generate a synthetic case set (paired H&E/IHC bundles)
//	pipeline cases pair --he DIR --ihc DIR --out C.csv  case set from paired H&E/IHC folders
//	pipeline train --cases C.csv --work WORK --out RUNDIR --encoder NAME
//	pipeline compare --cases C.csv --work WORK --features NAME --variants ipca,pama,abmil --seeds 5 --cv 5 --out DIR
//	pipeline predict --model RUNDIR --work WORK --encoder NAME --input SLIDE...
//	pipeline watch --inbox DIR --out WORK --model RUNDIR --encoder M.onnx [--http :8080] [--once]
//	pipeline serve --work WORK [--http 127.0.0.1:8080]  status page and slide viewer of a work folder
//
// Exit codes: 0 success, 1 some slide failed, 2 usage error, 3 some slides
// locked by another running process (not processed), 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitLocked      = 3
	exitInterrupted = 130
)

// usageError marks errors in the command line itself.
type usageError struct{ error }

var commands = map[string]struct {
	run  func(ctx context.Context, args []string) error
	help string
}{
	"info":            {runInfo, "print the metadata of slides"},
	"run":             {runRun, "run stages (tile, embed, anchors, predict) over slides, skipping what is up to date"},
	"tile":            {runTile, "the tile stage alone (= run --stage tile)"},
	"synth":           {runSynth, "generate a synthetic pyramidal test slide, or (--cases N) a synthetic case set"},
	"cases":           {runCases, "cases check|split|pair: validate the case set against the work folder; stratified train/test split and folds; pair an H&E folder with an IHC folder into a case set"},
	"anchors":         {runAnchors, "anchors bins: write one ppk group's distance and polar bins over all patches"},
	"train":           {runTrain, "train (and cross-validate) a model on a case set; test on the held-out cases"},
	"compare":         {runCompare, "compare model variants on a case set: the same seeds and folds for each, bootstrap CIs, paired differences, forest plot and ROC bands"},
	"predict":         {runPredict, "H&E-only prediction of embedded, anchored slides with a trained model (= run --stage predict by slide id)"},
	"watch":           {runWatch, "watch a folder: process each slide once fully copied (tile, embed, anchors, predict), write a report, move it to done/ or failed/; optional status page"},
	"serve":           {runServe, "serve a work folder's status page, reports and slide viewer (Deep Zoom tiles, attention overlay) without watching an inbox"},
	"import-features": {runImport, "place CLAM/TRIDENT feature files made elsewhere into the work folder"},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: pipeline COMMAND [flags]\n\ncommands:\n")
	for _, name := range []string{"info", "run", "tile", "import-features", "anchors", "cases", "train", "compare", "predict", "watch", "serve", "synth"} {
		fmt.Fprintf(w, "  %-16s %s\n", name, commands[name].help)
	}
	fmt.Fprintf(w, "\n'pipeline COMMAND -h' lists a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		return exitOK
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Println(version())
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "pipeline: unknown command %q (see pipeline -h)\n", args[0])
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, args[1:])
	var ue usageError
	var le lockedError
	switch {
	case err == nil || errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, message(args[0], err))
		return exitUsage
	case errors.As(err, &le):
		fmt.Fprintln(os.Stderr, message(args[0], err))
		return exitLocked
	case ctx.Err() != nil:
		fmt.Fprintf(os.Stderr, "pipeline %s: interrupted\n", args[0])
		return exitInterrupted
	default:
		fmt.Fprintln(os.Stderr, message(args[0], err))
		return exitFailed
	}
}

// message is the one line main prints for a command's error: one
// "pipeline CMD:" prefix, without the "pipeline:" or "CMD:" the error may
// already start with.
func message(cmd string, err error) string {
	m := err.Error()
	for {
		switch {
		case strings.HasPrefix(m, "pipeline: "):
			m = m[len("pipeline: "):]
		case strings.HasPrefix(m, cmd+": "):
			m = m[len(cmd)+2:]
		default:
			return "pipeline " + cmd + ": " + m
		}
	}
}
