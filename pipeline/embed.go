package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/tiling"
)

// EmbedOptions are the embed stage's parameters.
type EmbedOptions struct {
	Batch    int // samples per inference call
	Readers  int // goroutines reading and preprocessing patches
	InFlight int // slides open at once (bounds memory: each holds N×D features)
	// ScaledDecode lets a 40× (80×) patch of a tiled JPEG TIFF slide be
	// decoded at 1/2 (1/4) scale by libjpeg-turbo instead of decoded whole
	// and box-averaged (see slide/scaled.go): about twice the read rate,
	// within 2 grey levels. It changes the features slightly, so it is part
	// of the embed stage's freshness key. CLI: --scaled-decode.
	ScaledDecode bool
}

// DefaultEmbedOptions suit a CPU: batches of 32, two readers, two slides
// in flight, scaled JPEG decoding on.
func DefaultEmbedOptions() EmbedOptions {
	return EmbedOptions{Batch: 32, Readers: min(2, runtime.NumCPU()), InFlight: 2, ScaledDecode: true}
}

// Embed option bounds: a batch is allocated up front (Batch × 3 × 224² ×
// 4 bytes, three times), so an absurd --batch must be refused, not tried.
const (
	MaxEmbedBatch    = 4096
	MaxEmbedReaders  = 256
	MaxEmbedInFlight = 64
)

// Validate checks the options before any work.
func (o EmbedOptions) Validate() error {
	switch {
	case o.Batch < 1 || o.Batch > MaxEmbedBatch:
		return fmt.Errorf("pipeline: --batch %d: want 1 to %d patches per inference call", o.Batch, MaxEmbedBatch)
	case o.Readers < 1 || o.Readers > MaxEmbedReaders:
		return fmt.Errorf("pipeline: --readers %d: want 1 to %d", o.Readers, MaxEmbedReaders)
	case o.InFlight < 1 || o.InFlight > MaxEmbedInFlight:
		return fmt.Errorf("pipeline: --in-flight %d: want 1 to %d", o.InFlight, MaxEmbedInFlight)
	}
	return nil
}

// embedJob is one slide going through the embed stage.
type embedJob struct {
	in      Input
	rec     SlideRecord
	coords  []int64
	feats   []float32
	s       *slide.Slide
	start   time.Time
	pending atomic.Int64 // patches not yet accounted for
	mu      sync.Mutex
	err     error
	done    chan Result // the writer's result
}

func (j *embedJob) fail(err error) {
	j.mu.Lock()
	if j.err == nil {
		j.err = err
	}
	j.mu.Unlock()
}

func (j *embedJob) failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// slot says which patch a batch slot holds (job nil: unused).
type slot struct {
	job *embedJob
	idx int
}

type embedBatch struct {
	b        *features.Batch
	slots    []slot
	acquired int // slots handed out
	filled   int // slots handed back
}

// assembler hands out batch slots to the readers, so each reader writes its
// preprocessed patch straight into the batch, and ships a batch once it is
// closed for new slots and every slot handed out has come back.
type assembler struct {
	mu   sync.Mutex
	cur  *embedBatch // taking new slots
	free chan *embedBatch
	full chan *embedBatch
}

// acquire returns a batch and a slot in it, waiting for a free batch.
func (a *assembler) acquire(ctx context.Context) (*embedBatch, int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.cur == nil {
		a.mu.Unlock()
		var b *embedBatch
		select {
		case b = <-a.free:
		case <-ctx.Done():
			a.mu.Lock()
			return nil, 0, ctx.Err()
		}
		a.mu.Lock()
		if a.cur == nil {
			b.acquired, b.filled = 0, 0
			a.cur = b
		} else {
			a.free <- b // lost the race; the channel has room for it
		}
	}
	b := a.cur
	i := b.acquired
	b.acquired++
	if b.acquired == b.b.Cap {
		a.cur = nil
	}
	return b, i, nil
}

// release hands a slot back; the batch ships when it is complete.
func (a *assembler) release(ctx context.Context, b *embedBatch) error {
	a.mu.Lock()
	b.filled++
	ship := a.cur != b && b.filled == b.acquired
	a.mu.Unlock()
	if ship {
		return a.send(ctx, b)
	}
	return nil
}

// flush closes the current batch for new slots: it ships now if every slot
// handed out has come back, else when the last one does. Readers call it
// before they wait for input, so a partly filled batch never waits for
// patches that cannot come until it is run (the feeder may be waiting for
// a slide to finish, and the slide for this batch).
func (a *assembler) flush(ctx context.Context) error {
	a.mu.Lock()
	b := a.cur
	a.cur = nil
	ship := b != nil && b.acquired > 0 && b.filled == b.acquired
	a.mu.Unlock()
	switch {
	case b == nil:
		return nil
	case b.acquired == 0:
		a.free <- b // we took it from free, so there is room
		return nil
	case ship:
		return a.send(ctx, b)
	}
	return nil
}

