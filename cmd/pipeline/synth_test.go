package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

var updatePinned = flag.Bool("update-pinned", false, "rewrite testdata/pinned-synth.sha256 from the files `pipeline synth` writes now")

// TestSynthCommandPinned: `pipeline synth` (a slide with the default
// layout, one with other flags, a case set) writes byte-identical files for
// the same flags. Pinned on amd64 with Debian 12's libvips and HDF5; rewrite
// the pins with -update-pinned only when a change of output is intended.
func TestSynthCommandPinned(t *testing.T) {
	dir := t.TempDir()
	runs := [][]string{
		{"synth", "--out", filepath.Join(dir, "slides", "default.svs"), "--width", "3000", "--height", "2000"},
		{"synth", "--out", filepath.Join(dir, "slides", "other.tif"), "--width", "2500", "--height", "1800", "--mpp", "0", "--mag", "0",
			"--blobs", "5", "--stain", "ihc", "--seed", "9", "--bigtiff"},
		{"synth", "--out", filepath.Join(dir, "slides", "noblobs.svs"), "--width", "1200", "--height", "900", "--mpp", "0.5", "--mag", "20", "--blobs", "0"},
		{"synth", "--cases", "4", "--out", filepath.Join(dir, "cases"), "--seed", "5", "--dim", "8", "--encoder", "tiny-clip",
			"--min-patches", "40", "--max-patches", "80", "--folds", "2", "--he-signal", "0.5", "-log-format", "json"},
	}
	stdout := os.Stdout
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, args := range runs {
		os.Stdout = devnull
		code := run(args)
		os.Stdout = stdout
		if code != exitOK {
			t.Fatalf("pipeline %v: exit %d", args, code)
		}
	}
	testutil.CheckPinned(t, filepath.Join("testdata", "pinned-synth.sha256"), testutil.TreeSHA256(t, dir), *updatePinned)
}
