package tiling

import "math"

// Binary image operations used by the tissue mask. All masks are row-major
// []uint8 of w*h values, 0 or 1. Pixels outside the image are ignored (they
// neither add nor remove foreground), so tissue cut by the image border is not
// eaten away by an erosion. Every operation is O(w*h) whatever the radius.

// within returns, for every pixel, 1 when some pixel p with m[p] == target
// lies within Euclidean distance r (r > 0), else 0: the binary dilation of
// the target pixels by the disk {dx²+dy² ≤ r²}, exact and O(w·h) whatever r.
// A column pass (two sweeps, row by row for cache locality) gives g, the
// distance to the nearest target pixel in the same column, capped just above
// r. A target at vertical distance g(i) in column i covers, in the current
// row, the columns i ± ⌊√(r²−g(i)²)⌋; the row pass takes the union of these
// intervals with a running maximum.
//
// w+h must stay below 65535 (TissueMask limits the image sides).
func within(m []uint8, w, h int, target uint8, r float64) []uint8 {
	n := w * h
	out := make([]uint8, n)
	// Column distances at or above limit mean "none within r". No column
	// distance reaches w+h, so capping limit there keeps it exact and within
	// 16 bits.
	limit := uint16(min(math.Floor(math.Min(r, float64(w+h)))+1, float64(w+h)))
	// half[d]: half-width of the disk's chord at vertical offset d.
	half := make([]int32, limit)
	for d := range half {
		half[d] = int32(math.Floor(math.Sqrt(r*r - float64(d*d))))
		// Guard against rounding in Sqrt: keep (half)² + d² ≤ r².
		for half[d] > 0 && float64(half[d])*float64(half[d])+float64(d*d) > r*r {
			half[d]--
		}
		for float64(half[d]+1)*float64(half[d]+1)+float64(d*d) <= r*r {
			half[d]++
		}
	}
	g := make([]uint16, n)
	// Downward sweep: distance to the nearest target at or above.
	prev := make([]uint16, w)
	for x := range prev {
		prev[x] = limit
	}
	for y := 0; y < h; y++ {
		row := m[y*w : (y+1)*w]
		gr := g[y*w : (y+1)*w]
		for x, v := range row {
			d := prev[x] + 1
			if v == target {
				d = 0
			} else if d > limit {
				d = limit
			}
			gr[x] = d
			prev[x] = d
		}
	}
	// Upward sweep: nearest target at or below.
	for x := range prev {
		prev[x] = limit
	}
	for y := h - 1; y >= 0; y-- {
		gr := g[y*w : (y+1)*w]
		for x, d := range gr {
			up := prev[x] + 1
			if up > limit {
				up = limit
			}
			if up < d {
				d = up
				gr[x] = d
			}
			prev[x] = d
		}
	}
	// Row pass: reach[lo] is the furthest right end of an interval starting
	// at lo.
	reach := make([]int32, w)
	for y := 0; y < h; y++ {
		gr := g[y*w : (y+1)*w]
		for x := range reach {
			reach[x] = -1
		}
		any := false
		for i, d := range gr {
			if d >= limit {
				continue
			}
			any = true
			hw := half[d]
			lo, hi := int32(i)-hw, int32(i)+hw
			if lo < 0 {
				lo = 0
			}
			if hi > reach[lo] {
				reach[lo] = hi
			}
		}
		if !any {
			continue
		}
		o := out[y*w : (y+1)*w]
		cur := int32(-1)
		for x := range o {
			if reach[x] > cur {
				cur = reach[x]
			}
			if cur >= int32(x) {
				o[x] = 1
			}
		}
	}
	return out
}

// dilate sets every pixel within Euclidean distance r of a foreground pixel
// (the structuring element is the disk {dx²+dy² ≤ r²}). r ≤ 0 copies.
func dilate(m []uint8, w, h int, r float64) []uint8 {
	if r <= 0 {
		out := make([]uint8, len(m))
		copy(out, m)
		return out
	}
	return within(m, w, h, 1, r)
}

