package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/slide"
)

// Short periods keep the tests quick; the slide copy in pieces pauses less
// than watchStable between pieces.
const (
	watchStable = time.Second
	watchPoll   = 100 * time.Millisecond
)

// watchModel writes an untrained model for the tiny test encoder (8
// dimensions) into a run folder and opens it.
func watchModel(t *testing.T) *pipeline.LoadedModel {
	t.Helper()
	return watchModelWith(t, nil)
}

// watchModelWith is watchModel with its parameters changed by edit first.
func watchModelWith(t *testing.T, edit func(*model.Params)) *pipeline.LoadedModel {
	t.Helper()
	m, err := pipeline.OpenModel(fixture.TinyModelDir(t, edit), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// stageCounter records the steps the watcher runs, per slide id.
type stageCounter struct {
	mu     sync.Mutex
	counts map[string]map[string]int
	on     func(id, stage string)
}

func (c *stageCounter) hook(id, stage string) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]map[string]int{}
	}
	if c.counts[id] == nil {
		c.counts[id] = map[string]int{}
	}
	c.counts[id][stage]++
	on := c.on
	c.mu.Unlock()
	if on != nil {
		on(id, stage)
	}
}

func (c *stageCounter) get(id, stage string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[id][stage]
}

// processed counts the slides that went through the pipeline (the tile
// step starts every processing).
func (c *stageCounter) processed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.counts {
		n += m[pipeline.StageTile]
	}
	return n
}

type watchEnv struct {
	inbox string
	work  pipeline.Work
	model *pipeline.LoadedModel
	opt   Options
}

func newWatchEnv(t *testing.T) *watchEnv {
	t.Helper()
	dir := t.TempDir()
	inbox := filepath.Join(dir, "inbox")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	m := watchModel(t)
	enc := testEncoder(t, "tiny-clip.onnx")
	aopt := pipeline.DefaultAnchorOptions()
	aopt.PPK = []int{m.Config.PPK}
	eopt := pipeline.DefaultEmbedOptions()
	eopt.Readers = 1
	e := &watchEnv{inbox: inbox, work: pipeline.Work{Dir: filepath.Join(dir, "work")}, model: m}
	e.opt = Options{Inbox: inbox, Work: e.work, Stable: watchStable, Poll: watchPoll,
		Tile: pipeline.DefaultTileOptions(), Embed: eopt, Anchors: aopt, Encoder: enc, Model: m}
	return e
}

