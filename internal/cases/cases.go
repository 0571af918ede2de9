// Package cases reads, checks, splits and writes the case set: the CSV that
// pairs each case's H&E slide with its IHC slide and HER2 label,
//
//	case_id,he_slide,ihc_slide,label[,split][,fold]
//
// (WORK/cases.csv by default). Columns may come in any order; their names are
// matched without regard to case or surrounding spaces, and split and fold may
// be left out. Slides are named by their slide id, as in
// WORK/slides/<slide_id>: the slide's file name without extension, with the
// name of its folder in front when another file of the run has the same name
// (HE-00345_test_0; see pipeline.FindSlides). label is the HER2 score: 0, 1,
// 2, 3 or 0, 1+, 2+, 3+. ihc_slide is empty for H&E-only cases. split is
// train, test or empty; fold is empty or, for train cases only, 0..F-1.
// Fields may be quoted as in RFC 4180, so ids may hold commas, quotes, spaces
// and non-ASCII letters; surrounding spaces of every field are trimmed. Lines
// starting with '#' and blank lines are ignored and not written back. A UTF-8
// byte order mark (as spreadsheet programs write) is skipped.
//
// Pair builds a case set from an H&E folder and an IHC folder whose files
// are paired by name, with labels from a labels file (ReadLabels) or from
// the names themselves (DefaultLabelPattern, BCI's naming).
//
// Parse and Read report every problem of a file, each on its line; a file with
// problems yields no cases. Callers check those problems first and never split
// or write a case set that has any: Split and Write validate their input again
// and return an error, writing nothing, when it is invalid.
package cases

import (
	"fmt"
	"strings"
)

// DefaultName is the case set's file name in the work folder; Problem.String
// uses it when a problem has no file name.
const DefaultName = "cases.csv"

// Splits.
const (
	Train = "train"
	Test  = "test"
)

// NumClasses is the number of HER2 levels (0, 1+, 2+, 3+).
const NumClasses = 4

// Column names, in the order Write writes them; the first four are required.
var columns = [...]string{"case_id", "he_slide", "ihc_slide", "label", "split", "fold"}

const numRequired = 4

const headerSyntax = "case_id,he_slide,ihc_slide,label[,split][,fold]"

// Case is one row of the case set.
type Case struct {
	ID    string // case id, unique in the set
	HE    string // H&E slide id
	IHC   string // IHC slide id, "" for H&E-only
	Label int    // 0..3 for HER2 0, 1+, 2+, 3+
	Split string // "", Train or Test
	Fold  int    // -1 when unset, else 0..F-1 (train cases only)
	Line  int    // 1-based line in the file (messages); 0 for a case built in code
}

// ParseLabel accepts 0, 1, 2, 3 and 1+, 2+, 3+ (surrounding spaces trimmed).
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

// LabelName returns the HER2 score of a label: "0", "1+", "2+" or "3+" (the
// bare number for a label out of range).
func LabelName(label int) string {
	if label >= 1 && label < NumClasses {
		return fmt.Sprintf("%d+", label)
	}
	return fmt.Sprint(label)
}

// Problem is one thing wrong with the case set, at a line of its file.
type Problem struct {
	File string // file name; "" means DefaultName
	Line int    // 1-based line; 0 for the file as a whole
	Msg  string // lower-case description
}

// String formats the problem as "FILE:LINE: MSG", or "FILE: MSG" for line 0.
func (p Problem) String() string {
	name := p.File
	if name == "" {
		name = DefaultName
	}
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", name, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", name, p.Msg)
}

// Problems is an error listing every problem, one per line. Read, Split and
// Write return it (Split and Write wrapped); errors.As recovers the list.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}
