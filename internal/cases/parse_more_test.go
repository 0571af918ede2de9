package cases

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// Every kind of problem, with the exact message and line, and the problems of
// one file all reported in line order.
func TestParseMessages(t *testing.T) {
	const h = "case_id,he_slide,ihc_slide,label,split,fold\n"
	tests := []struct {
		name, text string
		want       []string // Problem.String() of every problem, in order
	}{
		{"empty file", "", []string{
			"cases.csv: empty file: the header case_id,he_slide,ihc_slide,label[,split][,fold] is missing"}},
		{"only comments", "# nothing\n\n", []string{
			"cases.csv: empty file: the header case_id,he_slide,ihc_slide,label[,split][,fold] is missing"}},
		{"no rows", "# c\ncase_id,he_slide,ihc_slide,label\n", []string{
			"cases.csv: no cases: the file has a header but no rows"}},
		{"no header", "c1,h1,i1,2\n", []string{
			"cases.csv:1: no header: the first line must name the columns case_id,he_slide,ihc_slide,label[,split][,fold]"}},
		{"header problems after a comment", "# made by hand\n\nCase_ID , HE_slide,stain,label,label,\n", []string{
			`cases.csv:3: unknown column "stain" (columns: case_id,he_slide,ihc_slide,label,split,fold)`,
			`cases.csv:3: column "label" appears twice`,
			`cases.csv:3: empty column name in the header (column 6; the columns are case_id,he_slide,ihc_slide,label[,split][,fold])`,
			`cases.csv:3: missing column "ihc_slide"`}},
		{"unknown column only: rows still checked", "case_id,he_slide,ihc_slide,label,stain\nc,h,i,7,x\n", []string{
			`cases.csv:1: unknown column "stain" (columns: case_id,he_slide,ihc_slide,label,split,fold)`,
			`cases.csv:2: case "c": label "7" (want 0, 1, 2, 3 or 0, 1+, 2+, 3+)`}},
		{"row problems", h +
			",h1,i1,0,,\n" + // 2
			"c2,,i2,1,,\n" + // 3
			"c3,h3,i3,,,\n" + // 4
			"c4,h4,i4,4+,,\n" + // 5
			"c5,h5,i5,2,val,\n" + // 6
			"c6,h6,i6,2,train,x\n" + // 7
			"c7,h7,i7,2,train,-1\n" + // 8
			"c8,h8,i8,2,test,1\n" + // 9
			"c9,h9,i9,2,,1\n" + // 10
			"c10,h10,i10,2\n" + // 11
			"c11,h11,h11,3,,\n" + // 12
			"c12,h12,i3,3,,\n" + // 13
			"c12,h13,,3,,\n" + // 14
			"c14,../x,,3,,\n", // 15
			[]string{
				`cases.csv:2: empty case_id (he_slide "h1")`,
				`cases.csv:3: case "c2": empty he_slide (every case needs its H&E slide)`,
				`cases.csv:4: case "c3": empty label (want 0, 1+, 2+ or 3+)`,
				`cases.csv:5: case "c4": label "4+" (want 0, 1, 2, 3 or 0, 1+, 2+, 3+)`,
				`cases.csv:6: case "c5": split "val" (want train, test or empty)`,
				`cases.csv:7: case "c6": fold "x" is not a non-negative integer (leave it empty for none)`,
				`cases.csv:8: case "c7": fold "-1" is not a non-negative integer (leave it empty for none)`,
				`cases.csv:9: case "c8": fold 1 given for a test case (folds are for training cases)`,
				`cases.csv:10: case "c9": fold 1 given for a case without a split (folds are for training cases)`,
				`cases.csv:11: case "c10": 4 fields, the header has 6`,
				`cases.csv:12: case "c11": slide "h11" is both its H&E and its IHC slide`,
				`cases.csv:13: slide "i3" is in two cases: IHC of case "c3" (line 4) and IHC of case "c12" (line 13)`,
				`cases.csv:14: case "c12" appears twice (lines 13 and 14)`,
				`cases.csv:15: case "c14": he_slide "../x" is not a slide id (the slide's file name without extension, not a path)`,
			}},
		{"bad quoting, reading goes on", h +
			"c1,h\"1,i1,0,,\n" +
			"c2,h2,i2,9,,\n" +
			"\"c3\"x,h3,i3,0,,\n", []string{
			`cases.csv:2: unreadable CSV: stray " in column 5 (quote the whole field and double the " inside it)`,
			`cases.csv:3: case "c2": label "9" (want 0, 1, 2, 3 or 0, 1+, 2+, 3+)`,
			`cases.csv:4: unreadable CSV: a quoted field must be closed by " before the next comma or the end of the line (column 4)`}},
		{"unclosed quote", h + "c1,h1,i1,0,,\n\"c2,h2,i2,0,,\nc3,h3,i3,0,,\n", []string{
			`cases.csv:3: unreadable CSV: a quoted field starting on this line is still open on line 4`}},
		{"fold numbering", h +
			"a,ha,,0,train,1\n" +
			"b,hb,,0,train,4\n" +
			"c,hc,,0,train,\n" +
			"d,hd,,0,test,\n", []string{
			`cases.csv:3: case "b": fold 4 is used but no training case is in fold 0, 2, 3 (number folds from 0 with no gaps)`,
			`cases.csv:4: case "c": training case without a fold while other training cases have one`}},
		{"one fold", h + "a,ha,,0,train,0\nb,hb,,1,train,0\n", []string{
			`cases.csv:2: only fold 0 is used (cross-validation needs at least 2 folds)`}},
		{"bad ids", h + "\"c\x01\",h,,0,,\nc2,\"h\xff\",,0,,\n", []string{
			`cases.csv:2: case_id "c\x01" contains a control character`,
			`cases.csv:3: case "c2": he_slide "h\xff" is not valid UTF-8`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, ps := Parse(strings.NewReader(tc.text), "cases.csv")
			if cs != nil {
				t.Errorf("cases returned despite problems: %+v", cs)
			}
			got := make([]string, len(ps))
			for i, p := range ps {
				got[i] = p.String()
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, text string
		want       []Case
	}{
		{"byte order mark, CRLF, spaces, labels with +", "\ufeffcase_id,he_slide,ihc_slide,label\r\n a , b , c , 3+ \r\n",
			[]Case{{"a", "b", "c", 3, "", -1, 2}}},
		{"quoted commas, quotes, non-ASCII, '#' inside a quoted id", "case_id,he_slide,ihc_slide,label\n\"#7, \"\"x\"\"\",HE-ü,,0\n",
			[]Case{{`#7, "x"`, "HE-ü", "", 0, "", -1, 2}}},
		{"split in capitals, folds 0..1", "case_id,he_slide,ihc_slide,label,split,fold\na,h1,,1,TRAIN,0\nb,h2,,1,Train,1\nc,h3,,2,Test,\n",
			[]Case{{"a", "h1", "", 1, Train, 0, 2}, {"b", "h2", "", 1, Train, 1, 3}, {"c", "h3", "", 2, Test, -1, 4}}},
		{"split without fold column", "split,label,ihc_slide,he_slide,case_id\ntest,0,,h,a\n",
			[]Case{{"a", "h", "", 0, Test, -1, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, ps := Parse(strings.NewReader(tc.text), "cases.csv")
			if len(ps) > 0 {
				t.Fatal(Problems(ps))
			}
			if !slices.Equal(cs, tc.want) {
				t.Errorf("got %+v\nwant %+v", cs, tc.want)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "none.csv")); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "cases: ") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "my cases.csv")
	os.WriteFile(p, []byte("case_id,he_slide,ihc_slide,label\na,h,,5\n"), 0o644)
	cs, err := Read(p)
	var ps Problems
	if cs != nil || !errors.As(err, &ps) || len(ps) != 1 || ps[0].String() != `my cases.csv:2: case "a": label "5" (want 0, 1, 2, 3 or 0, 1+, 2+, 3+)` {
		t.Errorf("got %v, %v", cs, err)
	}
	_, pl := Parse(iotest.ErrReader(errors.New("disk on fire")), "x.csv")
	if len(pl) != 1 || pl[0].String() != "x.csv: unreadable: disk on fire" {
		t.Errorf("read error: %v", Problems(pl))
	}
}

func TestValidate(t *testing.T) {
	ok := []Case{{ID: "a", HE: "h1", Label: 0, Fold: -1}, {ID: "b", HE: "h2", IHC: "i2", Label: 3, Split: Train, Fold: -1}}
	if ps := Validate(ok); len(ps) > 0 {
		t.Fatal(Problems(ps))
	}
	bad := []Case{
		{ID: "a", HE: "h1", Label: 4, Fold: -1},
		{ID: "b", HE: "h2", Label: -1, Split: "val", Fold: -2},
		{ID: "a", HE: "h1", Label: 0, Split: Train, Fold: -3},
		{ID: " c", HE: "x/y", Label: 0, Fold: -1},
	}
	want := []string{
		`cases.csv:1: case "a": label 4 out of range (want 0..3 for HER2 0, 1+, 2+, 3+)`,
		`cases.csv:2: case "b": label -1 out of range (want 0..3 for HER2 0, 1+, 2+, 3+)`,
		`cases.csv:2: case "b": split "val" (want train, test or empty)`,
		`cases.csv:2: case "b": fold -2 out of range (want 0 or more, or -1 for none)`,
		`cases.csv:3: case "a" appears twice (row 1 and row 3)`,
		`cases.csv:3: slide "h1" is in two cases: H&E of case "a" (row 1) and H&E of case "a" (row 3)`,
		`cases.csv:3: case "a": fold -3 out of range (want 0 or more, or -1 for none)`,
		`cases.csv:4: case_id " c" has leading or trailing spaces`,
		`cases.csv:4: case " c": he_slide "x/y" is not a slide id (the slide's file name without extension, not a path)`,
	}
	ps := Validate(bad)
	got := make([]string, len(ps))
	for i, p := range ps {
		got[i] = p.String()
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestLabelName(t *testing.T) {
	for l, want := range []string{"0", "1+", "2+", "3+", "4"} {
		if got := LabelName(l); got != want {
			t.Errorf("LabelName(%d) = %q, want %q", l, got, want)
		}
		if l < NumClasses {
			if back, err := ParseLabel(want); err != nil || back != l {
				t.Errorf("ParseLabel(%q) = %d, %v", want, back, err)
			}
		}
	}
}
