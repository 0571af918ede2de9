package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sync/errgroup"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/slide"
)

// Watch-folder defaults.
const (
	DefaultWatchStable = 10 * time.Second
	DefaultWatchPoll   = 2 * time.Second
	// minScanGap bounds how often file events can trigger a scan (a copy
	// raises thousands of write events).
	minScanGap = 100 * time.Millisecond
)

// Journal statuses.
const (
	WatchProcessing = "processing"
	WatchDone       = "done"
	WatchFailed     = "failed"
)

// Sub-folders of the inbox where finished slides go.
const (
	InboxDone   = "done"
	InboxFailed = "failed"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	Inbox   string        // folder slides are copied into
	Work    Work          // work folder: stage outputs, predictions.csv, journals
	Stable  time.Duration // a file is complete when its size and mtime stay unchanged this long
	Poll    time.Duration // scan interval; file events only trigger earlier scans
	Once    bool          // process what is complete now, then return
	Tile    TileOptions
	Embed   EmbedOptions
	Anchors AnchorOptions
	// Encoder and Model are owned by the caller, who closes them after Run
	// returns; during Run only the processing goroutine uses them.
	Encoder features.Encoder
	Model   *LoadedModel
	// Status, when set, serves the status page until Run returns (the
	// listener is closed then), under StatusPage (its Inbox is this one's;
	// a listener that is not loopback makes it Public, see ForListener).
	Status     net.Listener
	StatusPage StatusOptions

	onStage func(id, stage string) // tests: called before each step of a slide
}

// WatchJournal is WORK/watch/<id>.json: what the watcher knows of a slide,
// written atomically at each change so a restart neither loses nor repeats
// a slide.
type WatchJournal struct {
	Slide      string           `json:"slide"` // file name in the inbox
	ID         string           `json:"id"`
	Size       int64            `json:"size"`
	ModTime    time.Time        `json:"mod_time"`
	Status     string           `json:"status"` // processing, done, failed
	Reason     string           `json:"reason,omitempty"`
	Attempts   int              `json:"attempts"` // times processing of this file started
	Started    time.Time        `json:"started"`
	Finished   time.Time        `json:"finished,omitzero"`
	Prediction *WatchPrediction `json:"prediction,omitempty"`
	Report     string           `json:"report,omitempty"`   // relative to WORK
	MovedTo    string           `json:"moved_to,omitempty"` // relative to the inbox; empty until moved
	Version    string           `json:"her2wsi_version"`
}

// WatchPrediction is a finished slide's prediction.
type WatchPrediction struct {
	Probs     []float64 `json:"probs"` // 0, 1+, 2+, 3+
	Predicted string    `json:"predicted"`
	ModelID   string    `json:"model_id"`
	Time      time.Time `json:"time"`
}

func (j WatchJournal) sameFile(name string, size int64, mod time.Time) bool {
	return j.Slide == name && j.Size == size && j.ModTime.Equal(mod.UTC())
}

// WatchDir is WORK/watch, the journals' folder.
func (w Work) WatchDir() string { return filepath.Join(w.Dir, "watch") }

// WatchJournalPath is WORK/watch/<id>.json.
func (w Work) WatchJournalPath(id string) string { return filepath.Join(w.WatchDir(), id+".json") }

// ReportHTML is WORK/slides/<id>/report.html.
func (w Work) ReportHTML(id string) string { return filepath.Join(w.SlideDir(id), "report.html") }

