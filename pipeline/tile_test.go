package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
)

// Tissue aligned to the 256-px grid at 20×: columns 2–5 × rows 2–4 and
// columns 8–11 × rows 4–9, so the expected patch set is known exactly.
var gridTissue20 = []image.Rectangle{image.Rect(512, 512, 1536, 1280), image.Rect(2048, 1024, 3072, 2560)}

func expectedCells() [][2]int64 {
	var cells [][2]int64 // row, col
	for _, r := range gridTissue20 {
		for row := r.Min.Y / 256; row < r.Max.Y/256; row++ {
			for col := r.Min.X / 256; col < r.Max.X/256; col++ {
				cells = append(cells, [2]int64{int64(row), int64(col)})
			}
		}
	}
	sort.Slice(cells, func(i, j int) bool {
		if cells[i][0] != cells[j][0] {
			return cells[i][0] < cells[j][0]
		}
		return cells[i][1] < cells[j][1]
	})
	return cells
}

func scaled(rs []image.Rectangle, f int) []image.Rectangle {
	out := make([]image.Rectangle, len(rs))
	for i, r := range rs {
		out[i] = image.Rect(r.Min.X*f, r.Min.Y*f, r.Max.X*f, r.Max.Y*f)
	}
	return out
}

func readCoords(t *testing.T, path string) ([]int64, map[string]any) {
	t.Helper()
	r, err := store.OpenH5(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, dims, err := r.ReadInt64("coords")
	if err != nil {
		t.Fatal(err)
	}
	if len(dims) != 2 || dims[1] != 2 {
		t.Fatalf("coords dims %v", dims)
	}
	attrs := map[string]any{}
	names, _ := r.AttrNames("coords")
	for _, n := range names {
		attrs[n], _ = r.Attr("coords", n)
	}
	return c, attrs
}

func TestTileExactPatchSet(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		opt   synth.SlideOptions
		mpp   float64 // --mpp
		step  int64   // patch size at level 0
		level int64
		dicom bool // as a DICOM series (synth.WriteDICOM), opened from its smallest level's instance
	}{
		{"he20x.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, AppMag: 20, Aperio: true, Pyramid: true, Tissue: gridTissue20}, 0, 256, 0, false},
		{"he40x.svs", synth.SlideOptions{Width: 8192, Height: 6144, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: scaled(gridTissue20, 2)}, 0, 512, 0, false},
		{"he40x-with20x.svs", synth.SlideOptions{Width: 8192, Height: 6144, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid: true, Tissue: scaled(gridTissue20, 2)}, 0, 512, 1, false},
		{"nompp.svs", synth.SlideOptions{Width: 4096, Height: 3072, Aperio: true, Pyramid: true, Tissue: gridTissue20}, 0.5, 256, 0, false},
		{"big.tif", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, BigTIFF: true, Pyramid: true, Tissue: gridTissue20}, 0, 256, 0, false},
		{"ihc20x.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true, Stain: "ihc", Tissue: gridTissue20}, 0, 256, 0, false},
		{"he40x-dicom", synth.SlideOptions{Width: 8192, Height: 6144, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: scaled(gridTissue20, 2)}, 0, 512, 0, true},
		{"he40x-with20x-dicom", synth.SlideOptions{Width: 8192, Height: 6144, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid: true, Tissue: scaled(gridTissue20, 2)}, 0, 512, 1, true},
		{"nompp-dicom", synth.SlideOptions{Width: 4096, Height: 3072, Pyramid: true, Tissue: gridTissue20}, 0.5, 256, 0, true},
	}
	want := expectedCells()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			id := slide.ID(p)
			if c.dicom {
				os.Mkdir(p, 0o755)
				files, err := synth.WriteDICOM(p, c.name, c.opt)
				if err != nil {
					t.Fatal(err)
				}
				p, id = files[len(files)-1], c.name
			} else if err := synth.WriteSlide(p, c.opt); err != nil {
				t.Fatal(err)
			}
			work := Work{Dir: filepath.Join(dir, "work-"+c.name)}
			opt := DefaultTileOptions()
			opt.MPP = c.mpp
			in := Input{Path: p, ID: id}
			r := TileSlide(context.Background(), in, work, opt)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			coords, attrs := readCoords(t, work.CoordsH5(in.ID))
			var got [][2]int64
			for i := 0; i < len(coords); i += 2 {
				x, y := coords[i], coords[i+1]
				if x%c.step != 0 || y%c.step != 0 {
					t.Fatalf("coordinate (%d,%d) off the %d-px grid", x, y, c.step)
				}
				got = append(got, [2]int64{y / c.step, x / c.step})
			}
			if !equalCells(got, want) {
				t.Errorf("patch cells\n got %v\nwant %v", got, want)
			}
			for k, v := range map[string]any{"patch_size": int64(256), "patch_size_level0": c.step, "target_mpp": 0.5, "level": c.level} {
				if attrs[k] != v {
					t.Errorf("attr %s = %v (%T), want %v", k, attrs[k], attrs[k], v)
				}
			}
			var rec SlideRecord
			b, err := os.ReadFile(work.SlideJSON(in.ID))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.NumPatches != len(want) || rec.CoordsSHA256 != CoordsChecksum(coords) || rec.Plan.PatchSizeLevel0 != int(c.step) {
				t.Errorf("slide.json: %d patches, sha %s, plan %+v", rec.NumPatches, rec.CoordsSHA256, rec.Plan)
			}
			if fi, err := os.Stat(work.QCPNG(in.ID)); err != nil || fi.Size() < 1000 {
				t.Errorf("qc.png: %v", err)
			}
			// tissue.png is the mask the grid was chosen on
			mw, mh, tissue, err := ReadMask(work.TissuePNG(in.ID))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, v := range tissue {
				n += int(v)
			}
			if mw != rec.MaskWidth || mh != rec.MaskHeight || math.Abs(float64(n)/float64(mw*mh)-rec.TissueFraction) > 1e-9 {
				t.Errorf("tissue.png %dx%d with %d tissue pixels; slide.json: %dx%d, tissue fraction %.4f", mw, mh, n, rec.MaskWidth, rec.MaskHeight, rec.TissueFraction)
			}
		})
	}
}

