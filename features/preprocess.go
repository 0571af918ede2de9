package features

import (
	"fmt"
	"math"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// CLIP preprocessing as Hugging Face's CLIPImageProcessor does it: PIL's
// bicubic resize of the uint8 image (Image.resize(size, Image.BICUBIC), which
// antialiases when it shrinks), then rescale by 1/255 and normalise with the
// model's mean and std into float32 C×H×W.
//
// The resize reproduces Pillow's 8-bit resampler (libImaging/Resample.c:
// precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal_8bpc,
// ImagingResampleVertical_8bpc) bit for bit; the tests compare it with
// Pillow's own output.

// pilPrecisionBits is Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2.
const pilPrecisionBits = 32 - 8 - 2

// pilBicubicSupport is the support of Pillow's bicubic filter (a = -0.5).
const pilBicubicSupport = 2.0

// pilBicubic is Pillow's bicubic_filter with a = -0.5, evaluated in the same
// order. The explicit float64 conversions keep the compiler from fusing a
// multiply and an add into an FMA, which would round differently from the C.
func pilBicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		// ((a + 2.0) * x - (a + 3.0)) * x * x + 1
		t := float64((a+2)*x) - (a + 3)
		t = float64(t * x)
		return float64(t*x) + 1
	}
	if x < 2 {
		// (((x - 5) * x + 8) * x - 4) * a
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return t * a
	}
	return 0
}

// pilCoeffs is Pillow's precompute_coeffs for the bicubic filter over a full
// [0, inSize) box: for each output index, the first input index and the
// normalised float weights of the inputs it covers.
func pilCoeffs(inSize, outSize int) (xmin []int, w [][]float64) {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := pilBicubicSupport * filterscale
	ss := 1 / filterscale
	xmin = make([]int, outSize)
	w = make([][]float64, outSize)
	for xx := range outSize {
		center := float64(float64(xx)+0.5) * scale
		lo := int(center - support + 0.5) // C's (int) truncates toward zero
		lo = max(lo, 0)
		hi := min(int(center+support+0.5), inSize)
		k := make([]float64, max(hi-lo, 0))
		ww := 0.0
		for x := range k {
			v := pilBicubic(float64(float64(x+lo)-center+0.5) * ss)
			k[x] = v
			ww += v
		}
		if ww != 0 {
			for x := range k {
				k[x] /= ww
			}
		}
		xmin[xx], w[xx] = lo, k
	}
	return xmin, w
}

// PILBicubicWeights returns Pillow's normalised bicubic weights for resizing
// an axis of inSize pixels to outSize as a dense outSize×inSize matrix (row
// o holds the weights of output o; each row sums to 1). These are the float
// coefficients before Pillow rounds them to 22-bit fixed point, so for an
// image channel X (H×W) the float resize is Wy·X·Wxᵀ with
// Wx = PILBicubicWeights(W, outW) and Wy = PILBicubicWeights(H, outH): within
// ±1 of Pillow's 8-bit result once each pass is rounded and clipped to
// [0, 255] as Pillow's uint8 intermediate is. Pillow skips a pass whose size
// does not change; the matrix is then the identity. It panics unless both
// sizes are positive.
func PILBicubicWeights(inSize, outSize int) [][]float64 {
	if inSize <= 0 || outSize <= 0 {
		panic(fmt.Sprintf("features: bicubic weights for %d → %d", inSize, outSize))
	}
	m := make([][]float64, outSize)
	if inSize == outSize {
		for i := range m {
			m[i] = make([]float64, inSize)
			m[i][i] = 1
		}
		return m
	}
	xmin, w := pilCoeffs(inSize, outSize)
	for o := range m {
		m[o] = make([]float64, inSize)
		copy(m[o][xmin[o]:], w[o])
	}
	return m
}

// pilAxis is one resampling pass in Pillow's fixed point, with every output
// given the same number of taps: outputs with fewer weights are padded with
// zero weights (and their window moved left where it would run past the
// end), which leaves the integer sums unchanged.
type pilAxis struct {
	in, out int
	taps    int
	start   []int   // first input index of each output's window
	k       []int32 // out×taps fixed-point weights
	k64     []int64 // the same, for the two-lane kernels
}