// Watch-status types (the status page and /status.json).
type (
	// WatchStatus is a snapshot of the watcher.
	WatchStatus struct {
		Inbox    string          `json:"inbox"`
		Work     string          `json:"work"`
		Started  time.Time       `json:"started"`
		LastScan time.Time       `json:"last_scan"`
		Note     string          `json:"note,omitempty"` // e.g. the last scan's error
		Queue    []QueuedSlide   `json:"queue"`
		Current  *CurrentSlide   `json:"in_progress"`
		Done     []FinishedSlide `json:"done"`
		Failed   []FinishedSlide `json:"failed"`
	}
	// QueuedSlide is a file in the inbox not yet taken.
	QueuedSlide struct {
		Name  string    `json:"name"`
		Size  int64     `json:"size"`
		State string    `json:"state"` // copying, ready, empty
		Since time.Time `json:"since"` // size and mtime unchanged since
	}
	// CurrentSlide is the slide being processed.
	CurrentSlide struct {
		Name    string    `json:"name"`
		ID      string    `json:"id"`
		Stage   string    `json:"stage"`
		Started time.Time `json:"started"`
	}
	// FinishedSlide is a done or failed slide.
	FinishedSlide struct {
		Name       string           `json:"name"`
		ID         string           `json:"id,omitempty"`
		Finished   time.Time        `json:"finished"`
		Prediction *WatchPrediction `json:"prediction,omitempty"`
		Report     string           `json:"report,omitempty"` // relative to WORK
		Reason     string           `json:"reason,omitempty"`
		MovedTo    string           `json:"moved_to,omitempty"`
	}
)

// maxListed bounds the done and failed lists of a status snapshot.
const maxListed = 500

type fileState int

const (
	filePending fileState = iota
	fileReady
	fileProcessing
)

// watchFile is a file seen in the inbox.
type watchFile struct {
	name  string
	size  int64
	mod   time.Time
	extra string    // companion folder's fingerprint (MIRAX), part of stability only
	since time.Time // first seen with this size, mtime and extra
	seen  int       // scans that saw it so
	state fileState
	order int // FIFO order among ready files
}

// Watcher processes slides copied into an inbox: see NewWatcher and Run.
type Watcher struct {
	opt WatchOptions

	mu        sync.Mutex
	files     map[string]*watchFile   // inbox name → file
	stuck     map[string]string       // name → fingerprint of a file that could not be moved away
	history   map[string]WatchJournal // id → last journal
	orphans   []FinishedSlide         // failures without a journal
	current   *CurrentSlide
	started   time.Time
	lastScan  time.Time
	note      string
	nextOrder int
	quit      bool // once mode: nothing left to do
	failures  int  // slides failed during this Run

	wake chan struct{} // a file became ready, or quit was set
	kick chan struct{} // scan now

	runner  *Runner       // the stages, used by the processing goroutine alone
	predict *PredictStage // the runner's last stage, for the prediction row
}

