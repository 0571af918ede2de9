package anchors

import (
	"math"
	"math/rand/v2"
	"slices"
)

// PPKValues are the reference's patches-per-anchor values (IPCA's main
// setting is 18).
var PPKValues = []int{9, 18, 36, 64, 100, 144, 256, 400}

// KMeansConfig sets the k-means run. The reference runs 10 iterations with
// seed 2024.
type KMeansConfig struct {
	MaxIter int
	Seed    uint64
}

// DefaultKMeansConfig is the reference's.
func DefaultKMeansConfig() KMeansConfig { return KMeansConfig{MaxIter: 10, Seed: 2024} }

// NumAnchors is k = ⌊n/ppk⌋ + 1, never more than n.
func NumAnchors(n, ppk int) int {
	if n <= 0 || ppk <= 0 {
		return 0
	}
	return min(n/ppk+1, n)
}

// cellGrid buckets items (points or centroids) into square cells over a
// bounding box, so nearest-neighbour and range queries look at a few cells
// instead of every item.
type cellGrid struct {
	x0, y0 float64 // box origin
	side   float64 // cell side
	nx, ny int
	start  []int32 // per cell: first index into items (CSR layout)
	items  []int32
}

// newCellGrid buckets the items with cells of the given side over the box
// (x0, y0)–(x1, y1).
func newCellGrid(xs, ys []float64, x0, y0, x1, y1 float64, side float64) *cellGrid {
	w, h := math.Max(x1-x0, 1), math.Max(y1-y0, 1)
	if !(side > 0) {
		side = 1
	}
	// Bound the cell count (a very sparse layout in a huge box).
	if cells := (w/side + 1) * (h/side + 1); cells > 4e6 {
		side *= math.Sqrt(cells / 4e6)
	}
	g := &cellGrid{x0: x0, y0: y0, side: side}
	g.nx = int(w/side) + 1
	g.ny = int(h/side) + 1
	g.start = make([]int32, g.nx*g.ny+1)
	cell := make([]int32, len(xs))
	for i := range xs {
		c := g.cellOf(xs[i], ys[i])
		cell[i] = int32(c)
		g.start[c+1]++
	}
	for c := 0; c < g.nx*g.ny; c++ {
		g.start[c+1] += g.start[c]
	}
	g.items = make([]int32, len(xs))
	fill := slices.Clone(g.start[:len(g.start)-1])
	for i, c := range cell { // items in each cell stay in index order
		g.items[fill[c]] = int32(i)
		fill[c]++
	}
	return g
}

func (g *cellGrid) cellXY(x, y float64) (int, int) {
	cx := int((x - g.x0) / g.side)
	cy := int((y - g.y0) / g.side)
	return min(max(cx, 0), g.nx-1), min(max(cy, 0), g.ny-1)
}

func (g *cellGrid) cellOf(x, y float64) int {
	cx, cy := g.cellXY(x, y)
	return cy*g.nx + cx
}

// nearest returns the item nearest (x, y), lowest index on ties, searching
// rings of cells outward until no unseen cell can hold anything closer.
// guess (an item index, or -1) seeds the search bound, e.g. the point's
// previous centroid.
func (g *cellGrid) nearest(x, y float64, xs, ys []float64, guess int32) (int32, float64) {
	cx, cy := g.cellXY(x, y)
	best, bestD := int32(-1), math.Inf(1)
	if guess >= 0 {
		dx, dy := xs[guess]-x, ys[guess]-y
		best, bestD = guess, dx*dx+dy*dy
	}
	maxR := max(g.nx, g.ny)
	for r := 0; r <= maxR; r++ {
		for yy := cy - r; yy <= cy+r; yy++ {
			if yy < 0 || yy >= g.ny {
				continue
			}
			step := 1
			if yy != cy-r && yy != cy+r {
				step = 2 * r // only the ring's left and right cells
			}
			for xx := cx - r; xx <= cx+r; xx += max(step, 1) {
				if xx < 0 || xx >= g.nx {
					continue
				}
				c := yy*g.nx + xx
				for _, it := range g.items[g.start[c]:g.start[c+1]] {
					dx, dy := xs[it]-x, ys[it]-y
					d := dx*dx + dy*dy
					if d < bestD || (d == bestD && it < best) {
						best, bestD = it, d
					}
				}
			}
		}
		// Everything not yet searched lies outside the square of cells
		// [cx−r, cx+r]×[cy−r, cy+r]: stop once the best is closer than that
		// square's nearest edge (a query outside the grid searches on).
		if best >= 0 && insideBox(g, x, y) {
			lo := g.x0 + float64(cx-r)*g.side
			hi := g.x0 + float64(cx+r+1)*g.side
			ly := g.y0 + float64(cy-r)*g.side
			hy := g.y0 + float64(cy+r+1)*g.side
			edge := math.Min(math.Min(x-lo, hi-x), math.Min(y-ly, hy-y))
			if (cx-r <= 0 && cx+r >= g.nx-1 && cy-r <= 0 && cy+r >= g.ny-1) || bestD < edge*edge {
				break
			}
		}
	}
	return best, bestD
}

