package caseset

import (
	"context"
	"flag"
	"path/filepath"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/pipeline"
)

var updatePinned = flag.Bool("update-pinned", false, "rewrite testdata/pinned-cases.sha256 from the case set generated now")

// TestSynthCasesPinned: the same options give a byte-identical case set
// (every file: slide.json, coords.h5, qc.png, features, anchors.h5 and
// cases.csv). Pinned on amd64 with Debian 12's HDF5; rewrite the pins with
// -update-pinned only when a change of output is intended.
func TestSynthCasesPinned(t *testing.T) {
	opt := DefaultOptions()
	opt.Cases, opt.Seed, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.Folds = 5, 11, 16, 40, 90, 2
	dir := t.TempDir()
	if _, err := Generate(context.Background(), pipeline.Work{Dir: dir}, opt); err != nil {
		t.Fatal(err)
	}
	testutil.CheckPinned(t, filepath.Join("testdata", "pinned-cases.sha256"), testutil.TreeSHA256(t, dir), *updatePinned)
}