// NewWatcher checks the options and fills in defaults.
func NewWatcher(opt WatchOptions) (*Watcher, error) {
	if opt.Inbox == "" || opt.Work.Dir == "" {
		return nil, errors.New("pipeline: watch: inbox and work folder are required")
	}
	if opt.Encoder == nil || opt.Model == nil {
		return nil, errors.New("pipeline: watch: an encoder and a model are required")
	}
	if opt.Stable < 0 || opt.Poll < 0 {
		return nil, fmt.Errorf("pipeline: watch: --stable %v and --poll %v must not be negative", opt.Stable, opt.Poll)
	}
	if opt.Stable == 0 {
		opt.Stable = DefaultWatchStable
	}
	if opt.Poll == 0 {
		opt.Poll = DefaultWatchPoll
	}
	if err := opt.Tile.Validate(); err != nil {
		return nil, err
	}
	if opt.Model.Config.InDim != opt.Encoder.Dim() {
		return nil, fmt.Errorf("pipeline: watch: the model takes %d-dimensional features but encoder %s gives %d", opt.Model.Config.InDim, opt.Encoder.Name(), opt.Encoder.Dim())
	}
	if !containsInt(opt.Anchors.PPK, opt.Model.Config.PPK) {
		opt.Anchors.PPK = append(append([]int(nil), opt.Anchors.PPK...), opt.Model.Config.PPK)
	}
	inbox, err := filepath.Abs(opt.Inbox)
	if err != nil {
		return nil, fmt.Errorf("pipeline: watch: %w", err)
	}
	fi, err := os.Stat(inbox)
	if err != nil {
		return nil, fmt.Errorf("pipeline: watch: inbox: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("pipeline: watch: inbox %s is not a folder", inbox)
	}
	opt.Inbox = inbox
	if opt.Work.Dir, err = filepath.Abs(opt.Work.Dir); err != nil {
		return nil, fmt.Errorf("pipeline: watch: %w", err)
	}
	if err := opt.Embed.Validate(); err != nil {
		return nil, err
	}
	w := &Watcher{
		opt:     opt,
		files:   map[string]*watchFile{},
		stuck:   map[string]string{},
		history: map[string]WatchJournal{},
		wake:    make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
	}
	w.predict = NewPredictStage(opt.Work, opt.Encoder.Name(), opt.Model)
	w.runner = &Runner{Work: opt.Work, Lock: LockOptions{StaleAfter: DefaultStaleAfter}, OnStage: w.setStage, Stages: []Stage{
		NewTileStage(opt.Work, opt.Tile, 1),
		NewEmbedStage(opt.Work, opt.Encoder, opt.Embed),
		NewAnchorStage(opt.Work, opt.Anchors, 1),
		w.predict,
	}}
	return w, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Run watches the inbox until ctx is cancelled (or, with Once, until what
// was complete at the start is processed). One goroutine scans the inbox,
// one processes slides one at a time (it alone uses the encoder and the
// model), and the status page, when asked for, reads snapshots. It returns
// ctx's error when cancelled; with Once, an error counting the failed
// slides; and any error that stops it (the work folder cannot be written,
// the encoder's runtime fails).
func (w *Watcher) Run(ctx context.Context) error {
	inbox, work := w.opt.Inbox, w.opt.Work
	if w.opt.Status != nil {
		defer w.opt.Status.Close()
	}
	for _, d := range []string{work.WatchDir(), filepath.Join(inbox, InboxDone), filepath.Join(inbox, InboxFailed)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("pipeline: watch: %w", err)
		}
	}
	for _, lock := range []string{filepath.Join(work.WatchDir(), ".lock"), filepath.Join(inbox, ".her2wsi-watch.lock")} {
		unlock, err := flockWatch(lock)
		if err != nil {
			return err
		}
		defer unlock()
	}
	_ = store.CleanTemps(work.WatchDir())
	if err := w.loadJournals(); err != nil {
		return err
	}
	w.mu.Lock()
	w.started = time.Now()
	w.mu.Unlock()
	var page *StatusPage
	sopt := w.opt.StatusPage
	if w.opt.Status != nil {
		var err error
		sopt = sopt.ForListener(w.opt.Status)
		sopt.Inbox = inbox
		if page, err = NewStatusPage(work, w.Snapshot, sopt); err != nil {
			return err
		}
		defer page.Close()
	}

	// The group stops when the worker does (cancelled, once mode finished,
	// or a fatal error), taking the scanner, file events and the page along.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(runCtx)
	if ev, err := fsnotify.NewWatcher(); err != nil {
		slog.Warn("watch: no file events; polling only", "err", err)
	} else if err := ev.Add(inbox); err != nil {
		ev.Close()
		slog.Warn("watch: no file events for the inbox; polling only", "inbox", inbox, "err", err)
	} else {
		g.Go(func() error {
			defer ev.Close()
			for {
				select {
				case <-gctx.Done():
					return nil
				case _, ok := <-ev.Events:
					if !ok {
						return nil
					}
					w.poke(w.kick)
				case err, ok := <-ev.Errors:
					if !ok {
						return nil
					}
					slog.Warn("watch: file events", "err", err)
				}
			}
		})
	}
	if page != nil {
		g.Go(func() error { return ServeStatus(gctx, w.opt.Status, page, sopt) })
	}
	g.Go(func() error { return w.scanLoop(gctx) })
	g.Go(func() error {
		defer stop()
		return w.workLoop(gctx)
	})
	err := g.Wait()
	w.mu.Lock()
	failures := w.failures
	w.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	case failures > 0:
		return fmt.Errorf("pipeline: watch: %d slide(s) failed (reasons in %s)", failures, filepath.Join(inbox, InboxFailed))
	}
	return nil
}

func (w *Watcher) poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// scanLoop scans at every poll, on file events (at most every minScanGap)
// and when a pending file's stability period ends.
func (w *Watcher) scanLoop(ctx context.Context) error {
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-w.kick:
			timer.Stop()
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(minScanGap): // let a burst of events settle
			}
		}
		now := time.Now()
		next, err := w.scan(now)
		if err != nil && w.opt.Once {
			return err
		}
		if w.opt.Once && now.Sub(start) >= w.opt.Stable && w.finishedOnce() {
			return nil
		}
		wait := w.opt.Poll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(time.Now()), minScanGap))
		}
		timer.Reset(wait)
	}
}

