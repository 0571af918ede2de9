package pipeline_test

import (
	"context"
	"testing"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth/caseset"
)

// Set-up shared by the external pipeline tests (those that build on
// generated case sets: synth/caseset imports pipeline).

// generatedCases generates the case set opt describes into a fresh work
// folder and reads its cases.csv back.
func generatedCases(tb testing.TB, opt caseset.Options) (pipeline.Work, []cases.Case) {
	tb.Helper()
	work := pipeline.Work{Dir: tb.TempDir()}
	csv, err := caseset.Generate(context.Background(), work, opt)
	if err != nil {
		tb.Fatal(err)
	}
	cs, err := cases.Read(csv)
	if err != nil {
		tb.Fatal(err)
	}
	return work, cs
}

// testRuntime compiles c on the default backend; the runtime is closed
// when the test ends.
func testRuntime(tb testing.TB, c model.Config) *model.Runtime {
	tb.Helper()
	be, err := model.NewBackend("")
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := model.NewRuntime(c, be)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rt.Close)
	return rt
}

// slideCoords reads slide id's record and its patch coordinates from work.
func slideCoords(t testing.TB, work pipeline.Work, id string) (pipeline.SlideRecord, []int64) {
	t.Helper()
	rec, err := work.ReadSlideRecord(id)
	if err != nil {
		t.Fatal(err)
	}
	coords, err := work.ReadCoords(id, rec)
	if err != nil {
		t.Fatal(err)
	}
	return rec, coords
}