// erode keeps a foreground pixel only when no background pixel of the image
// lies within distance r (the dual of dilate). r ≤ 0 copies.
func erode(m []uint8, w, h int, r float64) []uint8 {
	if r <= 0 {
		out := make([]uint8, len(m))
		copy(out, m)
		return out
	}
	out := within(m, w, h, 0, r)
	for i, v := range out {
		out[i] = m[i] &^ v
	}
	return out
}

// closeDisk is a morphological closing (dilate then erode) with a disk of
// radius r: it bridges gaps narrower than 2r and fills small dents.
func closeDisk(m []uint8, w, h int, r float64) []uint8 {
	if r <= 0 {
		out := make([]uint8, len(m))
		copy(out, m)
		return out
	}
	return erode(dilate(m, w, h, r), w, h, r)
}

// majority is the median filter of a binary image over the (2k+1)² square
// window: a pixel becomes 1 when more than half of the window's pixels inside
// the image are 1, 0 when fewer than half are, and keeps its value on a tie
// (possible only where the window is cut by the border). By the threshold
// decomposition property of the median, thresholding then taking this
// majority equals median-blurring then thresholding.
func majority(m []uint8, w, h, k int) []uint8 {
	out := make([]uint8, len(m))
	if k <= 0 {
		copy(out, m)
		return out
	}
	ii := integral(m, w, h)
	stride := w + 1
	for y := 0; y < h; y++ {
		y0, y1 := max(y-k, 0), min(y+k+1, h)
		for x := 0; x < w; x++ {
			x0, x1 := max(x-k, 0), min(x+k+1, w)
			c := ii[y1*stride+x1] - ii[y0*stride+x1] - ii[y1*stride+x0] + ii[y0*stride+x0]
			n := uint32((y1 - y0) * (x1 - x0))
			switch {
			case 2*c > n:
				out[y*w+x] = 1
			case 2*c == n:
				out[y*w+x] = m[y*w+x]
			}
		}
	}
	return out
}

// integral returns the (w+1)×(h+1) summed-area table of m: entry (y, x) is the
// sum of m over [0,x)×[0,y).
func integral(m []uint8, w, h int) []uint32 {
	stride := w + 1
	ii := make([]uint32, stride*(h+1))
	for y := 0; y < h; y++ {
		var run uint32
		row := m[y*w : (y+1)*w]
		prev := ii[y*stride : (y+1)*stride]
		cur := ii[(y+1)*stride : (y+2)*stride]
		for x, v := range row {
			run += uint32(v)
			cur[x+1] = prev[x+1] + run
		}
	}
	return ii
}

// removeSmallObjects clears the 8-connected foreground components with fewer
// than minArea pixels.
func removeSmallObjects(m []uint8, w, h int, minArea int) {
	if minArea <= 1 {
		return
	}
	components(m, w, h, 1, true, func(runs []run, touchesBorder bool) {
		if runsArea(runs) < minArea {
			paint(m, w, runs, 0)
		}
	})
}

// fillHoles sets the 4-connected background components that do not touch the
// image border and have at most maxArea pixels.
func fillHoles(m []uint8, w, h int, maxArea int) {
	if maxArea <= 0 {
		return
	}
	components(m, w, h, 0, false, func(runs []run, touchesBorder bool) {
		if !touchesBorder && runsArea(runs) <= maxArea {
			paint(m, w, runs, 1)
		}
	})
}

// run is a horizontal run [x0, x1) of equal pixels in row y.
type run struct{ y, x0, x1 int32 }

