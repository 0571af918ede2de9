package metrics

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// writeAtomic writes path through write on a temporary file in the same
// directory (".<base>.tmp-<16 hex digits>", mode 0666 before umask), then
// fsyncs it, renames it over path and fsyncs the directory. The temporary
// file is removed on any error.
func writeAtomic(path string, write func(*os.File) error) (err error) {
	dir, base := filepath.Split(path)
	var f *os.File
	for range 10 { // a collision is practically impossible; retry anyway
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails since Go 1.24
		tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(b[:]))
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("metrics: %s: create: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // no-op error if already closed
			os.Remove(tmp)
			err = fmt.Errorf("metrics: %s: %w", path, err)
		}
	}()
	if err = write(f); err != nil {
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
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that a rename in it is durable; file
// systems that cannot sync a directory (EINVAL) are accepted.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return err
}
