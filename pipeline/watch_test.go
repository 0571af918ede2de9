package pipeline

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/her2wsi/her2wsi/model"
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
func watchModel(t *testing.T) *LoadedModel {
	t.Helper()
	c := smallModel(model.VariantIPCA)
	c.InDim = 8
	dir := t.TempDir()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := model.SaveWeights(filepath.Join(dir, "model.safetensors"), c, model.InitParams(c, 7), nil); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel(dir, "", "", "")
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
		n += m[StageTile]
	}
	return n
}

type watchEnv struct {
	inbox string
	work  Work
	model *LoadedModel
	opt   WatchOptions
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
	aopt := DefaultAnchorOptions()
	aopt.PPK = []int{m.Config.PPK}
	eopt := DefaultEmbedOptions()
	eopt.Readers = 1
	e := &watchEnv{inbox: inbox, work: Work{Dir: filepath.Join(dir, "work")}, model: m}
	e.opt = WatchOptions{Inbox: inbox, Work: e.work, Stable: watchStable, Poll: watchPoll,
		Tile: DefaultTileOptions(), Embed: eopt, Anchors: aopt, Encoder: enc, Model: m}
	return e
}

func (e *watchEnv) watcher(t *testing.T, hook func(id, stage string)) *Watcher {
	t.Helper()
	opt := e.opt
	opt.onStage = hook
	w, err := NewWatcher(opt)
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

// makeSlide writes a small 20× slide (5×7 tissue cells) at path.
func makeSlide(t *testing.T, path string) {
	t.Helper()
	colourSlide(t, path, 5, 7)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func readJournalFile(t *testing.T, work Work, id string) WatchJournal {
	t.Helper()
	b, err := os.ReadFile(work.WatchJournalPath(id))
	if err != nil {
		t.Fatal(err)
	}
	var j WatchJournal
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// predictionRows parses predictions.csv into id → row count.
func predictionRows(t *testing.T, work Work) map[string]int {
	t.Helper()
	f, err := os.Open(work.PredictionsCSV())
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for i, r := range recs {
		if i == 0 {
			if strings.Join(r, ",") != predictionsHeader {
				t.Fatalf("header %q", r)
			}
			continue
		}
		if len(r) != 8 {
			t.Fatalf("row %q has %d fields", r, len(r))
		}
		id := r[0]
		if len(id) > 1 && id[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(id[1])) {
			id = id[1:] // neutralised against spreadsheet formulas
		}
		out[id]++
	}
	return out
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

// A slide copied slowly in pieces (pauses shorter than --stable) is not
// taken before the copy ends; then it is processed once, reported, and moved
// to done/. A .part file is ignored until renamed.
func TestWatchSlowCopyNotPickedEarly(t *testing.T) {
	e := newWatchEnv(t)
	var sc stageCounter
	w := e.watcher(t, sc.hook)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()

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
	// The journal records the move just after it: wait for both.
	waitFor(t, "slow.tif in done/ and journalled", 30*time.Second, func() bool {
		b, err := os.ReadFile(e.work.WatchJournalPath("slow"))
		var j WatchJournal
		return exists(done) && err == nil && json.Unmarshal(b, &j) == nil && j.MovedTo != ""
	})
	if sc.processed() != 1 {
		t.Fatalf("processed %d times", sc.processed())
	}
	if got, _ := os.ReadFile(done); len(got) != len(data) {
		t.Fatalf("done/slow.tif has %d bytes, want %d", len(got), len(data))
	}
	if !exists(part) || sc.get("other", StageTile) != 0 {
		t.Fatal("the .part file was taken")
	}
	j := readJournalFile(t, e.work, "slow")
	if j.Status != WatchDone || j.MovedTo != "done/slow.tif" || j.Prediction == nil || len(j.Prediction.Probs) != 4 || j.Prediction.ModelID != e.model.ID {
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
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
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
		if j.Status != WatchFailed || j.Reason != strings.TrimSpace(r) || j.MovedTo != "failed/"+name {
			t.Fatalf("%s: journal %+v", name, j)
		}
		t.Logf("%s: %s", name, strings.TrimSpace(r))
	}
	if !exists(filepath.Join(e.inbox, InboxDone, "good.tif")) {
		t.Fatal("good.tif not done")
	}
	if !exists(filepath.Join(e.inbox, "empty.tif")) || sc.get("empty", StageTile) != 0 {
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
		if stage == StageAnchors {
			cancel() // "killed" after tile and embed
		}
	}}
	if err := e.watcher(t, first.hook).Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	j := readJournalFile(t, e.work, "resume")
	if j.Status != WatchProcessing || j.Attempts != 1 || !exists(filepath.Join(e.inbox, "resume.tif")) {
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
	if n := second.processed(); n != 1 || second.get("resume", StagePredict) != 1 {
		t.Fatalf("second run processed %d slides (%v)", n, second.counts)
	}
	if rec2, _ := os.Stat(e.work.SlideJSON("resume")); !rec2.ModTime().Equal(rec1.ModTime()) {
		t.Fatal("the tile stage redid finished work")
	}
	j = readJournalFile(t, e.work, "resume")
	if j.Status != WatchDone || j.Attempts != 2 || j.MovedTo != "done/resume.tif" {
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
	if err := os.WriteFile(e.work.WatchJournalPath("resume"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	csvBefore, _ := os.ReadFile(e.work.PredictionsCSV())
	var third stageCounter
	if err := e.runOnce(t, third.hook); err != nil {
		t.Fatal(err)
	}
	if third.processed() != 0 || third.get("resume", StagePredict) != 0 {
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
		{strings.Repeat("x", 240) + ".svs", true, false},
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := e.watcher(t, nil)
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
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
		dom := chromiumDOM(t, path, base+"/")
		for _, n := range specialNames {
			if !strings.Contains(dom, htmlEscapeText(n)) {
				t.Errorf("the browser's DOM lacks %q", htmlEscapeText(n))
			}
		}
		if strings.Contains(dom, "<b>") {
			t.Error("a name was parsed as markup in the browser")
		}
	}
	cancel()
	<-errc
}