// components calls fn once per connected component of the pixels equal to
// val (8- or 4-connected) with the component's runs (valid only during the
// call; fn may modify m under them) and whether it touches the image border.
// It labels runs with union-find, row by row, so it costs O(w·h) with a small
// constant and memory proportional to the number of runs.
func components(m []uint8, w, h int, val uint8, conn8 bool, fn func(runs []run, touchesBorder bool)) {
	var runs []run
	var parent []int32
	find := func(a int32) int32 {
		for parent[a] != a {
			parent[a] = parent[parent[a]]
			a = parent[a]
		}
		return a
	}
	union := func(a, b int32) {
		ra, rb := find(a), find(b)
		if ra < rb {
			parent[rb] = ra
		} else if rb < ra {
			parent[ra] = rb
		}
	}
	slack := int32(0) // how far runs may be offset and still touch
	if conn8 {
		slack = 1
	}
	prevStart, prevEnd := 0, 0
	for y := 0; y < h; y++ {
		row := m[y*w : (y+1)*w]
		curStart := len(runs)
		for x := 0; x < w; {
			if row[x] != val {
				x++
				continue
			}
			x0 := x
			for x < w && row[x] == val {
				x++
			}
			id := int32(len(runs))
			runs = append(runs, run{int32(y), int32(x0), int32(x)})
			parent = append(parent, id)
		}
		// Join with overlapping runs of the previous row (both lists are
		// sorted by x, so a merge walk suffices).
		j := prevStart
		for i := curStart; i < len(runs); i++ {
			c := runs[i]
			for j < prevEnd && runs[j].x1+slack <= c.x0 {
				j++
			}
			for k := j; k < prevEnd && runs[k].x0 < c.x1+slack; k++ {
				union(int32(i), int32(k))
			}
		}
		prevStart, prevEnd = curStart, len(runs)
	}
	if len(runs) == 0 {
		return
	}
	// Group runs by root: count, then bucket.
	start := make([]int32, len(runs)+1)
	for i := range runs {
		start[find(int32(i))+1]++
	}
	for i := 1; i <= len(runs); i++ {
		start[i] += start[i-1]
	}
	order := make([]run, len(runs))
	fill := append([]int32(nil), start[:len(runs)]...)
	for i, r := range runs {
		root := find(int32(i))
		order[fill[root]] = r
		fill[root]++
	}
	for root := 0; root < len(runs); root++ {
		comp := order[start[root]:start[root+1]]
		if len(comp) == 0 {
			continue
		}
		border := false
		for _, r := range comp {
			if r.y == 0 || r.y == int32(h-1) || r.x0 == 0 || r.x1 == int32(w) {
				border = true
				break
			}
		}
		fn(comp, border)
	}
}

// area returns the number of pixels in runs.
func runsArea(runs []run) int {
	a := 0
	for _, r := range runs {
		a += int(r.x1 - r.x0)
	}
	return a
}

// paint sets m to v under runs.
func paint(m []uint8, w int, runs []run, v uint8) {
	for _, r := range runs {
		row := m[int(r.y)*w : int(r.y+1)*w]
		for x := r.x0; x < r.x1; x++ {
			row[x] = v
		}
	}
}

// otsu returns the threshold t maximising the between-class variance of the
// histogram when split into [0,t) and [t,255]; 0 for an empty or one-valued
// histogram.
func otsu(hist *[256]int) int {
	var total, sum float64
	for v, c := range hist {
		total += float64(c)
		sum += float64(v) * float64(c)
	}
	if total == 0 {
		return 0
	}
	var wB, sumB, best float64
	bestT := 0
	for t := 1; t < 256; t++ {
		c := float64(hist[t-1])
		wB += c
		sumB += float64(t-1) * c
		wF := total - wB
		if wB == 0 {
			continue
		}
		if wF == 0 {
			break
		}
		mB, mF := sumB/wB, (sum-sumB)/wF
		between := wB * wF * (mB - mF) * (mB - mF)
		if between > best {
			best, bestT = between, t
		}
	}
	return bestT
}

// growInto returns the seed pixels plus every pixel of allowed that is
// 8-connected to a seed through allowed pixels (hysteresis thresholding).
func growInto(seed, allowed []uint8, w, h int) []uint8 {
	union := make([]uint8, len(seed))
	for i := range union {
		union[i] = seed[i] | allowed[i]
	}
	out := make([]uint8, len(seed))
	components(union, w, h, 1, true, func(runs []run, _ bool) {
		for _, r := range runs {
			row := seed[int(r.y)*w : int(r.y+1)*w]
			for x := r.x0; x < r.x1; x++ {
				if row[x] != 0 {
					paint(out, w, runs, 1)
					return
				}
			}
		}
	})
	return out
}