func newPILAxis(inSize, outSize int) pilAxis {
	xmin, w := pilCoeffs(inSize, outSize)
	taps := 1
	for _, k := range w {
		taps = max(taps, len(k))
	}
	a := pilAxis{in: inSize, out: outSize, taps: taps,
		start: make([]int, outSize), k: make([]int32, outSize*taps), k64: make([]int64, outSize*taps)}
	for o, k := range w {
		s := min(xmin[o], inSize-taps)
		a.start[o] = s
		for i, v := range k {
			a.k[o*taps+xmin[o]-s+i] = pilFixed(v)
			a.k64[o*taps+xmin[o]-s+i] = int64(pilFixed(v))
		}
	}
	return a
}

// pilFixed is normalize_coeffs_8bpc: round half away from zero to 22 bits.
func pilFixed(v float64) int32 {
	if v < 0 {
		return int32(-0.5 + v*(1<<pilPrecisionBits))
	}
	return int32(0.5 + v*(1<<pilPrecisionBits))
}

// clip8 is Pillow's clip8: drop the fraction bits and clamp to [0, 255].
func clip8(v int32) uint8 {
	v >>= pilPrecisionBits
	if uint32(v) > 255 {
		if v < 0 {
			return 0
		}
		return 255
	}
	return uint8(v)
}

// Pillow starts every sum at half of the fixed-point unit, so that the final
// shift rounds.
const pilHalf = 1 << (pilPrecisionBits - 1)

// Two-lane arithmetic. Pillow's sums fit in an int32 (that is what its two
// spare bits are for), so two of them can share one int64: packing values a
// and b as a + b<<32 and multiplying by a weight gives a·k + (b·k)<<32, and
// the sum of such products is S_a + S_b<<32 exactly (in wrapping int64
// arithmetic). The low 32 bits, read as an int32, are S_a; what remains,
// shifted down, is S_b. One multiply and one add thus do two multiply-adds.
const pilHalf2 = pilHalf + pilHalf<<32

// unpack2 splits a two-lane sum and clips both lanes to 8 bits.
func unpack2(s int64) (lo, hi uint8) {
	l := int32(s)
	return clip8(l), clip8(int32((s - int64(l)) >> 32))
}

// When both lanes of a sum lie in [0, 256<<22), so that neither needs
// clipping, the low lane cannot borrow from the high one and bits 30, 31, 62
// and 63 are clear; each lane's 8-bit result is then simply bits 22-29 of
// its half. lanesOut tests for that case; lanes8 extracts both results in
// place, as lo | hi<<32.
const (
	lanesOut = 0xC0000000_C0000000
	lanesMid = 0x000000FF_000000FF
)

// lanes8 returns the 8-bit results of a two-lane sum that passed the
// lanesOut test, still in two lanes.
func lanes8(s int64) uint64 { return uint64(s) >> pilPrecisionBits & lanesMid }

// Resampler resizes srcW×srcH RGB images to dstW×dstH exactly as Pillow's
// Image.resize(..., resample=Image.BICUBIC) does for 8-bit RGB. It keeps its
// weights and scratch space between calls: use one per goroutine.
type Resampler struct {
	srcW, srcH, dstW, dstH int
	needH, needV           bool
	lanes                  bool // both passes run two lanes per int64
	h, v                   pilAxis

	// Scratch. For the two-lane path: pk holds two source rows packed lane
	// by lane, and tmp64 the horizontal pass's output with pixels x and
	// x+dstW/2 of a row (same channel) sharing a word. Otherwise tmp holds
	// the horizontal pass's uint8 output and acc a row of vertical sums.
	pk    []int64
	tmp64 []int64
	tmp   []uint8
	acc   []int32
	row   []uint8 // one output row, for fused normalisation
}

// NewPILBicubic prepares a srcW×srcH → dstW×dstH Pillow bicubic resampler.
// It panics unless all sizes are positive.
func NewPILBicubic(srcW, srcH, dstW, dstH int) *Resampler {
	return newPILBicubic(srcW, srcH, dstW, dstH, true)
}

