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
	var buf bytes.Buffer
	if err := png.Encode(&buf, got.ToImage()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "qc_golden.png")
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
		t.Fatalf("%v (run go test -run TestDrawQCGolden -update to create it)", err)
	}
	defer f.Close()
	want, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	wr := raster.FromImage(want)
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