func (a *assembler) send(ctx context.Context, b *embedBatch) error {
	b.b.N = b.acquired
	select {
	case a.full <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Embedder is the embed stage's machinery, created once and fed slides:
// reader goroutines (patch reads through slide + tiling, preprocessing for
// the encoder) fill batches, the one goroutine that owns the encoder runs
// them, and a writer saves each slide's features/<encoder>.h5 atomically
// once all its patches are embedded. Embed hands it one slide and waits
// for that slide; several callers (at most opt.InFlight: each holds an
// open slide and its N×D features) overlap, so reading slide N+1 proceeds
// while slide N is embedded. A slide that fails (an unreadable tile, say)
// fails alone; a failure of the encoder's runtime stops the Embedder, and
// every Embed after it fails with ErrEncoderRuntime. Close stops it.
type Embedder struct {
	work Work
	enc  features.Encoder
	opt  EmbedOptions

	jobs    chan *embedJob // Embed → feeder
	quit    chan struct{}  // Close: the feeder takes no more jobs
	g       *errgroup.Group
	gctx    context.Context
	cancel  context.CancelFunc
	batches []*features.Batch

	mu    sync.Mutex
	open  map[*embedJob]bool // submitted and not yet written
	fatal error              // the encoder runtime's failure

	closeOnce sync.Once
	closeErr  error
}

// NewEmbedder starts the goroutines; enc stays owned by the caller (close
// the Embedder first).
func NewEmbedder(work Work, enc features.Encoder, opt EmbedOptions) (*Embedder, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	const nBatches = 3 // one filling, one running, one spare
	e := &Embedder{work: work, enc: enc, opt: opt, jobs: make(chan *embedJob), quit: make(chan struct{}), open: map[*embedJob]bool{}}
	asm := &assembler{free: make(chan *embedBatch, nBatches), full: make(chan *embedBatch, nBatches)}
	for i := 0; i < nBatches; i++ {
		fb, err := enc.NewBatch(opt.Batch)
		if err != nil {
			for _, b := range e.batches {
				b.Close()
			}
			return nil, err
		}
		e.batches = append(e.batches, fb)
		asm.free <- &embedBatch{b: fb, slots: make([]slot, opt.Batch)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.g, e.gctx = errgroup.WithContext(ctx)
	e.start(asm)
	return e, nil
}

func (e *Embedder) start(asm *assembler) {
	g, gctx, opt, enc := e.g, e.gctx, e.opt, e.enc
	type item struct {
		job *embedJob
		idx int
	}
	items := make(chan item, 4*opt.Batch)
	finished := make(chan *embedJob, opt.InFlight)

	// account marks n patches of j as handled; the last sends j on.
	account := func(j *embedJob, n int64) error {
		if j.pending.Add(-n) != 0 {
			return nil
		}
		select {
		case finished <- j:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	}

	// Feeder: streams each submitted slide's patch indices.
	g.Go(func() error {
		defer close(items)
		for {
			var j *embedJob
			select {
			case j = <-e.jobs:
			case <-e.quit:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
			n := len(j.coords) / 2
			j.pending.Store(int64(n))
			if n == 0 {
				j.pending.Store(1)
				if err := account(j, 1); err != nil {
					return err
				}
			}
			for k := 0; k < n; k++ {
				select {
				case items <- item{j, k}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
	})

	// Readers: read each patch and preprocess it into a batch slot.
	var readers sync.WaitGroup
	for r := 0; r < opt.Readers; r++ {
		readers.Add(1)
		g.Go(func() error {
			defer readers.Done()
			prep := enc.NewPreparer()
			patch := raster.New(enc.PatchSize(), enc.PatchSize())
			var pr *tiling.PatchReader
			var prJob *embedJob
			for {
				var it item
				var ok bool
				select {
				case it, ok = <-items:
				default:
					if err := asm.flush(gctx); err != nil {
						return err
					}
					select {
					case it, ok = <-items:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				if !ok {
					return nil
				}
				j := it.job
				if j.failed() != nil { // skip the rest of a failed slide
					if err := account(j, 1); err != nil {
						return err
					}
					continue
				}
				if prJob != j {
					pr, prJob = tiling.NewPatchReader(j.s, j.rec.Plan), j
				}
				if err := pr.Read(j.coords[2*it.idx], j.coords[2*it.idx+1], patch); err != nil {
					j.fail(err)
					if err := account(j, 1); err != nil {
						return err
					}
					continue
				}
				b, s, err := asm.acquire(gctx)
				if err != nil {
					return err
				}
				if err := prep.Prepare(patch, b.b, s); err != nil {
					j.fail(fmt.Errorf("pipeline: %s: %w", j.in.ID, err))
					b.slots[s] = slot{}
					if err := account(j, 1); err != nil {
						return err
					}
				} else {
					b.slots[s] = slot{j, it.idx}
				}
				if err := asm.release(gctx, b); err != nil {
					return err
				}
			}
		})
	}
	g.Go(func() error {
		readers.Wait()
		if err := gctx.Err(); err != nil {
			return err
		}
		if err := asm.flush(gctx); err != nil {
			return err
		}
		close(asm.full)
		return nil
	})

	// Inference: the one goroutine that owns the encoder.
	g.Go(func() error {
		defer close(finished) // every patch is accounted for once this loop ends
		d := enc.Dim()
		for {
			var b *embedBatch
			select {
			case bb, ok := <-asm.full:
				if !ok {
					return nil
				}
				b = bb
			case <-gctx.Done():
				return gctx.Err()
			}
			out, err := enc.Run(b.b)
			if err != nil {
				e.mu.Lock()
				e.fatal = err
				e.mu.Unlock()
				return err
			}
			for s := 0; s < b.b.N; s++ {
				sl := b.slots[s]
				if sl.job == nil {
					continue
				}
				copy(sl.job.feats[sl.idx*d:(sl.idx+1)*d], out[s*d:(s+1)*d])
				b.slots[s] = slot{}
				if err := account(sl.job, 1); err != nil {
					return err
				}
			}
			select {
			case asm.free <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})

	// Writer: saves each finished slide and hands its result back.
	g.Go(func() error {
		for {
			select {
			case j, ok := <-finished:
				if !ok {
					return nil
				}
				r := finishEmbedJob(j, e.work, enc)
				e.mu.Lock()
				delete(e.open, j)
				e.mu.Unlock()
				j.done <- r // buffered: the caller may have gone
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})
}

// stopped is the error of a slide the Embedder can no longer take.
func (e *Embedder) stopped(id string) error {
	e.mu.Lock()
	fatal := e.fatal
	e.mu.Unlock()
	if fatal != nil {
		return fmt.Errorf("pipeline: %s: %w: %w", id, ErrEncoderRuntime, fatal)
	}
	return fmt.Errorf("pipeline: %s: the embed stage is closed", id)
}

// Embed embeds one tiled slide and writes its feature file (every slide:
// the Runner decides what is up to date). It returns when the slide is
// written or has failed, or when ctx is done (the slide's remaining
// patches are then dropped and nothing is written for it).
func (e *Embedder) Embed(ctx context.Context, in Input) Result {
	start := time.Now()
	res := Result{Stage: StageEmbed, ID: in.ID, Path: in.Path}
	if e.gctx.Err() != nil {
		res.Err = e.stopped(in.ID)
		return res
	}
	if err := ctx.Err(); err != nil {
		res.Err = fmt.Errorf("pipeline: %s: not started: %w", in.ID, context.Cause(ctx))
		return res
	}
	j, err := prepareEmbedJob(in, e.work, e.enc, e.opt)
	if err != nil {
		res.Err = err
		return res
	}
	j.done = make(chan Result, 1)
	e.mu.Lock()
	e.open[j] = true
	e.mu.Unlock()
	select {
	case e.jobs <- j: // the Embedder owns the open slide now
	case <-ctx.Done():
		e.drop(j)
		res.Err = fmt.Errorf("pipeline: %s: not started: %w", in.ID, context.Cause(ctx))
		return res
	case <-e.quit:
		e.drop(j)
		res.Err = e.stopped(in.ID)
		return res
	case <-e.gctx.Done():
		e.drop(j)
		res.Err = e.stopped(in.ID)
		return res
	}
	select {
	case r := <-j.done:
		if r.Err == nil { // failures are logged by whoever reports them
			slog.Info("embedded", "slide", in.ID, "stage", StageEmbed, "patches", r.NumPatches, "encoder", e.enc.Name(), "elapsed", time.Since(start).Round(time.Millisecond))
		}
		return r
	case <-ctx.Done():
		j.fail(context.Cause(ctx))
		res.Err = fmt.Errorf("pipeline: %s: embedding interrupted: %w", in.ID, context.Cause(ctx))
		return res
	case <-e.gctx.Done():
		res.Err = e.stopped(in.ID)
		return res
	}
}

// drop closes a job that never reached the feeder.
func (e *Embedder) drop(j *embedJob) {
	e.mu.Lock()
	delete(e.open, j)
	e.mu.Unlock()
	j.s.Close()
}

// Close stops the Embedder once the slides handed to it are through, and
// frees its batches. Call it after every Embed has returned. It returns
// the encoder runtime's failure, if there was one.
func (e *Embedder) Close() error {
	e.closeOnce.Do(func() {
		close(e.quit)
		err := e.g.Wait()
		e.cancel()
		e.mu.Lock()
		for j := range e.open { // left by a runtime failure: nothing was written
			j.s.Close()
		}
		e.open = nil
		fatal := e.fatal
		e.mu.Unlock()
		for _, b := range e.batches {
			b.Close()
		}
		if fatal != nil {
			e.closeErr = fmt.Errorf("pipeline: embed: %w: %w", ErrEncoderRuntime, fatal)
		} else if err != nil && !errors.Is(err, context.Canceled) {
			e.closeErr = fmt.Errorf("pipeline: embed: %w", err)
		}
	})
	return e.closeErr
}

// EmbedAll runs the embed stage over tiled slides with one Embedder,
// opt.InFlight slides at once. It returns the encoder runtime's failure
// (or ctx's error) beside the per-slide results.
func EmbedAll(ctx context.Context, inputs []Input, work Work, enc features.Encoder, opt EmbedOptions, prog Progress) (Summary, error) {
	e, err := NewEmbedder(work, enc, opt)
	if err != nil {
		return Summary{}, err
	}
	if prog != nil {
		prog.Start(StageEmbed, len(inputs))
	}
	results := make([]Result, len(inputs))
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < opt.InFlight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(inputs) {
					return
				}
				r := e.Embed(ctx, inputs[i])
				mu.Lock()
				results[i] = r
				if prog != nil {
					prog.Done(r)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cerr := e.Close()
	sum := NewSummary(StageEmbed, results)
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	return sum, cerr
}

// prepareEmbedJob loads what the embed stage needs of a slide.
func prepareEmbedJob(in Input, work Work, enc features.Encoder, opt EmbedOptions) (*embedJob, error) {
	rec, err := work.ReadSlideRecord(in.ID)
	if err != nil {
		return nil, err
	}
	if rec.Plan.PatchSize != enc.PatchSize() {
		return nil, fmt.Errorf("pipeline: %s: tiled with %d px patches but encoder %s takes %d px", in.ID, rec.Plan.PatchSize, enc.Name(), enc.PatchSize())
	}
	coords, err := work.ReadCoords(in.ID, rec)
	if err != nil {
		return nil, err
	}
	path := rec.Slide.Path
	if in.Path != "" {
		path = in.Path
	}
	s, err := slide.Open(path, slide.Options{MPP: rec.Params.MPP, Reader: rec.Params.Reader, NoScaledDecode: !opt.ScaledDecode})
	if err != nil {
		return nil, err
	}
	j := &embedJob{in: in, rec: rec, coords: coords, s: s, start: time.Now(),
		feats: make([]float32, len(coords)/2*enc.Dim())}
	return j, nil
}

// finishEmbedJob writes a finished slide's feature file (or reports its
// failure) and closes the slide.
func finishEmbedJob(j *embedJob, work Work, enc features.Encoder) Result {
	defer j.s.Close()
	r := Result{Stage: StageEmbed, ID: j.in.ID, Path: j.in.Path, NumPatches: len(j.coords) / 2}
	if err := j.failed(); err != nil {
		r.Err = err
		return r
	}
	if i, ok := firstNonFinite(j.feats); !ok {
		d := max(enc.Dim(), 1)
		r.Err = fmt.Errorf("pipeline: %s: encoder %s gave a non-finite feature (NaN or Inf) for the patch at level-0 (%d, %d): no feature file written",
			j.in.ID, enc.Name(), j.coords[2*(i/d)], j.coords[2*(i/d)+1])
		return r
	}
	dir := filepath.Dir(work.FeaturesH5(j.in.ID, enc.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Err = fmt.Errorf("pipeline: %s: %w", j.in.ID, err)
		return r
	}
	_ = store.CleanTemps(dir)
	err := featfile.Write(work.FeaturesH5(j.in.ID, enc.Name()), j.feats, j.coords, enc.Dim(), featfile.Info{
		Encoder: enc.Name(), EncoderSHA256: enc.Checksum(), CoordsSHA256: j.rec.CoordsSHA256,
		TargetMPP: j.rec.Plan.TargetMPP, PatchSize: j.rec.Plan.PatchSize, PatchSizeLevel0: j.rec.Plan.PatchSizeLevel0,
		Source: "her2wsi " + Version,
	})
	if err != nil {
		r.Err = fmt.Errorf("pipeline: %s: %w", j.in.ID, err)
	}
	r.Elapsed = time.Since(j.start)
	return r
}
