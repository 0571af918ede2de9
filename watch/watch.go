// Package watch is the watch-folder service: slides copied into an inbox
// are taken once complete, taken one at a time through the pipeline's
// stages (tile, embed, anchors, predict with its report) by a
// pipeline.Runner, journalled in WORK/watch so that a restart neither loses
// nor repeats one, and moved to the inbox's done/ or failed/ (with a reason
// file). A status page (StatusPage) serves the queue, progress and results
// over HTTP, with the work folder's reports.
package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sync/errgroup"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/slide"
)

// Watch-folder defaults.
const (
	DefaultStable = 10 * time.Second
	DefaultPoll   = 2 * time.Second
	// DefaultDiskFullRetry is how long a slide that met a full disk waits
	// in the inbox before it is tried again.
	DefaultDiskFullRetry = time.Minute
	// reclaimWindow bounds how long after a slide was moved to failed/ the
	// watcher still looks whether it changes there (see reclaimFailed).
	reclaimWindow = 24 * time.Hour
	// minScanGap bounds how often file events can trigger a scan (a copy
	// raises thousands of write events).
	minScanGap = 100 * time.Millisecond
)

// Journal statuses (Journal.Status).
const (
	JournalProcessing = "processing"
	JournalDone       = "done"
	JournalFailed     = "failed"
	// JournalWaiting: processing met a full disk; the slide waits in the
	// inbox and is tried again.
	JournalWaiting = "waiting"
	// JournalRequeued: the slide changed in failed/ after it was moved there
	// (a copy still being written) and was taken back into the inbox.
	JournalRequeued = "requeued"
)

// Sub-folders of the inbox where finished slides go.
const (
	InboxDone   = "done"
	InboxFailed = "failed"
)

// Options configure a Watcher.
type Options struct {
	Inbox   string        // folder slides are copied into
	Work    pipeline.Work // work folder: stage outputs, predictions.csv, journals
	Stable  time.Duration // a file is complete when its size and mtime stay unchanged this long
	Poll    time.Duration // scan interval; file events only trigger earlier scans
	Once    bool          // process what is complete now, then return
	Tile    pipeline.TileOptions
	Embed   pipeline.EmbedOptions
	Anchors pipeline.AnchorOptions
	// Encoder and Model are owned by the caller, who closes them after Run
	// returns; during Run only the processing goroutine uses them.
	Encoder features.Encoder
	Model   *pipeline.LoadedModel
	// Status, when set, serves the status page until Run returns (the
	// listener is closed then), under StatusPage (its Inbox is this one's;
	// a listener that is not loopback makes it Public, see ForListener).
	Status     net.Listener
	StatusPage StatusOptions
	// Viewer, when set, is served by the status page under /slides/ and
	// /viewer/ (the slide viewer, package viewer); ViewURL links each
	// done slide to its page.
	Viewer  http.Handler
	ViewURL func(id string) string

	onStage       func(id, stage string) // tests: called before each step of a slide
	beforeProcess func(id string) error  // tests: a non-nil error fails processing the slide
	diskFullRetry time.Duration          // tests: DefaultDiskFullRetry when zero
}

// Journal is WORK/watch/<id>.json: what the watcher knows of a slide,
// written atomically at each change so a restart neither loses nor repeats
// a slide.
//
// The id is the file name without extension when that is free; a name too
// long for the derived file names gets a shortened id (see watchIDs), and a
// file whose id another file holds (x.svs after x.tif) gets another. Slide
// always holds the file's own name, as reports and the status page show it.
type Journal struct {
	Slide      string      `json:"slide"` // file name in the inbox
	ID         string      `json:"id"`
	Size       int64       `json:"size"`
	ModTime    time.Time   `json:"mod_time"`
	Status     string      `json:"status"` // processing, done, failed, waiting, requeued
	Reason     string      `json:"reason,omitempty"`
	Attempts   int         `json:"attempts"` // times processing of this file started
	Started    time.Time   `json:"started"`
	Finished   time.Time   `json:"finished,omitzero"`
	Prediction *Prediction `json:"prediction,omitempty"`
	Report     string      `json:"report,omitempty"`   // relative to WORK
	MovedTo    string      `json:"moved_to,omitempty"` // relative to the inbox; empty until moved
	Version    string      `json:"her2wsi_version"`
}

// Prediction is a finished slide's prediction.
type Prediction struct {
	Probs     Probs     `json:"probs"` // 0, 1+, 2+, 3+
	Predicted string    `json:"predicted"`
	ModelID   string    `json:"model_id"`
	Time      time.Time `json:"time"`
}

// Probs are probabilities that always encode as JSON: a value that is not a
// finite number (NaN or ±Inf from a broken model) is written as null, and
// null is read back as NaN. A journal can thus always be written.
type Probs []float64

