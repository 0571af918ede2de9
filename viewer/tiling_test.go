package viewer

import (
	"encoding/json"
	"image"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth"
)

// tiledWork tiles a generated 20× slide with two pieces of tissue through
// the real tile stage and serves its work folder.
func tiledWork(t *testing.T, tissue []image.Rectangle) (*Server, pipeline.Work) {
	t.Helper()
	dir := t.TempDir()
	sp := filepath.Join(dir, "t1.tif")
	if err := synth.WriteSlide(sp, synth.SlideOptions{Width: 8192, Height: 6144, Pyramid: true, MPP: 0.5, Tissue: tissue}); err != nil {
		t.Fatal(err)
	}
	work := pipeline.Work{Dir: filepath.Join(dir, "work")}
	if r := pipeline.TileSlide(t.Context(), pipeline.Input{Path: sp, ID: "t1"}, work, pipeline.DefaultTileOptions()); r.Err != nil {
		t.Fatal(r.Err)
	}
	srv, err := New(Options{Work: work})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, work
}

// tiling.json has coords.h5's patches in order and the outline of the
// tissue the tile stage found: one loop per piece, around it, with every
// kept patch's centre inside; without tissue.png, the grid and a note.
func TestServeTiling(t *testing.T) {
	pieces := []image.Rectangle{image.Rect(700, 900, 3300, 4100), image.Rect(4600, 1500, 7400, 5300)}
	srv, work := tiledWork(t, pieces)
	code, b, h := get(t, srv, "/slides/t1/tiling.json")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("tiling.json: %d %s", code, b)
	}
	var got TilingOverlay
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	rec, coords := slideCoords(t, work, "t1")
	if !slices.Equal(got.Coords, coords) || got.PatchSizeLevel0 != 256 || len(coords) == 0 {
		t.Fatalf("tiling.json: %d coords, patch %d; coords.h5 %d", len(got.Coords), got.PatchSizeLevel0, len(coords))
	}
	if len(got.Outline) != len(pieces) {
		t.Fatalf("%d outline loops, want one per piece of tissue (%d)", len(got.Outline), len(pieces))
	}
	// each loop's bounds are its piece's, within a few mask pixels
	tol := 4 * rec.MaskMPP / 0.5
	for i, l := range got.Outline {
		bb := image.Rect(int(l[0]), int(l[1]), int(l[0]), int(l[1]))
		for k := 0; k < len(l); k += 2 {
			bb = bb.Union(image.Rect(int(l[k]), int(l[k+1]), int(l[k])+1, int(l[k+1])+1))
		}
		p := pieces[i]
		for _, d := range []int{bb.Min.X - p.Min.X, bb.Min.Y - p.Min.Y, bb.Max.X - p.Max.X, bb.Max.Y - p.Max.Y} {
			if float64(max(d, -d)) > tol {
				t.Errorf("loop %d spans %v; the tissue %v (tolerance %.0f px)", i, bb, p, tol)
				break
			}
		}
	}
	loops := make([][]float64, len(got.Outline))
	for i, l := range got.Outline {
		for _, v := range l {
			loops[i] = append(loops[i], float64(v))
		}
	}
	// a kept patch has tissue: part of it lies inside the outline
	for k := 0; k < len(coords); k += 2 {
		in := 0
		for y := 8; y < 256; y += 16 {
			for x := 8; x < 256; x += 16 {
				if insideAny(loops, float64(coords[k]+int64(x)), float64(coords[k+1]+int64(y))) {
					in++
				}
			}
		}
		if float64(in)/256 < got.MinTissue/2 {
			t.Errorf("patch at (%d, %d): %d of 256 points inside the tissue outline", coords[k], coords[k+1], in)
		}
	}
	// a broken or missing mask: the patches without the outline, and why
	for _, c := range []struct{ name, content, note string }{
		{"corrupt", "not a png", "tissue.png"},
		{"missing", "", "tiled before"},
	} {
		if c.content != "" {
			if err := os.WriteFile(work.TissuePNG("t1"), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(work.TissuePNG("t1")); err != nil {
			t.Fatal(err)
		}
		code, b, _ = get(t, srv, "/slides/t1/tiling.json")
		var old TilingOverlay
		if err := json.Unmarshal(b, &old); code != 200 || err != nil || len(old.Outline) != 0 || !strings.Contains(old.Note, c.note) || !slices.Equal(old.Coords, coords) {
			t.Errorf("%s tissue.png: %d %v %.300s", c.name, code, err, b)
		}
	}
	for _, u := range []string{"/slides/nope/tiling.json", "/slides/../t1/tiling.json", "/slides/t1/x/tiling.json"} {
		if code, b, _ := get(t, srv, u); code != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", u, code, b)
		}
	}
}

// slideCoords reads slide id's record and its patch coordinates from work.
func slideCoords(t testing.TB, work pipeline.Work, id string) (pipeline.SlideRecord, []int64) {
	t.Helper()
	rec, err := work.ReadSlideRecord(id)
	if err != nil {
		t.Fatal(err)
	}
	coords, err := work.ReadCoords(id, rec)
	if err != nil {
		t.Fatal(err)
	}
	return rec, coords
}
