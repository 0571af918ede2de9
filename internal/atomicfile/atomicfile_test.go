package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

func TestWriteFileAtomic(t *testing.T) {
	tests := []struct {
		name    string
		old     []byte // existing content, nil for none
		data    []byte
		perm    os.FileMode
		subdir  string // written under a missing directory: must fail
		wantErr bool
	}{
		{name: "new file", data: []byte(`{"status":"done"}`), perm: 0o644},
		{name: "replaces old content", old: []byte("old and longer content"), data: []byte("new"), perm: 0o600},
		{name: "empty file", data: nil, perm: 0o644},
		{name: "missing directory", data: []byte("x"), perm: 0o644, subdir: "missing", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.subdir, "state.json")
			if tc.old != nil {
				if err := os.WriteFile(path, tc.old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := WriteFileAtomic(path, tc.data, tc.perm)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				if got := testutil.DirNames(t, dir); len(got) != 0 {
					t.Fatalf("left behind %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("read %q, %v; want %q", got, err, tc.data)
			}
			st, _ := os.Stat(path)
			if want := tc.perm &^ umask(t); st.Mode().Perm() != want {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), want)
			}
			if got := testutil.DirNames(t, dir); !slices.Equal(got, []string{"state.json"}) {
				t.Errorf("directory holds %v", got)
			}
		})
	}
}

// umask finds the process umask by creating a file.
func umask(t *testing.T) os.FileMode {
	p := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(p, nil, 0o777); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	return 0o777 &^ st.Mode().Perm()
}

func TestAtomicFile(t *testing.T) {
	tests := []struct {
		name   string
		commit bool
		want   []string
	}{
		{name: "commit", commit: true, want: []string{"qc.png"}},
		{name: "abort", commit: false, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "qc.png")
			f, err := CreateAtomic(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Abort()
			if f.Path() != path || !IsTemp(f.Name()) || filepath.Dir(f.Name()) != dir {
				t.Fatalf("temp %q for %q", f.Name(), f.Path())
			}
			if _, err := f.Write([]byte("png")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("final path visible before commit: %v", err)
			}
			if tc.commit {
				if err := f.Commit(); err != nil {
					t.Fatal(err)
				}
				f.Abort() // no-op after Commit
				if err := f.Commit(); err == nil {
					t.Error("second Commit succeeded")
				}
			} else {
				f.Abort()
				f.Abort()
				if err := f.Commit(); err == nil {
					t.Error("Commit after Abort succeeded")
				}
			}
			if got := testutil.DirNames(t, dir); !slices.Equal(got, tc.want) {
				t.Errorf("directory holds %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsTemp(t *testing.T) {
	tmp := TempPath("/work/slides/a/coords.h5")
	tests := []struct {
		name string
		want bool
	}{
		{tmp, true},
		{filepath.Base(tmp), true},
		{".coords.h5.tmp-0123456789abcdef", true},
		{"coords.h5", false},
		{".coords.h5", false},
		{"coords.h5.tmp-0123456789abcdef", false},  // no leading dot
		{".coords.h5.tmp-0123", false},             // short suffix
		{".coords.h5.tmp-0123456789abcdeg", false}, // not hex
		{"..tmp-0123456789abcdef", false},          // empty base
	}
	for _, tc := range tests {
		if got := IsTemp(tc.name); got != tc.want {
			t.Errorf("IsTemp(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if a, b := TempPath("x"), TempPath("x"); a == b {
		t.Errorf("TempPath repeated %q", a)
	}
	if got := filepath.Dir(tmp); got != "/work/slides/a" {
		t.Errorf("temp in %q", got)
	}
}

func TestCleanTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"coords.h5", "slide.json", ".hidden"}
	for _, n := range append(slices.Clone(keep), filepath.Base(TempPath("coords.h5")), filepath.Base(TempPath("slide.json"))) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, filepath.Base(TempPath("features"))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CleanTemps(dir); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range testutil.DirNames(t, dir) {
		if !IsTemp(n) {
			got = append(got, n)
		}
	}
	slices.Sort(keep)
	if !slices.Equal(got, keep) || len(testutil.DirNames(t, dir)) != len(keep)+1 { // the directory stays
		t.Errorf("after CleanTemps: %v", testutil.DirNames(t, dir))
	}
	if err := CleanTemps(filepath.Join(dir, "missing")); err == nil {
		t.Error("CleanTemps on a missing directory succeeded")
	}
}