// finishedOnce says (and tells the worker) that nothing is ready or being
// processed.
func (w *Watcher) finishedOnce() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.current != nil {
		return false
	}
	for _, f := range w.files {
		if f.state != filePending {
			return false
		}
	}
	w.quit = true
	w.poke(w.wake)
	return true
}

// scan lists the inbox, updates what it knows of each file and queues the
// complete ones. It returns when the next pending file may become complete.
// An inbox that cannot be listed is reported (and retried: a network share
// may come back).
func (w *Watcher) scan(now time.Time) (next time.Time, err error) {
	entries, err := os.ReadDir(w.opt.Inbox)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastScan = now
	if err != nil {
		w.note = fmt.Sprintf("cannot list the inbox: %v", err)
		slog.Error("watch: cannot list the inbox", "inbox", w.opt.Inbox, "err", err)
		return time.Time{}, fmt.Errorf("pipeline: watch: %w", err)
	}
	w.note = ""
	present := map[string]bool{}
	woke := false
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !isSlideCandidate(name) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone since listed
		}
		present[name] = true
		size, mod := fi.Size(), fi.ModTime()
		extra := companionFingerprint(w.opt.Inbox, name)
		if fp, ok := w.stuck[name]; ok {
			if fp == fingerprint(size, mod) {
				continue
			}
			delete(w.stuck, name)
		}
		f := w.files[name]
		if f == nil {
			f = &watchFile{name: name}
			w.files[name] = f
		}
		if f.state == fileProcessing {
			continue
		}
		if f.seen == 0 || f.size != size || !f.mod.Equal(mod) || f.extra != extra {
			f.size, f.mod, f.extra, f.since, f.seen = size, mod, extra, now, 1
			if f.state == fileReady {
				f.state = filePending // changed again while queued
			}
		} else {
			f.seen++
		}
		if f.state == filePending && f.seen >= 2 && size > 0 && now.Sub(f.since) >= w.opt.Stable {
			f.state, f.order = fileReady, w.nextOrder
			w.nextOrder++
			woke = true
		}
		if f.state == filePending && size > 0 {
			if t := f.since.Add(w.opt.Stable); next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	for name, f := range w.files {
		if !present[name] && f.state != fileProcessing {
			delete(w.files, name)
		}
	}
	if woke {
		w.poke(w.wake)
	}
	return next, nil
}

func fingerprint(size int64, mod time.Time) string {
	return fmt.Sprintf("%d/%d", size, mod.UnixNano())
}

// isSlideCandidate: a slide extension, and not a hidden or partial file.
func isSlideCandidate(name string) bool {
	if strings.HasPrefix(name, ".") || store.IsTemp(name) || !HasSlideExtension(name) {
		return false
	}
	lower := strings.ToLower(name)
	for _, s := range []string{".part", ".tmp", ".crdownload", ".partial", ".filepart"} {
		if strings.HasSuffix(lower, s) {
			return false
		}
	}
	return true
}

// companionDir is the data folder of a MIRAX slide (X.mrxs + X/), "" for
// single-file formats.
func companionDir(inbox, name string) string {
	id := slide.ID(name)
	if !strings.EqualFold(filepath.Ext(name), ".mrxs") || id == InboxDone || id == InboxFailed {
		return ""
	}
	d := filepath.Join(inbox, id)
	if fi, err := os.Stat(d); err == nil && fi.IsDir() {
		return d
	}
	return ""
}

