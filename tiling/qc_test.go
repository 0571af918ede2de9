package tiling

import (
	"bytes"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// qcScene is a small synthetic thumbnail (90×60) with a 45×30 mask (half the
// thumbnail's resolution) holding one tissue blob with a hole, and three
// patch boxes, one of them partly outside the image.
func qcScene() (*raster.RGB, *Mask, []image.Rectangle) {
	thumb := raster.New(90, 60)
	for y := 0; y < thumb.H; y++ {
		for x := 0; x < thumb.W; x++ {
			thumb.Set(x, y, 240, 240, 238)
		}
	}
	tissue := make([]uint8, 45*30)
	for y := 0; y < 30; y++ {
		for x := 0; x < 45; x++ {
			dx, dy := float64(x-20)/14, float64(y-14)/10
			if d := dx*dx + dy*dy; d <= 1 && d > 0.1 {
				tissue[y*45+x] = 1
				thumb.Set(2*x, 2*y, 220, 150, 190)
				thumb.Set(2*x+1, 2*y, 200, 130, 180)
				thumb.Set(2*x, 2*y+1, 200, 130, 180)
				thumb.Set(2*x+1, 2*y+1, 220, 150, 190)
			}
		}
	}
	m, err := NewMask(45, 30, 8, tissue)
	if err != nil {
		panic(err)
	}
	boxes := []image.Rectangle{
		image.Rect(16, 8, 32, 24),
		image.Rect(32, 8, 48, 24),
		image.Rect(80, 50, 96, 66), // clipped at the border
	}
	return thumb, m, boxes
}

// goldenPNG is the golden picture testdata/name and its path; with -update
// it first writes got there as PNG.
func goldenPNG(t *testing.T, name string, got *raster.RGB) (*raster.RGB, string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	var buf bytes.Buffer
	if err := png.Encode(&buf, got.ToImage()); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	defer f.Close()
	want, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return raster.FromImage(want), path
}

func TestDrawQCGolden(t *testing.T) {
	thumb, m, boxes := qcScene()
	before := slices.Clone(thumb.Pix)
	got := DrawQC(thumb, m, boxes)
	if !slices.Equal(before, thumb.Pix) {
		t.Fatal("DrawQC modified its input")
	}
	if got.W != thumb.W || got.H != thumb.H {
		t.Fatalf("QC %dx%d, want %dx%d", got.W, got.H, thumb.W, thumb.H)
	}
	wr, path := goldenPNG(t, "qc_golden.png", got)
	if wr.W != got.W || wr.H != got.H {
		t.Fatalf("golden is %dx%d, QC %dx%d", wr.W, wr.H, got.W, got.H)
	}
	if !bytes.Equal(wr.Pix, got.Pix) {
		for i := 0; i < len(got.Pix); i += 3 {
			if !bytes.Equal(wr.Pix[i:i+3], got.Pix[i:i+3]) {
				p := i / 3
				t.Fatalf("QC differs from %s at (%d,%d): got %v want %v (rerun with -update if the change is intended)", path, p%got.W, p/got.W, got.Pix[i:i+3], wr.Pix[i:i+3])
			}
		}
	}
}

func TestDrawQCContent(t *testing.T) {
	thumb, m, boxes := qcScene()
	got := DrawQC(thumb, m, boxes)
	is := func(x, y int, c [3]uint8) bool {
		r, g, b := got.At(x, y)
		return r == c[0] && g == c[1] && b == c[2]
	}
	var outline int
	for y := 0; y < got.H; y++ {
		for x := 0; x < got.W; x++ {
			if is(x, y, qcOutline) {
				outline++
				// The outline lies on tissue (mask scaled by 2).
				if !m.At(x/2, y/2) {
					t.Fatalf("outline pixel (%d,%d) outside the tissue", x, y)
				}
			}
		}
	}
	if outline < 100 {
		t.Errorf("only %d outline pixels", outline)
	}
	// Interior tissue far from any edge keeps its colour.
	if r, g, b := got.At(2*20+1, 2*5); r != 200 || g != 130 || b != 180 {
		t.Errorf("interior pixel changed to %d,%d,%d", r, g, b)
	}
	// Box corners and edges.
	for _, p := range []image.Point{{16, 8}, {31, 8}, {16, 23}, {31, 23}, {24, 8}, {47, 15}, {80, 55}, {85, 50}} {
		if !is(p.X, p.Y, qcBox) {
			t.Errorf("box pixel %v not drawn", p)
		}
	}
	// Inside a box nothing is drawn except the outline.
	if is(24, 15, qcBox) {
		t.Error("box interior painted")
	}
	if DrawQC(nil, m, boxes) != nil || DrawQC(&raster.RGB{W: 2, H: 2}, m, nil) != nil {
		t.Error("DrawQC of a nil or invalid thumbnail is not nil")
	}
	// No mask: only the boxes.
	plain := DrawQC(thumb, nil, boxes)
	for y := 0; y < plain.H; y++ {
		for x := 0; x < plain.W; x++ {
			r, g, b := plain.At(x, y)
			if r == qcOutline[0] && g == qcOutline[1] && b == qcOutline[2] {
				t.Fatalf("outline drawn without a mask at (%d,%d)", x, y)
			}
		}
	}
}

// qcLegendScene is a 320×240 picture at 2 µm/px with tissue in its top
// left quarter (mask 80×60), and its QC picture with the legend.
func qcLegendScene(t *testing.T) (*raster.RGB, *Mask, *raster.RGB) {
	t.Helper()
	pic := raster.New(320, 240)
	tissue := make([]uint8, 80*60)
	for y := 0; y < pic.H; y++ {
		for x := 0; x < pic.W; x++ {
			dx, dy := float64(x-90)/80, float64(y-70)/60
			if dx*dx+dy*dy <= 1 {
				pic.Set(x, y, 214, 120, 176)
				tissue[(y/4)*80+x/4] = 1
			} else {
				pic.Set(x, y, 242, 240, 238)
			}
		}
	}
	m, err := NewMask(80, 60, 8, tissue)
	if err != nil {
		t.Fatal(err)
	}
	qc := DrawQC(pic, m, []image.Rectangle{image.Rect(40, 40, 104, 104), image.Rect(104, 40, 168, 104)})
	if !DrawQCLegend(qc, m, QCLabels{UMPerPixel: 2, Patches: 2, PatchSize: 256, PatchMPP: 0.5}) {
		t.Fatal("legend does not fit a 320×240 picture")
	}
	return pic, m, qc
}

func TestDrawQCLegendGolden(t *testing.T) {
	_, _, qc := qcLegendScene(t)
	if wr, path := goldenPNG(t, "qc_legend_golden.png", qc); wr.W != qc.W || wr.H != qc.H || !bytes.Equal(wr.Pix, qc.Pix) {
		t.Fatalf("QC picture with legend differs from %s (rerun with -update if the change is intended)", path)
	}
}

// The legend lies in a corner free of tissue, holds text, both keys and a
// scale bar as long as its length at the picture's µm/px; the tissue is
// left as DrawQC drew it.
func TestDrawQCLegendContent(t *testing.T) {
	pic, m, qc := qcLegendScene(t)
	plain := DrawQC(pic, m, []image.Rectangle{image.Rect(40, 40, 104, 104), image.Rect(104, 40, 168, 104)})
	changed := image.Rectangle{}
	for y := 0; y < qc.H; y++ {
		for x := 0; x < qc.W; x++ {
			if qc.RGBAAt(x, y) != plain.RGBAAt(x, y) {
				changed = changed.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	// Bottom right (the tissue is top left), 4 px from the edges.
	if changed.Empty() || changed.Max != (image.Point{320 - 4, 240 - 4}) || changed.Min.Y < 120 {
		t.Fatalf("legend drawn over %v; want the bottom right, 4 px from the edges", changed)
	}
	for y := changed.Min.Y; y < changed.Max.Y; y++ {
		for x := changed.Min.X; x < changed.Max.X; x++ {
			if m.At(x/4, y/4) {
				t.Fatalf("legend over tissue at (%d,%d)", x, y)
			}
		}
	}
	count := func(c [3]uint8) int {
		n := 0
		for y := changed.Min.Y; y < changed.Max.Y; y++ {
			for x := changed.Min.X; x < changed.Max.X; x++ {
				if r, g, b := qc.At(x, y); r == c[0] && g == c[1] && b == c[2] {
					n++
				}
			}
		}
		return n
	}
	if n := count(qcOutline); n < 10 {
		t.Errorf("outline key: %d pixels", n)
	}
	if n := count(qcBox); n < 10 {
		t.Errorf("box key: %d pixels", n)
	}
	if n := count([3]uint8{0, 0, 0}); n < 300 {
		t.Errorf("%d text pixels", n)
	}
	// 2 µm/px, room for 64 px (a fifth of 320): a 100 µm bar, 50 px.
	best := 0
	for y := changed.Min.Y; y < changed.Max.Y; y++ {
		n := 0
		for x := changed.Min.X; x < changed.Max.X; x++ {
			if r, g, b := qc.At(x, y); r == 0 && g == 0 && b == 0 {
				n++
				best = max(best, n)
			} else {
				n = 0
			}
		}
	}
	if best != 50 {
		t.Errorf("scale bar %d px; want 50 (100 µm at 2 µm/px)", best)
	}
	if leg, fallback := QCLegend(320, 240, m, QCLabels{Patches: 1}); len(leg.Rows) != 2 || len(fallback.Rows) != 0 {
		t.Errorf("legend without a resolution has %d rows and a fallback of %d; want 2 and none (no scale bar)", len(leg.Rows), len(fallback.Rows))
	}
}

// A picture too small for the legend gets the scale bar alone.
func TestDrawQCLegendSmallPicture(t *testing.T) {
	pic := raster.New(150, 150)
	for i := range pic.Pix {
		pic.Pix[i] = 230
	}
	if DrawQCLegend(pic, nil, QCLabels{UMPerPixel: 0.5, Patches: 0, PatchSize: 256, PatchMPP: 0.5}) {
		t.Fatal("the whole legend fitted a 150-px picture")
	}
	// A fifth of 150 px at 0.5 µm/px is 15 µm: a 10 µm bar, 20 px.
	best, n := 0, 0
	for y := 0; y < pic.H; y++ {
		run := 0
		for x := 0; x < pic.W; x++ {
			if r, g, b := pic.At(x, y); r == 0 && g == 0 && b == 0 {
				run++
				n++
				best = max(best, run)
			} else {
				run = 0
			}
		}
	}
	if best != 20 || n > 400 {
		t.Errorf("scale bar %d px, %d black pixels; want a 20-px bar and its label only", best, n)
	}
}
