// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// SharedDataRoot returns the folder of real test slides: $HER2WSI_DATA, else
// shared/data beside the checkout, else /work/shared/data; "" when none exists.
func SharedDataRoot() string {
	cands := []string{os.Getenv("HER2WSI_DATA")}
	if _, file, _, ok := runtime.Caller(0); ok {
		// file is <repo>/internal/testutil/data.go
		repo := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		cands = append(cands, filepath.Join(filepath.Dir(repo), "shared", "data"))
	}
	cands = append(cands, "/work/shared/data")
	for _, c := range cands {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c
		}
	}
	return ""
}

// SharedData returns root/sub, skipping the test when it is absent.
func SharedData(t testing.TB, sub string) string {
	t.Helper()
	root := SharedDataRoot()
	if root == "" {
		t.Skipf("shared test data not present (set HER2WSI_DATA)")
	}
	p := filepath.Join(root, sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared data %s not present", p)
	}
	return p
}

// DirNames lists the names of dir's entries in name order.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
