package testutil

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// FileSHA256 is the hex SHA-256 of a file's bytes.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TreeSHA256 maps every file under root (slash-separated relative path) to
// its SHA-256.
func TreeSHA256(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = FileSHA256(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CheckPinned compares got (name → hex SHA-256) with the golden file, in
// sha256sum's format ("<sum>  <name>" per line), or rewrites the golden
// file when update is set. The pins are taken on amd64: elsewhere (where
// the compiler may fuse multiply-adds) the check is skipped.
func CheckPinned(t testing.TB, golden string, got map[string]string, update bool) {
	t.Helper()
	names := make([]string, 0, len(got))
	for n := range got {
		names = append(names, n)
	}
	slices.Sort(names)
	if update {
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "%s  %s\n", got[n], n)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if runtime.GOARCH != "amd64" {
		t.Skipf("%s is pinned on amd64, this is %s", golden, runtime.GOARCH)
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sum, name, ok := strings.Cut(sc.Text(), "  "); ok {
			want[name] = sum
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		switch w, ok := want[n]; {
		case !ok:
			t.Errorf("%s: not in %s", n, golden)
		case w != got[n]:
			t.Errorf("%s: SHA-256 %s, pinned %s", n, got[n], w)
		}
	}
	for n := range want {
		if _, ok := got[n]; !ok {
			t.Errorf("%s: pinned in %s but not generated", n, golden)
		}
	}
}
