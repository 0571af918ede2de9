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

// Ids: the file name without extension unless another file of the run has
// the same name; then the folder names in front, the fewest that tell the
// files apart, whatever the order of the inputs.
func TestFindSlidesIDs(t *testing.T) {
	cases := []struct {
		name      string
		files     []string
		inputs    []string // relative to the temporary folder; "." is the folder itself
		recursive bool
		want      map[string]string // file → id; $DIR is the name of the temporary folder
		wantErr   []string          // substrings of the error
	}{
		{name: "one folder keeps file names",
			files: []string{"HE/00345_test_0.png", "HE/00672_test_3+.jpg"}, inputs: []string{"HE"},
			want: map[string]string{"HE/00345_test_0.png": "00345_test_0", "HE/00672_test_3+.jpg": "00672_test_3+"}},
		{name: "paired folders",
			files: []string{"HE/00345_test_0.png", "IHC/00345_test_0.png", "HE/only_he.png"}, inputs: []string{"HE", "IHC"},
			want: map[string]string{"HE/00345_test_0.png": "HE-00345_test_0", "IHC/00345_test_0.png": "IHC-00345_test_0", "HE/only_he.png": "only_he"}},
		{name: "paired folders, other order",
			files: []string{"HE/00345_test_0.png", "IHC/00345_test_0.png"}, inputs: []string{"IHC", "HE"},
			want: map[string]string{"HE/00345_test_0.png": "HE-00345_test_0", "IHC/00345_test_0.png": "IHC-00345_test_0"}},
		{name: "paired folders through their parent",
			files: []string{"data/HE/00345_test_0.png", "data/IHC/00345_test_0.png"}, inputs: []string{"data"}, recursive: true,
			want: map[string]string{"data/HE/00345_test_0.png": "HE-00345_test_0", "data/IHC/00345_test_0.png": "IHC-00345_test_0"}},
		{name: "explicit files",
			files: []string{"HE/x.png", "IHC/x.png"}, inputs: []string{"IHC/x.png", "HE/x.png"},
			want: map[string]string{"HE/x.png": "HE-x", "IHC/x.png": "IHC-x"}},
		{name: "one folder name is not enough",
			files: []string{"a/HE/x.svs", "b/HE/x.svs"}, inputs: []string{"a/HE", "b/HE"},
			want: map[string]string{"a/HE/x.svs": "a-HE-x", "b/HE/x.svs": "b-HE-x"}},
		{name: "qualified id taken by a file name",
			files: []string{"top/HE-x.png", "top/HE/x.png", "top/IHC/x.png"}, inputs: []string{"top"}, recursive: true,
			want: map[string]string{"top/HE-x.png": "HE-x", "top/HE/x.png": "top-HE-x", "top/IHC/x.png": "top-IHC-x"}},
		{name: "three folders",
			files: []string{"HE/x.png", "IHC/x.png", "PR/x.jpg"}, inputs: []string{"PR", "HE", "IHC"},
			want: map[string]string{"HE/x.png": "HE-x", "IHC/x.png": "IHC-x", "PR/x.jpg": "PR-x"}},
		{name: "same file twice",
			files: []string{"HE/x.png"}, inputs: []string{"HE", "HE/x.png"},
			want: map[string]string{"HE/x.png": "x"}},
		{name: "folders of different depth",
			files: []string{"a/x.png", "b/a/x.png"}, inputs: []string{"."}, recursive: true,
			want: map[string]string{"a/x.png": "$DIR-a-x", "b/a/x.png": "b-a-x"}},
		{name: "two extensions in one folder",
			files: []string{"HE/x.jpg", "HE/x.png", "IHC/x.png"}, inputs: []string{"HE", "IHC"},
			wantErr: []string{`slide "x"`, "HE/x.jpg and ", "HE/x.png: two files of one name in one folder", "rename"}},
		{name: "hidden file named",
			files: []string{"HE/.x.png"}, inputs: []string{"HE/.x.png"},
			wantErr: []string{".x.png", "hidden"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			touch(t, dir, c.files...)
			var inputs []string
			for _, in := range c.inputs {
				inputs = append(inputs, filepath.Join(dir, filepath.FromSlash(in)))
			}
			got, err := FindSlides(inputs, c.recursive)
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("no error; slides %+v", got)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]string{}
			for i, in := range got {
				rel, _ := filepath.Rel(dir, in.Path)
				ids[filepath.ToSlash(rel)] = in.ID
				if err := ValidID(in.ID); err != nil {
					t.Error(err)
				}
				if i > 0 && got[i-1].ID >= in.ID {
					t.Errorf("not sorted by id: %q before %q", got[i-1].ID, in.ID)
				}
			}
			if len(ids) != len(c.want) {
				t.Errorf("found %v, want %v", ids, c.want)
			}
			for f, id := range c.want {
				id = strings.ReplaceAll(id, "$DIR", filepath.Base(dir))
				if ids[f] != id {
					t.Errorf("%s: id %q, want %q", f, ids[f], id)
				}
			}
		})
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