func equalCells(a, b [][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// One batch with good and bad slides: every bad one fails with its own
// one-line reason, the good ones are done, and no failed slide has a
// slide.json (the completion marker) or coords.h5.
func TestTileBatchWithBadInputs(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	mk := func(name string, o synth.SlideOptions) string {
		p := filepath.Join(in, name)
		if err := synth.WriteSlide(p, o); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk("good slide #1 é.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: gridTissue20})
	mk("blank.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true})
	mk("nompp.svs", synth.SlideOptions{Width: 2048, Height: 2048, Aperio: true, Pyramid: true, Tissue: gridTissue20})
	data, _ := os.ReadFile(good)
	os.WriteFile(filepath.Join(in, "truncated.svs"), data[:len(data)/3], 0o644)
	os.WriteFile(filepath.Join(in, "empty.svs"), nil, 0o644)
	os.WriteFile(filepath.Join(in, "text.tif"), []byte("not a slide"), 0o644)
	os.WriteFile(filepath.Join(in, "notes.txt"), []byte("ignored: not a slide extension"), 0o644)
	os.WriteFile(filepath.Join(in, ".hidden.svs"), []byte("ignored"), 0o644)

	slides, err := FindSlides([]string{in}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(slides) != 6 {
		t.Fatalf("found %d slides: %+v", len(slides), slides)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	sum := TileAll(context.Background(), slides, work, DefaultTileOptions(), 2, nil)
	if sum.Done != 1 || sum.Failed != 5 {
		t.Fatalf("done %d failed %d", sum.Done, sum.Failed)
	}
	wantErr := map[string]string{
		"blank":     "no tissue",
		"nompp":     "--mpp",
		"truncated": "truncated",
		"empty":     "empty file",
		"text":      "not a slide",
	}
	for _, r := range sum.Results {
		_, statErr := os.Stat(work.SlideJSON(r.ID))
		if r.Err == nil {
			if r.ID != "good slide #1 é" || statErr != nil || r.NumPatches != 36 {
				t.Errorf("%s: done with %d patches, slide.json %v", r.ID, r.NumPatches, statErr)
			}
			continue
		}
		msg := r.Err.Error()
		if !strings.Contains(msg, wantErr[r.ID]) || !strings.Contains(msg, r.ID) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q should be one line naming the slide and saying %q", r.ID, msg, wantErr[r.ID])
		}
		if statErr == nil {
			t.Errorf("%s failed but has a slide.json", r.ID)
		}
		if _, err := os.Stat(work.CoordsH5(r.ID)); err == nil {
			t.Errorf("%s failed but has coords.h5", r.ID)
		}
	}
	if errors.Is(sum.Results[0].Err, context.Canceled) {
		t.Error("unexpected cancel")
	}
}

// A rerun that fails (here: the slide file was replaced by a broken one)
// must not leave the earlier slide.json behind as if the slide were done.
func TestFailedRerunRemovesMarker(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.svs")
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: 2048, Height: 2048, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: gridTissue20}); err != nil {
		t.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	in := Input{Path: p, ID: "s"}
	if r := TileSlide(context.Background(), in, work, DefaultTileOptions()); r.Err != nil {
		t.Fatal(r.Err)
	}
	os.WriteFile(p, []byte("broken"), 0o644)
	if r := TileSlide(context.Background(), in, work, DefaultTileOptions()); r.Err == nil {
		t.Fatal("broken slide tiled")
	}
	if _, err := os.Stat(work.SlideJSON("s")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("slide.json survived a failed rerun: %v", err)
	}
}

func TestFindSlidesDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
		os.WriteFile(filepath.Join(dir, sub, "x.svs"), []byte("x"), 0o644)
	}
	// The same name in two folders: the folder names tell them apart.
	for _, args := range [][]string{{filepath.Join(dir, "a"), filepath.Join(dir, "b")}, {dir}} {
		got, err := FindSlides(args, len(args) == 1)
		if err != nil || len(got) != 2 || got[0].ID != "a-x" || got[1].ID != "b-x" {
			t.Errorf("FindSlides(%v): %+v %v, want ids a-x and b-x", args, got, err)
		}
	}
	// Two extensions in one folder: nothing tells them apart.
	os.WriteFile(filepath.Join(dir, "a", "x.tif"), []byte("x"), 0o644)
	_, err := FindSlides([]string{filepath.Join(dir, "a")}, false)
	if err == nil || !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), "x.svs") || !strings.Contains(err.Error(), "x.tif") {
		t.Errorf("duplicate id not reported: %v", err)
	}
	got, err := FindSlides([]string{dir}, false)
	if err != nil || len(got) != 0 {
		t.Errorf("non-recursive scan of a folder with only sub-folders: %v %v", got, err)
	}
}

// coords.h5 must read in h5py (what CLAM and TRIDENT use) with the expected
// dtype, shape and attributes.
func TestCoordsReadableByH5py(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import h5py").Run(); err != nil {
		t.Skip("python3-h5py not installed")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "s.svs")
	if err := synth.WriteSlide(p, synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: gridTissue20}); err != nil {
		t.Fatal(err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	if r := TileSlide(context.Background(), Input{Path: p, ID: "s"}, work, DefaultTileOptions()); r.Err != nil {
		t.Fatal(r.Err)
	}
	script := `
import h5py, sys
f = h5py.File(sys.argv[1], "r")
c = f["coords"]
assert c.dtype == "int64" and c.shape == (36, 2), (c.dtype, c.shape)
a = c.attrs
assert int(a["patch_size"]) == 256 and int(a["patch_size_level0"]) == 256 and int(a["level"]) == 0, dict(a)
assert abs(float(a["target_mpp"]) - 0.5) < 1e-9
assert a["name"] == "s", a["name"]
assert tuple(c[0]) == (512, 512), tuple(c[0])
print("ok")
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, work.CoordsH5("s")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("h5py: %v\n%s", err, out)
	}
}

func sharedData(t *testing.T, sub string) string { return testutil.SharedData(t, sub) }

// The tile stage on the real slides and images of shared/data: plausible
// patch counts and tissue fractions, judged against the QC pictures (see
// HER2WSI_QC_DIR to keep them).
func TestTileRealData(t *testing.T) {
	cases := []struct {
		dir, file            string
		mpp                  float64
		minPatches, maxPatch int
		minTissue, maxTissue float64
		wantErr              string
	}{
		// 2220×2967 at 20×: 8×11 = 88 cells; the skin section covers ~40 %.
		{"openslide-cmu-1-small-region-svs", "CMU-1-Small-Region.svs", 0, 40, 70, 0.3, 0.55, ""},
		// JPEG 2000, no MPP in the header: fails without --mpp, tiles with it.
		{"tcga-cr-7395-svs-j2k", "tcga-cr-7395-01a-01-ts1.svs", 0, 0, 0, 0, 0, "--mpp"},
		{"tcga-cr-7395-svs-j2k", "tcga-cr-7395-01a-01-ts1.svs", 0.5, 50, 240, 0.2, 0.9, ""},
		// Fluorescence (DAPI on black): not brightfield tissue.
		{"hamamatsu-ndpi-fluorescence", "test3-DAPI-2-387.ndpi", 0, 0, 0, 0, 0, "no tissue"},
		// BCI crops, 1024² at ~0.46 µm/px → 3×3 patches at 20×. H&E 0 and
		// IHC 1+ are all tissue; IHC 0 has an empty lumen over its upper
		// half and IHC 3+ glass in its lower-left corner (looked at).
		{"bci-he-ihc-her2-pairs", "HE/00345_test_0.jpg", 0.46, 9, 9, 0.9, 1, ""},
		{"bci-he-ihc-her2-pairs", "IHC/00901_test_1+.jpg", 0.46, 9, 9, 0.9, 1, ""},
		{"bci-he-ihc-her2-pairs", "IHC/00345_test_0.jpg", 0.46, 4, 7, 0.35, 0.6, ""},
		{"bci-he-ihc-her2-pairs", "IHC/00672_test_3+.jpg", 0.46, 5, 8, 0.45, 0.7, ""},
		// Non-conformant DICOM (frame order inferred: column-major), no
		// pixel spacing: fails without --mpp; with an assumed 0.5 the
		// section (about 40 % of the 3236×2638 image, looked at) tiles.
		{"tcga-xk-aaju-dicom-wsi", "small_dicom.dcm", 0, 0, 0, 0, 0, "--mpp"},
		{"tcga-xk-aaju-dicom-wsi", "small_dicom.dcm", 0.5, 50, 100, 0.25, 0.55, ""},
	}
	qcDir := os.Getenv("HER2WSI_QC_DIR")
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			p := filepath.Join(sharedData(t, c.dir), c.file)
			work := Work{Dir: t.TempDir()}
			if qcDir != "" {
				work.Dir = filepath.Join(qcDir, "work")
			}
			opt := DefaultTileOptions()
			opt.MPP = c.mpp
			r := TileSlide(context.Background(), Input{Path: p, ID: slide.ID(p)}, work, opt)
			if c.wantErr != "" {
				if r.Err == nil || !strings.Contains(r.Err.Error(), c.wantErr) || !strings.Contains(r.Err.Error(), filepath.Base(c.file)) {
					t.Fatalf("want an error naming %s and saying %q, got %v", filepath.Base(c.file), c.wantErr, r.Err)
				}
				return
			}
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if r.NumPatches < c.minPatches || r.NumPatches > c.maxPatch || r.Tissue < c.minTissue || r.Tissue > c.maxTissue {
				t.Errorf("%d patches, tissue %.2f; want %d..%d patches, tissue %.2f..%.2f", r.NumPatches, r.Tissue, c.minPatches, c.maxPatch, c.minTissue, c.maxTissue)
			}
			if _, err := os.Stat(work.QCPNG(slide.ID(p))); err != nil {
				t.Error(err)
			}
		})
	}
}

// The QC picture is read finer than the tissue mask: level 0's size for a
// slide smaller than the cap, the cap (QCMaxSide) on the long side for a
// larger one (≥ 1024 px, from the pyramid or streamed from a single
// level); thumbnail.jpg is the same picture without the drawing; the
// scale bar is as long as its length at the picture's µm/px.
func TestTileQCPicture(t *testing.T) {
	dir := t.TempDir()
	tissue := []image.Rectangle{image.Rect(200, 150, 600, 500)}
	cases := []struct {
		name   string
		opt    synth.SlideOptions
		cap    int
		w, h   int
		barPx  int // the scale bar: 200 µm at 1 µm/px; 50 µm at 0.5 (a fifth of 900 px is 90 µm)
		barTxt string
	}{
		{"small.svs", synth.SlideOptions{Width: 900, Height: 700, MPP: 0.5, Aperio: true, Tissue: tissue}, 2048, 900, 700, 100, "50 µm"},
		{"large40x.svs", synth.SlideOptions{Width: 8192, Height: 6144, MPP: 0.25, AppMag: 40, Aperio: true, Pyramid4: true, Tissue: scaled(gridTissue20, 2)}, 2048, 2048, 1536, 200, "200 µm"},
		{"onelevel.tif", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Tissue: gridTissue20}, 2048, 2048, 1536, 200, "200 µm"},
		{"capped.svs", synth.SlideOptions{Width: 4096, Height: 3072, MPP: 0.5, Aperio: true, Pyramid: true, Tissue: gridTissue20}, 1200, 1200, 900, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			if err := synth.WriteSlide(p, c.opt); err != nil {
				t.Fatal(err)
			}
			work := Work{Dir: filepath.Join(dir, "work-"+c.name)}
			opt := DefaultTileOptions()
			opt.QCMaxSide = c.cap
			in := Input{Path: p, ID: slide.ID(p)}
			if r := TileSlide(context.Background(), in, work, opt); r.Err != nil {
				t.Fatal(r.Err)
			}
			qc := decodeFile(t, work.QCPNG(in.ID))
			thumb := decodeFile(t, work.ThumbnailJPG(in.ID))
			if qc.W != c.w || qc.H != c.h || thumb.W != c.w || thumb.H != c.h {
				t.Fatalf("qc.png %dx%d, thumbnail.jpg %dx%d; want %dx%d", qc.W, qc.H, thumb.W, thumb.H, c.w, c.h)
			}
			if l0 := max(c.opt.Width, c.opt.Height); max(qc.W, qc.H) < min(1024, l0) || max(qc.W, qc.H) > c.cap {
				t.Errorf("long side %d: want ≥ min(1024, %d) and ≤ %d", max(qc.W, qc.H), l0, c.cap)
			}
			if c.barPx == 0 {
				return
			}
			best := 0
			for y := 0; y < qc.H; y++ {
				n := 0
				for x := 0; x < qc.W; x++ {
					if r, g, b := qc.At(x, y); r == 0 && g == 0 && b == 0 {
						n++
						best = max(best, n)
					} else {
						n = 0
					}
				}
			}
			if best != c.barPx {
				t.Errorf("scale bar %d px; want %d (%s)", best, c.barPx, c.barTxt)
			}
			var rec SlideRecord
			if b, err := os.ReadFile(work.SlideJSON(in.ID)); err != nil || json.Unmarshal(b, &rec) != nil {
				t.Fatalf("slide.json: %v", err)
			}
			if _, ok := rec.Timings["read_picture"]; !ok {
				t.Errorf("timings %v lack read_picture", rec.Timings)
			}
		})
	}
}

func decodeFile(t *testing.T, path string) *raster.RGB {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return raster.FromImage(img)
}
