package pipeline

import (
	"context"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/synth"
)

// touch creates the files (relative to dir) with a few bytes each.
func touch(t *testing.T, dir string, rels ...string) {
	t.Helper()
	for _, rel := range rels {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A folder of images is a folder of slides: JPEG, PNG and TIFF are found
// (any case of the extension); other images and files are not.
func TestFindSlidesImageFolder(t *testing.T) {
	dir := t.TempDir()
	touch(t, dir, "a.png", "b.jpg", "c.jpeg", "d.JPG", "e.tif", "f.gif", "g.webp", "notes.txt", ".h.png", "i.png.part")
	got, err := FindSlides([]string{dir}, false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range got {
		ids = append(ids, in.ID)
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}

// The tile stage on plain images found in a folder: without --mpp each
// fails with the error that names the file and --mpp; with --mpp 0.5 each
// is tiled into the patches its tissue covers.
func TestTileImageFolder(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "images")
	os.MkdirAll(in, 0o755)
	// 2048×1536 of glass with stained tissue over grid cells: columns 2–5 ×
	// rows 2–4 (12 patches at 256 px).
	img := raster.New(2048, 1536)
	for i := range img.Pix {
		img.Pix[i] = synth.Glass
	}
	tex := synth.StainTexture(synth.TextureSize, "he", 1)
	tissue := image.Rect(512, 512, 1536, 1280)
	for y := tissue.Min.Y; y < tissue.Max.Y; y++ {
		for x := tissue.Min.X; x < tissue.Max.X; x++ {
			r, g, b := tex.At(x%tex.W, y%tex.H)
			img.Set(x, y, r, g, b)
		}
	}
	if err := WritePNG(filepath.Join(in, "he_0+.png"), img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(in, "he 2.JPG"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img.ToImage(), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	slides, err := FindSlides([]string{in}, false)
	if err != nil || len(slides) != 2 {
		t.Fatalf("found %+v, %v", slides, err)
	}
	work := Work{Dir: filepath.Join(dir, "work")}
	opt := DefaultTileOptions()
	sum := TileAll(context.Background(), slides, work, opt, 2, nil)
	if sum.Failed != 2 {
		t.Fatalf("without --mpp: %d failed, want 2", sum.Failed)
	}
	for _, r := range sum.Results {
		if msg := r.Err.Error(); !strings.Contains(msg, "--mpp") || !strings.Contains(msg, filepath.Base(r.Path)) {
			t.Errorf("%s: error %q should name the file and --mpp", r.ID, msg)
		}
	}
	opt.MPP = 0.5
	sum = TileAll(context.Background(), slides, work, opt, 2, nil)
	if sum.Done != 2 {
		t.Fatalf("with --mpp 0.5: done %d, failed %d: %+v", sum.Done, sum.Failed, sum.Results)
	}
	for _, r := range sum.Results {
		if r.NumPatches != 12 {
			t.Errorf("%s: %d patches, want 12", r.ID, r.NumPatches)
		}
		rec, err := work.ReadSlideRecord(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Slide.ID != r.ID || rec.Slide.MPPX != 0.5 || rec.Plan.Level != 0 {
			t.Errorf("%s: slide.json says id %q, mpp %g, level %d", r.ID, rec.Slide.ID, rec.Slide.MPPX, rec.Plan.Level)
		}
	}
}
