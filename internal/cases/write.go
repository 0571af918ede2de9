package cases

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
)

// Write saves the cases to path with the header
// case_id,he_slide,ihc_slide,label,split,fold (label 0..3, fold empty when
// unset), one row per case in the given order. It writes atomically
// (internal/atomicfile: a temporary file in the same directory that
// CleanTemps recognises, fsync, rename, fsync of the directory); readers
// see the old file or the new one, never a part. Nothing
// else of an existing file is kept: comments and blank lines are dropped, and
// the columns come in the order above.
//
// Write validates the cases first (see Validate) and writes nothing, returning
// an error that wraps Problems, when they have a problem.
func Write(path string, cs []Case) error {
	if ps := Validate(cs); len(ps) > 0 {
		for i := range ps {
			ps[i].File = filepath.Base(path)
		}
		return fmt.Errorf("cases: %s: nothing written:\n%w", path, Problems(ps))
	}
	var b strings.Builder
	writeRow(&b, columns[:])
	for _, c := range cs {
		fold := ""
		if c.Fold >= 0 {
			fold = strconv.Itoa(c.Fold)
		}
		writeRow(&b, []string{c.ID, c.HE, c.IHC, strconv.Itoa(c.Label), c.Split, fold})
	}
	if err := atomicfile.WriteFileAtomic(path, []byte(b.String()), 0o666); err != nil {
		return fmt.Errorf("cases: %w", err) // names the path
	}
	return nil
}

// writeRow writes one CSV record. A field is quoted when it holds a comma, a
// quote, a line break or surrounding spaces, or when it is the first field and
// starts with '#' (unquoted it would read back as a comment line);
// encoding/csv's writer cannot be told to quote that case.
func writeRow(b *strings.Builder, fields []string) {
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		if strings.ContainsAny(f, ",\"\r\n") || strings.TrimSpace(f) != f || (i == 0 && strings.HasPrefix(f, "#")) {
			b.WriteByte('"')
			b.WriteString(strings.ReplaceAll(f, `"`, `""`))
			b.WriteByte('"')
			continue
		}
		b.WriteString(f)
	}
	b.WriteByte('\n')
}
