// Package viewer serves a work folder's slides as Deep Zoom images, read
// straight from the slide files through package slide, with the model's
// attention as an overlay, for an OpenSeadragon page.
package viewer

import "fmt"

// Deep Zoom parameters, as openslide-python's DeepZoomGenerator defaults
// (limit_bounds off).
const (
	TileSize = 254
	Overlap  = 1
)

// Geometry is a Deep Zoom pyramid over a level-0 image of Width×Height:
// level Levels()-1 is the full size, each level below halves it (rounded
// up) down to 1×1 at level 0.
type Geometry struct {
	Width, Height int64
	TileSize      int64
	Overlap       int64
	dims          [][2]int64 // per Deep Zoom level, smallest first
}

// NewGeometry is the pyramid of a w×h image with openslide-python's tile
// size and overlap.
func NewGeometry(w, h int64) (*Geometry, error) {
	return NewGeometryTiles(w, h, TileSize, Overlap)
}

// NewGeometryTiles is the pyramid with a given tile size and overlap.
func NewGeometryTiles(w, h, tile, overlap int64) (*Geometry, error) {
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("viewer: image size %dx%d: want positive", w, h)
	}
	if tile <= 0 || overlap < 0 {
		return nil, fmt.Errorf("viewer: tile size %d overlap %d", tile, overlap)
	}
	dims := [][2]int64{{w, h}}
	for w > 1 || h > 1 {
		w, h = max(1, (w+1)/2), max(1, (h+1)/2)
		dims = append(dims, [2]int64{w, h})
	}
	for i, j := 0, len(dims)-1; i < j; i, j = i+1, j-1 {
		dims[i], dims[j] = dims[j], dims[i]
	}
	return &Geometry{Width: dims[len(dims)-1][0], Height: dims[len(dims)-1][1], TileSize: tile, Overlap: overlap, dims: dims}, nil
}

// Levels is the number of Deep Zoom levels.
func (g *Geometry) Levels() int { return len(g.dims) }

// LevelSize is the size of Deep Zoom level l.
func (g *Geometry) LevelSize(l int) (w, h int64, ok bool) {
	if l < 0 || l >= len(g.dims) {
		return 0, 0, false
	}
	return g.dims[l][0], g.dims[l][1], true
}

// Tiles is the number of tile columns and rows at level l.
func (g *Geometry) Tiles(l int) (cols, rows int64, ok bool) {
	w, h, ok := g.LevelSize(l)
	if !ok {
		return 0, 0, false
	}
	return ceilDiv(w, g.TileSize), ceilDiv(h, g.TileSize), true
}

// Downsample is level-0 pixels per pixel of Deep Zoom level l.
func (g *Geometry) Downsample(l int) float64 {
	return float64(int64(1) << uint(len(g.dims)-1-l))
}

// Tile is one Deep Zoom tile: where it lies in its level's pixels.
type Tile struct {
	Level    int
	Col, Row int64
	// X, Y, W, H: the tile's rectangle in the level's pixels, overlap
	// included.
	X, Y, W, H int64
}

// Tile returns tile (col, row) of level l: it starts at col·TileSize −
// Overlap (0 for the first column) and spans TileSize plus Overlap on each
// side that lies inside the level.
func (g *Geometry) Tile(l int, col, row int64) (Tile, bool) {
	cols, rows, ok := g.Tiles(l)
	if !ok || col < 0 || row < 0 || col >= cols || row >= rows {
		return Tile{}, false
	}
	w, h, _ := g.LevelSize(l)
	x, tw := g.span(col, cols, w)
	y, th := g.span(row, rows, h)
	return Tile{Level: l, Col: col, Row: row, X: x, Y: y, W: tw, H: th}, true
}

func (g *Geometry) span(i, n, size int64) (start, length int64) {
	before, after := int64(0), int64(0)
	if i > 0 {
		before = g.Overlap
	}
	if i < n-1 {
		after = g.Overlap
	}
	start = i*g.TileSize - before
	length = min(g.TileSize, size-g.TileSize*i) + before + after
	return start, length
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// DZI is the Deep Zoom descriptor (XML) of the pyramid, its tiles in format.
func (g *Geometry) DZI(format string) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="%s" Overlap="%d" TileSize="%d"><Size Height="%d" Width="%d"/></Image>
`, format, g.Overlap, g.TileSize, g.Height, g.Width)
}

// Read is where a tile's pixels come from in the slide: a region of one of
// the slide's own levels, resized to the tile's size.
type Read struct {
	SlideLevel int
	X, Y       int64 // in the slide level's pixels
	W, H       int64 // the region read (at least 1×1)
}

// BestLevel is the slide level to read a downsample ds from, as OpenSlide's
// get_best_level_for_downsample: the deepest level whose downsample is not
// above ds (level 0 when ds is below every level's).
func BestLevel(downsamples []float64, ds float64) int {
	best := 0
	for i, d := range downsamples {
		if d <= ds*(1+1e-9) && d >= downsamples[best] {
			best = i
		}
	}
	return best
}

// ReadFor maps tile t to a read from a slide whose levels have the given
// downsamples and sizes, as openslide-python's DeepZoomGenerator: the
// tile's level-0 origin is its Deep Zoom origin times the level's
// downsample, read from the best slide level, the region's size the
// tile's size scaled to that level, clipped to the level.
func (g *Geometry) ReadFor(t Tile, downsamples []float64, sizes [][2]int64) Read {
	zds := g.Downsample(t.Level)
	sl := BestLevel(downsamples, zds)
	lds := zds / downsamples[sl]
	l0x, l0y := float64(t.X)*zds, float64(t.Y)*zds
	lx, ly := l0x/downsamples[sl], l0y/downsamples[sl]
	clip := func(loc float64, size int64, lim int64) int64 {
		n := min(int64(ceil(lds*float64(size))), lim-int64(ceil(loc)))
		return max(1, n)
	}
	r := Read{SlideLevel: sl, X: int64(lx), Y: int64(ly)}
	r.W = clip(lx, t.W, sizes[sl][0])
	r.H = clip(ly, t.H, sizes[sl][1])
	return r
}

func ceil(f float64) float64 {
	i := float64(int64(f))
	if i < f {
		return i + 1
	}
	return i
}
