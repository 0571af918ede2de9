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

// FlowStage is one stage of a streamed run: Run processes one slide; Workers
// goroutines call it (1 for a stage that owns a single ONNX session or GoMLX
// runtime).
type FlowStage struct {
	Name    string
	Workers int
	Run     func(ctx context.Context, in Input) Result
	// OneEngine: the workers are places in front of one engine (the embed
	// stage's encoder), so the stage is busy while any worker is, not in
	// proportion to how many are.
	OneEngine bool
}

// FlowReport says how busy each stage was: Busy is the summed time its
// workers spent in Run, Share = Busy / (Wall × Workers); for a OneEngine
// stage Busy is the time at least one worker was in Run, Share = Busy /
// Wall.
type FlowReport struct {
	Wall   time.Duration
	Stages []FlowStageReport
}

// FlowStageReport is one stage's line of a FlowReport.
type FlowStageReport struct {
	Name    string
	Workers int
	Busy    time.Duration
	Share   float64
}

// Slowest is the stage with the largest busy share: the one that sets the
// pace when the others hide behind it.
func (r FlowReport) Slowest() FlowStageReport {
	var best FlowStageReport
	for _, s := range r.Stages {
		if s.Share > best.Share {
			best = s
		}
	}
	return best
}

// Write prints the report, one line per stage.
func (r FlowReport) Write(w io.Writer) {
	for _, s := range r.Stages {
		fmt.Fprintf(w, "stage %-8s busy %6.1f%% of %s (%d worker(s), %s busy)\n", s.Name, 100*s.Share, r.Wall.Round(time.Millisecond), s.Workers, s.Busy.Round(time.Millisecond))
	}
}

// RunFlow streams the slides through the stages in order: a slide enters
// stage k+1 as soon as stage k has finished it, so reading and tiling slide
// N+1 overlaps embedding slide N. Stages are joined by bounded channels
// (as many places as the next stage has workers), every send watches ctx,
// and a slide that fails a stage (or is cancelled) leaves the flow; the
// stages after it report it as not run. prog sees every slide once, when
// it leaves the flow. It returns one Summary per stage (results in input
// order) and how busy each stage was.
func RunFlow(ctx context.Context, inputs []Input, stages []FlowStage, prog Progress) ([]Summary, FlowReport) {
	start := time.Now()
	n, ns := len(inputs), len(stages)
	results := make([][]Result, ns)
	for k := range results {
		results[k] = make([]Result, n)
	}
	busy := make([]time.Duration, ns)
	active := make([]int, ns)      // workers in Run (OneEngine stages)
	since := make([]time.Time, ns) // when active last rose from 0
	var mu sync.Mutex              // results, busy, active, since, prog
	if prog != nil && ns > 0 {
		prog.Start(stages[ns-1].Name, n)
	}
	leave := func(r Result) {
		if prog != nil {
			prog.Done(r)
		}
	}
	type item struct{ i int }
	g, gctx := errgroup.WithContext(ctx)
	chans := make([]chan item, ns+1)
	for k := 0; k <= ns; k++ {
		c := 1
		if k < ns {
			c = max(stages[k].Workers, 1)
		}
		chans[k] = make(chan item, c)
	}
	// Feed the first stage.
	g.Go(func() error {
		defer close(chans[0])
		for i := range inputs {
			select {
			case chans[0] <- item{i}:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for k, st := range stages {
		in, out := chans[k], chans[k+1]
		var wg sync.WaitGroup
		for w := 0; w < max(st.Workers, 1); w++ {
			wg.Add(1)
			g.Go(func() error {
				defer wg.Done()
				for it := range in {
					t0 := time.Now()
					if st.OneEngine {
						mu.Lock()
						if active[k]++; active[k] == 1 {
							since[k] = t0
						}
						mu.Unlock()
					}
					r := st.Run(gctx, inputs[it.i])
					d := time.Since(t0)
					if r.Stage == "" {
						r.Stage = st.Name
					}
					if r.Err != nil {
						slog.Error(r.Err.Error(), "slide", r.ID, "stage", st.Name)
					}
					mu.Lock()
					results[k][it.i] = r
					if !st.OneEngine {
						busy[k] += d
					} else if active[k]--; active[k] == 0 {
						busy[k] += time.Since(since[k])
					}
					if r.Err != nil || k == ns-1 {
						leave(r)
					}
					mu.Unlock()
					if r.Err != nil {
						continue
					}
					select {
					case out <- it:
					case <-gctx.Done():
						return nil
					}
				}
				return nil
			})
		}
		g.Go(func() error { wg.Wait(); close(out); return nil })
	}
	// The end of the line: drain.
	g.Go(func() error {
		for range chans[ns] {
		}
		return nil
	})
	_ = g.Wait()
	wall := time.Since(start)
	sums := make([]Summary, ns)
	rep := FlowReport{Wall: wall}
	for k, st := range stages {
		for i, in := range inputs {
			if results[k][i].Stage == "" {
				why := "an earlier stage failed"
				if err := ctx.Err(); err != nil {
					why = err.Error()
				}
				results[k][i] = Result{Stage: st.Name, ID: in.ID, Path: in.Path, NotRun: true, Err: fmt.Errorf("pipeline: %s: %s not run: %s", in.ID, st.Name, why)}
			}
		}
		sums[k] = NewSummary(st.Name, results[k])
		share := 0.0
		if slots := max(st.Workers, 1); wall > 0 {
			if st.OneEngine {
				slots = 1
			}
			share = float64(busy[k]) / (float64(wall) * float64(slots))
		}
		rep.Stages = append(rep.Stages, FlowStageReport{Name: st.Name, Workers: max(st.Workers, 1), Busy: busy[k], Share: share})
	}
	return sums, rep
}