// companionFingerprint sums the sizes and the latest mtime in a MIRAX data
// folder, so the slide is complete only when its data is.
func companionFingerprint(inbox, name string) string {
	d := companionDir(inbox, name)
	if d == "" {
		return ""
	}
	var n, size int64
	var latest time.Time
	_ = filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := e.Info(); err == nil {
			n++
			size += fi.Size()
			if fi.ModTime().After(latest) {
				latest = fi.ModTime()
			}
		}
		return nil
	})
	return fmt.Sprintf("%d files %d bytes %d", n, size, latest.UnixNano())
}

// workLoop processes ready files one at a time, oldest ready first.
func (w *Watcher) workLoop(ctx context.Context) error {
	for {
		f, quit := w.nextReady()
		if quit {
			return nil
		}
		if f == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-w.wake:
				continue
			}
		}
		err := w.handle(ctx, f)
		w.mu.Lock()
		w.current = nil
		if g := w.files[f.name]; g == f {
			delete(w.files, f.name) // the next scan sees it afresh if it is still there
		}
		w.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// nextReady takes the oldest ready file and marks it in progress.
func (w *Watcher) nextReady() (*watchFile, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var best *watchFile
	for _, f := range w.files {
		if f.state == fileReady && (best == nil || f.order < best.order) {
			best = f
		}
	}
	if best == nil {
		return nil, w.quit
	}
	best.state = fileProcessing
	w.current = &CurrentSlide{Name: best.name, ID: slide.ID(best.name), Stage: "checking", Started: time.Now()}
	return best, false
}

func (w *Watcher) setStage(id, stage string) {
	w.mu.Lock()
	if w.current != nil {
		w.current.Stage = stage
	}
	w.mu.Unlock()
	if w.opt.onStage != nil {
		w.opt.onStage(id, stage)
	}
}

// maxWatchName leaves room in a 255-byte file name for ".reason.txt" and a
// "_NNNN" suffix in done/ or failed/.
const maxWatchName = 236

// checkWatchName says why a file name cannot be processed: its id (the name
// without extension) must be a valid slide id; control characters are
// refused because predictions.csv and the reason files hold one slide per
// line; and the name must leave room for the reason file's.
func checkWatchName(name string) error {
	id := slide.ID(name)
	if err := ValidID(id); err != nil {
		return err
	}
	if len(name) > maxWatchName {
		return fmt.Errorf("file name is %d bytes long, at most %d are taken", len(name), maxWatchName)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("file name %q contains a control character (%U)", name, r)
		}
	}
	return nil
}

