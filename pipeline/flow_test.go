package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// RunFlow passes each slide on as soon as a stage has finished it (the
// stages overlap: wall time well under the sum of the stages), never
// passes on a failed slide, reports the later stages of a failed slide as
// not run, keeps results in input order, and stops on cancellation.
func TestRunFlow(t *testing.T) {
	var ins []Input
	for i := 0; i < 8; i++ {
		ins = append(ins, Input{ID: fmt.Sprintf("s%d", i)})
	}
	var secondSaw, aBusy, overlapped atomic.Int32
	const d = 20 * time.Millisecond
	stages := []FlowStage{
		{Name: "a", Workers: 1, Run: func(ctx context.Context, in Input) Result {
			aBusy.Add(1)
			defer aBusy.Add(-1)
			time.Sleep(d)
			if in.ID == "s3" {
				return Result{ID: in.ID, Err: errors.New("pipeline: s3: bad")}
			}
			return Result{ID: in.ID}
		}},
		{Name: "b", Workers: 1, Run: func(ctx context.Context, in Input) Result {
			secondSaw.Add(1)
			if in.ID == "s3" {
				t.Error("a failed slide was passed on")
			}
			if aBusy.Load() > 0 {
				overlapped.Store(1)
			}
			time.Sleep(d)
			if aBusy.Load() > 0 {
				overlapped.Store(1)
			}
			return Result{ID: in.ID}
		}},
	}
	sums, rep := RunFlow(context.Background(), ins, stages, nil)
	if sums[0].Done != 7 || sums[0].Failed != 1 || sums[1].Done != 7 || sums[1].NotRun != 1 || sums[1].Failed != 0 {
		t.Fatalf("summaries: %+v / %+v", sums[0], sums[1])
	}
	for i, r := range sums[1].Results {
		if r.ID != ins[i].ID {
			t.Fatalf("result %d is %s", i, r.ID)
		}
	}
	// Streamed, stage b works on one slide while stage a works on the next
	// (observed directly: a wall-time bound failed on a loaded machine).
	if overlapped.Load() == 0 {
		t.Errorf("stages did not overlap: b never ran while a did (%v for 15 × %v of work)", rep.Wall, d)
	}
	if s := rep.Slowest(); s.Name == "" || s.Share <= 0 || s.Share > 1.01 {
		t.Errorf("busy report %+v", rep)
	}

	// Cancellation: the feeder stops; unstarted slides are not run.
	ctx, cancel := context.WithCancel(context.Background())
	stages[0].Run = func(ctx context.Context, in Input) Result {
		if in.ID == "s1" {
			cancel()
		}
		return Result{ID: in.ID}
	}
	sums, _ = RunFlow(ctx, ins, stages, nil)
	if sums[0].Done+sums[0].NotRun != len(ins) || sums[0].NotRun == 0 {
		t.Fatalf("after cancel: %+v", sums[0])
	}
}

// A OneEngine stage is busy while any of its workers is: its busy time is
// at most the wall time and at least the summed time over its workers.
func TestRunFlowOneEngine(t *testing.T) {
	var ins []Input
	for i := 0; i < 6; i++ {
		ins = append(ins, Input{ID: fmt.Sprintf("s%d", i)})
	}
	run := func(ctx context.Context, in Input) Result {
		time.Sleep(5 * time.Millisecond)
		return Result{ID: in.ID}
	}
	stages := []FlowStage{{Name: "feed", Workers: 1, Run: run}, {Name: "engine", Workers: 3, OneEngine: true, Run: run}}
	_, rep := RunFlow(context.Background(), ins, stages, nil)
	e := rep.Stages[1]
	if e.Busy <= 0 || e.Busy > rep.Wall || e.Share > 1.0001 || e.Share < float64(6*5*time.Millisecond)/float64(3*rep.Wall) {
		t.Fatalf("one-engine report %+v (wall %v)", e, rep.Wall)
	}
}