func insideBox(g *cellGrid, x, y float64) bool {
	return x >= g.x0 && y >= g.y0 && x < g.x0+float64(g.nx)*g.side && y < g.y0+float64(g.ny)*g.side
}

func sq(v float64) float64 { return v * v }

// KMeans clusters the positions into k groups: k-means++ seeding (D²
// sampling) with a PCG generator seeded from cfg.Seed, then Lloyd
// iterations until the assignment stops changing or MaxIter. A cluster
// that empties keeps its previous centroid. Both phases use cell grids so a
// slide of 100 000 patches and 11 112 clusters takes a fraction of a second;
// results equal a brute-force search (ties go to the lower index).
// Centroids are (row, col).
func KMeans(ps []Pos, k int, cfg KMeansConfig) (centroids [][2]float64, assign []int32) {
	n := len(ps)
	if n == 0 || k <= 0 {
		return nil, nil
	}
	k = min(k, n)
	xs, ys, x0, y0, x1, y1 := floatCoords(ps)
	// Patches are unit grid cells, so tissue area ≈ n. Seeding works on
	// cells about two final centre spacings wide (4·n/k patches each); the
	// Lloyd search on cells holding about 2 centroids.
	pg := newCellGrid(xs, ys, x0, y0, x1, y1, math.Max(math.Sqrt(8), 2*math.Sqrt(float64(n)/float64(k))))
	cx, cy := seedPlusPlus(xs, ys, pg, k, cfg.Seed)
	// Repeated positions can leave fewer distinct centres than asked for.
	k = len(cx)

	assign = make([]int32, n)
	for i := range assign {
		assign[i] = -1
	}
	sumX, sumY, cnt := make([]float64, k), make([]float64, k), make([]int, k)
	for it := 0; it < max(cfg.MaxIter, 1); it++ {
		cg := newCellGrid(cx, cy, x0, y0, x1, y1, math.Sqrt(2*float64(n)/float64(k)))
		changed := 0
		for i := 0; i < n; i++ {
			c, _ := cg.nearest(xs[i], ys[i], cx, cy, assign[i])
			if c != assign[i] {
				assign[i] = c
				changed++
			}
		}
		if changed == 0 {
			break
		}
		clear(sumX)
		clear(sumY)
		clear(cnt)
		for i, c := range assign {
			sumX[c] += xs[i]
			sumY[c] += ys[i]
			cnt[c]++
		}
		for c := 0; c < k; c++ {
			if cnt[c] > 0 {
				cx[c], cy[c] = sumX[c]/float64(cnt[c]), sumY[c]/float64(cnt[c])
			}
		}
	}
	centroids = make([][2]float64, k)
	for c := range centroids {
		centroids[c] = [2]float64{cy[c], cx[c]}
	}
	return centroids, assign
}

