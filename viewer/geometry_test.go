package viewer

import (
	"math"
	"strings"
	"testing"
)

// refLevels is openslide-python's level list: halve (ceil) until 1×1.
func refLevels(w, h int64) [][2]int64 {
	z := [][2]int64{{w, h}}
	for w > 1 || h > 1 {
		w = max(1, int64(math.Ceil(float64(w)/2)))
		h = max(1, int64(math.Ceil(float64(h)/2)))
		z = append([][2]int64{{w, h}}, z...)
	}
	return z
}

// refTile is openslide-python's _get_tile_info, in the level's pixels.
func refTile(lvl [2]int64, col, row int64) (x, y, w, h int64) {
	cols := int64(math.Ceil(float64(lvl[0]) / 254))
	rows := int64(math.Ceil(float64(lvl[1]) / 254))
	one := func(t, lim, size int64) (int64, int64) {
		tl, br := int64(0), int64(0)
		if t != 0 {
			tl = 1
		}
		if t != lim-1 {
			br = 1
		}
		return 254*t - tl, min(254, size-254*t) + tl + br
	}
	x, w = one(col, cols, lvl[0])
	y, h = one(row, rows, lvl[1])
	return
}

func TestGeometryTable(t *testing.T) {
	for _, c := range []struct {
		w, h   int64
		levels int
	}{
		{1, 1, 1}, {2, 1, 2}, {254, 254, 9}, {255, 100, 9}, {1000, 3, 11}, {46000, 32914, 17}, {3, 1000, 11},
	} {
		g, err := NewGeometry(c.w, c.h)
		if err != nil {
			t.Fatal(err)
		}
		if g.Levels() != c.levels {
			t.Errorf("%dx%d: %d levels, want %d", c.w, c.h, g.Levels(), c.levels)
		}
		checkAgainstReference(t, g)
	}
}

func checkAgainstReference(t *testing.T, g *Geometry) {
	t.Helper()
	ref := refLevels(g.Width, g.Height)
	if len(ref) != g.Levels() {
		t.Fatalf("%dx%d: %d levels, reference %d", g.Width, g.Height, g.Levels(), len(ref))
	}
	for l, d := range ref {
		w, h, ok := g.LevelSize(l)
		if !ok || w != d[0] || h != d[1] {
			t.Fatalf("%dx%d level %d: %dx%d, reference %v", g.Width, g.Height, l, w, h, d)
		}
		cols, rows, _ := g.Tiles(l)
		if cols != int64(math.Ceil(float64(w)/254)) || rows != int64(math.Ceil(float64(h)/254)) {
			t.Fatalf("level %d: %d×%d tiles", l, cols, rows)
		}
		// every tile of small levels, the corners of big ones
		for _, c := range sample(cols) {
			for _, r := range sample(rows) {
				tl, ok := g.Tile(l, c, r)
				x, y, tw, th := refTile(d, c, r)
				if !ok || tl.X != x || tl.Y != y || tl.W != tw || tl.H != th {
					t.Fatalf("%dx%d level %d tile %d,%d: %+v, reference %d,%d %dx%d", g.Width, g.Height, l, c, r, tl, x, y, tw, th)
				}
				if tl.X < 0 || tl.Y < 0 || tl.X+tl.W > w || tl.Y+tl.H > h {
					t.Fatalf("tile %+v outside level %dx%d", tl, w, h)
				}
			}
		}
		for _, bad := range [][2]int64{{-1, 0}, {0, -1}, {cols, 0}, {0, rows}} {
			if _, ok := g.Tile(l, bad[0], bad[1]); ok {
				t.Fatalf("level %d tile %v accepted", l, bad)
			}
		}
	}
	for _, l := range []int{-1, g.Levels()} {
		if _, ok := g.Tile(l, 0, 0); ok {
			t.Fatalf("level %d accepted", l)
		}
	}
}

func sample(n int64) []int64 {
	if n <= 6 {
		s := make([]int64, n)
		for i := range s {
			s[i] = int64(i)
		}
		return s
	}
	return []int64{0, 1, 2, n / 2, n - 2, n - 1}
}

func TestGeometryBad(t *testing.T) {
	for _, s := range [][2]int64{{0, 1}, {1, 0}, {-5, 5}} {
		if _, err := NewGeometry(s[0], s[1]); err == nil {
			t.Errorf("%v accepted", s)
		}
	}
}

func TestDZI(t *testing.T) {
	g, _ := NewGeometry(1000, 700)
	x := g.DZI("jpeg")
	for _, want := range []string{`Format="jpeg"`, `Overlap="1"`, `TileSize="254"`, `Height="700"`, `Width="1000"`} {
		if !strings.Contains(x, want) {
			t.Errorf("DZI lacks %s:\n%s", want, x)
		}
	}
}

func TestBestLevelAndRead(t *testing.T) {
	ds := []float64{1, 4, 16}
	for _, c := range []struct {
		ds   float64
		want int
	}{{0.5, 0}, {1, 0}, {2, 0}, {3.99, 0}, {4, 1}, {8, 1}, {16, 2}, {1024, 2}} {
		if got := BestLevel(ds, c.ds); got != c.want {
			t.Errorf("BestLevel(%g) = %d, want %d", c.ds, got, c.want)
		}
	}
	g, _ := NewGeometry(4000, 3000)
	sizes := [][2]int64{{4000, 3000}, {1000, 750}, {250, 187}}
	// deepest Deep Zoom level: level 0 straight
	l := g.Levels() - 1
	tl, _ := g.Tile(l, 1, 1)
	r := g.ReadFor(tl, ds, sizes)
	if r != (Read{0, 253, 253, 256, 256}) {
		t.Errorf("level %d tile 1,1: %+v", l, r)
	}
	// downsample 8: slide level 1, twice the tile's size
	tl, _ = g.Tile(l-3, 0, 0)
	r = g.ReadFor(tl, ds, sizes)
	if r.SlideLevel != 1 || r.X != 0 || r.Y != 0 || r.W != 2*tl.W || r.H != 2*tl.H {
		t.Errorf("ds 8 tile 0,0 %+v: %+v", tl, r)
	}
	// every read stays inside its slide level
	for l := 0; l < g.Levels(); l++ {
		cols, rows, _ := g.Tiles(l)
		for _, c := range sample(cols) {
			for _, rr := range sample(rows) {
				tl, _ := g.Tile(l, c, rr)
				r := g.ReadFor(tl, ds, sizes)
				s := sizes[r.SlideLevel]
				if r.X < 0 || r.Y < 0 || r.W < 1 || r.H < 1 || r.X+r.W > s[0] || r.Y+r.H > s[1] {
					t.Fatalf("level %d tile %d,%d: read %+v outside %v", l, c, rr, r, s)
				}
			}
		}
	}
}

func FuzzGeometry(f *testing.F) {
	f.Add(int64(1), int64(1))
	f.Add(int64(46000), int64(32914))
	f.Add(int64(255), int64(509))
	f.Fuzz(func(t *testing.T, w, h int64) {
		w, h = w%200000, h%200000
		if w <= 0 || h <= 0 {
			if _, err := NewGeometry(w, h); err == nil {
				t.Fatalf("%dx%d accepted", w, h)
			}
			return
		}
		g, err := NewGeometry(w, h)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstReference(t, g)
	})
}
