package raster

import "fmt"

// Halve returns a half-size image, each output pixel the rounded mean of a
// 2×2 block (a box filter: exact for the 40× → 20× case). Odd trailing
// rows/columns are dropped. dst is reused when it has the right size.
func Halve(src, dst *RGB) *RGB {
	w, h := src.W/2, src.H/2
	if dst == nil || dst.W != w || dst.H != h {
		dst = New(w, h)
	}
	ss := 3 * src.W
	for y := 0; y < h; y++ {
		r0 := src.Pix[2*y*ss : 2*y*ss+ss]
		r1 := src.Pix[(2*y+1)*ss : (2*y+1)*ss+ss]
		out := dst.Pix[3*y*w : 3*(y+1)*w]
		for x, o := 0, 0; x < w; x, o = x+1, o+3 {
			i := 6 * x
			a, b := r0[i:i+6:i+6], r1[i:i+6:i+6]
			out[o] = uint8((uint16(a[0]) + uint16(a[3]) + uint16(b[0]) + uint16(b[3]) + 2) >> 2)
			out[o+1] = uint8((uint16(a[1]) + uint16(a[4]) + uint16(b[1]) + uint16(b[4]) + 2) >> 2)
			out[o+2] = uint8((uint16(a[2]) + uint16(a[5]) + uint16(b[2]) + uint16(b[5]) + 2) >> 2)
		}
	}
	return dst
}

// axisWeights holds, for each output index, the first source index and the
// fixed-point weights (summing to 1<<weightBits) of the source pixels it covers.
type axisWeights struct {
	start []int
	w     [][]int32
}

const weightBits = 14

// areaWeights computes box-filter (pixel area overlap) weights mapping n
// source pixels to m output pixels. For m < n it averages exactly the area
// each output pixel covers; for m > n it blends the one or two source pixels
// under the output pixel.
func areaWeights(n, m int) axisWeights {
	aw := axisWeights{start: make([]int, m), w: make([][]int32, m)}
	scale := float64(n) / float64(m)
	for o := 0; o < m; o++ {
		lo, hi := float64(o)*scale, float64(o+1)*scale
		first := int(lo)
		last := int(hi)
		if float64(last) == hi {
			last--
		}
		if last >= n {
			last = n - 1
		}
		ws := make([]int32, last-first+1)
		var total int32
		for s := first; s <= last; s++ {
			a, b := float64(s), float64(s+1)
			if a < lo {
				a = lo
			}
			if b > hi {
				b = hi
			}
			v := int32((b - a) / scale * (1 << weightBits))
			ws[s-first] = v
			total += v
		}
		// Put rounding error on the largest weight so each row sums exactly.
		big := 0
		for i := range ws {
			if ws[i] > ws[big] {
				big = i
			}
		}
		ws[big] += (1 << weightBits) - total
		aw.start[o], aw.w[o] = first, ws
	}
	return aw
}

// Resize resamples src to w×h with an area (box) filter: the right filter for
// the downsampling the patch reader does (e.g. 561 px at 0.228 µm/px → 256 px
// at 0.5 µm/px). An exact 2:1 ratio takes the Halve fast path; 1:1 copies.
func Resize(src *RGB, w, h int) (*RGB, error) {
	if err := src.Valid(); err != nil {
		return nil, err
	}
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("raster: resize to %dx%d", w, h)
	}
	switch {
	case w == src.W && h == src.H:
		out := New(w, h)
		copy(out.Pix, src.Pix)
		return out, nil
	case 2*w == src.W && 2*h == src.H:
		return Halve(src, nil), nil
	}
	xw := areaWeights(src.W, w)
	yw := areaWeights(src.H, h)
	// Horizontal pass into int32 rows, then vertical pass.
	tmp := make([]int32, 3*w*src.H)
	for y := 0; y < src.H; y++ {
		row := src.Pix[3*y*src.W : 3*(y+1)*src.W]
		t := tmp[3*y*w : 3*(y+1)*w]
		for x := 0; x < w; x++ {
			var r, g, b int32
			s := 3 * xw.start[x]
			for _, wt := range xw.w[x] {
				r += int32(row[s]) * wt
				g += int32(row[s+1]) * wt
				b += int32(row[s+2]) * wt
				s += 3
			}
			t[3*x], t[3*x+1], t[3*x+2] = r, g, b
		}
	}
	out := New(w, h)
	acc := make([]int64, 3*w)
	const shift = 2 * weightBits
	for y := 0; y < h; y++ {
		for i := range acc {
			acc[i] = 0
		}
		s := yw.start[y]
		for k, wt := range yw.w[y] {
			t := tmp[3*(s+k)*w : 3*(s+k+1)*w]
			for i, v := range t {
				acc[i] += int64(v) * int64(wt)
			}
		}
		o := out.Pix[3*y*w : 3*(y+1)*w]
		for i, v := range acc {
			v = (v + 1<<(shift-1)) >> shift
			if v > 255 {
				v = 255
			}
			o[i] = uint8(v)
		}
	}
	return out, nil
}