// handle decides what a ready file needs and does it. A non-nil error stops
// the watcher; a slide's own failure is recorded and moved, not returned.
func (w *Watcher) handle(ctx context.Context, f *watchFile) error {
	path := filepath.Join(w.opt.Inbox, f.name)
	fi, err := os.Stat(path)
	if err != nil {
		return nil // gone
	}
	if fi.Size() != f.size || !fi.ModTime().Equal(f.mod) {
		return nil // changed since it was found complete: the next scans decide again
	}
	id := slide.ID(f.name)
	log := slog.With("slide", id, "stage", "watch")
	if err := checkWatchName(f.name); err != nil {
		w.failOrphan(f, err.Error())
		return nil
	}
	prev, hadPrev := w.readJournal(id)
	same := hadPrev && prev.sameFile(f.name, f.size, f.mod)
	switch {
	case same && prev.Status == WatchDone && prev.MovedTo == "":
		log.Info("already processed before a restart; moving it to done/")
		return w.finishDone(prev)
	case same && prev.Status == WatchFailed && prev.MovedTo == "":
		log.Info("failed before a restart; moving it to failed/")
		return w.finishFailed(prev)
	}
	j := WatchJournal{Slide: f.name, ID: id, Size: f.size, ModTime: f.mod.UTC(), Status: WatchProcessing, Attempts: 1, Started: time.Now().UTC(), Version: Version}
	if same {
		j.Attempts = prev.Attempts + 1
		if prev.Status == WatchProcessing {
			log.Info("interrupted before; processing it again", "attempt", j.Attempts)
		}
	}
	if err := w.writeJournal(j); err != nil {
		return err
	}
	// Resume only work begun on this very file; a new file under a known id
	// (a rescan) redoes every stage, since the stages' own checks compare
	// coordinates, not pixels.
	row, err := w.process(ctx, Input{Path: path, ID: id}, !same)
	if ctx.Err() != nil {
		return ctx.Err() // the journal says processing: the next start redoes it
	}
	if errors.Is(err, ErrLocked) || errors.Is(err, ErrLockLost) {
		// Another process (a batch run on the same WORK) holds the slide:
		// leave it in the inbox; the next scans take it again.
		log.Warn("slide locked by another process; taken again later", "err", err)
		return nil
	}
	if err != nil {
		var fatal fatalError
		if errors.As(err, &fatal) {
			return fatal.error
		}
		log.Error("failed", "err", err)
		j.Status, j.Reason, j.Finished = WatchFailed, oneLine(err.Error()), time.Now().UTC()
		if err := w.writeJournal(j); err != nil {
			return err
		}
		return w.finishFailed(j)
	}
	j.Status, j.Finished = WatchDone, time.Now().UTC()
	j.Prediction = &WatchPrediction{Probs: row.Probs, Predicted: cases.LabelName(row.Predicted), ModelID: row.ModelID, Time: row.Time.UTC()}
	j.Report = filepath.ToSlash(filepath.Join("slides", id, "report.html"))
	if err := w.writeJournal(j); err != nil {
		return err
	}
	log.Info("done", "her2", j.Prediction.Predicted, "p", fmt.Sprintf("%.3f", row.Probs[row.Predicted]), "elapsed", time.Since(j.Started).Round(time.Millisecond))
	return w.finishDone(j)
}

// fatalError stops the watcher rather than failing the slide.
type fatalError struct{ error }

