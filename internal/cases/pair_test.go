package cases

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pf is a file of the H&E (side "HE") or IHC folder named rel (with its
// extension), its slide id the folder and name as FindSlides gives them
// when the name is on both sides.
func pf(side, rel string) PairFile {
	ext := rel[strings.LastIndex(rel, "."):]
	name := strings.TrimSuffix(rel, ext)
	return PairFile{Path: side + "/" + rel, Name: name, Ext: ext, ID: side + "-" + name}
}

func pfs(side string, rels ...string) []PairFile {
	var out []PairFile
	for _, r := range rels {
		out = append(out, pf(side, r))
	}
	return out
}

func mustLabels(t *testing.T, text string) *LabelTable {
	t.Helper()
	lt, ps := ParseLabels(strings.NewReader(text), "labels.csv")
	if len(ps) > 0 {
		t.Fatal(Problems(ps))
	}
	return lt
}

func TestPair(t *testing.T) {
	bci := regexp.MustCompile(DefaultLabelPattern)
	four := []string{"00345_test_0.png", "00901_test_1+.png", "00820_train_2+.png", "00672_test_3+.png"}
	cases := []struct {
		name      string
		he, ihc   []PairFile
		labels    string // labels file; "" for the pattern
		pattern   *regexp.Regexp
		allow     bool
		want      []Case   // when no problems are wanted
		problems  []string // "FILE: MSG" substrings, in order
		notes     []string
		unmatched int
	}{
		{name: "BCI names", he: pfs("HE", four...), ihc: pfs("IHC", four...), pattern: bci,
			want: []Case{
				{"00345_test_0", "HE-00345_test_0", "IHC-00345_test_0", 0, Test, -1, 0},
				{"00672_test_3+", "HE-00672_test_3+", "IHC-00672_test_3+", 3, Test, -1, 0},
				{"00820_train_2+", "HE-00820_train_2+", "IHC-00820_train_2+", 2, Train, -1, 0},
				{"00901_test_1+", "HE-00901_test_1+", "IHC-00901_test_1+", 1, Test, -1, 0},
			}},
		{name: "pattern without split", he: pfs("HE", "a_her2_3.png", "b_her2_0.png"), ihc: pfs("IHC", "b_her2_0.png", "a_her2_3.png"),
			pattern: regexp.MustCompile(`_her2_(\d)$`),
			want: []Case{
				{"a_her2_3", "HE-a_her2_3", "IHC-a_her2_3", 3, "", -1, 0},
				{"b_her2_0", "HE-b_her2_0", "IHC-b_her2_0", 0, "", -1, 0},
			}},
		{name: "labels file by name or file name", he: pfs("HE", "a.png", "b.jpg", "c.png"), ihc: pfs("IHC", "a.png", "b.png", "c.png"),
			labels: "Label,Name,patient\n2+,a,p1\n0,b.png,p2\n3,c.png,p3\n# comment\n\n1+,unused,p4\n",
			want: []Case{
				{"a", "HE-a", "IHC-a", 2, "", -1, 0},
				{"b", "HE-b", "IHC-b", 0, "", -1, 0},
				{"c", "HE-c", "IHC-c", 3, "", -1, 0},
			},
			notes: []string{`labels.csv:7: "unused" names no pair`}},
		{name: "labels file with split", he: pfs("HE", "a.png", "b.png"), ihc: pfs("IHC", "a.png", "b.png"),
			labels: "name,label,split\na,0,TRAIN\nb,1,\n",
			want: []Case{
				{"a", "HE-a", "IHC-a", 0, Train, -1, 0},
				{"b", "HE-b", "IHC-b", 1, "", -1, 0},
			}},
		{name: "unmatched files", he: pfs("HE", "00345_test_0.png", "00999_test_2+.png"), ihc: pfs("IHC", "00345_test_0.png", "00111_test_1+.png"),
			pattern: bci, unmatched: 2,
			problems: []string{
				`IHC/00111_test_1+.png: no H&E file named "00111_test_1+"`,
				`HE/00999_test_2+.png: no IHC file named "00999_test_2+"`,
			}},
		{name: "unmatched files allowed", he: pfs("HE", "00345_test_0.png", "00999_test_2+.png"), ihc: pfs("IHC", "00345_test_0.png", "00111_test_1+.png"),
			pattern: bci, allow: true, unmatched: 2,
			want: []Case{
				{"00345_test_0", "HE-00345_test_0", "IHC-00345_test_0", 0, Test, -1, 0},
				{"00999_test_2+", "HE-00999_test_2+", "", 2, Test, -1, 0},
			},
			notes: []string{
				`IHC/00111_test_1+.png: no H&E file named "00111_test_1+": left out`,
				`HE/00999_test_2+.png: no IHC file named "00999_test_2+": an H&E-only case`,
			}},
		{name: "duplicate stems", he: pfs("HE", "x_test_0.jpg", "x_test_0.png"), ihc: pfs("IHC", "x_test_0.png"), pattern: bci,
			problems: []string{`HE/x_test_0.png: another H&E file, HE/x_test_0.jpg, has the same name "x_test_0"`}},
		{name: "duplicate stems on the IHC side", he: pfs("HE", "x_test_0.png"), ihc: pfs("IHC", "x_test_0.png", "x_test_0.tif"), pattern: bci,
			problems: []string{`IHC/x_test_0.tif: another IHC file, IHC/x_test_0.png, has the same name "x_test_0"`}},
		{name: "bad labels in names", he: pfs("HE", "a_test_4.png", "b_test_2++.png", "c_val_1.png", "d_test_0.png"),
			ihc: pfs("IHC", "a_test_4.png", "b_test_2++.png", "c_val_1.png", "d_test_0.png"), pattern: bci,
			problems: []string{
				`HE/a_test_4.png: case "a_test_4": label "4" (want 0, 1, 2, 3 or 0, 1+, 2+, 3+), from its name`,
				`HE/b_test_2++.png: case "b_test_2++": label "2++"`,
				`HE/c_val_1.png: case "c_val_1": the name does not match the label pattern`,
			}},
		{name: "bad split from a pattern", he: pfs("HE", "a_val_1.png"), ihc: pfs("IHC", "a_val_1.png"),
			pattern:  regexp.MustCompile(`_(?P<split>[a-z]+)_(?P<label>\d)$`),
			problems: []string{`HE/a_val_1.png: case "a_val_1": split "val" (want train, test or empty), from its name`}},
		{name: "bad labels in a labels file", he: pfs("HE", "a.png", "b.png", "c.png"), ihc: pfs("IHC", "a.png", "b.png", "c.png"),
			labels: "name,label,split\na,positive,\nb,2,validation\n",
			problems: []string{
				`labels.csv:2: case "a": label "positive" (want 0, 1, 2, 3 or 0, 1+, 2+, 3+)`,
				`labels.csv:3: case "b": split "validation" (want train, test or empty)`,
				`HE/c.png: case "c": no row of labels.csv names it (name "c" or "c.png")`,
			}},
		{name: "nothing to pair", pattern: bci, problems: []string{"no H&E or IHC files"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opt := PairOptions{Pattern: c.pattern, AllowUnmatched: c.allow}
			if c.labels != "" {
				opt.Labels = mustLabels(t, c.labels)
			}
			res := Pair(c.he, c.ihc, opt)
			check := func(what string, got []Problem, want []string) {
				if len(got) != len(want) {
					t.Errorf("%s: %d, want %d:\n%v", what, len(got), len(want), Problems(got))
					return
				}
				for i, w := range want {
					if s := got[i].String(); !strings.Contains(s, w) || strings.Contains(s, "\n") {
						t.Errorf("%s %d: %q, want it to say %q", what, i, s, w)
					}
				}
			}
			check("problems", res.Problems, c.problems)
			check("notes", res.Notes, c.notes)
			if res.Unmatched != c.unmatched {
				t.Errorf("unmatched %d, want %d", res.Unmatched, c.unmatched)
			}
			if len(c.problems) > 0 {
				if res.Cases != nil {
					t.Errorf("cases returned with problems: %+v", res.Cases)
				}
				return
			}
			if !slices.Equal(res.Cases, c.want) {
				t.Errorf("cases\n%+v\nwant\n%+v", res.Cases, c.want)
			}
			if ps := Validate(res.Cases); len(ps) > 0 {
				t.Error(Problems(ps))
			}
		})
	}
}

// The same files in any order give the same case set.
func TestPairOrder(t *testing.T) {
	he := pfs("HE", "00345_test_0.png", "00901_test_1+.png", "00820_test_2+.png", "00672_test_3+.png")
	ihc := pfs("IHC", "00672_test_3+.png", "00820_test_2+.png", "00345_test_0.png", "00901_test_1+.png")
	opt := PairOptions{Pattern: regexp.MustCompile(DefaultLabelPattern)}
	a := Pair(he, ihc, opt)
	slices.Reverse(he)
	b := Pair(ihc, he, opt) // sides swapped too: same names, same labels
	if len(a.Cases) != 4 || len(b.Cases) != 4 {
		t.Fatalf("%+v %+v", a, b)
	}
	for i := range a.Cases {
		if a.Cases[i].ID != b.Cases[i].ID || a.Cases[i].Label != b.Cases[i].Label {
			t.Errorf("case %d: %+v vs %+v", i, a.Cases[i], b.Cases[i])
		}
	}
}

func TestParseLabelsProblems(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"empty", "", "labels.csv: empty file"},
		{"no name column", "file,label\na,0\n", `labels.csv:1: missing column "name"`},
		{"no label column", "name,her2\na,0\n", `labels.csv:1: missing column "label"`},
		{"column twice", "name,label,Label\na,0,1\n", `labels.csv:1: column "label" appears twice`},
		{"header only", "name,label\n", "labels.csv: no rows"},
		{"empty name", "name,label\n,0\n", "labels.csv:2: empty name"},
		{"empty label", "name,label\na,\n", `labels.csv:2: "a": empty label`},
		{"name twice", "name,label\na,0\nb,1\na,2\n", `labels.csv:4: "a" appears twice (lines 2 and 4)`},
		{"bad quote", "name,label\n\"a,0\n", "labels.csv:2: unreadable CSV"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lt, ps := ParseLabels(strings.NewReader(c.text), "labels.csv")
			if len(ps) == 0 {
				t.Fatalf("no problem; table %+v", lt)
			}
			if s := ps[0].String(); !strings.Contains(s, c.want) {
				t.Errorf("%q, want it to say %q", s, c.want)
			}
		})
	}
	// A byte order mark and short rows (a missing trailing split) are fine.
	lt, ps := ParseLabels(strings.NewReader("\ufeffname,label,split\na,1+\nb,0,test\n"), "labels.csv")
	if len(ps) > 0 || len(lt.Rows) != 2 || lt.Rows[1].Split != "test" {
		t.Errorf("%+v %v", lt, ps)
	}
}

func TestCheckLabelPattern(t *testing.T) {
	for pat, ok := range map[string]bool{DefaultLabelPattern: true, `_(\d)$`: true, `(?P<label>\d)`: true, `_\d$`: false} {
		if err := CheckLabelPattern(regexp.MustCompile(pat)); (err == nil) != ok {
			t.Errorf("%s: %v", pat, err)
		}
	}
}
