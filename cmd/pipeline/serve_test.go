package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestServeExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want int
	}{
		{"no work", []string{"serve"}, exitUsage},
		{"missing work", []string{"serve", "--work", filepath.Join(dir, "nope")}, exitUsage},
		{"arguments", []string{"serve", "--work", dir, "extra"}, exitUsage},
		{"bad address", []string{"serve", "--work", dir, "--http", "nohost:port"}, exitUsage},
		{"no max slides", []string{"serve", "--work", dir, "--max-slides", "0"}, exitUsage},
		{"negative tile cache", []string{"serve", "--work", dir, "--tile-cache-mb", "-1"}, exitUsage},
		{"negative max tiles", []string{"serve", "--work", dir, "--max-tiles", "-1"}, exitUsage},
		{"short token", []string{"serve", "--work", dir, "--http-token", "short"}, exitUsage},
	} {
		if code, _, errOut := capture(t, c.args...); code != c.want {
			t.Errorf("%s: exit %d, want %d (%s)", c.name, code, c.want, errOut)
		}
	}
}

// serve runs until its context ends, then returns without error.
func TestServeStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := runServe(ctx, []string{"--work", t.TempDir(), "--http", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
}