// newPILBicubic is NewPILBicubic; lanes false keeps the one-value-per-
// multiply kernels throughout (the tests compare the two).
func newPILBicubic(srcW, srcH, dstW, dstH int, lanes bool) *Resampler {
	if srcW <= 0 || srcH <= 0 || dstW <= 0 || dstH <= 0 {
		panic(fmt.Sprintf("features: bicubic resampler for %dx%d → %dx%d", srcW, srcH, dstW, dstH))
	}
	r := &Resampler{srcW: srcW, srcH: srcH, dstW: dstW, dstH: dstH,
		needH: dstW != srcW, needV: dstH != srcH, row: make([]uint8, 3*dstW)}
	if r.needH {
		r.h = newPILAxis(srcW, dstW)
	}
	if r.needV {
		r.v = newPILAxis(srcH, dstH)
	}
	// Without a crop box Pillow's horizontal pass covers every source row
	// (the first output's window starts at row 0 and the last one's ends at
	// srcH), so the intermediate image is dstW×srcH.
	switch {
	case r.needH && r.needV && dstW%2 == 0 && lanes:
		r.lanes = true
		r.pk = make([]int64, 3*srcW)
		r.tmp64 = make([]int64, 3*dstW/2*(srcH+srcH%2))
	case r.needH && r.needV:
		r.tmp = make([]uint8, 3*dstW*srcH)
		r.acc = make([]int32, 3*dstW)
	case r.needV:
		r.acc = make([]int32, 3*dstW)
	}
	return r
}

func (r *Resampler) check(src, dst *raster.RGB) error {
	if err := src.Valid(); err != nil {
		return fmt.Errorf("features: resize source: %w", err)
	}
	if src.W != r.srcW || src.H != r.srcH {
		return fmt.Errorf("features: resampler for %dx%d images given %dx%d", r.srcW, r.srcH, src.W, src.H)
	}
	if dst == nil {
		return nil
	}
	if err := dst.Valid(); err != nil {
		return fmt.Errorf("features: resize destination: %w", err)
	}
	if dst.W != r.dstW || dst.H != r.dstH {
		return fmt.Errorf("features: resampler to %dx%d given a %dx%d destination", r.dstW, r.dstH, dst.W, dst.H)
	}
	return nil
}

// Resize writes Pillow's bicubic resize of src into dst. It allocates
// nothing.
func (r *Resampler) Resize(src, dst *raster.RGB) error {
	if err := r.check(src, dst); err != nil {
		return err
	}
	r.run(src.Pix, dst.Pix, nil, nil)
	return nil
}

// run resizes src (checked by the caller). With norm nil the output rows go
// to dst; otherwise each output row is normalised into the three planes of
// f as soon as it is made.
func (r *Resampler) run(src, dst []uint8, norm *Normalizer, f []float32) {
	n := 3 * r.dstW
	plane := r.dstW * r.dstH
	switch {
	case r.lanes:
		r.horizontal2(src)
	case r.needH && r.needV:
		for y := range r.srcH {
			r.h.resampleRow(src[3*r.srcW*y:3*r.srcW*(y+1)], r.tmp[n*y:n*(y+1)])
		}
	}
	for y := range r.dstH {
		out := r.row
		if norm == nil {
			out = dst[n*y : n*(y+1)]
		}
		switch {
		case r.lanes:
			r.vertical2Row(y, out)
		case r.needH && r.needV:
			r.verticalRow(r.tmp, y, out)
		case r.needH:
			r.h.resampleRow(src[3*r.srcW*y:3*r.srcW*(y+1)], out)
		case r.needV:
			r.verticalRow(src, y, out)
		default: // Pillow copies
			out = src[n*y : n*(y+1)]
			if norm == nil {
				copy(dst[n*y:n*(y+1)], out)
			}
		}
		if norm != nil {
			norm.rows(out, f, r.dstW*y, plane)
		}
	}
}

// resampleRow is ImagingResampleHorizontal_8bpc for one packed RGB row.
func (a *pilAxis) resampleRow(row, o []uint8) {
	t := a.taps
	for x := range a.out {
		k := a.k[x*t : (x+1)*t]
		p := row[3*a.start[x] : 3*(a.start[x]+t)]
		s0, s1, s2 := int32(pilHalf), int32(pilHalf), int32(pilHalf)
		for i, c := range k {
			q := p[3*i : 3*i+3 : 3*i+3]
			s0 += int32(q[0]) * c
			s1 += int32(q[1]) * c
			s2 += int32(q[2]) * c
		}
		oo := o[3*x : 3*x+3 : 3*x+3]
		oo[0], oo[1], oo[2] = clip8(s0), clip8(s1), clip8(s2)
	}
}

