// Package cases reads, checks, splits and writes the case set: the CSV that
// pairs each case's H&E slide with its IHC slide and HER2 label,
//
//	case_id,he_slide,ihc_slide,label[,split][,fold]
//
// with slides named by their slide id (file name without extension), label
// 0/1/2/3 (or 0/1+/2+/3+) for HER2 0/1+/2+/3+, ihc_slide empty for H&E-only
// cases, split train/test and fold 0..F-1 for training cases. Lines starting
// with '#' and blank lines are ignored (and not written back).
package cases

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Splits.
const (
	Train = "train"
	Test  = "test"
)

// NumClasses is the number of HER2 levels.
const NumClasses = 4

// Case is one row.
type Case struct {
	ID    string
	HE    string // H&E slide id
	IHC   string // IHC slide id, "" for H&E-only
	Label int    // 0..3
	Split string // "", Train or Test
	Fold  int    // -1 when unset
	Line  int    // line in the file (messages)
}

// Problem is one thing wrong with the file, at a line.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Problems is an error listing every problem, one per line.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

var columns = []string{"case_id", "he_slide", "ihc_slide", "label", "split", "fold"}

// Read parses the case file; every problem in it is reported (as Problems).
func Read(path string) ([]Case, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	defer f.Close()
	cs, ps := Parse(f, filepath.Base(path))
	if len(ps) > 0 {
		return nil, Problems(ps)
	}
	return cs, nil
}

// Parse reads cases from r; name labels the problems.
func Parse(r io.Reader, name string) ([]Case, []Problem) {
	var ps []Problem
	add := func(line int, format string, a ...any) {
		ps = append(ps, Problem{name, line, fmt.Sprintf(format, a...)})
	}
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, []Problem{{name, 0, "empty file: the header case_id,he_slide,ihc_slide,label[,split][,fold] is missing"}}
	}
	if err != nil {
		return nil, []Problem{{name, lineOf(err), "unreadable CSV: " + err.Error()}}
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if !slices.Contains(columns, h) {
			add(1, "unknown column %q (columns: %s)", h, strings.Join(columns, ","))
		} else if _, dup := col[h]; dup {
			add(1, "column %q appears twice", h)
		} else {
			col[h] = i
		}
	}
	for _, need := range columns[:4] {
		if _, ok := col[need]; !ok {
			add(1, "missing column %q", need)
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	get := func(rec []string, c string) string {
		i, ok := col[c]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	var cs, seen []Case // seen: every row, for the duplicate checks
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			add(lineOf(err), "unreadable CSV: %v", unwrapParse(err))
			break
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			add(line, "%d fields, the header has %d", len(rec), len(header))
			continue
		}
		c := Case{ID: get(rec, "case_id"), HE: get(rec, "he_slide"), IHC: get(rec, "ihc_slide"), Fold: -1, Line: line}
		bad := false
		if c.ID == "" {
			add(line, "empty case_id")
			bad = true
		}
		if c.HE == "" {
			add(line, "case %q: empty he_slide (every case needs its H&E slide)", c.ID)
			bad = true
		}
		if c.Label, err = ParseLabel(get(rec, "label")); err != nil {
			add(line, "case %q: %v", c.ID, err)
			bad = true
		}
		switch s := strings.ToLower(get(rec, "split")); s {
		case "", Train, Test:
			c.Split = s
		default:
			add(line, "case %q: split %q (train, test or empty)", c.ID, s)
			bad = true
		}
		if f := get(rec, "fold"); f != "" {
			v, err := strconv.Atoi(f)
			switch {
			case err != nil || v < 0:
				add(line, "case %q: fold %q is not a non-negative integer", c.ID, f)
				bad = true
			case c.Split != Train:
				add(line, "case %q: fold %d given for a %s case (folds are for training cases)", c.ID, v, orEmpty(c.Split))
				bad = true
			default:
				c.Fold = v
			}
		}
		if c.ID != "" || c.HE != "" {
			seen = append(seen, c)
		}
		if !bad {
			cs = append(cs, c)
		}
	}
	ps = append(ps, duplicates(seen, name)...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	if len(ps) > 0 {
		return nil, ps
	}
	return cs, nil
}

func orEmpty(s string) string {
	if s == "" {
		return "split-less"
	}
	return s
}

func lineOf(err error) int {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Line
	}
	return 0
}

