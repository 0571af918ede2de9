package cases

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const good = `# a comment
case_id,he_slide,ihc_slide,label
c1,he1,ihc1,0
c2,he2,ihc2,1+
"c 3, é",he3,,3

c4,he4,ihc4,2
`

func TestParseGood(t *testing.T) {
	cs, ps := Parse(strings.NewReader(good), "cases.csv")
	if len(ps) > 0 {
		t.Fatal(Problems(ps))
	}
	want := []Case{
		{"c1", "he1", "ihc1", 0, "", -1, 3},
		{"c2", "he2", "ihc2", 1, "", -1, 4},
		{"c 3, é", "he3", "", 3, "", -1, 5},
		{"c4", "he4", "ihc4", 2, "", -1, 7},
	}
	if !slices.Equal(cs, want) {
		t.Errorf("got %+v\nwant %+v", cs, want)
	}
	// Columns in another order, with split and fold.
	cs, ps = Parse(strings.NewReader("label,case_id,he_slide,ihc_slide,split,fold\n2,a,h,i,train,3\n0,b,h2,,test,\n1,c,h3,,train,0\n1,d,h4,,train,1\n3,e,h5,,train,2\n"), "x.csv")
	if len(ps) > 0 || cs[0].Fold != 3 || cs[0].Split != Train || cs[1].Split != Test || cs[1].Fold != -1 {
		t.Errorf("%+v %v", cs, ps)
	}
}

// Each kind of bad row gives its own problem with its line.
func TestParseProblems(t *testing.T) {
	cases := []struct {
		name, text string
		line       int
		want       string
	}{
		{"empty file", "", 0, "header"},
		{"unknown column", "case_id,he_slide,ihc_slide,label,stain\n", 1, `unknown column "stain"`},
		{"missing column", "case_id,he_slide,label\n", 1, `missing column "ihc_slide"`},
		{"twice column", "case_id,he_slide,ihc_slide,label,label\n", 1, "appears twice"},
		{"empty id", "case_id,he_slide,ihc_slide,label\n,h,i,0\n", 2, "empty case_id"},
		{"empty he", "case_id,he_slide,ihc_slide,label\nc,,i,0\n", 2, "empty he_slide"},
		{"bad label", "case_id,he_slide,ihc_slide,label\nc,h,i,4\n", 2, `label "4"`},
		{"word label", "case_id,he_slide,ihc_slide,label\nc,h,i,positive\n", 2, `label "positive"`},
		{"bad split", "case_id,he_slide,ihc_slide,label,split\nc,h,i,0,val\n", 2, `split "val"`},
		{"bad fold", "case_id,he_slide,ihc_slide,label,split,fold\nc,h,i,0,train,x\n", 2, `fold "x"`},
		{"fold on test", "case_id,he_slide,ihc_slide,label,split,fold\nc,h,i,0,test,1\n", 2, "fold 1 given for a test case"},
		{"field count", "case_id,he_slide,ihc_slide,label\nc,h,i\n", 2, "3 fields, the header has 4"},
		{"case twice", "case_id,he_slide,ihc_slide,label\nc,h,i,0\nc,h2,i2,1\n", 3, `case "c" appears twice (lines 2 and 3)`},
		{"slide twice", "case_id,he_slide,ihc_slide,label\na,h,i,0\nb,i,j,1\n", 3, `slide "i" is in two cases: IHC of case "a" (line 2) and H&E of case "b" (line 3)`},
		{"he is ihc", "case_id,he_slide,ihc_slide,label\na,h,h,0\n", 2, "both its H&E and its IHC"},
		{"bad quoting", "case_id,he_slide,ihc_slide,label\n\"a,h,i,0\n", 2, "unreadable CSV"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs, ps := Parse(strings.NewReader(c.text), "cases.csv")
			if len(ps) == 0 {
				t.Fatalf("no problem found; cases %+v", cs)
			}
			if cs != nil {
				t.Errorf("cases returned despite problems")
			}
			found := false
			for _, p := range ps {
				found = found || (p.Line == c.line && strings.Contains(p.Msg, c.want))
			}
			if !found {
				t.Errorf("want line %d %q, got %v", c.line, c.want, Problems(ps))
			}
			if s := ps[0].String(); !strings.HasPrefix(s, "cases.csv:") || strings.Contains(s, "\n") {
				t.Errorf("problem %q should be one line starting with the file name", s)
			}
		})
	}
	// Several problems in one file are all reported.
	_, ps := Parse(strings.NewReader("case_id,he_slide,ihc_slide,label\n,h,i,0\nc,h2,i2,9\nd,,i3,1\n"), "cases.csv")
	if len(ps) != 3 {
		t.Errorf("want 3 problems, got %v", Problems(ps))
	}
}