// verticalRow is ImagingResampleVertical_8bpc for output row y: it reads
// rows of in (dstW wide, since the horizontal pass has run or was not
// needed) and writes one dstW-wide row to out.
func (r *Resampler) verticalRow(in []uint8, y int, out []uint8) {
	a := &r.v
	n, t := 3*r.dstW, a.taps
	k := a.k[y*t : (y+1)*t]
	base := a.start[y]
	acc := r.acc[:n]
	out = out[:len(acc)]
	for j := range acc {
		acc[j] = pilHalf
	}
	for i, c := range k {
		src := in[(base+i)*n : (base+i+1)*n][:len(acc)]
		for j := range acc {
			acc[j] += int32(src[j]) * c
		}
	}
	for j, s := range acc {
		out[j] = clip8(s)
	}
}

// horizontal2 is the horizontal pass on two source rows at a time, one per
// lane. Output pixels x and x+dstW/2 are computed together and stored in
// one word of tmp64 (pixel x in the low lane), ready for vertical2Row.
func (r *Resampler) horizontal2(src []uint8) {
	a := &r.h
	sw, m, hx, t := 3*r.srcW, 3*r.dstW/2, r.dstW/2, a.taps
	pk := r.pk[:sw]
	for y := 0; y < r.srcH; y += 2 {
		ra := src[y*sw : (y+1)*sw]
		rb := ra // an odd last row pairs with itself; its twin is unused
		if y+1 < r.srcH {
			rb = src[(y+1)*sw : (y+2)*sw]
		}
		rb = rb[:len(ra)]
		pk = pk[:len(ra)]
		for i, v := range ra {
			pk[i] = int64(v) | int64(rb[i])<<32
		}
		oa := r.tmp64[y*m : (y+1)*m]
		ob := r.tmp64[(y+1)*m : (y+2)*m][:len(oa)]
		for x := range hx {
			sa, sb := 3*a.start[x], 3*a.start[x+hx]
			var a0, a1, a2, b0, b1, b2 int64
			if t == 5 { // 256 → 224 and other mild reductions, unrolled
				ka := a.k64[5*x : 5*x+5 : 5*x+5]
				kb := a.k64[5*(x+hx) : 5*(x+hx)+5 : 5*(x+hx)+5]
				pa := pk[sa : sa+15 : sa+15]
				pb := pk[sb : sb+15 : sb+15]
				a0 = pilHalf2 + pa[0]*ka[0] + pa[3]*ka[1] + pa[6]*ka[2] + pa[9]*ka[3] + pa[12]*ka[4]
				a1 = pilHalf2 + pa[1]*ka[0] + pa[4]*ka[1] + pa[7]*ka[2] + pa[10]*ka[3] + pa[13]*ka[4]
				a2 = pilHalf2 + pa[2]*ka[0] + pa[5]*ka[1] + pa[8]*ka[2] + pa[11]*ka[3] + pa[14]*ka[4]
				b0 = pilHalf2 + pb[0]*kb[0] + pb[3]*kb[1] + pb[6]*kb[2] + pb[9]*kb[3] + pb[12]*kb[4]
				b1 = pilHalf2 + pb[1]*kb[0] + pb[4]*kb[1] + pb[7]*kb[2] + pb[10]*kb[3] + pb[13]*kb[4]
				b2 = pilHalf2 + pb[2]*kb[0] + pb[5]*kb[1] + pb[8]*kb[2] + pb[11]*kb[3] + pb[14]*kb[4]
			} else {
				ka := a.k64[t*x : t*(x+1)]
				kb := a.k64[t*(x+hx) : t*(x+hx+1)]
				pa := pk[sa : sa+3*t]
				pb := pk[sb : sb+3*t]
				a0, a1, a2, b0, b1, b2 = pilHalf2, pilHalf2, pilHalf2, pilHalf2, pilHalf2, pilHalf2
				for i, c := range ka {
					q := pa[3*i : 3*i+3 : 3*i+3]
					a0 += q[0] * c
					a1 += q[1] * c
					a2 += q[2] * c
				}
				for i, c := range kb {
					q := pb[3*i : 3*i+3 : 3*i+3]
					b0 += q[0] * c
					b1 += q[1] * c
					b2 += q[2] * c
				}
			}
			wa := oa[3*x : 3*x+3 : 3*x+3]
			wb := ob[3*x : 3*x+3 : 3*x+3]
			// Lanes of a*: pixel x in rows y (low) and y+1 (high); of b*:
			// pixel x+hx. Regroup by row: wa = pixel x | pixel x+hx<<32
			// for row y, wb the same for row y+1.
			if uint64(a0|a1|a2|b0|b1|b2)&lanesOut == 0 { // nothing to clip
				u0, u1, u2 := lanes8(a0), lanes8(a1), lanes8(a2)
				v0, v1, v2 := lanes8(b0), lanes8(b1), lanes8(b2)
				wa[0] = int64(u0&0xFF | v0<<32)
				wa[1] = int64(u1&0xFF | v1<<32)
				wa[2] = int64(u2&0xFF | v2<<32)
				wb[0] = int64(u0>>32 | v0&^0xFF)
				wb[1] = int64(u1>>32 | v1&^0xFF)
				wb[2] = int64(u2>>32 | v2&^0xFF)
				continue
			}
			ya0, yb0 := unpack2(a0)
			ya1, yb1 := unpack2(a1)
			ya2, yb2 := unpack2(a2)
			xa0, xb0 := unpack2(b0)
			xa1, xb1 := unpack2(b1)
			xa2, xb2 := unpack2(b2)
			wa[0] = int64(ya0) | int64(xa0)<<32
			wa[1] = int64(ya1) | int64(xa1)<<32
			wa[2] = int64(ya2) | int64(xa2)<<32
			wb[0] = int64(yb0) | int64(xb0)<<32
			wb[1] = int64(yb1) | int64(xb1)<<32
			wb[2] = int64(yb2) | int64(xb2)<<32
		}
	}
}

