package cases

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// DefaultLabelPattern finds the HER2 label, and the split, at the end of a
// name as the BCI data set writes them: 00345_test_0, 00672_train_3+. The
// label group takes anything up to the end of the name, so that a name such
// as x_test_4 is reported as a bad label rather than as not matching.
const DefaultLabelPattern = `_(?P<split>test|train)_(?P<label>[^_]+)$`

// PairFile is one H&E or IHC file offered to Pair.
type PairFile struct {
	// Path names the file in messages.
	Path string
	// Name pairs it: its path below its folder without extension, with
	// forward slashes ("00345_test_0" for HE/00345_test_0.png). The H&E and
	// IHC files of a case have the same name, which becomes the case id.
	Name string
	// Ext is its extension (".png"): a labels file may name the file with
	// it.
	Ext string
	// ID is its slide id (pipeline.FindSlides with both folders as inputs).
	ID string
}

// PairOptions say where each pair's label comes from: Labels when set, else
// Pattern.
type PairOptions struct {
	// Labels gives labels (and splits) by name (see ReadLabels).
	Labels *LabelTable
	// Pattern finds the label in a pair's name: the submatch named "label"
	// (else the first submatch); a submatch named "split", when the
	// pattern has one and it matched, gives the split (train or test, any
	// case).
	Pattern *regexp.Regexp
	// AllowUnmatched writes the set without the files that have no
	// partner, each listed in Notes: an H&E file becomes an H&E-only case,
	// an IHC file is left out. Otherwise each is a problem.
	AllowUnmatched bool
}

// PairResult is what Pair found.
type PairResult struct {
	// Cases, in order of case id; nil when there are Problems.
	Cases []Case
	// Problems stop the case set from being written: files without a
	// partner (unless AllowUnmatched), two files of one name on one side,
	// pairs without a label or with a bad one, and anything Validate
	// finds in the cases.
	Problems []Problem
	// Notes are written out but do not stop the set: files left unpaired
	// under AllowUnmatched, rows of the labels file that name no pair.
	Notes []Problem
	// Unmatched counts the files without a partner.
	Unmatched int
}

