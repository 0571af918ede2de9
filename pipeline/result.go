package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Stage names.
const (
	StageTile  = "tile"
	StageEmbed = "embed"
)

// Result reports one slide in one stage.
type Result struct {
	Stage      string
	ID, Path   string
	Skipped    bool // already done with the same parameters and inputs
	Reason     string
	NumPatches int
	Tissue     float64       // tile: tissue fraction of the slide
	MaskTime   time.Duration // tile: low-resolution read + mask + grid
	Elapsed    time.Duration
	Err        error
	NotRun     bool // streamed run: an earlier stage failed, or the run stopped first (Err says which)
}

// Progress receives one call per finished slide of a stage.
type Progress interface {
	Start(stage string, total int)
	Done(r Result)
}

// Summary counts one stage of a batch.
type Summary struct {
	Stage                 string
	Done, Skipped, Failed int
	NotRun                int // a streamed run's slides that failed an earlier stage
	Results               []Result
}

// NewSummary counts results.
func NewSummary(stage string, rs []Result) Summary {
	s := Summary{Stage: stage, Results: rs}
	for _, r := range rs {
		switch {
		case r.NotRun:
			s.NotRun++
		case r.Err != nil:
			s.Failed++
		case r.Skipped:
			s.Skipped++
		default:
			s.Done++
		}
	}
	return s
}

// WriteSummary prints the stage's counts and each failed slide with its reason.
func (s Summary) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "%s: %d done, %d skipped, %d failed", s.Stage, s.Done, s.Skipped, s.Failed)
	if s.NotRun > 0 {
		fmt.Fprintf(w, ", %d not run (an earlier stage failed or the run stopped)", s.NotRun)
	}
	fmt.Fprintln(w)
	for _, r := range s.Results {
		if r.Err != nil && !r.NotRun {
			fmt.Fprintf(w, "  FAILED %s: %v\n", r.ID, r.Err)
		}
	}
}

// forEachSlide runs one stage's per-slide function over the inputs, at most
// workers at once. A slide's failure is logged and recorded and the others
// go on; a cancelled ctx stops starting new slides.
func forEachSlide(ctx context.Context, stage string, inputs []Input, workers int, prog Progress, run func(context.Context, Input) Result) Summary {
	if prog != nil {
		prog.Start(stage, len(inputs))
	}
	results := make([]Result, len(inputs))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for i, in := range inputs {
		if gctx.Err() != nil {
			results[i] = Result{Stage: stage, ID: in.ID, Path: in.Path, Err: fmt.Errorf("pipeline: %s: not started: %w", in.ID, gctx.Err())}
			continue
		}
		g.Go(func() error {
			r := run(gctx, in)
			if r.Err != nil {
				slog.Error(r.Err.Error(), "slide", in.ID, "stage", stage)
			}
			results[i] = r
			if prog != nil {
				mu.Lock()
				prog.Done(r)
				mu.Unlock()
			}
			return nil // one slide's failure never stops the batch
		})
	}
	_ = g.Wait()
	return NewSummary(stage, results)
}
