package cases

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// rowFlags marks the fields of a row that Parse already reported as
// unreadable, so that validate does not report them again.
type rowFlags uint8

const (
	badLabel rowFlags = 1 << iota
	badSplit
	badFold
)

// Validate reports every problem of a case set built in code; Parse runs the
// same checks on what it reads, and Split and Write run them on their input.
// It reports: an empty or malformed case id or slide id, a label outside 0..3,
// a split other than "", train or test, a fold below -1 or on a case that is
// not a train case, a case id used twice, a slide used twice (in two cases, or
// as both the H&E and the IHC slide of one case), train cases with and without
// folds mixed, and fold numbers that are not 0..F-1 with every fold used.
// A problem is placed on the case's Line, or its 1-based row number when Line
// is 0; File is left empty.
func Validate(cs []Case) []Problem {
	ps := &problems{}
	validate(cs, nil, ps)
	return ps.sorted()
}

// validate adds the problems of cs to ps; flags (nil, or one per case) marks
// fields already reported.
func validate(cs []Case, flags []rowFlags, ps *problems) {
	type use struct {
		caseID, role, where string
	}
	ids := map[string]int{}    // case id → index of its first row
	slides := map[string]use{} // slide id → its first use
	var withFold, withoutFold []int
	for i, c := range cs {
		line, where, who := lineOf(cs, i), whereOf(cs, i), caseRef(c)
		var fl rowFlags
		if flags != nil {
			fl = flags[i]
		}

		switch {
		case c.ID == "" && c.HE != "":
			ps.add(line, "empty case_id (he_slide %q)", c.HE)
		case c.ID == "":
			ps.add(line, "empty case_id")
		case badID(c.ID) != "":
			ps.add(line, "case_id %q %s", c.ID, badID(c.ID))
		default:
			if first, dup := ids[c.ID]; dup {
				ps.add(line, "case %q appears twice (%s)", c.ID, bothWhere(cs, first, i))
			} else {
				ids[c.ID] = i
			}
		}

		if c.HE == "" {
			ps.add(line, "%sempty he_slide (every case needs its H&E slide)", who)
		}
		if c.IHC != "" && c.IHC == c.HE {
			ps.add(line, "%sslide %q is both its H&E and its IHC slide", who, c.HE)
		}
		for _, s := range []struct{ col, role, id string }{{"he_slide", "H&E", c.HE}, {"ihc_slide", "IHC", c.IHC}} {
			if s.id == "" || (s.role == "IHC" && s.id == c.HE) {
				continue
			}
			if msg := badSlideID(s.id); msg != "" {
				ps.add(line, "%s%s %q %s", who, s.col, s.id, msg)
				continue
			}
			if u, dup := slides[s.id]; dup {
				ps.add(line, "slide %q is in two cases: %s of case %q (%s) and %s of case %q (%s)",
					s.id, u.role, u.caseID, u.where, s.role, c.ID, where)
			} else {
				slides[s.id] = use{c.ID, s.role, where}
			}
		}

		if fl&badLabel == 0 && (c.Label < 0 || c.Label >= NumClasses) {
			ps.add(line, "%slabel %d out of range (want 0..3 for HER2 0, 1+, 2+, 3+)", who, c.Label)
		}
		if fl&badSplit == 0 && c.Split != "" && c.Split != Train && c.Split != Test {
			ps.add(line, "%ssplit %q (want train, test or empty)", who, c.Split)
		}
		if fl&(badSplit|badFold) != 0 {
			continue
		}
		switch {
		case c.Fold < -1:
			ps.add(line, "%sfold %d out of range (want 0 or more, or -1 for none)", who, c.Fold)
		case c.Fold >= 0 && c.Split == Test:
			ps.add(line, "%sfold %d given for a test case (folds are for training cases)", who, c.Fold)
		case c.Fold >= 0 && c.Split == "":
			ps.add(line, "%sfold %d given for a case without a split (folds are for training cases)", who, c.Fold)
		case c.Split == Train && c.Fold >= 0:
			withFold = append(withFold, i)
		case c.Split == Train:
			withoutFold = append(withoutFold, i)
		}
	}
	if len(withFold) == 0 {
		return
	}
	for _, i := range withoutFold {
		ps.add(lineOf(cs, i), "%straining case without a fold while other training cases have one", caseRef(cs[i]))
	}
	// Folds are 0..F-1 with every fold used.
	top := withFold[0]
	used := map[int]bool{}
	for _, i := range withFold {
		used[cs[i].Fold] = true
		if cs[i].Fold > cs[top].Fold {
			top = i
		}
	}
	nf := cs[top].Fold + 1
	if nf == 1 {
		ps.add(lineOf(cs, top), "only fold 0 is used (cross-validation needs at least 2 folds)")
		return
	}
	var empty []string
	for f := range nf {
		if !used[f] {
			empty = append(empty, strconv.Itoa(f))
		}
	}
	if len(empty) > 0 {
		ps.add(lineOf(cs, top), "%sfold %d is used but no training case is in fold %s (number folds from 0 with no gaps)",
			caseRef(cs[top]), nf-1, strings.Join(empty, ", "))
	}
}

// caseRef names a case at the start of a message, `case "C1": `, or is empty
// for a case without an id.
func caseRef(c Case) string {
	if c.ID == "" {
		return ""
	}
	return fmt.Sprintf("case %q: ", c.ID)
}

// lineOf is the line a case's problems go on: its Line, or for a case built
// in code its 1-based row number.
func lineOf(cs []Case, i int) int {
	if cs[i].Line > 0 {
		return cs[i].Line
	}
	return i + 1
}

// whereOf names where a case is, for messages that point at two cases.
func whereOf(cs []Case, i int) string {
	if cs[i].Line > 0 {
		return fmt.Sprintf("line %d", cs[i].Line)
	}
	return fmt.Sprintf("row %d", i+1)
}

// bothWhere names where two cases are: "lines 2 and 5" (or rows, for cases
// built in code).
func bothWhere(cs []Case, i, j int) string {
	if cs[i].Line > 0 && cs[j].Line > 0 {
		return fmt.Sprintf("lines %d and %d", cs[i].Line, cs[j].Line)
	}
	return whereOf(cs, i) + " and " + whereOf(cs, j)
}

// badID says what is wrong with an id, or "".
func badID(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.TrimSpace(s) != s:
		return "has leading or trailing spaces"
	case strings.ContainsFunc(s, unicode.IsControl):
		return "contains a control character"
	}
	return ""
}

// badSlideID says what is wrong with a slide id, or "". A slide id names a
// folder WORK/slides/<slide_id>, so it cannot be "." or ".." or hold a slash.
func badSlideID(s string) string {
	if msg := badID(s); msg != "" {
		return msg
	}
	if s == "." || s == ".." || strings.ContainsRune(s, '/') {
		return "is not a slide id (the slide's file name without extension, not a path)"
	}
	return ""
}
