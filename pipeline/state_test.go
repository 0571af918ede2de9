package pipeline

import (
	"errors"
	"os"
	"testing"
)

// recordStage keeps one entry per stage, replaces it on a rerun, records
// failures with their error and the parameters' checksum, and replaces a
// damaged state.json instead of failing.
func TestRecordStage(t *testing.T) {
	work := Work{Dir: t.TempDir()}
	os.MkdirAll(work.SlideDir("s1"), 0o755)
	if err := recordStage(work, Result{Stage: StageTile, ID: "s1"}, map[string]int{"a": 1}, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := recordStage(work, Result{Stage: StageEmbed, ID: "s1", Err: errors.New("pipeline: s1: boom")}, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	st, err := work.ReadState("s1")
	if err != nil {
		t.Fatal(err)
	}
	tile, embed := st.Stages[StageTile], st.Stages[StageEmbed]
	if tile.Status != "done" || tile.ParamsSHA256 == "" || embed.Status != "failed" || embed.Error != "pipeline: s1: boom" {
		t.Fatalf("state: %+v", st)
	}
	// A rerun of one stage replaces only its entry.
	if err := recordStage(work, Result{Stage: StageEmbed, ID: "s1", Skipped: true, Reason: "up to date"}, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	st, _ = work.ReadState("s1")
	if st.Stages[StageEmbed].Status != "done" || !st.Stages[StageEmbed].Skipped || st.Stages[StageTile].ParamsSHA256 != tile.ParamsSHA256 {
		t.Fatalf("after rerun: %+v", st)
	}
	os.WriteFile(work.StateJSON("s1"), []byte("{garbage"), 0o644)
	if _, err := work.ReadState("s1"); err == nil {
		t.Fatal("damaged state.json read without error")
	}
	if err := recordStage(work, Result{Stage: StageAnchors, ID: "s1"}, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	if st, err := work.ReadState("s1"); err != nil || len(st.Stages) != 1 {
		t.Fatalf("damaged state.json not replaced: %+v %v", st, err)
	}
	// No slide folder (nothing was made): nothing written.
	if err := recordStage(work, Result{Stage: StageTile, ID: "missing"}, nil, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(work.StateJSON("missing")); err == nil {
		t.Fatal("state.json written for a slide with no folder")
	}
}
