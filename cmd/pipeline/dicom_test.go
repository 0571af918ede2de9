package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
)

// A DICOM series given as a folder goes through info, tile and run --stage
// like an SVS: one slide (its largest instance), read from all its levels.
func TestDICOMCommands(t *testing.T) {
	dir := t.TempDir()
	series := filepath.Join(dir, "series")
	os.Mkdir(series, 0o755)
	files := fixture.DICOMSeries(t, series, "s", 5, 7)
	work := filepath.Join(dir, "work")
	enc, _ := filepath.Abs(filepath.Join("..", "..", "features", "testdata", "encoders", "tiny-clip.onnx"))

	code, out, errOut := capture(t, "info", files[len(files)-1])
	if code != exitOK {
		t.Fatalf("info: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"format:          dicom, vendor dicom",
		"mpp:             0.5000 x 0.5000 µm/px (dicom PixelSpacing)",
		"0: 1792 x 1280  downsample 1  0.5000 µm/px  frame 256 x 256",
		"s-level-0.dcm: 35 frames, jpeg baseline (1.2.840.10008.1.2.4.50), dimension organization TILED_FULL",
		"1: 896 x 640  downsample 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
	if code := run([]string{"tile", "--input", series, "--out", work}); code != exitOK {
		t.Fatalf("tile: exit %d", code)
	}
	ids, _ := filepath.Glob(filepath.Join(work, "slides", "*"))
	if len(ids) != 1 || filepath.Base(ids[0]) != "s-level-0" {
		t.Fatalf("slides tiled: %v, want s-level-0 alone", ids)
	}
	if code := run([]string{"run", "--stage", "embed,anchors", "--input", series, "--out", work, "--encoder", enc}); code != exitOK {
		t.Fatalf("run --stage embed,anchors: exit %d", code)
	}
	for _, p := range []string{"features/tiny-clip.h5", "anchors.h5", "coords.h5", "qc.png"} {
		if _, err := os.Stat(filepath.Join(ids[0], p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
}

// pipeline info on the non-conformant TCGA file says that the frame order
// was inferred, and which.
func TestDICOMInfoInferredOrder(t *testing.T) {
	p := filepath.Join(testutil.SharedData(t, "tcga-xk-aaju-dicom-wsi"), "small_dicom.dcm")
	code, out, errOut := capture(t, "info", p)
	if code != exitOK {
		t.Fatalf("info: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"0: 3236 x 2638  downsample 1  frame 500 x 500", "dimension organization not stated",
		"frame order: column-major, inferred from image continuity", "mpp:             unknown (pass --mpp)"} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "frame order not stated") {
		t.Errorf("no warning on stderr: %q", errOut)
	}
}
