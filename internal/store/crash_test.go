package store

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

// TestCrashedWriter runs a child process that creates an HDF5 file, writes
// into it and exits without Commit, as a crash would.
func TestCrashedWriter(t *testing.T) {
	if dir := os.Getenv("STORE_CRASH_DIR"); dir != "" {
		w, err := CreateH5(filepath.Join(dir, "coords.h5"))
		if err != nil {
			os.Exit(3)
		}
		if err := w.WriteInt64("coords", []int64{0, 0, 256, 0}, 2, 2); err != nil {
			os.Exit(4)
		}
		f, err := CreateAtomic(filepath.Join(dir, "slide.json"))
		if err != nil {
			os.Exit(5)
		}
		f.Write([]byte("{"))
		os.Exit(0) // no Commit, no Abort
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashedWriter$")
	cmd.Env = append(os.Environ(), "STORE_CRASH_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := testutil.DirNames(t, dir)
	if len(got) != 2 || !IsTemp(got[0]) || !IsTemp(got[1]) {
		t.Fatalf("after a crash the directory holds %v, want two temp files", got)
	}
	for _, final := range []string{"coords.h5", "slide.json"} {
		if _, err := os.Stat(filepath.Join(dir, final)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after a crash: %v", final, err)
		}
	}
	if err := CleanTemps(dir); err != nil {
		t.Fatal(err)
	}
	if got := testutil.DirNames(t, dir); len(got) != 0 {
		t.Errorf("CleanTemps left %v", got)
	}
}
