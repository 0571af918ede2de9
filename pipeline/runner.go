package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// The runner: one way for a slide to go through stages, whatever asked for
// it (`run` with one stage or several, `predict`, `watch`).
//
//	cmd/pipeline ──options──▶ Stage values (tile, embed, anchors, predict)
//	                              │
//	                          Runner.Run(inputs)
//	                              ├─ LockSlides: each slide's lock, held to the end
//	                              ├─ RunFlow: slides streamed through the stages
//	                              │    per slide and stage: Stage.Plan → Work.Fresh
//	                              │    → skip, or Stage.Run → stamps → state.json
//	                              ├─ Finisher.Finish (predictions.csv, once)
//	                              └─ release the locks
//
// Stages do the work unconditionally; the runner alone decides what is up
// to date (fresh.go) and records what was done (state.go).

// Stage is one step of the per-slide chain.
type Stage interface {
	// Name is the stage's name in state.json, logs and summaries.
	Name() string
	// Workers is how many slides the stage takes at once (1 for a stage
	// that owns one ONNX session or one GoMLX runtime).
	Workers() int
	// Params is what state.json records as the stage's parameters.
	Params() any
	// Plan returns the slide's freshness key for this stage ("" when the
	// stage always runs) and the output files whose stamps the runner
	// records. fingerprint returns a slide file's content fingerprint
	// (cached by the runner).
	Plan(in Input, fingerprint func(path string) (string, error)) (key string, outputs []string, err error)
	// Run does the stage's work on one slide.
	Run(ctx context.Context, in Input) Result
	// Close frees what the stage owns.
	Close() error
}

// Finisher is a Stage with work to do once every slide has been through it
// (the predict stage writes predictions.csv once). It marks the results of
// slides it could not finish as failed.
type Finisher interface {
	Finish(ctx context.Context, sum *Summary)
}

// Runner takes slides through stages: see Run.
type Runner struct {
	Work     Work
	Stages   []Stage
	Lock     LockOptions
	Progress Progress
	// OnStage, when set, is called as a slide enters each stage (from the
	// stage's goroutine): the watch folder's status page.
	OnStage func(id, stage string)

	fps fingerprints
}

// RunOptions are one call's choices.
type RunOptions struct {
	Force bool // redo every stage, fresh or not
}

// RunReport is what a Run did.
type RunReport struct {
	// Summaries: one per stage, in order, preceded by the lock stage's
	// when some slide could not be locked.
	Summaries []Summary
	Flow      FlowReport
	// Locked counts slides that another live process holds: not done
	// here, and not failed either.
	Locked int
	// Slides is how many slides went through the stages.
	Slides int
}

// Failed counts failed slide-stages.
func (r RunReport) Failed() int {
	n := 0
	for _, s := range r.Summaries {
		n += s.Failed
	}
	return n
}

// Summary returns the named stage's summary.
func (r RunReport) Summary(stage string) (Summary, bool) {
	for _, s := range r.Summaries {
		if s.Stage == stage {
			return s, true
		}
	}
	return Summary{}, false
}

// Close closes every stage.
func (r *Runner) Close() error {
	var errs []error
	for _, s := range r.Stages {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Run takes each slide's lock (waiting up to Lock.Wait for slides held by
// others), streams the held slides through the stages (a slide enters
// stage k+1 as soon as stage k is done with it), skips a stage whose
// outputs are fresh for the slide's current inputs, records every stage's
// result in the slide's state.json as soon as it is known, runs the
// finishers and releases the locks. One slide's failure never stops the
// others. The error is non-nil only when the run itself was stopped: ctx
// cancelled, or a lock taken over by another process.
func (r *Runner) Run(ctx context.Context, inputs []Input, opt RunOptions) (RunReport, error) {
	var rep RunReport
	if len(r.Stages) == 0 {
		return rep, errors.New("pipeline: runner: no stage")
	}
	locks, mine, notHeld := LockSlides(ctx, r.Work, inputs, r.Lock)
	defer locks.Release()
	lctx := locks.Context()
	if len(notHeld) > 0 {
		ls := NewSummary(StageLock, notHeld)
		rep.Locked = ls.Skipped
		rep.Summaries = append(rep.Summaries, ls)
	}
	rep.Slides = len(mine)
	flow := make([]FlowStage, len(r.Stages))
	for k, st := range r.Stages {
		flow[k] = r.flowStage(st, opt.Force)
	}
	sums, frep := RunFlow(lctx, mine, flow, r.Progress)
	for k, st := range r.Stages {
		f, ok := st.(Finisher)
		if !ok {
			continue
		}
		before := make([]bool, len(sums[k].Results))
		for i, res := range sums[k].Results {
			before[i] = res.Err != nil
		}
		f.Finish(lctx, &sums[k])
		for i, res := range sums[k].Results {
			if res.Err != nil && !before[i] {
				r.record(st, res, "", nil)
			}
		}
		sums[k] = NewSummary(sums[k].Stage, sums[k].Results)
	}
	rep.Summaries = append(rep.Summaries, sums...)
	rep.Flow = frep
	stopped := context.Cause(lctx) // before Release, which cancels it
	if ctx.Err() != nil {
		stopped = context.Cause(ctx)
	}
	if err := locks.Release(); err != nil && stopped == nil {
		stopped = err
	}
	return rep, stopped
}

// flowStage wraps a stage for RunFlow: plan, freshness, run, record.
func (r *Runner) flowStage(st Stage, force bool) FlowStage {
	name := st.Name()
	_, oneEngine := st.(interface{ OneEngine() })
	return FlowStage{Name: name, Workers: max(st.Workers(), 1), OneEngine: oneEngine, Run: func(ctx context.Context, in Input) Result {
		start := time.Now()
		if r.OnStage != nil {
			r.OnStage(in.ID, name)
		}
		key, outputs, err := st.Plan(in, r.fps.get)
		if err != nil {
			res := Result{Stage: name, ID: in.ID, Path: in.Path, Err: err, Elapsed: time.Since(start)}
			r.record(st, res, "", nil)
			return res
		}
		if !force && key != "" {
			if ok, why := r.Work.Fresh(in.ID, name, key); ok {
				res := Result{Stage: name, ID: in.ID, Path: in.Path, Skipped: true, Reason: why, Elapsed: time.Since(start)}
				r.record(st, res, key, nil)
				return res
			}
		}
		if err := ctx.Err(); err != nil {
			return Result{Stage: name, ID: in.ID, Path: in.Path, Err: fmt.Errorf("pipeline: %s: %s: %w", in.ID, name, context.Cause(ctx))}
		}
		res := st.Run(ctx, in)
		if res.Stage == "" {
			res.Stage = name
		}
		if res.ID == "" {
			res.ID, res.Path = in.ID, in.Path
		}
		var stamps map[string]string
		if res.Err == nil && !res.Skipped && key != "" {
			if stamps, err = r.Work.stamps(in.ID, outputs); err != nil {
				res.Err = err
			}
		}
		if ctx.Err() != nil && res.Err != nil {
			return res // interrupted: state.json keeps the last finished run's record
		}
		r.record(st, res, key, stamps)
		return res
	}}
}

func (r *Runner) record(st Stage, res Result, key string, stamps map[string]string) {
	if err := recordStage(r.Work, res, st.Params(), key, stamps); err != nil {
		slog.Warn("state.json not written", "slide", res.ID, "stage", res.Stage, "err", err)
	}
}