// seedPlusPlus picks k initial centres by D² sampling. Each point keeps its
// squared distance to the nearest chosen centre. A new centre only visits
// cells within the largest D² left (D² only shrinks, so a stale maximum is a
// safe bound) and skips cells it cannot improve; per-cell sums in a Fenwick
// tree let each draw find its cell in O(log cells).
func seedPlusPlus(xs, ys []float64, g *cellGrid, k int, seed uint64) (cx, cy []float64) {
	n := len(xs)
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	d2 := make([]float64, n)
	for i := range d2 {
		d2[i] = math.Inf(1)
	}
	ncell := g.nx * g.ny
	cellSum := make([]float64, ncell)
	cellMax := make([]float64, ncell)
	for c := range cellMax {
		if g.start[c+1] > g.start[c] {
			cellMax[c] = math.Inf(1)
		}
	}
	fw := newFenwick(ncell)
	globalMax := math.Inf(1)
	chosen := make([]bool, n)
	cx, cy = make([]float64, 0, k), make([]float64, 0, k)
	add := func(p int) {
		chosen[p] = true
		px, py := xs[p], ys[p]
		cx, cy = append(cx, px), append(cy, py)
		gx, gy := g.cellXY(px, py)
		rx, ry := g.nx, g.ny
		if !math.IsInf(globalMax, 1) {
			r := int(math.Sqrt(globalMax)/g.side) + 1
			rx, ry = r, r
		}
		for by := max(0, gy-ry); by <= min(g.ny-1, gy+ry); by++ {
			ly := g.y0 + float64(by)*g.side
			dy := 0.0
			if py < ly {
				dy = ly - py
			} else if py > ly+g.side {
				dy = py - ly - g.side
			}
			for bx := max(0, gx-rx); bx <= min(g.nx-1, gx+rx); bx++ {
				c := by*g.nx + bx
				if cellMax[c] == 0 {
					continue
				}
				lx := g.x0 + float64(bx)*g.side
				dx := 0.0
				if px < lx {
					dx = lx - px
				} else if px > lx+g.side {
					dx = px - lx - g.side
				}
				if dx*dx+dy*dy >= cellMax[c] {
					continue
				}
				var s, m float64
				for _, it := range g.items[g.start[c]:g.start[c+1]] {
					ex, ey := xs[it]-px, ys[it]-py
					if d := ex*ex + ey*ey; d < d2[it] {
						d2[it] = d
					}
					s += d2[it]
					if d2[it] > m {
						m = d2[it]
					}
				}
				fw.add(c, s-cellSum[c])
				cellSum[c], cellMax[c] = s, m
			}
		}
		if l := len(cx); l < 64 || l%16 == 1 { // refresh the (stale but safe) bound
			globalMax = 0
			for _, m := range cellMax {
				if m > globalMax {
					globalMax = m
				}
			}
		}
		if len(cx)%1024 == 0 { // drop accumulated rounding in the tree
			fw.rebuild(cellSum)
		}
	}
	add(rng.IntN(n))
	for len(cx) < k {
		next := -1
		if total := fw.total(); total > 0 {
			u := rng.Float64() * total
			c, rest := fw.find(u)
			last := -1
			for _, it := range g.items[g.start[c]:g.start[c+1]] {
				if d2[it] > 0 {
					last = int(it)
					if rest < d2[it] {
						next = int(it)
						break
					}
					rest -= d2[it]
				}
			}
			if next < 0 {
				next = last // rounding at the cell's end
			}
		}
		if next < 0 || chosen[next] { // rounding: the first point not yet chosen
			next = -1
			for i := 0; i < n && next < 0; i++ {
				if !chosen[i] && d2[i] > 0 {
					next = i
				}
			}
		}
		if next < 0 {
			break // every point is a centre
		}
		add(next)
	}
	return cx, cy
}

// fenwick is a binary indexed tree of float64 sums.
type fenwick struct{ t []float64 }

func newFenwick(n int) *fenwick { return &fenwick{t: make([]float64, n+1)} }

func (f *fenwick) add(i int, v float64) {
	for i++; i < len(f.t); i += i & -i {
		f.t[i] += v
	}
}

func (f *fenwick) total() float64 {
	s := 0.0
	for i := len(f.t) - 1; i > 0; i -= i & -i {
		s += f.t[i]
	}
	return s
}

// find returns the index whose prefix interval holds u, and u minus the
// sum before it.
func (f *fenwick) find(u float64) (int, float64) {
	pos := 0
	step := 1
	for step*2 < len(f.t) {
		step *= 2
	}
	for ; step > 0; step /= 2 {
		if next := pos + step; next < len(f.t) && f.t[next] <= u {
			pos = next
			u -= f.t[next]
		}
	}
	if pos >= len(f.t)-1 {
		pos = len(f.t) - 2
	}
	return pos, max(u, 0)
}

func (f *fenwick) rebuild(v []float64) {
	clear(f.t)
	for i, x := range v {
		f.add(i, x)
	}
}

// Anchors returns the anchors for one patches-per-anchor value: for each of
// the k = NumAnchors(n, ppk) k-means centroids, the index of the real patch
// nearest it (lowest index on ties); distinct, ascending (raster order for
// raster-ordered patches).
func Anchors(ps []Pos, ppk int, cfg KMeansConfig) []int64 {
	k := NumAnchors(len(ps), ppk)
	if k == 0 {
		return []int64{}
	}
	cents, _ := KMeans(ps, k, cfg)
	xs, ys, x0, y0, x1, y1 := floatCoords(ps)
	g := newCellGrid(xs, ys, x0, y0, x1, y1, math.Sqrt(8))
	out := make([]int64, 0, len(cents))
	for _, c := range cents {
		i, _ := g.nearest(c[1], c[0], xs, ys, -1)
		out = append(out, int64(i))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// floatCoords returns the positions as x = col, y = row and their bounding box.
func floatCoords(ps []Pos) (xs, ys []float64, x0, y0, x1, y1 float64) {
	xs, ys = make([]float64, len(ps)), make([]float64, len(ps))
	x0, y0, x1, y1 = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for i, p := range ps {
		xs[i], ys[i] = float64(p.Col), float64(p.Row)
		x0, y0 = math.Min(x0, xs[i]), math.Min(y0, ys[i])
		x1, y1 = math.Max(x1, xs[i]), math.Max(y1, ys[i])
	}
	return
}