// vertical2Row is the vertical pass for output row y on tmp64, two output
// pixels (x and x+dstW/2) per multiply.
func (r *Resampler) vertical2Row(y int, out []uint8) {
	a := &r.v
	m, t := 3*r.dstW/2, a.taps
	k := a.k64[y*t : (y+1)*t]
	base := a.start[y]
	lo := out[:m]
	hi := out[m : 2*m][:len(lo)]
	if t == 5 {
		r0 := r.tmp64[base*m : (base+1)*m][:len(lo)]
		r1 := r.tmp64[(base+1)*m : (base+2)*m][:len(lo)]
		r2 := r.tmp64[(base+2)*m : (base+3)*m][:len(lo)]
		r3 := r.tmp64[(base+3)*m : (base+4)*m][:len(lo)]
		r4 := r.tmp64[(base+4)*m : (base+5)*m][:len(lo)]
		c0, c1, c2, c3, c4 := k[0], k[1], k[2], k[3], k[4]
		for j := range lo {
			s := pilHalf2 + r0[j]*c0 + r1[j]*c1 + r2[j]*c2 + r3[j]*c3 + r4[j]*c4
			if uint64(s)&lanesOut == 0 {
				u := lanes8(s)
				lo[j], hi[j] = uint8(u), uint8(u>>32)
			} else {
				lo[j], hi[j] = unpack2(s)
			}
		}
		return
	}
	for j := range lo {
		s := int64(pilHalf2)
		for i, c := range k {
			s += r.tmp64[(base+i)*m+j] * c
		}
		lo[j], hi[j] = unpack2(s)
	}
}

// Normalizer maps 8-bit RGB to float32 C×H×W the way Hugging Face's image
// processors rescale and normalise: x = float32(v · (1/255)) (computed in
// float64, then rounded), then (x − mean[c]) / std[c] in float32. It holds a
// 256-entry table per channel, so it is a look-up per value.
type Normalizer struct {
	lut [3][256]float32
}