// process takes one slide through tile → embed → anchors → predict (with
// its report) in the shared runner: under the slide's lock, skipping the
// stages that are fresh for the file's content (so a slide interrupted by
// a restart resumes where it was), recording state.json. force redoes
// every stage. The prediction row is written to predictions.csv only once
// the report is written.
func (w *Watcher) process(ctx context.Context, in Input, force bool) (PredictRow, error) {
	rep, err := w.runner.Run(ctx, []Input{in}, RunOptions{Force: force})
	if err != nil {
		return PredictRow{}, err
	}
	if rep.Locked > 0 {
		s, _ := rep.Summary(StageLock)
		return PredictRow{}, fmt.Errorf("pipeline: watch: %s: %w (%s)", in.ID, ErrLocked, s.Results[0].Reason)
	}
	for _, s := range rep.Summaries {
		for _, r := range s.Results {
			if r.Err == nil || r.NotRun {
				continue
			}
			if errors.Is(r.Err, ErrEncoderRuntime) {
				return PredictRow{}, fatalError{fmt.Errorf("pipeline: watch: %s: %w", in.ID, r.Err)}
			}
			return PredictRow{}, r.Err
		}
	}
	rows := w.predict.Rows()
	if len(rows) != 1 {
		return PredictRow{}, fmt.Errorf("pipeline: watch: %s: no prediction", in.ID)
	}
	return rows[0], nil
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// changedSince says whether the inbox file is no longer the one the journal
// describes (overwritten while processed): it is then left for the next
// scans, which process the new file.
func (w *Watcher) changedSince(j WatchJournal) bool {
	fi, err := os.Stat(filepath.Join(w.opt.Inbox, j.Slide))
	if err != nil || !j.sameFile(j.Slide, fi.Size(), fi.ModTime()) {
		slog.Warn("the file changed while it was processed; it is taken again once complete", "slide", j.ID, "stage", "watch")
		return true
	}
	return false
}

// finishDone moves a processed slide to done/ and records where.
func (w *Watcher) finishDone(j WatchJournal) error {
	if w.changedSince(j) {
		return nil
	}
	w.setStage(j.ID, "moving")
	dest, err := w.moveSlide(j.Slide, InboxDone, nil)
	if err != nil {
		w.markStuck(j.Slide, err)
		return nil
	}
	j.MovedTo = filepath.ToSlash(filepath.Join(InboxDone, dest))
	return w.writeJournal(j)
}

// finishFailed writes the reason file and moves the slide to failed/.
func (w *Watcher) finishFailed(j WatchJournal) error {
	if w.changedSince(j) {
		return nil
	}
	w.setStage(j.ID, "moving")
	dest, err := w.moveSlide(j.Slide, InboxFailed, func(dest string) error {
		return store.WriteFileAtomic(reasonFile(dest), []byte(j.Reason+"\n"), 0o644)
	})
	if err != nil {
		w.markStuck(j.Slide, err)
		return nil
	}
	j.MovedTo = filepath.ToSlash(filepath.Join(InboxFailed, dest))
	w.mu.Lock()
	w.failures++
	w.mu.Unlock()
	return w.writeJournal(j)
}

// failOrphan fails a file that cannot have a journal (its name is refused).
func (w *Watcher) failOrphan(f *watchFile, reason string) {
	slog.Error("refused", "slide", f.name, "stage", "watch", "reason", reason)
	dest, err := w.moveSlide(f.name, InboxFailed, func(dest string) error {
		return store.WriteFileAtomic(reasonFile(dest), []byte(oneLine(reason)+"\n"), 0o644)
	})
	fsl := FinishedSlide{Name: f.name, Finished: time.Now().UTC(), Reason: oneLine(reason)}
	if err != nil {
		w.markStuck(f.name, err)
		return
	}
	fsl.MovedTo = filepath.ToSlash(filepath.Join(InboxFailed, dest))
	w.mu.Lock()
	w.orphans = append(w.orphans, fsl)
	w.failures++
	w.mu.Unlock()
}

// reasonFile is failed/<name>.reason.txt, the name shortened (at a UTF-8
// boundary) where it would pass the usual 255-byte limit.
func reasonFile(dest string) string {
	const suffix = ".reason.txt"
	dir, base := filepath.Split(dest)
	for len(base)+len(suffix) > 255 {
		_, size := utf8.DecodeLastRuneInString(base)
		base = base[:len(base)-size]
	}
	return filepath.Join(dir, base+suffix)
}

// markStuck remembers a file that could not be moved away, so it is not
// taken again until it changes.
func (w *Watcher) markStuck(name string, err error) {
	slog.Error("cannot move the slide out of the inbox", "slide", name, "stage", "watch", "err", err)
	fi, serr := os.Stat(filepath.Join(w.opt.Inbox, name))
	w.mu.Lock()
	defer w.mu.Unlock()
	if serr == nil {
		w.stuck[name] = fingerprint(fi.Size(), fi.ModTime())
	}
	w.orphans = append(w.orphans, FinishedSlide{Name: name, Finished: time.Now().UTC(), Reason: oneLine("cannot move it out of the inbox: " + err.Error())})
}

// moveSlide moves inbox/name (and a MIRAX data folder) into inbox/sub/,
// under a name not taken there (name, then stem_2.ext, stem_3.ext, ...).
// before, if set, runs first with the destination path (reason files). It
// returns the name used.
func (w *Watcher) moveSlide(name, sub string, before func(dest string) error) (string, error) {
	src := filepath.Join(w.opt.Inbox, name)
	comp := companionDir(w.opt.Inbox, name)
	dir := filepath.Join(w.opt.Inbox, sub)
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	dest := name
	for n := 2; ; n++ {
		_, err1 := os.Lstat(filepath.Join(dir, dest))
		free := errors.Is(err1, fs.ErrNotExist)
		if free && comp != "" {
			_, err2 := os.Lstat(filepath.Join(dir, strings.TrimSuffix(dest, ext)))
			free = errors.Is(err2, fs.ErrNotExist)
		}
		if free {
			break
		}
		if n > 10000 {
			return "", fmt.Errorf("no free name for %s in %s", name, dir)
		}
		dest = fmt.Sprintf("%s_%d%s", stem, n, ext)
	}
	if before != nil {
		if err := before(filepath.Join(dir, dest)); err != nil {
			return "", err
		}
	}
	if comp != "" {
		if err := os.Rename(comp, filepath.Join(dir, strings.TrimSuffix(dest, ext))); err != nil {
			return "", err
		}
	}
	if err := os.Rename(src, filepath.Join(dir, dest)); err != nil {
		return "", err
	}
	return dest, nil
}

func (w *Watcher) readJournal(id string) (WatchJournal, bool) {
	var j WatchJournal
	b, err := os.ReadFile(w.opt.Work.WatchJournalPath(id))
	if err != nil {
		return j, false
	}
	if err := json.Unmarshal(b, &j); err != nil {
		slog.Warn("watch: unreadable journal; the slide is processed again", "slide", id, "err", err)
		return WatchJournal{}, false
	}
	return j, true
}

// writeJournal writes a journal atomically; failing to is fatal (the
// watcher could no longer promise not to lose or repeat slides).
func (w *Watcher) writeJournal(j WatchJournal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: watch: %s: journal: %w", j.ID, err)
	}
	if err := store.WriteFileAtomic(w.opt.Work.WatchJournalPath(j.ID), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("pipeline: watch: %s: journal: %w", j.ID, err)
	}
	w.mu.Lock()
	w.history[j.ID] = j
	w.mu.Unlock()
	return nil
}