type fakeWork map[string]error

func (f fakeWork) Check(id string) error {
	if err, ok := f[id]; ok {
		return err
	}
	return errors.New("not tiled")
}

func TestCheck(t *testing.T) {
	cs, _ := Parse(strings.NewReader(good), "cases.csv")
	w := fakeWork{"he1": nil, "ihc1": nil, "he2": nil, "ihc2": errors.New("not embedded with encoder plip"), "he3": nil, "he4": nil}
	ps := Check(cs, "cases.csv", w)
	if len(ps) != 2 {
		t.Fatalf("%v", Problems(ps))
	}
	if !strings.Contains(ps[0].String(), `cases.csv:4: case "c2": IHC slide "ihc2": not embedded`) || !strings.Contains(ps[1].String(), `case "c4": IHC slide "ihc4": not tiled`) {
		t.Errorf("%v", Problems(ps))
	}
}

func synthCases(counts [4]int) []Case {
	var cs []Case
	for l, n := range counts {
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("c%d_%d", l, i)
			cs = append(cs, Case{ID: id, HE: id + "_he", IHC: id + "_ihc", Label: l, Fold: -1})
		}
	}
	return cs
}

func TestSplitStratified(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 50; trial++ {
		counts := [4]int{rng.IntN(60) + 3, rng.IntN(60) + 3, rng.IntN(60) + 3, rng.IntN(60) + 3}
		cs := synthCases(counts)
		out, err := Split(cs, uint64(trial), 0.3, 5)
		if err != nil {
			t.Fatal(err)
		}
		for l := 0; l < 4; l++ {
			var test, train int
			folds := make([]int, 5)
			for _, c := range out {
				if c.Label != l {
					continue
				}
				switch c.Split {
				case Test:
					test++
					if c.Fold != -1 {
						t.Fatalf("test case %s has fold %d", c.ID, c.Fold)
					}
				case Train:
					train++
					folds[c.Fold]++
				default:
					t.Fatalf("case %s has no split", c.ID)
				}
			}
			if want := float64(counts[l]) * 0.3; float64(test) < want-1 || float64(test) > want+1 {
				t.Errorf("label %d: %d of %d in test, want ≈ %.1f", l, test, counts[l], want)
			}
			if slices.Max(folds)-slices.Min(folds) > 1 {
				t.Errorf("label %d: folds %v unbalanced", l, folds)
			}
		}
		// Order kept; deterministic.
		for i := range cs {
			if out[i].ID != cs[i].ID {
				t.Fatal("order changed")
			}
		}
		again, _ := Split(cs, uint64(trial), 0.3, 5)
		if !slices.Equal(out, again) {
			t.Fatal("split not deterministic")
		}
	}
	cs := synthCases([4]int{20, 20, 20, 20})
	a, _ := Split(cs, 1, 0.3, 5)
	b, _ := Split(cs, 2, 0.3, 5)
	if slices.Equal(a, b) {
		t.Error("different seeds gave the same split")
	}
	if _, err := Split(synthCases([4]int{2, 0, 0, 0}), 1, 0.3, 5); err == nil {
		t.Error("2 cases split into 5 folds")
	}
	if s := SplitSummary(a); !strings.Contains(s, "fold 4") || !strings.Contains(s, "test") {
		t.Errorf("summary:\n%s", s)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cases.csv")
	cs, _ := Split(synthCases([4]int{7, 5, 6, 4}), 3, 0.3, 5)
	cs[0].ID = `quote "and" comma, é`
	if err := Write(p, cs); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		g, w := got[i], cs[i]
		g.Line, w.Line = 0, 0
		if g != w {
			t.Fatalf("row %d: %+v, want %+v", i, g, w)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left %d files (temp files?)", len(entries))
	}
}
