package cases

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Read parses the case file at path. Every problem in it is reported, as a
// Problems error naming the file by its base name; a file with problems
// yields no cases.
func Read(path string) ([]Case, error) {
	return readFile(path, "cases", Parse)
}

// readFile opens path and parses it; an unopenable file is an error
// prefixed by what, problems are a Problems error naming the file by its
// base name.
func readFile[T any](path, what string, parse func(io.Reader, string) (T, []Problem)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	v, ps := parse(f, filepath.Base(path))
	if len(ps) > 0 {
		return zero, Problems(ps)
	}
	return v, nil
}

// csvReader reads the CSV of a case or labels file from r: a byte order
// mark (written by spreadsheet programs) skipped, # comment lines, any
// number of fields per row, leading spaces trimmed.
func csvReader(r io.Reader) *csv.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && string(b) == "\ufeff" {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	return cr
}

// header reads the header line and the line number it is on; false when
// the input is empty (reported with syntax, the header wanted) or
// unreadable (reported).
func (ps *problems) header(cr *csv.Reader, syntax string) ([]string, int, bool) {
	header, err := cr.Read()
	if err == io.EOF {
		ps.add(0, "empty file: the header %s is missing", syntax)
		return nil, 0, false
	}
	if err != nil {
		ps.readError(err)
		return nil, 0, false
	}
	line, _ := cr.FieldPos(0)
	return header, line, true
}

// next reads the next row. A syntax error (bad quoting) is reported and
// reading goes on at the next line; false at the end of the input or after
// an error of the input itself (reported).
func (ps *problems) next(cr *csv.Reader) ([]string, bool) {
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil, false
		}
		if err != nil {
			ps.readError(err)
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				continue // the reader goes on at the next line
			}
			return nil, false
		}
		return rec, true
	}
}

// Parse reads cases from r; name labels the problems. It reports every
// problem it finds, ordered by line, and returns the cases only when there is
// none. A syntax error (bad quoting) is reported and reading goes on at the
// next line; an error of r itself is reported on line 0.
func Parse(r io.Reader, name string) ([]Case, []Problem) {
	ps := &problems{file: name}
	cr := csvReader(r)
	header, headerLine, ok := ps.header(cr, headerSyntax)
	if !ok {
		return nil, ps.list
	}
	idx, ok := parseHeader(header, headerLine, ps)
	if !ok {
		return nil, ps.sorted()
	}

	var cs []Case
	var flags []rowFlags
	for {
		rec, ok := ps.next(cr)
		if !ok {
			break
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			who := ""
			if i := idx[0]; i < len(rec) && strings.TrimSpace(rec[i]) != "" {
				who = fmt.Sprintf("case %q: ", strings.TrimSpace(rec[i]))
			}
			ps.add(line, "%s%d fields, the header has %d", who, len(rec), len(header))
			continue
		}
		get := func(col int) string {
			if idx[col] < 0 {
				return ""
			}
			return strings.TrimSpace(rec[idx[col]])
		}
		c := Case{ID: get(0), HE: get(1), IHC: get(2), Fold: -1, Line: line}
		who := caseRef(c)
		var fl rowFlags
		if s := get(3); s == "" {
			ps.add(line, "%sempty label (want 0, 1+, 2+ or 3+)", who)
			fl |= badLabel
		} else if l, err := ParseLabel(s); err != nil {
			ps.add(line, "%s%v", who, err)
			fl |= badLabel
		} else {
			c.Label = l
		}
		switch s := strings.ToLower(get(4)); s {
		case "", Train, Test:
			c.Split = s
		default:
			ps.add(line, "%ssplit %q (want train, test or empty)", who, get(4))
			fl |= badSplit
		}
		if s := get(5); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				ps.add(line, "%sfold %q is not a non-negative integer (leave it empty for none)", who, s)
				fl |= badFold
			} else {
				c.Fold = v
			}
		}
		cs = append(cs, c)
		flags = append(flags, fl)
	}
	if len(cs) == 0 && len(ps.list) == 0 {
		ps.add(0, "no cases: the file has a header but no rows")
	}
	validate(cs, flags, ps)
	if len(ps.list) > 0 {
		return nil, ps.sorted()
	}
	return cs, nil
}

// parseHeader maps each column (index into columns) to its position in the
// header, -1 for an absent optional column. It reports false when rows cannot
// be read with this header. Unknown columns are reported but do not stop the
// rows from being checked.
func parseHeader(header []string, line int, ps *problems) ([len(columns)]int, bool) {
	var idx [len(columns)]int
	for i := range idx {
		idx[i] = -1
	}
	known, ok := 0, true
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		col := slices.Index(columns[:], h)
		switch {
		case h == "":
			ps.add(line, "empty column name in the header (column %d; the columns are %s)", i+1, headerSyntax)
			ok = false
		case col < 0:
			ps.add(line, "unknown column %q (columns: %s)", strings.TrimSpace(header[i]), strings.Join(columns[:], ","))
		case idx[col] >= 0:
			ps.add(line, "column %q appears twice", h)
			known++
			ok = false
		default:
			idx[col] = i
			known++
		}
	}
	if known == 0 {
		// Most likely a data row: say what the first line must be rather
		// than listing every field as an unknown column.
		ps.list = ps.list[:0]
		ps.add(line, "no header: the first line must name the columns %s", headerSyntax)
		return idx, false
	}
	for j := range numRequired {
		if idx[j] < 0 {
			ps.add(line, "missing column %q", columns[j])
			ok = false
		}
	}
	return idx, ok
}

// problems collects the problems of one file.
type problems struct {
	file string
	list []Problem
}

func (ps *problems) add(line int, format string, args ...any) {
	ps.list = append(ps.list, Problem{File: ps.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// readError reports a CSV syntax error, or an error reading the input.
func (ps *problems) readError(err error) {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		ps.add(0, "unreadable: %v", err)
		return
	}
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		ps.add(pe.Line, "unreadable CSV: stray \" in column %d (quote the whole field and double the \" inside it)", pe.Column)
	case errors.Is(pe.Err, csv.ErrQuote) && pe.StartLine != pe.Line:
		ps.add(pe.StartLine, "unreadable CSV: a quoted field starting on this line is still open on line %d", pe.Line)
	case errors.Is(pe.Err, csv.ErrQuote):
		ps.add(pe.Line, "unreadable CSV: a quoted field must be closed by \" before the next comma or the end of the line (column %d)", pe.Column)
	default:
		ps.add(pe.Line, "unreadable CSV: %v", pe.Err)
	}
}

// sorted orders the problems by line, keeping the order found within a line.
func (ps *problems) sorted() []Problem {
	slices.SortStableFunc(ps.list, func(a, b Problem) int { return a.Line - b.Line })
	return ps.list
}