// Pair builds the case set of an H&E folder and an IHC folder whose files
// are paired by name: each name found on both sides is a case of that id,
// its H&E and IHC slides the two files' slide ids, its label (and split,
// when the source gives one) from opt. Problems and notes name the file (or
// the line of the labels file) they are about.
func Pair(he, ihc []PairFile, opt PairOptions) PairResult {
	var res PairResult
	problem := func(file, format string, a ...any) {
		res.Problems = append(res.Problems, Problem{File: file, Msg: fmt.Sprintf(format, a...)})
	}
	index := func(files []PairFile, side string) map[string]PairFile {
		m := map[string]PairFile{}
		for _, f := range files {
			if prev, dup := m[f.Name]; dup {
				problem(f.Path, "another %s file, %s, has the same name %q (a name pairs one H&E file with one IHC file): keep one of them",
					side, prev.Path, f.Name)
				continue
			}
			m[f.Name] = f
		}
		return m
	}
	heBy, ihcBy := index(he, "H&E"), index(ihc, "IHC")
	var names []string
	for n := range heBy {
		names = append(names, n)
	}
	for n := range ihcBy {
		if _, ok := heBy[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)

	used := map[int]bool{} // labels rows that named a pair
	var cs []Case
	for _, n := range names {
		h, hasHE := heBy[n]
		i, hasIHC := ihcBy[n]
		switch {
		case !hasIHC:
			res.Unmatched++
			if !opt.AllowUnmatched {
				problem(h.Path, "no IHC file named %q to pair with", n)
				continue
			}
			res.Notes = append(res.Notes, Problem{File: h.Path, Msg: fmt.Sprintf("no IHC file named %q: an H&E-only case", n)})
		case !hasHE:
			res.Unmatched++
			if !opt.AllowUnmatched {
				problem(i.Path, "no H&E file named %q to pair with", n)
			} else {
				res.Notes = append(res.Notes, Problem{File: i.Path, Msg: fmt.Sprintf("no H&E file named %q: left out", n)})
			}
			continue
		}
		c := Case{ID: n, HE: h.ID, Fold: -1}
		keys := []string{n, n + h.Ext}
		if hasIHC {
			c.IHC = i.ID
			if i.Ext != h.Ext {
				keys = append(keys, n+i.Ext)
			}
		}
		label, split, line, ok := "", "", 0, false
		switch {
		case opt.Labels != nil:
			var r int
			if r, ok = opt.Labels.find(keys); !ok {
				problem(h.Path, "case %q: no row of %s names it (name %s)", n, opt.Labels.File, strings.Join(quoteAll(keys), " or "))
				continue
			}
			used[r] = true
			row := opt.Labels.Rows[r]
			label, split, line = row.Label, row.Split, row.Line
		case opt.Pattern != nil:
			if label, split, ok = matchLabel(opt.Pattern, n); !ok {
				problem(h.Path, "case %q: the name does not match the label pattern %s", n, opt.Pattern)
				continue
			}
		default:
			problem(h.Path, "case %q: no label source (a labels file or a pattern)", n)
			continue
		}
		where, from := h.Path, ", from its name"
		if line > 0 {
			where, from = opt.Labels.File, ""
		}
		var err error
		if c.Label, err = ParseLabel(label); err != nil {
			res.Problems = append(res.Problems, Problem{File: where, Line: line, Msg: fmt.Sprintf("case %q: %v%s", n, err, from)})
			continue
		}
		switch s := strings.ToLower(split); s {
		case "", Train, Test:
			c.Split = s
		default:
			res.Problems = append(res.Problems, Problem{File: where, Line: line, Msg: fmt.Sprintf("case %q: split %q (want train, test or empty)%s", n, split, from)})
			continue
		}
		cs = append(cs, c)
	}
	if opt.Labels != nil {
		for r, row := range opt.Labels.Rows {
			if !used[r] {
				res.Notes = append(res.Notes, Problem{File: opt.Labels.File, Line: row.Line, Msg: fmt.Sprintf("%q names no pair of files (ignored)", row.Name)})
			}
		}
	}
	if len(he)+len(ihc) == 0 {
		problem("", "no H&E or IHC files to pair")
	}
	if len(res.Problems) == 0 {
		for _, p := range Validate(cs) {
			p.Line = 0 // the cases have no file yet; Msg names the case
			res.Problems = append(res.Problems, p)
		}
	}
	if len(res.Problems) == 0 {
		res.Cases = cs
	}
	return res
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

// CheckLabelPattern says whether a pattern can give labels: it needs a
// submatch named "label", or at least one submatch.
func CheckLabelPattern(re *regexp.Regexp) error {
	if re.SubexpIndex("label") < 0 && re.NumSubexp() == 0 {
		return fmt.Errorf("label pattern %s has no group for the label: name it (?P<label>...) or put it in parentheses", re)
	}
	return nil
}

// matchLabel applies a label pattern to a name.
func matchLabel(re *regexp.Regexp, name string) (label, split string, ok bool) {
	m := re.FindStringSubmatchIndex(name)
	if m == nil {
		return "", "", false
	}
	group := func(i int) string {
		if i < 0 || m[2*i] < 0 {
			return ""
		}
		return name[m[2*i]:m[2*i+1]]
	}
	li := re.SubexpIndex("label")
	if li < 0 {
		li = 1
	}
	return group(li), group(re.SubexpIndex("split")), true
}

// LabelTable is a labels file: one row per image or case, with its HER2
// label and, optionally, its split.
type LabelTable struct {
	File string // base name, for messages
	Rows []LabelRow
	by   map[string]int // name → row
}

// LabelRow is one row of a labels file.
type LabelRow struct {
	Name, Label, Split string
	Line               int
}

func (t *LabelTable) find(keys []string) (int, bool) {
	for _, k := range keys {
		if r, ok := t.by[k]; ok {
			return r, true
		}
	}
	return 0, false
}

// ReadLabels reads a labels file: CSV with a header naming the columns
// name and label, and optionally split (any order and case; other columns
// are ignored). name is a case's name, the file name without extension
// (00345_test_0), or with the extension of its H&E or IHC file
// (00345_test_0.png). label is checked when a pair uses it (0, 1, 2, 3 or
// 0, 1+, 2+, 3+); split is train, test or empty. Comment lines (#), blank
// lines and a byte order mark are skipped, as in a case file. Every problem
// is reported, as a Problems error.
func ReadLabels(path string) (*LabelTable, error) {
	return readFile(path, "cases: labels", ParseLabels)
}

// ParseLabels reads a labels file (see ReadLabels) from r; name labels the
// problems.
func ParseLabels(r io.Reader, name string) (*LabelTable, []Problem) {
	ps := &problems{file: name}
	cr := csvReader(r)
	header, line, ok := ps.header(cr, "name,label[,split]")
	if !ok {
		return nil, ps.list
	}
	col := map[string]int{"name": -1, "label": -1, "split": -1}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if j, known := col[h]; known {
			if j >= 0 {
				ps.add(line, "column %q appears twice", h)
			}
			col[h] = i
		}
	}
	for _, c := range []string{"name", "label"} {
		if col[c] < 0 {
			ps.add(line, "missing column %q (the header must name the columns name,label and may name split; other columns are ignored)", c)
		}
	}
	if len(ps.list) > 0 {
		return nil, ps.list
	}
	t := &LabelTable{File: name, by: map[string]int{}}
	for {
		rec, ok := ps.next(cr)
		if !ok {
			break
		}
		line, _ := cr.FieldPos(0)
		get := func(c string) string {
			if i := col[c]; i >= 0 && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row := LabelRow{Name: get("name"), Label: get("label"), Split: get("split"), Line: line}
		switch {
		case row.Name == "":
			ps.add(line, "empty name")
			continue
		case row.Label == "":
			ps.add(line, "%q: empty label (want 0, 1+, 2+ or 3+)", row.Name)
			continue
		}
		if prev, dup := t.by[row.Name]; dup {
			ps.add(line, "%q appears twice (lines %d and %d)", row.Name, t.Rows[prev].Line, line)
			continue
		}
		t.by[row.Name] = len(t.Rows)
		t.Rows = append(t.Rows, row)
	}
	if len(t.Rows) == 0 && len(ps.list) == 0 {
		ps.add(0, "no rows: the file has a header but no labels")
	}
	if len(ps.list) > 0 {
		return nil, ps.sorted()
	}
	return t, nil
}
