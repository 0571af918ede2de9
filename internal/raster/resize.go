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
	out := New(w, h)
	return out, NewResizer(src.W, src.H, w, h).Resize(src, out)
}

// Resizer resamples sw×sh images to dw×dh with the area filter, keeping its
// weights and scratch buffers between calls (one per goroutine).
type Resizer struct {
	sw, sh, dw, dh int
	xw, yw         axisWeights
	tmp            []int32
	acc            []int64
}

// NewResizer prepares a sw×sh → dw×dh resampler.
func NewResizer(sw, sh, dw, dh int) *Resizer {
	return &Resizer{sw: sw, sh: sh, dw: dw, dh: dh,
		xw: areaWeights(sw, dw), yw: areaWeights(sh, dh),
		tmp: make([]int32, 3*dw*sh), acc: make([]int64, 3*dw)}
}

// Resize writes the resampled src into dst.
func (r *Resizer) Resize(src, dst *RGB) error {
	if src.W != r.sw || src.H != r.sh || dst.W != r.dw || dst.H != r.dh {
		return fmt.Errorf("raster: resizer for %dx%d→%dx%d given %dx%d→%dx%d", r.sw, r.sh, r.dw, r.dh, src.W, src.H, dst.W, dst.H)
	}
	w := r.dw
	// Horizontal pass into int32 rows, then vertical pass.
	for y := 0; y < src.H; y++ {
		row := src.Pix[3*y*src.W : 3*(y+1)*src.W]
		t := r.tmp[3*y*w : 3*(y+1)*w]
		for x := 0; x < w; x++ {
			var cr, cg, cb int32
			s := 3 * r.xw.start[x]
			for _, wt := range r.xw.w[x] {
				cr += int32(row[s]) * wt
				cg += int32(row[s+1]) * wt
				cb += int32(row[s+2]) * wt
				s += 3
			}
			t[3*x], t[3*x+1], t[3*x+2] = cr, cg, cb
		}
	}
	const shift = 2 * weightBits
	for y := 0; y < r.dh; y++ {
		acc := r.acc
		for i := range acc {
			acc[i] = 0
		}
		s := r.yw.start[y]
		for k, wt := range r.yw.w[y] {
			t := r.tmp[3*(s+k)*w : 3*(s+k+1)*w]
			for i, v := range t {
				acc[i] += int64(v) * int64(wt)
			}
		}
		o := dst.Pix[3*y*w : 3*(y+1)*w]
		for i, v := range acc {
			v = (v + 1<<(shift-1)) >> shift
			if v > 255 {
				v = 255
			}
			o[i] = uint8(v)
		}
	}
	return nil
}
