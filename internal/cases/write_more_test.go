package cases

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheckMessages(t *testing.T) {
	cs := []Case{
		{ID: "a", HE: "he_a", IHC: "ihc_a", Fold: -1, Line: 3},
		{ID: "b", HE: "he_b.svs", Fold: -1, Line: 4},
		{ID: "c", HE: "he_c", IHC: "ihc_c", Fold: -1},
	}
	w := fakeWork{"he_a": nil, "ihc_a": errors.New("not embedded with encoder plip"), "he_c": nil, "ihc_c": nil}
	var got []string
	for _, p := range Check(cs, "set.csv", w) {
		got = append(got, p.String())
	}
	want := []string{
		`set.csv:3: case "a": IHC slide "ihc_a": not embedded with encoder plip`,
		`set.csv:4: case "b": H&E slide "he_b.svs": not tiled (slide ids have no extension: "he_b"?)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if ps := Check(cs[2:], "", w); len(ps) != 0 {
		t.Errorf("ready slides reported: %v", Problems(ps))
	}
	if ps := Check(cs[1:2], "", w); len(ps) != 1 || ps[0].String() != `cases.csv:4: case "b": H&E slide "he_b.svs": not tiled (slide ids have no extension: "he_b"?)` {
		t.Errorf("default name: %v", Problems(ps))
	}
}

func TestWriteExact(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cases.csv")
	cs := []Case{
		{ID: "#1", HE: "he 1", IHC: "ihc,1", Label: 3, Split: Train, Fold: 0},
		{ID: `say "x"`, HE: "hé", Label: 0, Split: Train, Fold: 1},
		{ID: "z", HE: "h", IHC: "i", Label: 2, Split: Test, Fold: -1},
		{ID: "y", HE: "h2", Label: 1, Fold: -1},
	}
	if err := Write(p, cs); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	want := "case_id,he_slide,ihc_slide,label,split,fold\n" +
		"\"#1\",he 1,\"ihc,1\",3,train,0\n" +
		"\"say \"\"x\"\"\",hé,,0,train,1\n" +
		"z,h,i,2,test,\n" +
		"y,h2,,1,,\n"
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		cs[i].Line = i + 2
	}
	if !slices.Equal(got, cs) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, cs)
	}
}

// Write refuses an invalid set: the old file stays as it was and no temporary
// file is left; so does a failed write.
func TestWriteNothingOnProblems(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cases.csv")
	old := "# keep me\ncase_id,he_slide,ihc_slide,label\na,h,,0\n"
	os.WriteFile(p, []byte(old), 0o644)
	bad := []Case{
		{ID: "a", HE: "h", Label: 0, Split: Test, Fold: 2},
		{ID: "a", HE: "g", Label: 5, Fold: -1},
	}
	err := Write(p, bad)
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 3 {
		t.Fatalf("got %v", err)
	}
	want := "cases: " + p + ": nothing written:\n" +
		`cases.csv:1: case "a": fold 2 given for a test case (folds are for training cases)` + "\n" +
		`cases.csv:2: case "a" appears twice (row 1 and row 2)` + "\n" +
		`cases.csv:2: case "a": label 5 out of range (want 0..3 for HER2 0, 1+, 2+, 3+)`
	if err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if b, _ := os.ReadFile(p); string(b) != old {
		t.Errorf("file changed: %q", b)
	}
	if err := Write(filepath.Join(dir, "no such dir", "cases.csv"), synthCases([4]int{1, 0, 0, 0})); err == nil || !strings.HasPrefix(err.Error(), "cases: ") {
		t.Errorf("write into a missing folder: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only cases.csv", len(entries))
	}
}

// A split written and read back is the same split; overwriting leaves no
// temporary file behind.
func TestWriteSplitRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cases.csv")
	text := "# hand-made\ncase_id,he_slide,ihc_slide,label\n"
	for _, c := range synthCases([4]int{9, 8, 7, 6}) {
		text += c.ID + "," + c.HE + "," + c.IHC + "," + LabelName(c.Label) + "\n"
	}
	os.WriteFile(p, []byte(text), 0o644)
	cs, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	split, err := Split(cs, 2024, 0.3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(p, split); err != nil {
		t.Fatal(err)
	}
	back, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range split {
		split[i].Line = i + 2 // comment dropped: rows move up
	}
	if !slices.Equal(back, split) {
		t.Errorf("round trip changed the cases")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries left", len(entries))
	}
}