// MarshalJSON writes non-finite values as null.
func (p Probs) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	b := []byte{'['}
	for i, v := range p {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b = append(b, vb...)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads null as NaN.
func (p *Probs) UnmarshalJSON(b []byte) error {
	var vs []*float64
	if err := json.Unmarshal(b, &vs); err != nil {
		return err
	}
	if vs == nil {
		*p = nil
		return nil
	}
	out := make(Probs, len(vs))
	for i, v := range vs {
		out[i] = math.NaN()
		if v != nil {
			out[i] = *v
		}
	}
	*p = out
	return nil
}

func (j Journal) sameFile(name string, size int64, mod time.Time) bool {
	return j.Slide == name && j.Size == size && j.ModTime.Equal(mod.UTC())
}

// JournalDir is WORK/watch, the journals' folder (and the watcher's lock).
func JournalDir(work pipeline.Work) string { return filepath.Join(work.Dir, "watch") }

// JournalPath is WORK/watch/<id>.json, the slide's journal.
func JournalPath(work pipeline.Work, id string) string {
	return filepath.Join(JournalDir(work), id+".json")
}

// Watch-status types (the status page and /status.json).
type (
	// Status is a snapshot of the watcher.
	Status struct {
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
		State string    `json:"state"` // copying, ready, empty, waiting (for disk space)
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
		Name       string      `json:"name"`
		ID         string      `json:"id,omitempty"`
		Finished   time.Time   `json:"finished"`
		Prediction *Prediction `json:"prediction,omitempty"`
		Report     string      `json:"report,omitempty"` // relative to WORK
		Reason     string      `json:"reason,omitempty"`
		MovedTo    string      `json:"moved_to,omitempty"`
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

// heldFile is a file the scans leave alone: one that could not be moved
// out of the inbox (until it changes), or one waiting for disk space (until
// then, or until it changes).
type heldFile struct {
	fp       string    // fingerprint of the file when held
	size     int64     // for the status page
	until    time.Time // zero: until the file changes
	diskFull bool
}

// Watcher processes slides copied into an inbox: see New and Run.
type Watcher struct {
	opt Options

	// fsMu serialises moving slides into and out of failed/ with writing
	// their journals (the worker moves them there, the scanner takes
	// changed ones back).
	fsMu sync.Mutex

	mu         sync.Mutex
	files      map[string]*watchFile // inbox name → file
	held       map[string]heldFile   // inbox name → a file left in the inbox for now
	history    map[string]Journal    // id → last journal
	orphans    []FinishedSlide       // failures without a journal
	current    *CurrentSlide
	started    time.Time
	lastScan   time.Time
	note       string
	nextOrder  int
	quit       bool            // once mode: nothing left to do
	failures   int             // slides failed (moved to failed/) during this Run
	unfinished map[string]bool // names left in the inbox (cannot be moved, disk full) during this Run

	wake chan struct{} // a file became ready, or quit was set
	kick chan struct{} // scan now

	runner  *pipeline.Runner       // the stages, used by the processing goroutine alone
	predict *pipeline.PredictStage // the runner's last stage, for the prediction row

	// Loose DICOM instances in the inbox, grouped by series (see
	// dicomGroups); used by scan alone.
	dcmFP      string
	dcmPrimary map[string]string // instance name → its series' primary instance name
}

// New checks the options and fills in defaults.
func New(opt Options) (*Watcher, error) {
	if opt.Inbox == "" || opt.Work.Dir == "" {
		return nil, errors.New("watch: inbox and work folder are required")
	}
	if opt.Encoder == nil || opt.Model == nil {
		return nil, errors.New("watch: an encoder and a model are required")
	}
	if opt.Stable < 0 || opt.Poll < 0 {
		return nil, fmt.Errorf("watch: --stable %v and --poll %v must not be negative", opt.Stable, opt.Poll)
	}
	if opt.Stable == 0 {
		opt.Stable = DefaultStable
	}
	if opt.Poll == 0 {
		opt.Poll = DefaultPoll
	}
	if opt.diskFullRetry == 0 {
		opt.diskFullRetry = DefaultDiskFullRetry
	}
	if err := opt.Tile.Validate(); err != nil {
		return nil, err
	}
	if opt.Model.Config.InDim != opt.Encoder.Dim() {
		return nil, fmt.Errorf("watch: the model takes %d-dimensional features but encoder %s gives %d", opt.Model.Config.InDim, opt.Encoder.Name(), opt.Encoder.Dim())
	}
	if !containsInt(opt.Anchors.PPK, opt.Model.Config.PPK) {
		opt.Anchors.PPK = append(append([]int(nil), opt.Anchors.PPK...), opt.Model.Config.PPK)
	}
	inbox, err := filepath.Abs(opt.Inbox)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	fi, err := os.Stat(inbox)
	if err != nil {
		return nil, fmt.Errorf("watch: inbox: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("watch: inbox %s is not a folder", inbox)
	}
	opt.Inbox = inbox
	if opt.Work.Dir, err = filepath.Abs(opt.Work.Dir); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if err := opt.Embed.Validate(); err != nil {
		return nil, err
	}
	w := &Watcher{
		opt:        opt,
		files:      map[string]*watchFile{},
		held:       map[string]heldFile{},
		history:    map[string]Journal{},
		unfinished: map[string]bool{},
		wake:       make(chan struct{}, 1),
		kick:       make(chan struct{}, 1),
	}
	w.predict = pipeline.NewPredictStage(opt.Work, opt.Encoder.Name(), opt.Model)
	w.runner = &pipeline.Runner{Work: opt.Work, Lock: pipeline.LockOptions{StaleAfter: pipeline.DefaultStaleAfter}, OnStage: w.setStage, Stages: []pipeline.Stage{
		pipeline.NewTileStage(opt.Work, opt.Tile, 1),
		pipeline.NewEmbedStage(opt.Work, opt.Encoder, opt.Embed),
		pipeline.NewAnchorStage(opt.Work, opt.Anchors, 1),
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
// slides (those moved to failed/ and those left in the inbox: they could
// not be moved, or the disk is full); and any error that stops it (the work
// folder is gone, the encoder's runtime fails). One slide's trouble never
// stops it.
func (w *Watcher) Run(ctx context.Context) error {
	inbox, work := w.opt.Inbox, w.opt.Work
	if w.opt.Status != nil {
		defer w.opt.Status.Close()
	}
	// The stages' machinery (the embedder's goroutines) lives as long as
	// Run; the caller's encoder and model outlive it.
	defer func() {
		if err := w.runner.Close(); err != nil {
			slog.Warn("watch: closing the stages", "err", err)
		}
	}()
	for _, d := range []string{JournalDir(work), filepath.Join(inbox, InboxDone), filepath.Join(inbox, InboxFailed)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
	for _, lock := range []string{filepath.Join(JournalDir(work), ".lock"), filepath.Join(inbox, ".her2wsi-watch.lock")} {
		unlock, err := flockWatch(lock)
		if err != nil {
			return err
		}
		defer unlock()
	}
	_ = store.CleanTemps(JournalDir(work))
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
		if w.opt.Viewer != nil {
			page.Mount(w.opt.Viewer, w.opt.ViewURL, "/slides/", "/viewer/")
		}
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
	failures, left := w.failures, len(w.unfinished)
	w.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	case failures > 0 || left > 0:
		var why []string
		if failures > 0 {
			why = append(why, fmt.Sprintf("reasons in %s", filepath.Join(inbox, InboxFailed)))
		}
		if left > 0 {
			why = append(why, fmt.Sprintf("%d left in the inbox: see the log", left))
		}
		return fmt.Errorf("watch: %d slide(s) failed (%s)", failures+left, strings.Join(why, "; "))
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
	w.reclaimFailed(now)
	entries, err := os.ReadDir(w.opt.Inbox)
	dcmGroup := w.dicomGroups(entries)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastScan = now
	if err != nil {
		w.note = fmt.Sprintf("cannot list the inbox: %v", err)
		slog.Error("watch: cannot list the inbox", "inbox", w.opt.Inbox, "err", err)
		return time.Time{}, fmt.Errorf("watch: %w", err)
	}
	w.note = ""
	present := map[string]bool{}
	woke := false
	for _, e := range entries {
		name := e.Name()
		var size int64
		var mod time.Time
		var extra string
		switch {
		case e.Type().IsRegular() && isSlideCandidate(name):
			if p := w.dcmPrimary[name]; p != "" && p != name {
				continue // another instance of a DICOM series: it goes with its primary
			}
			fi, err := e.Info()
			if err != nil {
				continue // gone since listed
			}
			size, mod = fi.Size(), fi.ModTime()
			extra = companionFingerprint(w.opt.Inbox, name) + dcmGroup[name]
		case e.IsDir() && isDICOMFolder(w.opt.Inbox, name):
			var n int
			var err error
			if n, size, mod, err = folderStat(filepath.Join(w.opt.Inbox, name)); err != nil {
				continue
			}
			extra = fmt.Sprintf("%d files", n)
		default:
			continue
		}
		present[name] = true
		if h, ok := w.held[name]; ok {
			if h.fp == fingerprint(size, mod) && (h.until.IsZero() || now.Before(h.until)) {
				if !h.until.IsZero() && (next.IsZero() || h.until.Before(next)) {
					next = h.until
				}
				continue
			}
			delete(w.held, name) // changed, or its wait is over: taken again once complete
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
	for name := range w.held {
		if !present[name] {
			delete(w.held, name)
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
	if strings.HasPrefix(name, ".") || store.IsTemp(name) || !pipeline.HasSlideExtension(name) {
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

// dicomGroups groups the loose .dcm files of the inbox by DICOM series:
// only a series' primary instance (its largest level) is a slide, which
// opens with the others (slide.DICOMSeries) and moves with them. It
// returns, for each primary with companions, a fingerprint of the
// companions (count, bytes, latest mtime), so the slide is complete only
// when all its instances are. Headers are parsed again only when the
// inbox's set of .dcm files changes.
func (w *Watcher) dicomGroups(entries []os.DirEntry) map[string]string {
	type stat struct {
		size int64
		mod  time.Time
	}
	files := map[string]stat{}
	var fp strings.Builder
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !isSlideCandidate(name) || !strings.EqualFold(filepath.Ext(name), ".dcm") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		files[name] = stat{fi.Size(), fi.ModTime()}
		fmt.Fprintf(&fp, "%s/%d/%d;", name, fi.Size(), fi.ModTime().UnixNano())
	}
	if fp.String() != w.dcmFP {
		w.dcmFP = fp.String()
		w.dcmPrimary = map[string]string{}
		for name := range files {
			if _, done := w.dcmPrimary[name]; done {
				continue
			}
			primary, members := slide.DICOMSeries(filepath.Join(w.opt.Inbox, name))
			for _, m := range members {
				w.dcmPrimary[filepath.Base(m)] = filepath.Base(primary)
			}
		}
	}
	out := map[string]string{}
	members := map[string][]string{}
	for name, p := range w.dcmPrimary {
		if _, ok := files[name]; ok && name != p {
			members[p] = append(members[p], name)
		}
	}
	for p, ms := range members {
		var size int64
		var latest time.Time
		for _, m := range ms {
			size += files[m].size
			if files[m].mod.After(latest) {
				latest = files[m].mod
			}
		}
		out[p] = fmt.Sprintf(" +%d dicom instances %d bytes %d", len(ms), size, latest.UnixNano())
	}
	return out
}

// isDICOMFolder says whether inbox/name, a folder, is a DICOM slide: one
// series' .dcm instances dropped in together (the folder is the slide, its
// name the slide's). done/, failed/, hidden folders and MIRAX data folders
// are not.
func isDICOMFolder(inbox, name string) bool {
	if name == InboxDone || name == InboxFailed || strings.HasPrefix(name, ".") || store.IsTemp(name) {
		return false
	}
	if _, err := os.Stat(filepath.Join(inbox, name+".mrxs")); err == nil {
		return false
	}
	ents, err := os.ReadDir(filepath.Join(inbox, name))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && strings.EqualFold(filepath.Ext(e.Name()), ".dcm") {
			return true
		}
	}
	return false
}

// folderStat sums a DICOM folder's files (not its subfolders): their
// number and bytes, and the latest modification time among them and the
// folder's own (which a file added, removed or renamed changes). A folder
// is complete when these stay unchanged for the settle time, like a file.
func folderStat(dir string) (n int, size int64, latest time.Time, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	latest = fi.ModTime()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, time.Time{}, err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		n++
		size += fi.Size()
		if fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return n, size, latest, nil
}

// statEntry returns the size and modification time of an inbox entry: a
// file's own, a DICOM folder's totals (see folderStat).
func statEntry(path string) (int64, time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, time.Time{}, err
	}
	if !fi.IsDir() {
		return fi.Size(), fi.ModTime(), nil
	}
	_, size, mod, err := folderStat(path)
	return size, mod, err
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

// checkWatchName says why a file name cannot be processed: its id (the name
// without extension) must be a valid slide id, and control characters are
// refused because predictions.csv and the reason files hold one slide per
// line. Length is no reason: a long name gets a shortened id and a shortened
// name in done/ or failed/ (see watchIDs and movedName).
func checkWatchName(name string) error {
	if err := pipeline.ValidID(slide.ID(name)); err != nil {
		return err
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("file name %q contains a control character (%U)", name, r)
		}
	}
	return nil
}

// chooseID picks the slide id of an inbox file: the first of watchIDs(name)
// whose journal is missing (or unreadable) or belongs to this very file
// name, so that a file never takes over another file's journal, outputs
// and predictions row (x.tif after x.svs gets x-tif). It returns the
// journal found under that id, if any.
func (w *Watcher) chooseID(name string) (string, Journal, bool, error) {
	ids := watchIDs(name)
	for _, id := range ids {
		if pipeline.ValidID(id) != nil {
			continue
		}
		j, ok := w.readJournal(id)
		if !ok || j.Slide == "" || j.Slide == name {
			return id, j, ok, nil
		}
	}
	return "", Journal{}, false, fmt.Errorf("the slide ids %q are all used by other files (journals in %s)", ids, JournalDir(w.opt.Work))
}

// handle decides what a ready file needs and does it. A non-nil error stops
// the watcher (the work folder is gone, the encoder failed); a slide's own
// trouble is recorded and the slide moved, or left waiting in the inbox.
func (w *Watcher) handle(ctx context.Context, f *watchFile) error {
	path := filepath.Join(w.opt.Inbox, f.name)
	size, mod, err := statEntry(path)
	if err != nil {
		return nil // gone
	}
	if size != f.size || !mod.Equal(f.mod) {
		return nil // changed since it was found complete: the next scans decide again
	}
	slidePath := path
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		// A DICOM folder: the slide opens from its series' primary instance.
		if slidePath, err = slide.DICOMFolderSlide(path); err != nil {
			w.failOrphan(f.name, f.size, f.mod, err.Error())
			return nil
		}
	}
	if err := checkWatchName(f.name); err != nil {
		w.failOrphan(f.name, f.size, f.mod, err.Error())
		return nil
	}
	id, prev, hadPrev, err := w.chooseID(f.name)
	if err != nil {
		w.failOrphan(f.name, f.size, f.mod, err.Error())
		return nil
	}
	w.mu.Lock()
	if w.current != nil {
		w.current.ID = id
	}
	w.mu.Unlock()
	log := slog.With("slide", id, "stage", "watch")
	if id != slide.ID(f.name) {
		log.Info("the slide id differs from the file name (too long, or taken by another file)", "file", f.name)
	}
	same := hadPrev && prev.sameFile(f.name, f.size, f.mod)
	switch {
	case same && prev.Status == JournalDone && prev.MovedTo == "":
		log.Info("already processed before; moving it to done/")
		return w.finishDone(prev)
	case same && prev.Status == JournalFailed && prev.MovedTo == "":
		log.Info("failed before; moving it to failed/")
		return w.finishFailed(prev)
	}
	j := Journal{Slide: f.name, ID: id, Size: f.size, ModTime: f.mod.UTC(), Status: JournalProcessing, Attempts: 1, Started: time.Now().UTC(), Version: pipeline.Version}
	if same {
		j.Attempts = prev.Attempts + 1
		switch prev.Status {
		case JournalProcessing:
			log.Info("interrupted before; processing it again", "attempt", j.Attempts)
		case JournalWaiting:
			log.Info("waited for disk space; processing it again", "attempt", j.Attempts)
		}
	}
	if err := w.writeJournal(j); err != nil {
		return w.journalFailed(j, err)
	}
	// Resume only work begun on this very file; a new file under a known id
	// (a rescan) redoes every stage, since the stages' own checks compare
	// coordinates, not pixels.
	row, err := w.runSlide(ctx, pipeline.Input{Path: slidePath, ID: id}, !same)
	if ctx.Err() != nil {
		return ctx.Err() // the journal says processing: the next start redoes it
	}
	if errors.Is(err, pipeline.ErrLocked) || errors.Is(err, pipeline.ErrLockLost) {
		// Another process (a batch run on the same WORK) holds the slide:
		// it stays in the inbox, waiting, and is taken again later.
		retry := max(w.opt.Stable, w.opt.Poll)
		log.Warn("slide locked by another process; taken again later", "retry_in", retry, "err", err)
		j.Status, j.Reason, j.Finished = JournalWaiting, oneLine("waiting for another process: "+err.Error()), time.Time{}
		if err := w.writeJournal(j); err != nil && w.workGone() {
			return err
		}
		w.hold(j.Slide, j.Size, j.ModTime, time.Now().Add(retry), false)
		return nil
	}
	if err != nil {
		if isDiskFull(err) {
			return w.waitForSpace(j, err)
		}
		var fatal fatalError
		if errors.As(err, &fatal) {
			return fatal.error
		}
		log.Error("failed", "err", err)
		j.Status, j.Reason, j.Finished = JournalFailed, oneLine(err.Error()), time.Now().UTC()
		if err := w.writeJournal(j); err != nil {
			return w.journalFailed(j, err)
		}
		return w.finishFailed(j)
	}
	j.Status, j.Finished = JournalDone, time.Now().UTC()
	j.Prediction = &Prediction{Probs: row.Probs, Predicted: cases.LabelName(row.Predicted), ModelID: row.ModelID, Time: row.Time.UTC()}
	j.Report = filepath.ToSlash(filepath.Join("slides", id, "report.html"))
	if err := w.writeJournal(j); err != nil {
		return w.journalFailed(j, err)
	}
	p := math.NaN()
	if row.Predicted >= 0 && row.Predicted < len(row.Probs) {
		p = row.Probs[row.Predicted]
	}
	log.Info("done", "her2", j.Prediction.Predicted, "p", fmt.Sprintf("%.3f", p), "elapsed", time.Since(j.Started).Round(time.Millisecond))
	return w.finishDone(j)
}

// runSlide processes one slide (see process); the tests' beforeProcess hook
// may fail it first.
func (w *Watcher) runSlide(ctx context.Context, in pipeline.Input, force bool) (pipeline.PredictRow, error) {
	if h := w.opt.beforeProcess; h != nil {
		if err := h(in.ID); err != nil {
			return pipeline.PredictRow{}, err
		}
	}
	return w.process(ctx, in, force)
}

// fatalError stops the watcher rather than failing the slide.
type fatalError struct{ error }

// process takes one slide through tile → embed → anchors → predict (with
// its report) in the shared runner: under the slide's lock, skipping the
// stages that are fresh for the file's content (so a slide interrupted by
// a restart resumes where it was), recording state.json. force redoes
// every stage. The prediction row is written to predictions.csv only once
// the report is written.
func (w *Watcher) process(ctx context.Context, in pipeline.Input, force bool) (pipeline.PredictRow, error) {
	rep, err := w.runner.Run(ctx, []pipeline.Input{in}, pipeline.RunOptions{Force: force})
	if err != nil {
		return pipeline.PredictRow{}, err
	}
	if rep.Locked > 0 {
		s, _ := rep.Summary(pipeline.StageLock)
		return pipeline.PredictRow{}, fmt.Errorf("watch: %s: %w (%s)", in.ID, pipeline.ErrLocked, s.Results[0].Reason)
	}
	for _, s := range rep.Summaries {
		for _, r := range s.Results {
			if r.Err == nil || r.NotRun {
				continue
			}
			if errors.Is(r.Err, pipeline.ErrEncoderRuntime) {
				return pipeline.PredictRow{}, fatalError{fmt.Errorf("watch: %s: %w", in.ID, r.Err)}
			}
			return pipeline.PredictRow{}, r.Err
		}
	}
	rows := w.predict.Rows()
	if len(rows) != 1 {
		return pipeline.PredictRow{}, fmt.Errorf("watch: %s: no prediction", in.ID)
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

// errnoDiskFull matches the errno HDF5 quotes in its messages for a full
// disk (28, ENOSPC) or an exhausted quota (122, EDQUOT).
var errnoDiskFull = regexp.MustCompile(`errno = (28|122)\b`)

// isDiskFull says whether err comes from a full disk or an exhausted quota:
// ENOSPC or EDQUOT anywhere in its chain, or a message quoting them (HDF5's
// errors reach Go as text).
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "disk quota exceeded") || errnoDiskFull.MatchString(msg)
}

// workGone says whether the journals' folder is no longer there (or cannot
// be reached): the watcher must stop then, for it could no longer promise
// not to lose or repeat slides.
func (w *Watcher) workGone() bool {
	fi, err := os.Stat(JournalDir(w.opt.Work))
	return err != nil || !fi.IsDir()
}

// journalFailed handles a journal that cannot be written: with the work
// folder gone it stops the watcher (returns err); a full disk leaves the
// slide waiting in the inbox; anything else fails this slide alone: it is
// moved to failed/ with the reason and listed on the status page.
func (w *Watcher) journalFailed(j Journal, err error) error {
	if w.workGone() {
		return err
	}
	if isDiskFull(err) {
		return w.waitForSpace(j, err)
	}
	reason := "cannot write its journal: " + err.Error()
	if j.Status == JournalDone && j.Prediction != nil {
		reason = fmt.Sprintf("processed (HER2 %s, report in %s), but %s", j.Prediction.Predicted, filepath.Join(w.opt.Work.Dir, j.Report), reason)
	}
	w.failOrphan(j.Slide, j.Size, j.ModTime, reason)
	return nil
}

// waitForSpace leaves a slide that met a full disk in the inbox, its
// journal saying waiting, to be tried again after diskFullRetry (or when it
// changes): no slide is failed for want of space.
func (w *Watcher) waitForSpace(j Journal, cause error) error {
	retry := w.opt.diskFullRetry
	slog.Error("the disk is full: the slide stays in the inbox and is tried again later", "slide", j.ID, "stage", "watch", "retry_in", retry, "err", cause)
	j.Status, j.Reason, j.Finished = JournalWaiting, oneLine("waiting for disk space: "+cause.Error()), time.Time{}
	if err := w.writeJournal(j); err != nil {
		if w.workGone() {
			return err
		}
		// The journal still says processing: a restart takes it again too.
		slog.Warn("watch: cannot record the wait in the journal", "slide", j.ID, "err", err)
	}
	w.hold(j.Slide, j.Size, j.ModTime, time.Now().Add(retry), true)
	return nil
}

// hold makes the scans leave an inbox file alone until it changes or, when
// until is set, until then.
func (w *Watcher) hold(name string, size int64, mod, until time.Time, diskFull bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held[name] = heldFile{fp: fingerprint(size, mod), size: size, until: until, diskFull: diskFull}
	w.unfinished[name] = true
}

// moved notes that an inbox file left the inbox.
func (w *Watcher) moved(name string) {
	w.mu.Lock()
	delete(w.unfinished, name)
	w.mu.Unlock()
}

// changedSince says whether the inbox file is no longer the one the journal
// describes (overwritten while processed): it is then left for the next
// scans, which process the new file.
func (w *Watcher) changedSince(j Journal) bool {
	size, mod, err := statEntry(filepath.Join(w.opt.Inbox, j.Slide))
	if err != nil || !j.sameFile(j.Slide, size, mod) {
		slog.Warn("the file changed while it was processed; it is taken again once complete", "slide", j.ID, "stage", "watch")
		return true
	}
	return false
}

// finishDone moves a processed slide to done/ and records where.
func (w *Watcher) finishDone(j Journal) error {
	if w.changedSince(j) {
		return nil
	}
	w.setStage(j.ID, "moving")
	w.fsMu.Lock()
	defer w.fsMu.Unlock()
	dest, err := w.moveSlide(j.Slide, InboxDone, nil)
	if err != nil {
		w.markStuck(j.ID, j.Slide, j.Size, j.ModTime, err)
		return nil
	}
	w.moved(j.Slide)
	j.MovedTo = filepath.ToSlash(filepath.Join(InboxDone, dest))
	return w.journalAfterMove(j)
}

// finishFailed writes the reason file and moves the slide to failed/.
func (w *Watcher) finishFailed(j Journal) error {
	if w.changedSince(j) {
		return nil
	}
	w.setStage(j.ID, "moving")
	w.fsMu.Lock()
	defer w.fsMu.Unlock()
	dest, err := w.moveSlide(j.Slide, InboxFailed, func(dest string) error {
		return store.WriteFileAtomic(reasonFile(dest), []byte(j.Reason+"\n"), 0o644)
	})
	if err != nil {
		w.markStuck(j.ID, j.Slide, j.Size, j.ModTime, err)
		return nil
	}
	w.moved(j.Slide)
	j.MovedTo = filepath.ToSlash(filepath.Join(InboxFailed, dest))
	w.mu.Lock()
	w.failures++
	w.mu.Unlock()
	return w.journalAfterMove(j)
}

// journalAfterMove records where a slide was moved. The slide is out of the
// inbox already, so a journal that cannot be written only loses that note
// (logged), unless the work folder is gone.
func (w *Watcher) journalAfterMove(j Journal) error {
	err := w.writeJournal(j)
	if err != nil && w.workGone() {
		return err
	}
	if err != nil {
		slog.Error("watch: the slide was moved, but its journal cannot record it", "slide", j.ID, "moved_to", j.MovedTo, "err", err)
	}
	return nil
}

// failOrphan fails a file that has no journal (its name is refused, or its
// journal cannot be written): it is moved to failed/ with its reason file
// and listed on the status page. A file that changed since it was found
// complete is left for the next scans.
func (w *Watcher) failOrphan(name string, size int64, mod time.Time, reason string) {
	reason = oneLine(reason)
	if sz, mt, err := statEntry(filepath.Join(w.opt.Inbox, name)); err != nil || sz != size || !mt.Equal(mod) {
		return
	}
	slog.Error("failed", "slide", name, "stage", "watch", "reason", reason)
	dest, err := w.moveSlide(name, InboxFailed, func(dest string) error {
		return store.WriteFileAtomic(reasonFile(dest), []byte(reason+"\n"), 0o644)
	})
	if err != nil {
		w.markStuck("", name, size, mod, err)
		return
	}
	w.moved(name)
	fsl := FinishedSlide{Name: name, Finished: time.Now().UTC(), Reason: reason, MovedTo: filepath.ToSlash(filepath.Join(InboxFailed, dest))}
	w.mu.Lock()
	w.orphans = append(w.orphans, fsl)
	w.failures++
	w.mu.Unlock()
}

// reasonFile is failed/<name>.reason.txt, the name shortened (at a UTF-8
// boundary) where the reason file's temporary name would pass the usual
// 255-byte limit (names from movedName never are).
func reasonFile(dest string) string {
	dir, base := filepath.Split(dest)
	return filepath.Join(dir, truncUTF8(base, maxNameBytes-atomicTempExtra-len(reasonSuffix))+reasonSuffix)
}

// markStuck remembers a file that could not be moved away: it is left in
// the inbox, listed as failed (the reason added to its journal's, id, when
// that says failed), and not taken again until it changes. When the disk is
// full, it is tried again after diskFullRetry instead.
func (w *Watcher) markStuck(id, name string, size int64, mod time.Time, err error) {
	if isDiskFull(err) {
		slog.Error("the disk is full: cannot move the slide out of the inbox; tried again later", "slide", name, "stage", "watch", "err", err)
		w.hold(name, size, mod, time.Now().Add(w.opt.diskFullRetry), true)
		return
	}
	slog.Error("cannot move the slide out of the inbox", "slide", name, "stage", "watch", "err", err)
	w.hold(name, size, mod, time.Time{}, false)
	reason := oneLine("cannot move it out of the inbox: " + err.Error())
	w.mu.Lock()
	defer w.mu.Unlock()
	if j, ok := w.history[id]; ok && id != "" && j.Status == JournalFailed && j.Slide == name {
		j.Reason += "; " + reason // the status page's copy only
		w.history[id] = j
		return
	}
	w.orphans = append(w.orphans, FinishedSlide{Name: name, ID: id, Finished: time.Now().UTC(), Reason: reason})
}

// moveSlide moves inbox/name (and a MIRAX data folder) into inbox/sub/,
// under a name not taken there (movedName(name), then stem_2.ext,
// stem_3.ext, ...). before, if set, runs first with the destination path
// (reason files). It returns the name used.
func (w *Watcher) moveSlide(name, sub string, before func(dest string) error) (string, error) {
	src := filepath.Join(w.opt.Inbox, name)
	comp := companionDir(w.opt.Inbox, name)
	dir := filepath.Join(w.opt.Inbox, sub)
	dest := movedName(name)
	stem, ext := splitExt(dest)
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
		if n > maxMoveN {
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
	var companions []string // the other instances of a loose DICOM series
	if strings.EqualFold(filepath.Ext(name), ".dcm") {
		_, files := slide.DICOMSeries(src)
		for _, f := range files {
			if f != src {
				companions = append(companions, f)
			}
		}
	}
	if err := os.Rename(src, filepath.Join(dir, dest)); err != nil {
		return "", err
	}
	for _, f := range companions {
		base := filepath.Base(f)
		stem, ext := splitExt(base)
		to := filepath.Join(dir, base)
		for n := 2; n <= maxMoveN; n++ {
			if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
				break
			}
			to = filepath.Join(dir, fmt.Sprintf("%s_%d%s", stem, n, ext))
		}
		if err := os.Rename(f, to); err != nil {
			slog.Warn("watch: an instance of the DICOM series could not be moved with it", "file", f, "err", err)
		}
	}
	return dest, nil
}

// reclaimFailed takes back into the inbox a slide that the watcher moved to
// failed/ and that changed there since (size or mtime differ from its
// journal): a copy that paused longer than --stable was taken early, failed
// as truncated, and the copier went on writing into the same file, now in
// failed/. Back in the inbox it is processed again once complete. Only
// slides failed within reclaimWindow are looked at.
func (w *Watcher) reclaimFailed(now time.Time) {
	w.mu.Lock()
	var cands []Journal
	for _, j := range w.history {
		if j.Status == JournalFailed && strings.HasPrefix(j.MovedTo, InboxFailed+"/") && now.Sub(j.Finished) < reclaimWindow {
			cands = append(cands, j)
		}
	}
	w.mu.Unlock()
	for _, j := range cands {
		size, mod, err := statEntry(filepath.Join(w.opt.Inbox, filepath.FromSlash(j.MovedTo)))
		if err != nil || j.sameFile(j.Slide, size, mod) {
			continue
		}
		if err := w.reclaim(j); err != nil {
			slog.Warn("watch: a failed slide changed in failed/, but cannot be taken back into the inbox", "slide", j.ID, "moved_to", j.MovedTo, "err", err)
		}
	}
}

// reclaim moves failed/<j.MovedTo> back to the inbox under its own name,
// removes its reason file and records it in the journal.
func (w *Watcher) reclaim(j Journal) error {
	w.fsMu.Lock()
	defer w.fsMu.Unlock()
	if cur, ok := w.readJournal(j.ID); !ok || cur.Status != JournalFailed || cur.MovedTo != j.MovedTo || cur.Slide != j.Slide {
		return nil // changed meanwhile
	}
	src := filepath.Join(w.opt.Inbox, filepath.FromSlash(j.MovedTo))
	dst := filepath.Join(w.opt.Inbox, j.Slide)
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		return nil // a file of that name is in the inbox again: it goes its own way
	}
	if strings.EqualFold(filepath.Ext(j.Slide), ".mrxs") {
		srcComp := strings.TrimSuffix(src, filepath.Ext(src))
		dstComp := filepath.Join(w.opt.Inbox, slide.ID(j.Slide))
		if fi, err := os.Stat(srcComp); err == nil && fi.IsDir() {
			if _, err := os.Lstat(dstComp); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s is in the way", dstComp)
			}
			if err := os.Rename(srcComp, dstComp); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	if err := os.Remove(reasonFile(src)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("watch: cannot remove the reason file", "slide", j.ID, "err", err)
	}
	slog.Warn("the slide changed in failed/ after it was moved there (a copy still being written?); taken back into the inbox", "slide", j.ID, "stage", "watch", "file", j.Slide)
	j.Status, j.MovedTo, j.Finished = JournalRequeued, "", time.Now().UTC()
	j.Reason = "changed in failed/ after it was moved there; taken back into the inbox (it had failed: " + j.Reason + ")"
	if err := w.writeJournal(j); err != nil {
		slog.Error("watch: cannot record in the journal that the slide was taken back", "slide", j.ID, "err", err)
	}
	return nil
}

func (w *Watcher) readJournal(id string) (Journal, bool) {
	var j Journal
	b, err := os.ReadFile(JournalPath(w.opt.Work, id))
	if err != nil {
		return j, false
	}
	if err := json.Unmarshal(b, &j); err != nil {
		slog.Warn("watch: unreadable journal; the slide is processed again", "slide", id, "err", err)
		return Journal{}, false
	}
	return j, true
}

// writeJournal writes a journal atomically (encoding cannot fail: see
// Probs). Callers decide what a failure means: see journalFailed.
func (w *Watcher) writeJournal(j Journal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("watch: %s: journal: %w", j.ID, err)
	}
	if err := store.WriteFileAtomic(JournalPath(w.opt.Work, j.ID), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("watch: %s: journal: %w", j.ID, err)
	}
	w.mu.Lock()
	w.history[j.ID] = j
	w.mu.Unlock()
	return nil
}

// loadJournals reads WORK/watch/*.json for the status page's history.
func (w *Watcher) loadJournals() error {
	entries, err := os.ReadDir(JournalDir(w.opt.Work))
	if err != nil {
		return fmt.Errorf("watch: %w", err)
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
func (w *Watcher) Snapshot() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Status{Inbox: w.opt.Inbox, Work: w.opt.Work.Dir, Started: w.started, LastScan: w.lastScan, Note: w.note,
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
	waiting := 0
	for name, h := range w.held {
		if h.diskFull {
			waiting++
			s.Queue = append(s.Queue, QueuedSlide{Name: name, Size: h.size, State: "waiting"})
		}
	}
	if waiting > 0 {
		full := fmt.Sprintf("the disk is full (no space left on device): %d slide(s) wait in the inbox and are tried again every %v", waiting, w.opt.diskFullRetry)
		if s.Note != "" {
			full = s.Note + "; " + full
		}
		s.Note = full
	}
	sort.Slice(s.Queue, func(i, j int) bool { return s.Queue[i].Name < s.Queue[j].Name })
	for _, j := range w.history {
		fsl := FinishedSlide{Name: j.Slide, ID: j.ID, Finished: j.Finished, Prediction: j.Prediction, Reason: j.Reason, MovedTo: j.MovedTo}
		switch j.Status {
		case JournalDone:
			fsl.Report = j.Report
			s.Done = append(s.Done, fsl)
		case JournalFailed:
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
		return nil, fmt.Errorf("watch: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("watch: another watcher is using %s (lock %s)", filepath.Dir(path), path)
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
