package cases

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Write saves the cases to path with the header
// case_id,he_slide,ihc_slide,label,split,fold (label 0..3, fold empty when
// unset), one row per case in the given order. It writes atomically: a
// temporary file in the same directory (named like internal/store's, so its
// CleanTemps removes a crashed writer's leftover), fsync, rename, fsync of the
// directory; readers see the old file or the new one, never a part. Nothing
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
	if err := writeAtomic(path, []byte(b.String())); err != nil {
		return fmt.Errorf("cases: %s: %w", path, err)
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

// writeAtomic writes data to a temporary file next to path, syncs it, renames
// it over path and syncs the directory; the temporary file is removed on any
// failure.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var f *os.File
	for range 10 { // a name collision is practically impossible; retry anyway
		var r [8]byte
		rand.Read(r[:])
		f, err = os.OpenFile(filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(r[:])), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