func unwrapParse(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ParseLabel accepts 0, 1, 2, 3 and 1+, 2+, 3+.
func ParseLabel(s string) (int, error) {
	switch strings.TrimSpace(s) {
	case "0":
		return 0, nil
	case "1", "1+":
		return 1, nil
	case "2", "2+":
		return 2, nil
	case "3", "3+":
		return 3, nil
	}
	return 0, fmt.Errorf("label %q (want 0, 1, 2, 3 or 0, 1+, 2+, 3+)", s)
}

// duplicates reports a case id twice, a slide in two cases, and a case
// whose H&E and IHC slides are the same.
func duplicates(cs []Case, name string) []Problem {
	var ps []Problem
	ids := map[string]int{}
	type use struct {
		line int
		cas  string
		role string
	}
	slides := map[string]use{}
	for _, c := range cs {
		if l, dup := ids[c.ID]; dup && c.ID != "" {
			ps = append(ps, Problem{name, c.Line, fmt.Sprintf("case %q appears twice (lines %d and %d)", c.ID, l, c.Line)})
		} else if !dup {
			ids[c.ID] = c.Line
		}
		if c.IHC != "" && c.IHC == c.HE {
			ps = append(ps, Problem{name, c.Line, fmt.Sprintf("case %q: slide %q is both its H&E and its IHC slide", c.ID, c.HE)})
			continue
		}
		for _, s := range []struct{ id, role string }{{c.HE, "H&E"}, {c.IHC, "IHC"}} {
			if s.id == "" {
				continue
			}
			if u, dup := slides[s.id]; dup {
				ps = append(ps, Problem{name, c.Line, fmt.Sprintf("slide %q is in two cases: %s of case %q (line %d) and %s of case %q (line %d)", s.id, u.role, u.cas, u.line, s.role, c.ID, c.Line)})
			} else {
				slides[s.id] = use{c.Line, c.ID, s.role}
			}
		}
	}
	return ps
}

// WorkChecker says whether a slide is ready in the work folder (tiled,
// embedded, anchored): nil, or why not.
type WorkChecker interface {
	Check(slideID string) error
}

// Check asks the work folder about every slide of every case: one problem
// per slide that is not ready.
func Check(cs []Case, name string, w WorkChecker) []Problem {
	var ps []Problem
	for _, c := range cs {
		for _, s := range []struct{ id, role string }{{c.HE, "H&E"}, {c.IHC, "IHC"}} {
			if s.id == "" {
				continue
			}
			if err := w.Check(s.id); err != nil {
				ps = append(ps, Problem{name, c.Line, fmt.Sprintf("case %q: %s slide %q: %v", c.ID, s.role, s.id, err)})
			}
		}
	}
	return ps
}

// Split assigns a stratified train/test split (testFrac of each label to
// test, rounded) and stratified folds 0..folds-1 over each label's training
// cases, deterministically from seed. Cases keep their order.
func Split(cs []Case, seed uint64, testFrac float64, folds int) ([]Case, error) {
	if !(testFrac >= 0 && testFrac < 1) {
		return nil, fmt.Errorf("cases: test fraction %g outside [0, 1)", testFrac)
	}
	if folds < 2 {
		return nil, fmt.Errorf("cases: %d folds (at least 2)", folds)
	}
	out := slices.Clone(cs)
	rng := rand.New(rand.NewPCG(seed, 0xca5e5))
	byLabel := make([][]int, NumClasses)
	for i, c := range out {
		if c.Label < 0 || c.Label >= NumClasses {
			return nil, fmt.Errorf("cases: case %q has label %d", c.ID, c.Label)
		}
		byLabel[c.Label] = append(byLabel[c.Label], i)
	}
	nTrain := 0
	foldOffset := 0
	for _, idx := range byLabel {
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		nTest := int(float64(len(idx))*testFrac + 0.5)
		for j, i := range idx {
			if j < nTest {
				out[i].Split, out[i].Fold = Test, -1
				continue
			}
			out[i].Split = Train
			// Round-robin, continuing where the previous label stopped, so
			// fold sizes stay within one of each other overall.
			out[i].Fold = (foldOffset + j - nTest) % folds
			nTrain++
		}
		foldOffset = (foldOffset + len(idx) - nTest) % folds
	}
	if nTrain < folds {
		return nil, fmt.Errorf("cases: %d training cases for %d folds", nTrain, folds)
	}
	return out, nil
}

// SplitSummary tabulates cases per label in train, test and each fold.
func SplitSummary(cs []Case) string {
	folds := 0
	for _, c := range cs {
		folds = max(folds, c.Fold+1)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %6s %6s %6s %6s %6s\n", "", "HER2 0", "1+", "2+", "3+", "all")
	row := func(name string, keep func(Case) bool) {
		var n [NumClasses + 1]int
		for _, c := range cs {
			if keep(c) {
				n[c.Label]++
				n[NumClasses]++
			}
		}
		fmt.Fprintf(&b, "%-8s %6d %6d %6d %6d %6d\n", name, n[0], n[1], n[2], n[3], n[4])
	}
	row("train", func(c Case) bool { return c.Split == Train })
	row("test", func(c Case) bool { return c.Split == Test })
	for f := 0; f < folds; f++ {
		row(fmt.Sprintf("fold %d", f), func(c Case) bool { return c.Split == Train && c.Fold == f })
	}
	return b.String()
}

// Write saves the cases atomically (temp file, fsync, rename, fsync of the
// directory). Comments of the original file are not kept.
func Write(path string, cs []Case) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := csv.NewWriter(f)
	w.Write(columns)
	for _, c := range cs {
		fold := ""
		if c.Fold >= 0 {
			fold = strconv.Itoa(c.Fold)
		}
		w.Write([]string{c.ID, c.HE, c.IHC, strconv.Itoa(c.Label), c.Split, fold})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
