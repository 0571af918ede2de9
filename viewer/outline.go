package viewer

import (
	"cmp"
	"slices"
)

// Outline traces the boundaries of the tissue in a w×h mask (1: tissue)
// by marching squares over the pixel centres, the mask padded with
// background so every boundary closes. Each loop is a flat list of
// points x0, y0, x1, y1, … in mask pixels (the pixel at (x, y) spans
// [x, x+1)); points fall on pixel edges' midpoints between a tissue and a
// background pixel centre, so a boundary runs along the pixel edges with
// 45° cuts at corners. Loops go with the tissue on their right (clockwise
// around tissue in image coordinates, y down; holes the other way), and
// diagonal neighbours count as connected tissue. Straight runs are
// collapsed to their ends.
func Outline(w, h int, tissue []uint8) [][]float64 {
	if w <= 0 || h <= 0 || len(tissue) != w*h {
		return nil
	}
	// padded copy: one row and column of background on every side, so
	// the cells' corners are read without bounds checks
	pw := w + 2
	pad := make([]bool, pw*(h+2))
	for y := range h {
		for x, v := range tissue[y*w : (y+1)*w] {
			pad[(y+1)*pw+x+1] = v != 0
		}
	}
	// Points are kept in doubled coordinates (integers): the midpoint
	// between centres (x+½, y+½) and (x+1½, y+½) is (x+1, y+½) → (2x+2, 2y+1).
	type pt struct{ x, y int32 }
	next := map[pt]pt{}
	// corners of cell (cx, cy): 0 tl (cx,cy), 1 tr (cx+1,cy), 2 br (cx+1,cy+1), 3 bl (cx,cy+1)
	// edges: 0 top (tl-tr), 1 right (tr-br), 2 bottom (bl-br), 3 left (tl-bl)
	edgeEnds := [4][2]int{{0, 1}, {1, 2}, {3, 2}, {0, 3}}
	cornerOff := [4][2]int{{0, 0}, {1, 0}, {1, 1}, {0, 1}}
	for cy := -1; cy < h; cy++ {
		top, bot := pad[(cy+1)*pw:(cy+2)*pw], pad[(cy+2)*pw:(cy+3)*pw]
		for cx := -1; cx < w; cx++ {
			v := [4]bool{top[cx+1], top[cx+2], bot[cx+2], bot[cx+1]}
			if v[0] == v[1] && v[1] == v[2] && v[2] == v[3] {
				continue
			}
			centre := func(k int) pt { // doubled coordinates of corner k's pixel centre
				return pt{int32(2*(cx+cornerOff[k][0]) + 1), int32(2*(cy+cornerOff[k][1]) + 1)}
			}
			mid := func(e int) pt {
				a, b := centre(edgeEnds[e][0]), centre(edgeEnds[e][1])
				return pt{(a.x + b.x) / 2, (a.y + b.y) / 2}
			}
			var crossed []int
			for e, ends := range edgeEnds {
				if v[ends[0]] != v[ends[1]] {
					crossed = append(crossed, e)
				}
			}
			var pairs [][2]int
			switch {
			case len(crossed) == 2:
				pairs = [][2]int{{crossed[0], crossed[1]}}
			case v[0]: // saddle, tissue at tl and br: join them, cut off tr and bl
				pairs = [][2]int{{0, 1}, {3, 2}}
			default: // saddle, tissue at tr and bl: cut off tl and br
				pairs = [][2]int{{0, 3}, {1, 2}}
			}
			for _, p := range pairs {
				a, b := mid(p[0]), mid(p[1])
				// the tissue end of a's edge lies to the right of a→b
				ends := edgeEnds[p[0]]
				t := centre(ends[0])
				if !v[ends[0]] {
					t = centre(ends[1])
				}
				// image coordinates (y down): right of a→b is cross < 0 … > 0
				if cross := int64(b.x-a.x)*int64(t.y-a.y) - int64(b.y-a.y)*int64(t.x-a.x); cross < 0 {
					a, b = b, a
				}
				next[a] = b
			}
		}
	}
	starts := make([]pt, 0, len(next))
	for p := range next {
		starts = append(starts, p)
	}
	slices.SortFunc(starts, func(a, b pt) int { return cmp.Or(cmp.Compare(a.y, b.y), cmp.Compare(a.x, b.x)) })
	var loops [][]float64
	for _, start := range starts {
		if _, ok := next[start]; !ok {
			continue
		}
		var ring []pt
		for p := start; ; {
			ring = append(ring, p)
			q, ok := next[p]
			if !ok {
				break
			}
			delete(next, p)
			if q == start {
				break
			}
			p = q
		}
		// collapse straight runs
		var loop []float64
		for i, p := range ring {
			a, b := ring[(i+len(ring)-1)%len(ring)], ring[(i+1)%len(ring)]
			if int64(p.x-a.x)*int64(b.y-p.y)-int64(p.y-a.y)*int64(b.x-p.x) == 0 {
				continue
			}
			loop = append(loop, float64(p.x)/2, float64(p.y)/2)
		}
		if len(loop) >= 6 {
			loops = append(loops, loop)
		}
	}
	return loops
}
