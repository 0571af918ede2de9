// Package atomicfile writes files so that readers see either the old file or
// the complete new one (temp file in the same directory, fsync, rename, fsync
// of the directory), and recognises the temporary names it uses. Pure Go.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempMarker separates the final base name from the random suffix in a
// temporary file name: ".<base>.tmp-<16 hex digits>".
const (
	tempMarker    = ".tmp-"
	tempSuffixLen = 16
)

// TempPath returns a fresh temporary name next to path (same directory, so a
// rename is atomic): ".<base>.tmp-<random>". Each call returns a new name.
func TempPath(path string) string {
	var b [tempSuffixLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails since Go 1.24
	dir, base := filepath.Split(path)
	return filepath.Join(dir, "."+base+tempMarker+hex.EncodeToString(b[:]))
}

// IsTemp reports whether name (a base name or a path) is a temporary file made
// by this package, so directory scans can skip leftovers of crashed writers.
func IsTemp(name string) bool {
	base := filepath.Base(name)
	i := strings.LastIndex(base, tempMarker)
	if !strings.HasPrefix(base, ".") || i < 2 {
		return false
	}
	suffix := base[i+len(tempMarker):]
	if len(suffix) != tempSuffixLen {
		return false
	}
	_, err := hex.DecodeString(suffix)
	return err == nil
}

// CleanTemps removes the temporary files that IsTemp recognises in dir (not
// recursively). Call it only when no writer is active in dir, e.g. before a
// stage starts on a slide it owns: an in-flight temp file looks the same.
func CleanTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: clean temps: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !IsTemp(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("atomicfile: clean temps: %w", err))
		}
	}
	return errors.Join(errs...)
}

// WriteFileAtomic writes data to path so that readers see either the old file
// or the complete new one: temp file in the same directory, fsync, rename,
// fsync of the directory. perm is applied like os.WriteFile (before umask).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := createAtomic(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: %s: write: %w", path, err)
	}
	return f.Commit()
}

// AtomicFile is a file being written under a temporary name; Commit moves it
// to its final path. Write through the embedded *os.File. Use
//
//	f, err := atomicfile.CreateAtomic(p)
//	if err != nil { return err }
//	defer f.Abort()
//	... write ...
//	return f.Commit()
type AtomicFile struct {
	*os.File
	path string
	done bool
}

// CreateAtomic opens a temporary file next to path (mode 0666 before umask).
func CreateAtomic(path string) (*AtomicFile, error) {
	return createAtomic(path, 0o666)
}

func createAtomic(path string, perm os.FileMode) (*AtomicFile, error) {
	for range 10 { // a name collision is practically impossible; retry anyway
		f, err := os.OpenFile(TempPath(path), os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("atomicfile: %s: create: %w", path, err)
		}
		return &AtomicFile{File: f, path: path}, nil
	}
	return nil, fmt.Errorf("atomicfile: %s: create: no free temporary name", path)
}

// Path returns the final path the file is committed to.
func (f *AtomicFile) Path() string { return f.path }

// Commit flushes the temporary file to disk, renames it over the final path
// and syncs the directory. On failure the temporary file is removed.
func (f *AtomicFile) Commit() error {
	if f.done {
		return fmt.Errorf("atomicfile: %s: commit: file already committed or aborted", f.path)
	}
	f.done = true
	tmp := f.File.Name()
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: %s: commit: %w", f.path, err)
	}
	return rename(tmp, f.path)
}

// Abort closes and removes the temporary file. It is a no-op after Commit or
// a previous Abort, so it can always be deferred.
func (f *AtomicFile) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// CommitPath moves a finished temporary file (written by other code, e.g. the
// HDF5 library, at a name from TempPath) to final: fsync, rename, fsync of the
// directory. On failure the temporary file is removed.
func CommitPath(tmp, final string) error {
	err := syncFile(tmp)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: %s: commit: %w", final, err)
	}
	return rename(tmp, final)
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// rename moves tmp over final and syncs the directory; tmp is removed on failure.
func rename(tmp, final string) error {
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: %s: commit: %w", final, err)
	}
	if err := SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("atomicfile: %s: sync directory: %w", final, err)
	}
	return nil
}

// SyncDir fsyncs a directory so that a create, rename or remove in it is
// durable; file systems that cannot sync a directory (EINVAL) are let off.
func SyncDir(dir string) error {
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