func (e *watchEnv) watcher(t *testing.T, hook func(id, stage string)) *Watcher {
	t.Helper()
	opt := e.opt
	opt.onStage = hook
	w, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// runOnce runs a watcher in once mode.
func (e *watchEnv) runOnce(t *testing.T, hook func(id, stage string)) error {
	t.Helper()
	e.opt.Once = true
	defer func() { e.opt.Once = false }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return e.watcher(t, hook).Run(ctx)
}

// Test inputs shared with pipeline's tests (see fixture).
var (
	testEncoder = fixture.Encoder     // a test encoder by file name, such as tiny-clip.onnx
	colourSlide = fixture.ColourSlide // a slide of distinctly coloured 256-px cells
	exists      = fixture.Exists
)

// makeSlide writes a small 20× slide (5×7 tissue cells) at path.
func makeSlide(t *testing.T, path string) {
	t.Helper()
	colourSlide(t, path, 5, 7)
}

func readJournalFile(t *testing.T, work pipeline.Work, id string) Journal {
	t.Helper()
	b, err := os.ReadFile(JournalPath(work, id))
	if err != nil {
		t.Fatal(err)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// predictionRows parses predictions.csv into id → row count.
func predictionRows(t *testing.T, work pipeline.Work) map[string]int {
	t.Helper()
	return fixture.PredictionRows(t, work.PredictionsCSV())
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start runs w in the background until the returned stop, which fails the
// test unless Run then ends with context.Canceled; a test that ends before
// stop cancels it all the same.
func start(t *testing.T, w *Watcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
	}
}

// A slide copied slowly in pieces (pauses shorter than --stable) is not
// taken before the copy ends; then it is processed once, reported, and moved
// to done/. A .part file is ignored until renamed.
func TestWatchSlowCopyNotPickedEarly(t *testing.T) {
	e := newWatchEnv(t)
	var sc stageCounter
	w := e.watcher(t, sc.hook)
	stop := start(t, w)

	src := filepath.Join(t.TempDir(), "slow.tif")
	makeSlide(t, src)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(e.inbox, "slow.tif")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	const pieces = 8
	for i := 0; i < pieces; i++ {
		if _, err := f.Write(data[i*len(data)/pieces : (i+1)*len(data)/pieces]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(watchStable / 4) // the whole copy spans 2× --stable
		if n := sc.processed(); n != 0 {
			t.Fatalf("slide taken after %d of %d pieces", i+1, pieces)
		}
		if i == pieces/2 {
			s := w.Snapshot()
			if len(s.Queue) != 1 || s.Queue[0].Name != "slow.tif" || s.Queue[0].State != "copying" {
				t.Fatalf("queue while copying: %+v", s.Queue)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// A partial download under a temporary name is never taken.
	part := filepath.Join(e.inbox, "other.tif.part")
	if err := os.WriteFile(part, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	done := filepath.Join(e.inbox, InboxDone, "slow.tif")
	// The journal records the move just after it, and the watcher clears
	// its current slide after that: wait for all three.
	waitFor(t, "slow.tif in done/ and journalled", 30*time.Second, func() bool {
		b, err := os.ReadFile(JournalPath(e.work, "slow"))
		var j Journal
		return exists(done) && err == nil && json.Unmarshal(b, &j) == nil && j.MovedTo != "" && w.Snapshot().Current == nil
	})
	if sc.processed() != 1 {
		t.Fatalf("processed %d times", sc.processed())
	}
	if got, _ := os.ReadFile(done); len(got) != len(data) {
		t.Fatalf("done/slow.tif has %d bytes, want %d", len(got), len(data))
	}
	if !exists(part) || sc.get("other", pipeline.StageTile) != 0 {
		t.Fatal("the .part file was taken")
	}
	j := readJournalFile(t, e.work, "slow")
	if j.Status != JournalDone || j.MovedTo != "done/slow.tif" || j.Prediction == nil || len(j.Prediction.Probs) != 4 || j.Prediction.ModelID != e.model.ID {
		t.Fatalf("journal %+v", j)
	}
	if rows := predictionRows(t, e.work); rows["slow"] != 1 || len(rows) != 1 {
		t.Fatalf("predictions.csv rows %v", rows)
	}
	for _, p := range []string{e.work.ReportHTML("slow"), e.work.HeatmapPNG("slow"), e.work.QCPNG("slow")} {
		if !exists(p) {
			t.Errorf("missing %s", p)
		}
	}
	s := w.Snapshot()
	if len(s.Done) != 1 || s.Done[0].Report != "slides/slow/report.html" || s.Current != nil {
		t.Fatalf("snapshot %+v", s)
	}
	stop()
}

// A corrupt slide lands in failed/ with a one-line reason; the good slide
// beside it is done; once mode reports the failure.
func TestWatchCorruptSlideFails(t *testing.T) {
	e := newWatchEnv(t)
	bad := filepath.Join(e.inbox, "broken slide.svs")
	if err := os.WriteFile(bad, []byte(strings.Repeat("this is not a slide\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A truncated TIFF: a real slide cut in half.
	src := filepath.Join(t.TempDir(), "x.tif")
	makeSlide(t, src)
	data, _ := os.ReadFile(src)
	if err := os.WriteFile(filepath.Join(e.inbox, "truncated.tif"), data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	makeSlide(t, filepath.Join(e.inbox, "good.tif"))
	// An empty file is never taken (still being created, as far as we know).
	if err := os.WriteFile(filepath.Join(e.inbox, "empty.tif"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var sc stageCounter
	err := e.runOnce(t, sc.hook)
	if err == nil || !strings.Contains(err.Error(), "2 slide(s) failed") {
		t.Fatalf("Run: %v, want 2 failures", err)
	}
	for _, name := range []string{"broken slide.svs", "truncated.tif"} {
		id := slide.ID(name)
		if exists(filepath.Join(e.inbox, name)) || !exists(filepath.Join(e.inbox, InboxFailed, name)) {
			t.Fatalf("%s not moved to failed/", name)
		}
		reason, err := os.ReadFile(filepath.Join(e.inbox, InboxFailed, name+".reason.txt"))
		if err != nil {
			t.Fatal(err)
		}
		r := string(reason)
		if strings.Count(r, "\n") != 1 || !strings.HasSuffix(r, "\n") || len(r) < 10 {
			t.Fatalf("%s: reason %q is not one line", name, r)
		}
		j := readJournalFile(t, e.work, id)
		if j.Status != JournalFailed || j.Reason != strings.TrimSpace(r) || j.MovedTo != "failed/"+name {
			t.Fatalf("%s: journal %+v", name, j)
		}
		t.Logf("%s: %s", name, strings.TrimSpace(r))
	}
	if !exists(filepath.Join(e.inbox, InboxDone, "good.tif")) {
		t.Fatal("good.tif not done")
	}
	if !exists(filepath.Join(e.inbox, "empty.tif")) || sc.get("empty", pipeline.StageTile) != 0 {
		t.Fatal("the empty file was taken")
	}
	if rows := predictionRows(t, e.work); len(rows) != 1 || rows["good"] != 1 {
		t.Fatalf("predictions.csv rows %v", rows)
	}
}

// A restart mid-slide neither loses nor repeats it: interrupted after tile
// and embed, the slide stays in the inbox with its journal saying
// processing, and the next start processes it once (the finished stages
// skip). A slide whose journal says done but which is still in the inbox
// (stopped between journal and move) is only moved, under a new name since
// done/ has one already. Dropped in again after that, it is processed again.
func TestWatchRestartMidSlide(t *testing.T) {
	e := newWatchEnv(t)
	makeSlide(t, filepath.Join(e.inbox, "resume.tif"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := stageCounter{on: func(id, stage string) {
		if stage == pipeline.StageAnchors {
			cancel() // "killed" after tile and embed
		}
	}}
	if err := e.watcher(t, first.hook).Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	j := readJournalFile(t, e.work, "resume")
	if j.Status != JournalProcessing || j.Attempts != 1 || !exists(filepath.Join(e.inbox, "resume.tif")) {
		t.Fatalf("after the interruption: journal %+v", j)
	}
	if !exists(e.work.FeaturesH5("resume", "tiny-clip")) || exists(e.work.PredictionsCSV()) {
		t.Fatal("the first run should have stopped between embed and predict")
	}
	rec1, _ := os.Stat(e.work.SlideJSON("resume"))

	var second stageCounter
	if err := e.runOnce(t, second.hook); err != nil {
		t.Fatal(err)
	}
	if n := second.processed(); n != 1 || second.get("resume", pipeline.StagePredict) != 1 {
		t.Fatalf("second run processed %d slides (%v)", n, second.counts)
	}
	if rec2, _ := os.Stat(e.work.SlideJSON("resume")); !rec2.ModTime().Equal(rec1.ModTime()) {
		t.Fatal("the tile stage redid finished work")
	}
	j = readJournalFile(t, e.work, "resume")
	if j.Status != JournalDone || j.Attempts != 2 || j.MovedTo != "done/resume.tif" {
		t.Fatalf("journal %+v", j)
	}
	if rows := predictionRows(t, e.work); rows["resume"] != 1 {
		t.Fatalf("predictions.csv rows %v", rows)
	}

	// Stopped after the journal said done, before the move: the same file
	// (same name, size, mtime) is back in the inbox.
	doneFile := filepath.Join(e.inbox, InboxDone, "resume.tif")
	copyKeepTime(t, doneFile, filepath.Join(e.inbox, "resume.tif"))
	j.MovedTo = ""
	b, _ := json.Marshal(j)
	if err := os.WriteFile(JournalPath(e.work, "resume"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	csvBefore, _ := os.ReadFile(e.work.PredictionsCSV())
	var third stageCounter
	if err := e.runOnce(t, third.hook); err != nil {
		t.Fatal(err)
	}
	if third.processed() != 0 || third.get("resume", pipeline.StagePredict) != 0 {
		t.Fatalf("a done slide was processed again: %v", third.counts)
	}
	if exists(filepath.Join(e.inbox, "resume.tif")) || !exists(filepath.Join(e.inbox, InboxDone, "resume_2.tif")) || !exists(doneFile) {
		t.Fatal("want done/resume.tif and done/resume_2.tif")
	}
	if csvAfter, _ := os.ReadFile(e.work.PredictionsCSV()); string(csvAfter) != string(csvBefore) {
		t.Fatal("predictions.csv changed")
	}
	if j = readJournalFile(t, e.work, "resume"); j.MovedTo != "done/resume_2.tif" {
		t.Fatalf("journal %+v", j)
	}

	// Dropped in again after it was moved: a deliberate redo.
	copyKeepTime(t, doneFile, filepath.Join(e.inbox, "resume.tif"))
	var fourth stageCounter
	if err := e.runOnce(t, fourth.hook); err != nil {
		t.Fatal(err)
	}
	if fourth.processed() != 1 || !exists(filepath.Join(e.inbox, InboxDone, "resume_3.tif")) {
		t.Fatalf("re-dropped slide: %v", fourth.counts)
	}
	if rows := predictionRows(t, e.work); rows["resume"] != 1 || len(rows) != 1 {
		t.Fatalf("predictions.csv rows %v", rows)
	}

	// A different file under the same name (a rescan): every stage is
	// redone, not just checked against the coordinates.
	feat1, _ := os.Stat(e.work.FeaturesH5("resume", "tiny-clip"))
	copyKeepTime(t, doneFile, filepath.Join(e.inbox, "resume.tif"))
	later := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(e.inbox, "resume.tif"), later, later); err != nil {
		t.Fatal(err)
	}
	if err := e.runOnce(t, nil); err != nil {
		t.Fatal(err)
	}
	if feat2, _ := os.Stat(e.work.FeaturesH5("resume", "tiny-clip")); feat2.ModTime().Equal(feat1.ModTime()) {
		t.Fatal("a new file under a known name was not embedded again")
	}
	if j = readJournalFile(t, e.work, "resume"); j.Attempts != 1 || !j.ModTime.Equal(later.UTC()) || j.MovedTo != "done/resume_4.tif" {
		t.Fatalf("journal %+v", j)
	}
}

func TestWatchNames(t *testing.T) {
	for _, c := range []struct {
		name      string
		candidate bool
		ok        bool
	}{
		{"a.svs", true, true},
		{"A.SVS", true, true},
		{"scan 1 – ü.ndpi", true, true},
		{`a<b>&"c'$;d.tif`, true, true},
		{".hidden.svs", false, false},
		{"copy.svs.part", false, true},
		{"copy.svs.tmp", false, true},
		{"copy.svs.crdownload", false, true},
		{"notes.txt", false, true},
		{`back\slash.svs`, true, true},
		{"tab\tname.svs", true, false},
		{"cr\rname.svs", true, false},
		// Long names are taken: they get shortened ids and moved names.
		{strings.Repeat("x", 240) + ".svs", true, true},
		{strings.Repeat("x", 230) + ".svs", true, true},
	} {
		if got := isSlideCandidate(c.name); got != c.candidate {
			t.Errorf("isSlideCandidate(%q) = %v", c.name, got)
		}
		if err := checkWatchName(c.name); (err == nil) != c.ok {
			t.Errorf("checkWatchName(%q) = %v", c.name, err)
		}
	}
	long := strings.Repeat("ü", 120) + ".svs" // 244 bytes
	if r := filepath.Base(reasonFile("/x/failed/" + long)); len(r) > 255 || !strings.HasSuffix(r, ".reason.txt") || !utf8.ValidString(r) {
		t.Errorf("reason file %q (%d bytes)", r, len(r))
	}
	if r := reasonFile("/x/failed/a.svs"); r != "/x/failed/a.svs.reason.txt" {
		t.Errorf("reason file %q", r)
	}
}

func copyKeepTime(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(src)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// specialNames are file names with spaces, non-ASCII, and HTML, URL and
// shell special characters; each must go through every stage.
var specialNames = []string{
	"HE 01 – ünïcødé 東京.tif",
	`a<b>&"c'$;d.tif`,
	"x`rm -rf ~`$(id)|&.tif",
	"p#1%20?q=[2]{3}+~!@.tif",
	"-leading dash.tif",
}

// Names with spaces, non-ASCII and special characters flow through tile,
// embed, anchors and predict into predictions.csv, the report and the
// status page (links included); a name with a control character is refused
// with its reason.
func TestWatchSpecialNames(t *testing.T) {
	e := newWatchEnv(t)
	src := filepath.Join(t.TempDir(), "src.tif")
	makeSlide(t, src)
	for _, n := range specialNames {
		copyKeepTime(t, src, filepath.Join(e.inbox, n))
	}
	nl := "line\nbreak.tif"
	copyKeepTime(t, src, filepath.Join(e.inbox, nl))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.opt.Status = ln
	base := "http://" + ln.Addr().String()
	w := e.watcher(t, nil)
	stop := start(t, w)
	waitFor(t, "every slide handled", 40*time.Second, func() bool {
		s := w.Snapshot()
		return len(s.Done)+len(s.Failed) == len(specialNames)+1 && s.Current == nil
	})
	rows := predictionRows(t, e.work)
	for _, n := range specialNames {
		id := slide.ID(n)
		if !exists(filepath.Join(e.inbox, InboxDone, n)) {
			t.Errorf("%q not in done/", n)
		}
		if rows[id] != 1 {
			t.Errorf("%q: %d rows in predictions.csv", id, rows[id])
		}
		for _, p := range []string{e.work.CoordsH5(id), e.work.FeaturesH5(id, "tiny-clip"), e.work.AnchorsH5(id), e.work.HeatmapPNG(id), e.work.ReportHTML(id)} {
			if !exists(p) {
				t.Errorf("%q: missing %s", id, p)
			}
		}
	}
	if !exists(filepath.Join(e.inbox, InboxFailed, nl)) {
		t.Fatal("the name with a newline was not refused")
	}
	reason, _ := os.ReadFile(filepath.Join(e.inbox, InboxFailed, nl+".reason.txt"))
	if !strings.Contains(string(reason), "control character") || strings.Count(string(reason), "\n") != 1 {
		t.Fatalf("reason %q", reason)
	}

	// The status page links each report, and the link works.
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, page := get(base + "/")
	if code != 200 {
		t.Fatalf("status page: %d", code)
	}
	for _, n := range specialNames {
		id := slide.ID(n)
		if !strings.Contains(page, htmlEscape(n)) {
			t.Errorf("status page lacks the escaped name %q", htmlEscape(n))
		}
		link := WorkURL("slides/" + id + "/report.html")
		code, rep := get(base + link)
		if code != 200 || !strings.Contains(rep, `<span id="slide-name">`+htmlEscape(n)+`</span>`) {
			t.Errorf("report of %q at %s: %d", n, link, code)
		}
	}
	if strings.Contains(page, "<b>") {
		t.Error("unescaped name in the status page")
	}
	if path, err := chromiumPath(); err == nil {
		dom := testutil.ChromiumDOM(t, path, base+"/", 60*time.Second)
		for _, n := range specialNames {
			if !strings.Contains(dom, htmlEscapeText(n)) {
				t.Errorf("the browser's DOM lacks %q", htmlEscapeText(n))
			}
		}
		if strings.Contains(dom, "<b>") {
			t.Error("a name was parsed as markup in the browser")
		}
	}
	stop()
}

// runOnceWatcher runs a watcher in once mode and returns it with Run's
// error, for its snapshot.
func (e *watchEnv) runOnceWatcher(t *testing.T, edit func(*Options)) (*Watcher, error) {
	t.Helper()
	opt := e.opt
	opt.Once = true
	if edit != nil {
		edit(&opt)
	}
	w, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return w, w.Run(ctx)
}

// journals reads every journal in WORK/watch, by id.
func journals(t *testing.T, work pipeline.Work) map[string]Journal {
	t.Helper()
	entries, err := os.ReadDir(JournalDir(work))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Journal{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var j Journal
		b, err := os.ReadFile(filepath.Join(JournalDir(work), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if json.Unmarshal(b, &j) != nil {
			continue
		}
		out[strings.TrimSuffix(e.Name(), ".json")] = j
	}
	return out
}

// journalOf finds the journal of the inbox file name.
func journalOf(t *testing.T, work pipeline.Work, name string) Journal {
	t.Helper()
	for _, j := range journals(t, work) {
		if j.Slide == name {
			return j
		}
	}
	t.Fatalf("no journal for %q", name)
	return Journal{}
}

// Every name derived from an inbox name fits 255 bytes, temporary names of
// atomic writes included: the journal, the name in done/ or failed/ with
// the largest _N suffix, its reason file. Long names keep their extension,
// stay valid UTF-8 and stay distinct.
func TestWatchNameBudget(t *testing.T) {
	if got := len(filepath.Base(store.TempPath("/x/ab"))) - len("ab"); got != atomicTempExtra {
		t.Fatalf("a temporary name adds %d bytes, the budget counts %d", got, atomicTempExtra)
	}
	seen, done := map[string]string{}, map[string]bool{}
	for _, unit := range []string{"x", "ü", "東", "😀"} {
		for _, ext := range []string{".svs", ".tif", ".svslide", ".mrxs"} {
			for n := 1; n <= maxNameBytes; n++ {
				stem := strings.Repeat(unit, n/len(unit)+1)
				stem = truncUTF8(stem, n-len(ext))
				if stem == "" {
					continue
				}
				name := stem + ext
				if done[name] {
					continue // a multi-byte unit gives the same name for several n
				}
				done[name] = true
				moved := movedName(name)
				if !strings.HasSuffix(moved, ext) || !utf8.ValidString(moved) || (len(name) <= maxMovedName) != (moved == name) {
					t.Fatalf("movedName(%q) = %q", name, moved)
				}
				ms, me := splitExt(moved)
				worst := fmt.Sprintf("%s_%d%s", ms, maxMoveN, me)
				if r := filepath.Base(reasonFile("/f/" + worst)); r != worst+reasonSuffix || len(filepath.Base(store.TempPath(r))) > maxNameBytes {
					t.Fatalf("%q: reason file %q (%d bytes) does not fit", name, r, len(r))
				}
				ids := watchIDs(name)
				if len(ids) != 3 || ids[0] != ms {
					t.Fatalf("watchIDs(%q) = %q", name, ids)
				}
				for _, id := range ids {
					if pipeline.ValidID(id) != nil || !utf8.ValidString(id) || len(filepath.Base(store.TempPath(id+".json"))) > maxNameBytes {
						t.Fatalf("%q: id %q (%d bytes) does not fit", name, id, len(id))
					}
				}
				if prev, dup := seen[ids[0]+"|"+moved]; dup {
					t.Fatalf("%q and %q share id and moved name %q", prev, name, moved)
				}
				seen[ids[0]+"|"+moved] = name
			}
		}
	}
	// Names that differ only past the cut stay distinct.
	a, b := strings.Repeat("a", 240)+"1.svs", strings.Repeat("a", 240)+"2.svs"
	if movedName(a) == movedName(b) || watchIDs(a)[0] == watchIDs(b)[0] {
		t.Fatal("long names that differ at the end share a moved name or an id")
	}
}

// Long names (the journal's temporary name of a 234-byte name used to pass
// 255 bytes and stop the watcher at every start; longer ones stayed in the
// inbox for good) are processed under shortened ids, moved to done/ or
// failed/ under shortened names with their extension, and keep their full
// name in the journal, the status page and the report.
func TestWatchLongNames(t *testing.T) {
	e := newWatchEnv(t)
	src := filepath.Join(t.TempDir(), "src.tif")
	makeSlide(t, src)
	good := []string{
		strings.Repeat("L", 230) + ".tif",     // 234 bytes
		strings.Repeat("ü", 120) + "-end.tif", // 248 bytes, cut inside multi-byte text
		strings.Repeat("M", 232) + ".tif",     // 236 bytes
	}
	bad := []string{
		strings.Repeat("b", 226) + ".svs", // 230 bytes
		strings.Repeat("c", 246) + ".tif", // 250 bytes
	}
	for _, n := range good {
		copyKeepTime(t, src, filepath.Join(e.inbox, n))
	}
	for _, n := range bad {
		if err := os.WriteFile(filepath.Join(e.inbox, n), []byte(strings.Repeat("not a slide\n", 200)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := e.runOnceWatcher(t, nil)
	if err == nil || !strings.Contains(err.Error(), "2 slide(s) failed") {
		t.Fatalf("Run: %v, want 2 failures", err)
	}
	rows := predictionRows(t, e.work)
	check := func(name, sub string) Journal {
		t.Helper()
		j := journalOf(t, e.work, name)
		moved := filepath.Join(e.inbox, filepath.FromSlash(j.MovedTo))
		if exists(filepath.Join(e.inbox, name)) || !strings.HasPrefix(j.MovedTo, sub+"/") || !exists(moved) {
			t.Fatalf("%d-byte name: not moved to %s/: journal %+v", len(name), sub, j)
		}
		base := filepath.Base(moved)
		if filepath.Ext(base) != filepath.Ext(name) || !utf8.ValidString(base) || len(base) > maxMovedName || len(j.ID) > maxWatchID {
			t.Fatalf("%d-byte name: moved name %q, id %q", len(name), base, j.ID)
		}
		return j
	}
	for _, n := range good {
		j := check(n, InboxDone)
		if j.Status != JournalDone || rows[j.ID] != 1 {
			t.Fatalf("%d-byte name: journal %+v, rows %v", len(n), j, rows)
		}
		rep, err := os.ReadFile(e.work.ReportHTML(j.ID))
		if err != nil || !strings.Contains(string(rep), `<span id="slide-name">`+htmlEscape(n)+`</span>`) {
			t.Fatalf("%d-byte name: the report does not show the full name (%v)", len(n), err)
		}
	}
	for _, n := range bad {
		j := check(n, InboxFailed)
		reason, err := os.ReadFile(reasonFile(filepath.Join(e.inbox, filepath.FromSlash(j.MovedTo))))
		if j.Status != JournalFailed || err != nil || strings.TrimSpace(string(reason)) != j.Reason {
			t.Fatalf("%d-byte name: journal %+v, reason file %q (%v)", len(n), j, reason, err)
		}
	}
	s := w.Snapshot()
	names := map[string]bool{}
	for _, f := range append(s.Done, s.Failed...) {
		names[f.Name] = true
	}
	for _, n := range append(append([]string{}, good...), bad...) {
		if !names[n] {
			t.Errorf("the status page lacks the full %d-byte name", len(n))
		}
	}
	// A restart finds nothing to do and does not stop.
	if _, err := e.runOnceWatcher(t, nil); err != nil {
		t.Fatalf("restart: %v", err)
	}
}

// Two files with the same stem (coll.tif, coll.tiff) get distinct ids: two
// journals naming their own file, two predictions rows, both in done/. The
// same file name dropped again keeps its own id and leaves the other's
// journal alone.
func TestWatchSameStemDistinctIDs(t *testing.T) {
	e := newWatchEnv(t)
	makeSlide(t, filepath.Join(e.inbox, "coll.tif"))
	colourSlide(t, filepath.Join(e.inbox, "coll.tiff"), 6, 7)
	if _, err := e.runOnceWatcher(t, nil); err != nil {
		t.Fatal(err)
	}
	js := journals(t, e.work)
	rows := predictionRows(t, e.work)
	if len(js) != 2 || len(rows) != 2 {
		t.Fatalf("journals %v, rows %v", js, rows)
	}
	ids := map[string]string{}
	for id, j := range js {
		if j.ID != id || j.Status != JournalDone || rows[id] != 1 || j.MovedTo != "done/"+j.Slide {
			t.Fatalf("journal %s: %+v", id, j)
		}
		if rep, _ := os.ReadFile(e.work.ReportHTML(id)); !strings.Contains(string(rep), `<span id="slide-name">`+j.Slide+`</span>`) {
			t.Fatalf("the report of %s does not name %s", id, j.Slide)
		}
		ids[j.Slide] = id
	}
	if ids["coll.tif"] == "" || ids["coll.tiff"] == "" || ids["coll.tif"] == ids["coll.tiff"] {
		t.Fatalf("ids %v", ids)
	}
	other := "coll.tiff"
	before, _ := os.ReadFile(JournalPath(e.work, ids[other]))
	redo := filepath.Join(e.inbox, "coll.tif")
	copyKeepTime(t, filepath.Join(e.inbox, InboxDone, "coll.tif"), redo)
	later := time.Now().Add(-time.Hour)
	if err := os.Chtimes(redo, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := e.runOnceWatcher(t, nil); err != nil {
		t.Fatal(err)
	}
	if j := journalOf(t, e.work, "coll.tif"); !j.ModTime.Equal(later.UTC()) || j.ID != ids["coll.tif"] || j.MovedTo != "done/coll_2.tif" {
		t.Fatalf("dropped again: journal %+v", j)
	}
	if after, _ := os.ReadFile(JournalPath(e.work, ids[other])); string(after) != string(before) {
		t.Fatal("the other file's journal changed")
	}
	if rows := predictionRows(t, e.work); len(rows) != 2 {
		t.Fatalf("rows %v", rows)
	}
}

func TestIsDiskFull(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{nil, false},
		{errors.New("slide: x.svs: not a slide"), false},
		{fmt.Errorf("pipeline: x: features: %w", &os.PathError{Op: "write", Path: "/w/f.h5", Err: syscall.ENOSPC}), true},
		{fmt.Errorf("atomicfile: x: %w", syscall.EDQUOT), true},
		{errors.New(`store: H5Dwrite: file write failed: time = Mon, errno = 28, error message = 'No space left on device'`), true},
		{errors.New("store: H5Fflush: errno = 28"), true},
		{errors.New("store: errno = 280"), false},
		{errors.New("write /w/x: no space left on device"), true},
	} {
		if got := isDiskFull(c.err); got != c.full {
			t.Errorf("isDiskFull(%v) = %v", c.err, got)
		}
	}
}

// A full disk fails no slide: the slide stays in the inbox, its journal
// says waiting, the status page says the disk is full, and it is tried
// again (after diskFullRetry) until space returns; then it is processed.
// In once mode a slide left waiting counts as failed.
func TestWatchDiskFullWaits(t *testing.T) {
	e := newWatchEnv(t)
	makeSlide(t, filepath.Join(e.inbox, "full.tif"))
	var full atomic.Bool
	var calls atomic.Int32
	full.Store(true)
	e.opt.diskFullRetry = 1500 * time.Millisecond
	e.opt.beforeProcess = func(id string) error {
		calls.Add(1)
		if full.Load() {
			return fmt.Errorf("pipeline: %s: features: %w", id, &os.PathError{Op: "write", Path: e.work.FeaturesH5(id, "tiny-clip"), Err: syscall.ENOSPC})
		}
		return nil
	}
	// Once mode: left in the inbox, counted as failed.
	if _, err := e.runOnceWatcher(t, nil); err == nil || !strings.Contains(err.Error(), "1 slide(s) failed") || !strings.Contains(err.Error(), "left in the inbox") {
		t.Fatalf("once: %v", err)
	}
	if !exists(filepath.Join(e.inbox, "full.tif")) || exists(filepath.Join(e.inbox, InboxFailed, "full.tif")) {
		t.Fatal("once: the slide left the inbox")
	}
	if j := readJournalFile(t, e.work, "full"); j.Status != JournalWaiting || !strings.Contains(j.Reason, "no space left") {
		t.Fatalf("once: journal %+v", j)
	}

	w := e.watcher(t, nil)
	stop := start(t, w)
	start := calls.Load()
	waitFor(t, "the status page to say the disk is full", 30*time.Second, func() bool {
		s := w.Snapshot()
		return strings.Contains(s.Note, "disk is full") && len(s.Queue) == 1 && s.Queue[0].State == "waiting"
	})
	waitFor(t, "a second try", 30*time.Second, func() bool { return calls.Load() >= start+2 })
	if !exists(filepath.Join(e.inbox, "full.tif")) || exists(filepath.Join(e.inbox, InboxFailed, "full.tif")) {
		t.Fatal("the slide left the inbox")
	}
	if j := readJournalFile(t, e.work, "full"); j.Status != JournalWaiting && j.Status != JournalProcessing {
		t.Fatalf("journal %+v", j)
	}
	full.Store(false) // space is back
	waitFor(t, "full.tif done", 30*time.Second, func() bool {
		j, err := os.ReadFile(JournalPath(e.work, "full"))
		return err == nil && strings.Contains(string(j), `"moved_to": "done/full.tif"`)
	})
	if j := readJournalFile(t, e.work, "full"); j.Status != JournalDone || j.Attempts < 3 {
		t.Fatalf("journal %+v", j)
	}
	if rows := predictionRows(t, e.work); rows["full"] != 1 {
		t.Fatalf("rows %v", rows)
	}
	if s := w.Snapshot(); strings.Contains(s.Note, "disk is full") || len(s.Failed) != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	stop()
}

// A copy that pauses longer than --stable is taken early, fails as
// truncated and is moved to failed/, where the copier goes on writing into
// the same file: the watcher sees it change there, takes it back into the
// inbox (its reason file removed) and processes it once complete.
func TestWatchStalledCopyTakenBack(t *testing.T) {
	e := newWatchEnv(t)
	src := filepath.Join(t.TempDir(), "src.tif")
	makeSlide(t, src)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	w := e.watcher(t, nil)
	stop := start(t, w)

	f, err := os.Create(filepath.Join(e.inbox, "stall.tif"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data[:len(data)/3]); err != nil {
		t.Fatal(err)
	}
	failed := filepath.Join(e.inbox, InboxFailed, "stall.tif")
	waitFor(t, "the stalled copy in failed/", 30*time.Second, func() bool {
		j, err := os.ReadFile(JournalPath(e.work, "stall"))
		return err == nil && strings.Contains(string(j), `"moved_to": "failed/stall.tif"`) && exists(failed+".reason.txt")
	})
	if _, err := f.Write(data[len(data)/3:]); err != nil { // the copy resumes
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stall.tif done", 30*time.Second, func() bool {
		j, err := os.ReadFile(JournalPath(e.work, "stall"))
		return err == nil && strings.Contains(string(j), `"moved_to": "done/stall.tif"`)
	})
	if exists(failed) || exists(failed+".reason.txt") {
		t.Fatal("left in failed/")
	}
	if got, _ := os.ReadFile(filepath.Join(e.inbox, InboxDone, "stall.tif")); len(got) != len(data) {
		t.Fatalf("done/stall.tif has %d bytes, want %d", len(got), len(data))
	}
	if rows := predictionRows(t, e.work); rows["stall"] != 1 {
		t.Fatalf("rows %v", rows)
	}
	if s := w.Snapshot(); len(s.Failed) != 0 || len(s.Done) != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	stop()
}

// In once mode a slide that cannot be moved out of the inbox counts as
// failed; it stays in the inbox and is listed with the reason.
func TestWatchOnceCountsStuck(t *testing.T) {
	e := newWatchEnv(t)
	if err := os.WriteFile(filepath.Join(e.inbox, "stuck.svs"), []byte(strings.Repeat("not a slide\n", 200)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder where the reason file goes: failed/ cannot take the slide.
	if err := os.MkdirAll(filepath.Join(e.inbox, InboxFailed, "stuck.svs.reason.txt", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := e.runOnceWatcher(t, nil)
	if err == nil || !strings.Contains(err.Error(), "1 slide(s) failed") {
		t.Fatalf("Run: %v, want 1 failure", err)
	}
	if !exists(filepath.Join(e.inbox, "stuck.svs")) {
		t.Fatal("the slide is gone from the inbox")
	}
	if s := w.Snapshot(); len(s.Failed) != 1 || !strings.Contains(s.Failed[0].Reason, "cannot move it out of the inbox") {
		t.Fatalf("snapshot failed %+v", s.Failed)
	}
}

// A model whose output is not finite fails the slide (never a prediction,
// never a row) without stopping the watcher or its restarts; journals
// still always encode (non-finite numbers as null). A journal that cannot
// be written fails that slide alone, which is moved to failed/ with the
// reason, while the others go on. A corrupt journal is still no obstacle.
func TestWatchJournalTrouble(t *testing.T) {
	t.Run("nan", func(t *testing.T) {
		e := newWatchEnv(t)
		e.opt.Model = watchModelWith(t, func(p *model.Params) {
			for _, v := range p.Values {
				for i := range v {
					v[i] = float32(math.NaN())
				}
			}
		})
		makeSlide(t, filepath.Join(e.inbox, "nan.tif"))
		w, err := e.runOnceWatcher(t, nil)
		if err == nil || !strings.Contains(err.Error(), "1 slide(s) failed") {
			t.Fatalf("Run: %v, want 1 failure", err)
		}
		j := readJournalFile(t, e.work, "nan")
		if j.Status != JournalFailed || j.MovedTo != "failed/nan.tif" || j.Prediction != nil || !strings.Contains(j.Reason, "not finite") {
			t.Fatalf("journal %+v", j)
		}
		if rows := predictionRows(t, e.work); len(rows) != 0 {
			t.Fatalf("predictions.csv rows %v", rows)
		}
		if _, err := json.Marshal(w.Snapshot()); err != nil {
			t.Fatalf("status.json: %v", err)
		}
		if _, err := e.runOnceWatcher(t, nil); err != nil {
			t.Fatalf("restart: %v", err)
		}
		// The journal's own encoding: null for NaN, read back as NaN.
		jp := Journal{ID: "x", Prediction: &Prediction{Probs: []float64{math.NaN(), 1, math.Inf(1), 0}}}
		b, err := json.Marshal(jp)
		if err != nil || !strings.Contains(string(b), "null") {
			t.Fatalf("journal with NaN: %s %v", b, err)
		}
		var back Journal
		if err := json.Unmarshal(b, &back); err != nil || !math.IsNaN(back.Prediction.Probs[0]) {
			t.Fatalf("null read back as %v (%v)", back.Prediction, err)
		}
	})
	t.Run("unwritable", func(t *testing.T) {
		e := newWatchEnv(t)
		for _, n := range []string{"jdir.tif", "ok.tif", "corrupt.tif"} {
			makeSlide(t, filepath.Join(e.inbox, n))
		}
		// A folder in the journal's place: it cannot be written.
		if err := os.MkdirAll(filepath.Join(JournalPath(e.work, "jdir"), "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(JournalPath(e.work, "corrupt"), []byte("{not json"), 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := e.runOnceWatcher(t, nil)
		if err == nil || !strings.Contains(err.Error(), "1 slide(s) failed") {
			t.Fatalf("Run: %v, want 1 failure", err)
		}
		for _, n := range []string{"ok.tif", "corrupt.tif"} {
			if !exists(filepath.Join(e.inbox, InboxDone, n)) {
				t.Errorf("%s not done", n)
			}
		}
		reason, _ := os.ReadFile(filepath.Join(e.inbox, InboxFailed, "jdir.tif.reason.txt"))
		if exists(filepath.Join(e.inbox, "jdir.tif")) || !strings.Contains(string(reason), "journal") {
			t.Fatalf("jdir.tif: reason %q", reason)
		}
		if s := w.Snapshot(); len(s.Failed) != 1 || s.Failed[0].Name != "jdir.tif" || !strings.Contains(s.Failed[0].Reason, "journal") {
			t.Fatalf("snapshot failed %+v", s.Failed)
		}
	})
}

// TestWatchTakesLockAndRecordsState: the watch folder honours a slide lock
// held by a batch run on the same work folder (the slide stays in the
// inbox, neither failed nor done), then processes it once free and
// records state.json like `run`.
func TestWatchTakesLockAndRecordsState(t *testing.T) {
	e := newWatchEnv(t)
	makeSlide(t, filepath.Join(e.inbox, "shared.tif"))
	os.MkdirAll(e.work.SlideDir("shared"), 0o755)
	l, err := pipeline.AcquireLock(e.work, "shared", pipeline.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.runOnce(t, nil)
	if !exists(filepath.Join(e.inbox, "shared.tif")) || exists(e.work.SlideJSON("shared")) {
		t.Fatal("the watcher processed or moved a slide locked by another process")
	}
	l.Release()
	if err := e.runOnce(t, nil); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(e.inbox, InboxDone, "shared.tif")) {
		t.Fatal("not done once the lock was released")
	}
	st, err := e.work.ReadState("shared")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{pipeline.StageTile, pipeline.StageEmbed, pipeline.StageAnchors, pipeline.StagePredict} {
		if st.Stages[s].Status != "done" {
			t.Errorf("state.json %s: %+v", s, st.Stages[s])
		}
	}
}

// DICOM in the watch folder: a folder of a series' instances copied in file
// by file is one slide, named after the folder, taken only once the folder
// has stayed unchanged for the settle time, and moved whole to done/; a
// lone .dcm file is a slide like any other; a folder holding two series
// fails with a one-line reason; a series' instances loose in the inbox are
// one slide (the largest instance's name), moved to done/ together.
func TestWatchDICOM(t *testing.T) {
	e := newWatchEnv(t)
	var sc stageCounter
	w := e.watcher(t, sc.hook)
	stop := start(t, w)

	src := t.TempDir()
	files := fixture.DICOMSeries(t, src, "s", 5, 7)
	if len(files) < 2 {
		t.Fatalf("series of %d files", len(files))
	}
	folder := filepath.Join(e.inbox, "case7")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		time.Sleep(watchStable / 2)
		if n := sc.processed(); n != 0 {
			t.Fatalf("folder taken after %d of %d files", i, len(files))
		}
		copyKeepTime(t, f, filepath.Join(folder, filepath.Base(f)))
	}
	lone := filepath.Join(t.TempDir(), "lone")
	os.Mkdir(lone, 0o755)
	loneFiles := fixture.DICOMSeries(t, lone, "lone", 2, 3)
	copyKeepTime(t, loneFiles[0], filepath.Join(e.inbox, "lone.dcm"))
	mixed := filepath.Join(e.inbox, "mixed")
	os.Mkdir(mixed, 0o755)
	copyKeepTime(t, files[0], filepath.Join(mixed, "a.dcm"))
	copyKeepTime(t, loneFiles[0], filepath.Join(mixed, "b.dcm"))
	// A series' instances loose in the inbox: one slide, its largest
	// instance, and the others go with it.
	loose := filepath.Join(t.TempDir(), "loose")
	os.Mkdir(loose, 0o755)
	looseFiles := fixture.DICOMSeries(t, loose, "loose", 3, 4)
	for i := len(looseFiles) - 1; i >= 0; i-- {
		copyKeepTime(t, looseFiles[i], filepath.Join(e.inbox, filepath.Base(looseFiles[i])))
	}

	waitFor(t, "the four DICOM slides done or failed", 90*time.Second, func() bool {
		s := w.Snapshot()
		return len(s.Done)+len(s.Failed) == 4 && s.Current == nil
	})
	for _, f := range looseFiles {
		if !exists(filepath.Join(e.inbox, InboxDone, filepath.Base(f))) {
			t.Errorf("loose instance %s not moved to done/", filepath.Base(f))
		}
	}
	for _, f := range files {
		if !exists(filepath.Join(e.inbox, InboxDone, "case7", filepath.Base(f))) {
			t.Errorf("%s not moved to done/case7/", filepath.Base(f))
		}
	}
	if exists(folder) || !exists(filepath.Join(e.inbox, InboxDone, "lone.dcm")) {
		t.Error("case7/ or lone.dcm left in the inbox")
	}
	if sc.get("case7", pipeline.StageTile) != 1 || sc.get("loose-level-0", pipeline.StageTile) != 1 || sc.processed() != 3 {
		t.Errorf("processed: case7 %d times, %d slides", sc.get("case7", pipeline.StageTile), sc.processed())
	}
	j := readJournalFile(t, e.work, "case7")
	if j.Status != JournalDone || j.Slide != "case7" || j.MovedTo != "done/case7" || j.Prediction == nil {
		t.Errorf("journal %+v", j)
	}
	if rows := predictionRows(t, e.work); rows["case7"] != 1 || rows["lone"] != 1 || rows["loose-level-0"] != 1 || len(rows) != 3 {
		t.Errorf("predictions.csv rows %v", rows)
	}
	// The slide was read as the whole series: tiled at level 0 of 1792×1280.
	b, err := os.ReadFile(e.work.SlideJSON("case7"))
	if err != nil || !strings.Contains(string(b), `"format": "dicom"`) || !strings.Contains(string(b), `"width": 1792`) {
		t.Errorf("slide.json: %v %.300s", err, b)
	}
	reason, err := os.ReadFile(filepath.Join(e.inbox, InboxFailed, "mixed.reason.txt"))
	if err != nil || !strings.Contains(string(reason), "instances of 2 DICOM series") || strings.Count(string(reason), "\n") != 1 {
		t.Errorf("mixed/: reason %q, %v", reason, err)
	}
	stop()
}