// NewNormalizer builds the tables for one mean and std. It returns an error
// unless every std is positive and finite.
func NewNormalizer(mean, std [3]float32) (*Normalizer, error) {
	n := new(Normalizer)
	if err := n.init(mean, std); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Normalizer) init(mean, std [3]float32) error {
	for c := range 3 {
		s, m := std[c], mean[c]
		if !(s > 0) || math.IsInf(float64(s), 0) || math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
			return fmt.Errorf("features: normalisation mean %v std %v: std must be positive and both finite", mean, std)
		}
		for v := range 256 {
			x := float32(float64(v) * (1.0 / 255))
			d := x - m
			n.lut[c][v] = d / s
		}
	}
	return nil
}

// Value returns the normalised value of v in channel c (0, 1 or 2).
func (n *Normalizer) Value(c int, v uint8) float32 { return n.lut[c][v] }

// CHW writes img as float32 [3, H, W] into dst, which must hold exactly
// 3·W·H values.
func (n *Normalizer) CHW(img *raster.RGB, dst []float32) error {
	if err := img.Valid(); err != nil {
		return fmt.Errorf("features: normalise: %w", err)
	}
	plane := img.W * img.H
	if len(dst) != 3*plane {
		return fmt.Errorf("features: normalise %dx%d image into %d floats (want %d)", img.W, img.H, len(dst), 3*plane)
	}
	n.rows(img.Pix, dst, 0, plane)
	return nil
}

// rows converts packed RGB pix (a whole number of pixels) into the three
// planes of dst, starting at offset off within each plane of size plane.
func (n *Normalizer) rows(pix []uint8, dst []float32, off, plane int) {
	np := len(pix) / 3
	r := dst[off : off+np]
	g := dst[plane+off : plane+off+np][:len(r)]
	b := dst[2*plane+off : 2*plane+off+np][:len(r)]
	l0, l1, l2 := &n.lut[0], &n.lut[1], &n.lut[2]
	for i := range r {
		p := pix[3*i : 3*i+3 : 3*i+3]
		r[i] = l0[p[0]]
		g[i] = l1[p[1]]
		b[i] = l2[p[2]]
	}
}

// NormalizeCHW writes img as float32 [3, H, W] with values
// (v/255 − mean[c]) / std[c] (computed as Normalizer does) into dst, which
// must hold exactly 3·W·H values. For many images keep a Normalizer.
func NormalizeCHW(img *raster.RGB, mean, std [3]float32, dst []float32) error {
	var n Normalizer
	if err := n.init(mean, std); err != nil {
		return err
	}
	return n.CHW(img, dst)
}

// Preprocessor turns patch×patch RGB patches into CLIP's pixel_values: a
// Pillow bicubic resize to size×size, then rescale and normalise into one
// float32 [3, size, size] slot of a batch. Each resized row is normalised as
// soon as it is made, so the resized uint8 image is never stored. It keeps
// scratch space: use one per goroutine.
type Preprocessor struct {
	size int
	rs   *Resampler
	norm Normalizer
}

// NewPreprocessor prepares patch → size preprocessing with the given mean and
// std (CLIPMean and CLIPStd for PLIP). It panics unless both sizes are
// positive and every std is positive and finite (Manifest.Validate checks
// these).
func NewPreprocessor(patch, size int, mean, std [3]float32) *Preprocessor {
	if patch <= 0 || size <= 0 {
		panic(fmt.Sprintf("features: preprocessor for %d px patches to %d px", patch, size))
	}
	p := &Preprocessor{size: size, rs: NewPILBicubic(patch, patch, size, size)}
	if err := p.norm.init(mean, std); err != nil {
		panic(err.Error())
	}
	return p
}

// SlotLen is the number of float32 values Into writes: 3·size·size.
func (p *Preprocessor) SlotLen() int { return 3 * p.size * p.size }

// Into resizes src (patch×patch) and writes its normalised float32
// [3, size, size] values into dst, which must hold exactly SlotLen values
// (one slot of an [N,3,size,size] batch buffer). It allocates nothing.
func (p *Preprocessor) Into(src *raster.RGB, dst []float32) error {
	if err := p.rs.check(src, nil); err != nil {
		return err
	}
	if len(dst) != p.SlotLen() {
		return fmt.Errorf("features: preprocessed slot of %d floats (want %d)", len(dst), p.SlotLen())
	}
	p.rs.run(src.Pix, nil, &p.norm, dst)
	return nil
}
