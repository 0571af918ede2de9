package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/her2wsi/her2wsi/pipeline"
)

// allStages are the stages in order; those not built yet are refused.
var allStages = []string{pipeline.StageTile, pipeline.StageEmbed, pipeline.StageAnchors, pipeline.StagePredict}

var plannedStages = []string{}

// parseStages turns --stage/--from into the ordered list of stages to run.
func parseStages(stage, from string) ([]string, error) {
	var want []string
	switch {
	case from != "":
		i := slices.Index(allStages, from)
		if i < 0 {
			return nil, unknownStage(from)
		}
		want = allStages[i:]
	case stage == "" || stage == "all":
		want = allStages
	default:
		for _, s := range strings.Split(stage, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allStages, s) {
				return nil, unknownStage(s)
			}
			if !slices.Contains(want, s) {
				want = append(want, s)
			}
		}
	}
	// Keep pipeline order whatever order they were named in.
	var out []string
	for _, s := range allStages {
		if slices.Contains(want, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func unknownStage(s string) error {
	if slices.Contains(plannedStages, s) {
		return fmt.Errorf("stage %q is not built yet (stages now: %s)", s, strings.Join(allStages, ", "))
	}
	return fmt.Errorf("unknown stage %q (stages: %s, or all)", s, strings.Join(allStages, ", "))
}

// runStages is `pipeline run` (every stage's flags) and `pipeline tile`
// (the tile stage's alone).
func runStages(ctx context.Context, name string, args []string) error {
	tileOnly := name == "tile"
	synopsis := "--input FILE|DIR [--input ...] --work WORK [--stage tile,embed,anchors,predict|all] [flags]"
	if tileOnly {
		synopsis = "--input FILE|DIR [--input ...] --work WORK [flags]"
	}
	fs := newFlags(name, synopsis)
	var inputs stringList
	fs.Var(&inputs, "input", "slide file or directory of slides (repeatable; extra arguments are inputs too)")
	work := workFlag(fs, "work folder (required)", "out")
	stage, from := new(string), new(string)
	*stage = pipeline.StageTile
	if !tileOnly {
		stage = fs.String("stage", "all", "stages to run: "+strings.Join(allStages, ", ")+", a comma-separated list, or all")
		from = fs.String("from", "", "run this stage and every later one")
	}
	force := fs.Bool("force", false, "redo work that is up to date")
	recursive := fs.Bool("recursive", false, "descend into sub-directories of input directories")
	var shard pipeline.Shard
	fs.Var(&shard, "shard", "run only share `i/n` of the slides (0-based, 0 ≤ i < n; a hash of the slide id decides), for array jobs")
	lockStale := fs.Duration("lock-stale", pipeline.DefaultStaleAfter, "take over a slide lock whose heartbeat is older than this")
	lockWait := fs.String("lock-wait", "auto", "wait this long for slides locked by other processes (auto: 0, with --shard the lock-stale time + 1m)")
	// tile
	opt := pipeline.DefaultTileOptions()
	fs.Float64Var(&opt.MPP, "mpp", 0, "microns per pixel at level 0 for slides whose metadata has none (overrides the metadata)")
	fs.Float64Var(&opt.Grid.TargetMPP, "target-mpp", opt.Grid.TargetMPP, "patch resolution in µm/px (0.5 = 20×)")
	fs.IntVar(&opt.Grid.PatchSize, "patch-size", opt.Grid.PatchSize, "patch side in pixels at the target resolution")
	fs.Float64Var(&opt.Grid.MinTissue, "min-tissue", opt.Grid.MinTissue, "tissue fraction a patch needs to be kept (0..1]")
	fs.Float64Var(&opt.Grid.MPPTolerance, "mpp-tolerance", opt.Grid.MPPTolerance, "relative tolerance for reading a level as an exact multiple of the target")
	fs.Float64Var(&opt.Grid.MaskMPP, "mask-mpp", opt.Grid.MaskMPP, "resolution of the tissue mask in µm/px")
	fs.StringVar(&opt.Reader, "reader", "", "force a loader: tiffload or openslideload (default: fastest correct one)")
	fs.IntVar(&opt.QCMaxSide, "qc-size", opt.QCMaxSide, "long side of qc.png and heatmap.png in pixels (level 0's size when smaller; larger costs tiling time)")
	workersHelp := "tile and anchors stages: slides processed at once (0: tile min(CPUs, 4), anchors CPUs)"
	if tileOnly {
		workersHelp = "slides tiled at once (0: min(CPUs, 4))"
	}
	workers := fs.Int("workers", 0, workersHelp)
	eopt := pipeline.DefaultEmbedOptions()
	aopt := pipeline.DefaultAnchorOptions()
	var enc encoderOptions
	var mo modelOptions
	ppkList, featName, slideGraph := new(string), new(string), new(bool)
	*ppkList = joinInts(aopt.PPK)
	if !tileOnly {
		// embed
		enc.addFlags(fs, "embed stage: ")
		fs.IntVar(&eopt.Batch, "batch", eopt.Batch, "embed stage: patches per inference call")
		fs.IntVar(&eopt.Readers, "readers", eopt.Readers, "embed stage: goroutines reading and preprocessing patches")
		fs.BoolVar(&eopt.ScaledDecode, "scaled-decode", eopt.ScaledDecode, "embed stage: decode 40×/80× JPEG tiles at 1/2 or 1/4 scale (libjpeg-turbo) instead of whole then averaged; false reads every pixel")
		fs.IntVar(&eopt.InFlight, "in-flight", eopt.InFlight, "embed stage: slides open at once")
		// anchors
		ppkList = fs.String("ppk", joinInts(aopt.PPK), "anchors stage: patches-per-anchor values")
		fs.IntVar(&aopt.MaxIter, "kmeans-iter", aopt.MaxIter, "anchors stage: k-means iterations")
		fs.Uint64Var(&aopt.Seed, "seed", aopt.Seed, "anchors stage: k-means seed")
		fs.IntVar(&aopt.MaxPatches, "anchors-max-patches", 0, "anchors stage: subsample slides of more patches on their grid (every f-th row and column) as PAMA's extraction does (4096); 0: every patch")
		fs.BoolVar(slideGraph, "slide-graph", false, "anchors stage: also build each slide's SlideGraph+ graph over the features (the slidegraph model variant reads it)")
		// predict
		mo.addFlags(fs, "predict stage: ")
		featName = featuresFlag(fs, "predict stage: features name to read (default: the encoder's name)", false)
	}
	enc.device = "cpu"
	cfgFile := fs.String("config", "", "settings file (YAML or TOML) whose keys are these flags' names; flags given here win")
	logf := addLogFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cfgFile != "" {
		if err := applyConfigFile(fs, *cfgFile); err != nil {
			return usageError{err}
		}
	}
	inputs = append(inputs, fs.Args()...)
	if len(inputs) == 0 || *work == "" {
		return usageError{errors.New("--input and --work are required")}
	}
	stages, err := parseStages(*stage, *from)
	if err != nil {
		return usageError{err}
	}
	if aopt.MaxPatches < 0 {
		return usageError{fmt.Errorf("--anchors-max-patches %d: want 0 (every patch) or a positive cap", aopt.MaxPatches)}
	}
	if aopt.PPK, err = parseInts(*ppkList); err != nil || len(aopt.PPK) == 0 {
		return usageError{fmt.Errorf("--ppk %q: want comma-separated positive integers", *ppkList)}
	}
	if err := opt.Validate(); err != nil {
		return usageError{err}
	}
	if slices.Contains(stages, pipeline.StageEmbed) && enc.encoder == "" {
		return usageError{errors.New("the embed stage needs --encoder FILE.onnx (or a name)")}
	}
	lockWaitD := time.Duration(-1)
	if *lockWait != "auto" {
		if lockWaitD, err = time.ParseDuration(*lockWait); err != nil || lockWaitD < 0 {
			return usageError{fmt.Errorf("--lock-wait %q: want auto or a duration such as 30m", *lockWait)}
		}
	}
	predicting := slices.Contains(stages, pipeline.StagePredict)
	if predicting && !mo.set() {
		return usageError{errors.New("the predict stage needs --model RUNDIR (or --weights W.safetensors)")}
	}
	if predicting && enc.encoder == "" && *featName == "" {
		return usageError{errors.New("the predict stage needs --encoder or --features (the features name it reads)")}
	}
	if err := enc.validate(); err != nil {
		return usageError{err}
	}
	slides, err := pipeline.FindSlides(inputs, *recursive)
	if err != nil {
		return usageError{err}
	}
	if len(slides) == 0 {
		return usageError{fmt.Errorf("no slides found in %s (extensions: %s)", strings.Join(inputs, ", "), strings.Join(pipeline.SlideExtensions, " "))}
	}
	if err := eopt.Validate(); err != nil {
		return usageError{err}
	}
	if *workers < 0 {
		return usageError{fmt.Errorf("--workers %d must not be negative", *workers)}
	}
	bar := setupLogging(logf, true)
	defer bar.Finish()
	wd := pipeline.Work{Dir: *work}
	if err := writeEffectiveConfig(fs, filepath.Join(*work, "run-config.yaml")); err != nil {
		return err
	}
	if total := len(slides); !shard.All() {
		slides = pipeline.ShardInputs(shard, slides)
		fmt.Fprintf(os.Stderr, "shard %s: %d of %d slides\n", shard, len(slides), total)
	}
	lopt := pipeline.LockOptions{StaleAfter: *lockStale, Wait: lockWaitD}
	if lopt.Wait < 0 {
		lopt.Wait = 0
		if !shard.All() {
			lopt.Wait = lopt.StaleAfter + time.Minute
		}
	}
	// The stages asked for, in order; each opens what it owns.
	runner := &pipeline.Runner{Work: wd, Lock: lopt, Progress: bar}
	defer runner.Close()
	featuresUsed := featuresName(*featName, enc.encoder)
	for _, st := range stages {
		switch st {
		case pipeline.StageTile:
			runner.Stages = append(runner.Stages, pipeline.NewTileStage(wd, opt, *workers))
		case pipeline.StageEmbed:
			es, err := pipeline.OpenEmbedStage(wd, enc.encoder, enc.options(), eopt)
			if err != nil {
				return err
			}
			runner.Stages = append(runner.Stages, es)
			if *featName == "" {
				featuresUsed = es.Encoder().Name()
			}
		case pipeline.StageAnchors:
			if *slideGraph {
				if featuresUsed == "" {
					return usageError{errors.New("--slide-graph needs --encoder or --features (the features the graph clusters)")}
				}
				aopt.GraphFeatures = featuresUsed
			}
			runner.Stages = append(runner.Stages, pipeline.NewAnchorStage(wd, aopt, *workers))
		case pipeline.StagePredict:
			ps, err := pipeline.OpenPredictStage(wd, featuresUsed, mo.runDir, mo.weights, mo.config, mo.backend)
			if err != nil {
				return err
			}
			runner.Stages = append(runner.Stages, ps)
		}
	}
	rep, stopped := runner.Run(ctx, slides, pipeline.RunOptions{Force: *force})
	bar.Finish()
	for _, s := range rep.Summaries {
		s.WriteSummary(os.Stderr)
	}
	if len(stages) > 1 && rep.Slides > 0 {
		rep.Flow.Write(os.Stderr)
		sl := rep.Flow.Slowest()
		fmt.Fprintf(os.Stderr, "%d slides in %s (%.0f slides/hour); slowest stage %s busy %.0f%% of the time\n",
			rep.Slides, rep.Flow.Wall.Round(time.Millisecond), float64(rep.Slides)/rep.Flow.Wall.Hours(), sl.Name, 100*sl.Share)
	}
	if rep.Slides > 0 {
		fmt.Printf("results: %s\n", filepath.Join(*work, "slides", "<slide_id>"))
		if predicting {
			fmt.Printf("predictions: %s\n", wd.PredictionsCSV())
		}
	}
	if stopped != nil {
		return stopped
	}
	if runtimeErr := encoderRuntimeError(rep); runtimeErr != nil {
		return runtimeErr
	}
	if failed := rep.Failed(); failed > 0 {
		return fmt.Errorf("%d slide-stage(s) failed", failed)
	}
	if rep.Locked > 0 {
		return lockedError{n: rep.Locked}
	}
	return nil
}

// encoderRuntimeError is the first failure of the encoder's runtime itself
// (every slide after it would fail alike): the run's error.
func encoderRuntimeError(rep pipeline.RunReport) error {
	s, ok := rep.Summary(pipeline.StageEmbed)
	if !ok {
		return nil
	}
	for _, r := range s.Results {
		if r.Err != nil && errors.Is(r.Err, pipeline.ErrEncoderRuntime) {
			return r.Err
		}
	}
	return nil
}

// lockedError: some slides are being processed by another live process,
// so this run did not do them (exit code 3).
type lockedError struct{ n int }

func (e lockedError) Error() string {
	return fmt.Sprintf("%d slide(s) are locked by another running process and were not processed: run again once it is done, or pass --lock-wait DURATION", e.n)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad integer %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}
