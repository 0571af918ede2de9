package viewer

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// deepZoomPy runs openslide-python's DeepZoomGenerator (tile size 254,
// overlap 1, limit_bounds off) over a stand-in slide with the given levels
// and prints, per case, its level count, level dimensions, tile counts,
// and the get_tile_coordinates and get_tile_dimensions of the tiles asked.
const deepZoomPy = `
import json, sys
from openslide.deepzoom import DeepZoomGenerator

class Slide:
    def __init__(self, dims, ds):
        self.level_dimensions = [tuple(d) for d in dims]
        self.level_downsamples = list(ds)
        self.level_count = len(dims)
        self.dimensions = self.level_dimensions[0]
        self.properties = {}
    def get_best_level_for_downsample(self, d):
        # as OpenSlide's openslide_get_best_level_for_downsample
        if d < self.level_downsamples[0]:
            return 0
        for i in range(1, self.level_count):
            if d < self.level_downsamples[i]:
                return i - 1
        return self.level_count - 1

out = []
for c in json.load(sys.stdin):
    g = DeepZoomGenerator(Slide(c["dims"], c["ds"]), tile_size=254, overlap=1, limit_bounds=False)
    tiles = []
    for lvl, col, row in c["tiles"]:
        (l0, sl, size) = g.get_tile_coordinates(lvl, (col, row))
        tiles.append({"l0": list(l0), "level": sl, "size": list(size),
                      "dims": list(g.get_tile_dimensions(lvl, (col, row)))})
    out.append({"levels": g.level_count, "dims": [list(d) for d in g.level_dimensions],
                "tiles": [list(t) for t in g.level_tiles], "coords": tiles})
json.dump(out, sys.stdout)
`

// TestGeometryMatchesOpenSlidePython checks NewGeometry, Tile and ReadFor
// against openslide-python's DeepZoomGenerator (Debian's python3-openslide)
// for several slide sizes and pyramids; it skips where the module is
// missing.
func TestGeometryMatchesOpenSlidePython(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import openslide.deepzoom").Run(); err != nil {
		t.Skipf("%s has no openslide module (Debian package python3-openslide): %v", py, err)
	}
	type slideCase struct {
		Dims  [][2]int64 `json:"dims"`
		DS    []float64  `json:"ds"`
		Tiles [][3]int64 `json:"tiles"`
	}
	// pyramid: levels at downsample 1, f, f², … down to about a tile.
	pyramid := func(w, h int64, f int64) slideCase {
		c := slideCase{}
		for d := int64(1); ; d *= f {
			c.Dims = append(c.Dims, [2]int64{ceilDiv(w, d), ceilDiv(h, d)})
			c.DS = append(c.DS, float64(d))
			if f <= 1 || (w/d <= 512 && h/d <= 512) {
				break
			}
		}
		return c
	}
	cases := []slideCase{
		pyramid(1, 1, 1), pyramid(254, 254, 1), pyramid(255, 100, 1), pyramid(509, 1, 1),
		pyramid(1300, 900, 2), pyramid(12345, 6789, 1), pyramid(40000, 30000, 4),
		pyramid(100003, 77777, 4), pyramid(99999, 65537, 2),
	}
	geoms := make([]*Geometry, len(cases))
	for i := range cases {
		c := &cases[i]
		g, err := NewGeometry(c.Dims[0][0], c.Dims[0][1])
		if err != nil {
			t.Fatal(err)
		}
		geoms[i] = g
		// A few tiles per level: the corners, the second, the middle.
		for l := range g.Levels() {
			cols, rows, _ := g.Tiles(l)
			seen := map[[2]int64]bool{}
			for _, cr := range [][2]int64{{0, 0}, {1, 1}, {cols / 2, rows / 2}, {cols - 1, 0}, {0, rows - 1}, {cols - 1, rows - 1}} {
				if cr[0] < cols && cr[1] < rows && !seen[cr] {
					seen[cr] = true
					c.Tiles = append(c.Tiles, [3]int64{int64(l), cr[0], cr[1]})
				}
			}
		}
	}
	in, _ := json.Marshal(cases)
	cmd := exec.Command(py, "-c", deepZoomPy)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("openslide-python: %v\n%s", err, stderr.String())
	}
	var got []struct {
		Levels int        `json:"levels"`
		Dims   [][2]int64 `json:"dims"`
		Tiles  [][2]int64 `json:"tiles"`
		Coords []struct {
			L0    [2]int64 `json:"l0"`
			Level int      `json:"level"`
			Size  [2]int64 `json:"size"`
			Dims  [2]int64 `json:"dims"`
		} `json:"coords"`
	}
	if err := json.Unmarshal(outb, &got); err != nil || len(got) != len(cases) {
		t.Fatalf("openslide-python output: %v (%d cases)", err, len(got))
	}
	ntiles := 0
	for i, c := range cases {
		g, py := geoms[i], got[i]
		name := c.Dims[0]
		if g.Levels() != py.Levels {
			t.Errorf("%v: %d levels, DeepZoomGenerator %d", name, g.Levels(), py.Levels)
			continue
		}
		for l := range g.Levels() {
			w, h, _ := g.LevelSize(l)
			cols, rows, _ := g.Tiles(l)
			if [2]int64{w, h} != py.Dims[l] || [2]int64{cols, rows} != py.Tiles[l] {
				t.Errorf("%v level %d: %dx%d in %dx%d tiles, DeepZoomGenerator %v in %v", name, l, w, h, cols, rows, py.Dims[l], py.Tiles[l])
			}
		}
		for j, tc := range c.Tiles {
			want := py.Coords[j]
			tl, ok := g.Tile(int(tc[0]), tc[1], tc[2])
			if !ok {
				t.Errorf("%v tile %v: out of range here", name, tc)
				continue
			}
			rd := g.ReadFor(tl, c.DS, c.Dims)
			l0 := [2]int64{int64(float64(rd.X) * c.DS[rd.SlideLevel]), int64(float64(rd.Y) * c.DS[rd.SlideLevel])}
			if [2]int64{tl.W, tl.H} != want.Dims || rd.SlideLevel != want.Level || l0 != want.L0 || [2]int64{rd.W, rd.H} != want.Size {
				t.Errorf("%v tile %v: %dx%d from slide level %d at level-0 %v size %dx%d; DeepZoomGenerator %v from level %d at %v size %v",
					name, tc, tl.W, tl.H, rd.SlideLevel, l0, rd.W, rd.H, want.Dims, want.Level, want.L0, want.Size)
			}
			ntiles++
		}
	}
	t.Logf("%d slides, %d tiles: the same as openslide-python's DeepZoomGenerator", len(cases), ntiles)
}
