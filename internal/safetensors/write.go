package safetensors

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// Write stores f at path atomically: it writes a temporary file
// ".<base>.tmp-<16 hex digits>" in the same directory (mode 0666 before
// umask), fsyncs it, renames it over path and fsyncs the directory. Readers
// see the old file or the complete new one; on error the temporary file is
// removed and an existing file at path is left as it was.
func Write(path string, f *File) error {
	if err := write(path, f); err != nil {
		var pe *fs.PathError
		var le *os.LinkError
		if errors.As(err, &pe) || errors.As(err, &le) {
			return fmt.Errorf("safetensors: %w", err) // names the file already
		}
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return nil
}

func write(path string, f *File) (err error) {
	h, names, _, err := f.header()
	if err != nil {
		return err
	}
	tmp, err := createTemp(path)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if _, err := f.writeTo(bw, h, names); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// createTemp opens a fresh temporary file next to path.
func createTemp(path string) (*os.File, error) {
	dir, base := filepath.Split(path)
	for range 10 { // a collision is practically impossible; retry anyway
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails since Go 1.24
		name := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(b[:]))
		t, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return t, err
	}
	return nil, errors.New("no free temporary file name")
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" { // directories cannot be opened for syncing
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) { // some file systems cannot sync a directory
		return nil
	}
	return err
}