// loadJournals reads WORK/watch/*.json for the status page's history.
func (w *Watcher) loadJournals() error {
	entries, err := os.ReadDir(w.opt.Work.WatchDir())
	if err != nil {
		return fmt.Errorf("pipeline: watch: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		j, ok := w.readJournal(strings.TrimSuffix(name, ".json"))
		if ok && j.ID != "" {
			w.history[j.ID] = j
		}
	}
	return nil
}

// Snapshot returns the watcher's state for the status page.
func (w *Watcher) Snapshot() WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := WatchStatus{Inbox: w.opt.Inbox, Work: w.opt.Work.Dir, Started: w.started, LastScan: w.lastScan, Note: w.note,
		Queue: []QueuedSlide{}, Done: []FinishedSlide{}, Failed: []FinishedSlide{}}
	if w.current != nil {
		c := *w.current
		s.Current = &c
	}
	for _, f := range w.files {
		if f.state == fileProcessing {
			continue
		}
		st := "copying"
		switch {
		case f.state == fileReady:
			st = "ready"
		case f.size == 0:
			st = "empty"
		}
		s.Queue = append(s.Queue, QueuedSlide{Name: f.name, Size: f.size, State: st, Since: f.since})
	}
	sort.Slice(s.Queue, func(i, j int) bool { return s.Queue[i].Name < s.Queue[j].Name })
	for _, j := range w.history {
		fsl := FinishedSlide{Name: j.Slide, ID: j.ID, Finished: j.Finished, Prediction: j.Prediction, Reason: j.Reason, MovedTo: j.MovedTo}
		switch j.Status {
		case WatchDone:
			fsl.Report = j.Report
			s.Done = append(s.Done, fsl)
		case WatchFailed:
			s.Failed = append(s.Failed, fsl)
		}
	}
	s.Failed = append(s.Failed, w.orphans...)
	for _, l := range []*[]FinishedSlide{&s.Done, &s.Failed} {
		sort.SliceStable(*l, func(a, b int) bool { return (*l)[a].Finished.After((*l)[b].Finished) })
		if len(*l) > maxListed {
			*l = (*l)[:maxListed]
		}
	}
	return s
}

// flockWatch takes an exclusive lock on path (created if need be), so two
// watchers never share an inbox or a work folder.
func flockWatch(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pipeline: watch: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("pipeline: watch: another watcher is using %s (lock %s)", filepath.Dir(path), path)
		}
		// Some network file systems have no locks: go on without.
		slog.Warn("watch: cannot lock; make sure no other watcher uses this folder", "lock", path, "err", err)
		return func() {}, nil
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
