package anchors

import (
	"fmt"
	"math"
	"sort"
)

// Pos is a patch's position on the 20× patch grid.
type Pos struct{ Row, Col int32 }

// GridPositions converts level-0 top-left coordinates [x0,y0,x1,y1,...] on
// a grid of the given step (patch_size_level0) to grid positions. The grid's
// origin is the coordinates' common remainder modulo step (0 for slides
// tiled here); coordinates off that grid, or repeated, are an error.
func GridPositions(coords []int64, step int64) ([]Pos, error) {
	if step <= 0 {
		return nil, fmt.Errorf("anchors: grid step %d", step)
	}
	if len(coords)%2 != 0 {
		return nil, fmt.Errorf("anchors: %d coordinate values (want pairs)", len(coords))
	}
	n := len(coords) / 2
	ps := make([]Pos, n)
	if n == 0 {
		return ps, nil
	}
	mod := func(v int64) int64 { return ((v % step) + step) % step }
	ox, oy := mod(coords[0]), mod(coords[1])
	for i := 0; i < n; i++ {
		x, y := coords[2*i], coords[2*i+1]
		if mod(x) != ox || mod(y) != oy {
			return nil, fmt.Errorf("anchors: coordinate (%d,%d) of patch %d is off the %d-px grid", x, y, i, step)
		}
		r, c := (y-oy)/step, (x-ox)/step
		// |row|,|col| < 2^29 keeps squared distances inside int64.
		if r >= 1<<29 || c >= 1<<29 || r <= -(1<<29) || c <= -(1<<29) {
			return nil, fmt.Errorf("anchors: coordinate (%d,%d) out of range", x, y)
		}
		ps[i] = Pos{int32(r), int32(c)}
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return less(ps[idx[a]], ps[idx[b]]) })
	for i := 1; i < n; i++ {
		if ps[idx[i]] == ps[idx[i-1]] {
			return nil, fmt.Errorf("anchors: patches %d and %d share grid position (%d,%d)", idx[i-1], idx[i], ps[idx[i]].Row, ps[idx[i]].Col)
		}
	}
	return ps, nil
}

func less(a, b Pos) bool {
	if a.Row != b.Row {
		return a.Row < b.Row
	}
	return a.Col < b.Col
}

// Diameter is the largest Euclidean distance between two of the positions
// (grid units), computed exactly on the convex hull: O(N log N), no N×N
// matrix. 0 for fewer than two positions.
func Diameter(ps []Pos) float64 {
	h := hull(ps)
	var best int64
	switch len(h) {
	case 0, 1:
		return 0
	case 2:
		best = dist2(h[0], h[1])
	default:
		best = caliperMax(h)
	}
	return math.Sqrt(float64(best))
}

func dist2(a, b Pos) int64 {
	dr, dc := int64(a.Row)-int64(b.Row), int64(a.Col)-int64(b.Col)
	return dr*dr + dc*dc
}

func cross(o, a, b Pos) int64 {
	return (int64(a.Col)-int64(o.Col))*(int64(b.Row)-int64(o.Row)) - (int64(a.Row)-int64(o.Row))*(int64(b.Col)-int64(o.Col))
}

// hull returns the convex hull in counter-clockwise order without
// collinear points (Andrew's monotone chain, exact integer arithmetic).
// Collinear inputs give their two extremes.
func hull(ps []Pos) []Pos {
	pts := append([]Pos(nil), ps...)
	sort.Slice(pts, func(i, j int) bool {
		if pts[i].Col != pts[j].Col {
			return pts[i].Col < pts[j].Col
		}
		return pts[i].Row < pts[j].Row
	})
	// Drop duplicates.
	u := pts[:0]
	for i, p := range pts {
		if i == 0 || p != pts[i-1] {
			u = append(u, p)
		}
	}
	pts = u
	if len(pts) < 3 {
		return pts
	}
	h := make([]Pos, 0, 2*len(pts))
	for _, p := range pts {
		for len(h) >= 2 && cross(h[len(h)-2], h[len(h)-1], p) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	lower := len(h) + 1
	for i := len(pts) - 2; i >= 0; i-- {
		p := pts[i]
		for len(h) >= lower && cross(h[len(h)-2], h[len(h)-1], p) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	h = h[:len(h)-1]
	if len(h) < 2 {
		return pts[:1]
	}
	return h
}

// caliperMax is the largest squared distance between hull vertices, by
// rotating calipers over antipodal pairs (O(h)).
func caliperMax(h []Pos) int64 {
	n := len(h)
	area := func(i, j, k int) int64 {
		c := cross(h[i%n], h[j%n], h[k%n])
		if c < 0 {
			return -c
		}
		return c
	}
	var best int64
	j := 1
	for i := 0; i < n; i++ {
		// Advance j while the triangle (i, i+1, j+1) grows.
		for area(i, i+1, j+1) > area(i, i+1, j) {
			j++
		}
		best = max(best, dist2(h[i], h[j%n]), dist2(h[(i+1)%n], h[j%n]))
	}
	return best
}
