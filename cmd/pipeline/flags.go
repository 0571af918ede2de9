package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/model"
)

// One vocabulary across commands: each concept has one flag name, defined
// once in an option group below and shared by every command that needs it.
//
//	--work DIR        the work folder (slides/<id>/..., predictions.csv)
//	--encoder FILE    the ONNX encoder (a file, or a name in $HER2WSI_MODELS)
//	--features NAME   which features/<NAME>.h5 a model reads
//	--model DIR       a trained model's run folder (model.safetensors + config.json)
//	--variant NAME    a model architecture (ipca, ipca-noproxy, pama, abmil)
//	--model-config F  a model-config JSON
//	--config F        a settings file (YAML/TOML) of the command's flags
//	--out PATH        what the command writes (train: its run folder; synth: the slide or case folder)
//
// Old names stay as hidden aliases (run/watch --out for --work; train and
// predict --encoder for --features; train --model for --variant and
// --config JSON for --model-config): they still work, and help lists only
// the new names.

// flagSets remembers, per flag set, the hidden aliases and the command's
// argument synopsis.
var flagSets = map[*flag.FlagSet]*flagInfo{}

type flagInfo struct {
	args   string
	hidden map[string]bool
}

func newFlags(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	flagSets[fs] = &flagInfo{args: args, hidden: map[string]bool{}}
	fs.SetOutput(io.Discard) // parse prints nothing; see parse
	fs.Usage = func() {}
	return fs
}

// alias registers old as a hidden second name of the flag named target.
func alias(fs *flag.FlagSet, old, target string) {
	f := fs.Lookup(target)
	if f == nil {
		panic("alias of unknown flag " + target)
	}
	fs.Var(f.Value, old, "same as --"+target)
	flagSets[fs].hidden[old] = true
}

// isHidden says whether a flag is a hidden alias.
func isHidden(fs *flag.FlagSet, name string) bool {
	info := flagSets[fs]
	return info != nil && info.hidden[name]
}

// printUsage writes the command's synopsis and its flags (aliases left
// out), sorted, in the flag package's format.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	info := flagSets[fs]
	args := ""
	if info != nil {
		args = info.args
	}
	fmt.Fprintf(w, "usage: pipeline %s %s\n\nflags:\n", fs.Name(), args)
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !isHidden(fs, f.Name) {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	for _, n := range names {
		f := fs.Lookup(n)
		name, usage := flag.UnquoteUsage(f)
		line := "  -" + n
		if name != "" {
			line += " " + name
		}
		if len(line) <= 4 {
			line += "\t"
		} else {
			line += "\n    \t"
		}
		line += strings.ReplaceAll(usage, "\n", "\n    \t")
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "0s" {
			line += " (default " + d + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// errHelp: -h was asked for and the usage printed; the command exits 0.
var errHelp = errors.New("help printed")

// parse parses flags. -h prints the usage on stdout (exit 0); a bad flag
// is one line and a pointer to -h (exit 2).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(os.Stdout, fs)
			return errHelp
		}
		return usageError{fmt.Errorf("%v (see pipeline %s -h)", err, fs.Name())}
	}
	return nil
}

// workFlag is --work, the work folder; extra names are hidden aliases.
func workFlag(fs *flag.FlagSet, usage string, aliases ...string) *string {
	p := fs.String("work", "", usage)
	for _, a := range aliases {
		alias(fs, a, "work")
	}
	return p
}

// encoderOptions are the ONNX encoder's flags (run, watch).
type encoderOptions struct {
	encoder, device, ortLib string
	threads                 int
}

func (o *encoderOptions) addFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&o.encoder, "encoder", "", prefix+"encoder .onnx file or name (see $"+features.ModelsEnv+")")
	fs.StringVar(&o.device, "device", "cpu", prefix+"cpu, cuda, cuda:N, or auto (CUDA when it loads, else CPU)")
	fs.StringVar(&o.ortLib, "ort-lib", "", "ONNX Runtime library (default: $"+features.LibraryEnv+", else the one installed beside the binary (../lib/her2wsi) or fetched into its checkout)")
	fs.IntVar(&o.threads, "threads", 0, prefix+"ONNX Runtime intra-op threads (0: its default)")
}

func (o *encoderOptions) validate() error {
	if _, _, err := features.ParseDevice(o.device); err != nil {
		return err
	}
	if o.threads < 0 {
		return fmt.Errorf("--threads %d must not be negative", o.threads)
	}
	return nil
}

func (o *encoderOptions) options() features.Options {
	return features.Options{Device: o.device, Threads: o.threads, Library: o.ortLib}
}

// modelOptions choose a trained model (run, predict, watch).
type modelOptions struct {
	runDir, weights, config, backend string
}

func (o *modelOptions) addFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&o.runDir, "model", "", prefix+"run folder of 'pipeline train' (model.safetensors + config.json)")
	fs.StringVar(&o.weights, "weights", "", prefix+"weight file in the reference names (instead of --model)")
	fs.StringVar(&o.config, "model-config", "", prefix+"model-config JSON for --weights")
	fs.StringVar(&o.backend, "backend", "", prefix+"GoMLX backend (default $GOMLX_BACKEND, else "+model.DefaultBackend+")")
}

func (o *modelOptions) set() bool { return o.runDir != "" || o.weights != "" }

// featuresFlag is --features NAME, with --encoder as a hidden alias where
// it used to mean the features name (a file given there names its
// features through its manifest, as in run).
func featuresFlag(fs *flag.FlagSet, usage string, encoderAlias bool) *string {
	p := fs.String("features", "", usage)
	if encoderAlias {
		alias(fs, "encoder", "features")
	}
	return p
}
