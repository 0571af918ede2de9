package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
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
	// Interrupted counts slides the stage was working on when the run was
	// stopped (their error is context.Canceled): not failed, a rerun
	// finishes them.
	Interrupted int
	Results     []Result
}

// NewSummary counts results.
func NewSummary(stage string, rs []Result) Summary {
	s := Summary{Stage: stage, Results: rs}
	for _, r := range rs {
		switch {
		case r.NotRun:
			s.NotRun++
		case errors.Is(r.Err, context.Canceled):
			s.Interrupted++
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
	if s.Interrupted > 0 {
		fmt.Fprintf(w, ", %d interrupted (the run was stopped while working on them; a rerun finishes them)", s.Interrupted)
	}
	if s.NotRun > 0 {
		fmt.Fprintf(w, ", %d not run (an earlier stage failed or the run stopped)", s.NotRun)
	}
	fmt.Fprintln(w)
	for _, r := range s.Results {
		switch {
		case r.Err == nil || r.NotRun:
		case errors.Is(r.Err, context.Canceled):
			fmt.Fprintf(w, "  INTERRUPTED %s\n", r.ID)
		default:
			fmt.Fprintf(w, "  FAILED %s: %v\n", r.ID, r.Err)
		}
	}
}

// runOneStage runs one stage over the inputs through a Runner: locks,
// freshness and state.json as `run` has them. Slides locked by another
// process come back as skipped results of the stage.
func runOneStage(ctx context.Context, inputs []Input, work Work, st Stage, prog Progress) Summary {
	r := &Runner{Work: work, Stages: []Stage{st}, Progress: prog}
	rep, err := r.Run(ctx, inputs, RunOptions{})
	sum, _ := rep.Summary(st.Name())
	if lock, ok := rep.Summary(StageLock); ok {
		for _, res := range lock.Results {
			res.Stage = st.Name()
			if err != nil && res.Err == nil && !res.Skipped {
				res.Err = err
			}
			sum.Results = append(sum.Results, res)
		}
	}
	return NewSummary(st.Name(), sum.Results)
}
