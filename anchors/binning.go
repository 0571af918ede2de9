package anchors

import "math"

// Bin counts of the reference PAMA/IPCA code: distances fall in 0..64 (the
// embedding table has 64+2 rows, row 65 spare); polar angles in 8 sectors.
const (
	NumDistBins  = 66
	NumPolarBins = 8
	maxDistBin   = 64
)

// BinWidth is the distance bin width for a slide: its diameter (largest
// patch-to-patch distance, grid units) / 64, as in the reference
// ((max_d − min_d)/64 with min_d = 0).
func BinWidth(diameter float64) float64 { return diameter / maxDistBin }

// DistBin is floor(d / width), at most 64; 0 when width is 0 (a slide of
// one patch).
func DistBin(d, width float64) uint8 {
	if !(width > 0) {
		return 0
	}
	b := math.Floor(d / width)
	if b >= maxDistBin {
		return maxDistBin
	}
	if b < 0 {
		return 0
	}
	return uint8(b)
}

// PolarBin is the sector of the direction anchor→patch (Δ = patch − anchor):
// θ = atan2(Δcol, Δrow), bin = ⌊θ/(π/4)⌋ + 4, with θ = π (Δcol = 0,
// Δrow < 0) in sector 7 and Δ = (0,0) (θ = atan2(0,0) = 0) in sector 4. It is
// evaluated with exact integer comparisons, so directions on a sector
// boundary (multiples of 45°) land in the sector that starts there, as the
// formula puts them mathematically.
func PolarBin(dRow, dCol int32) uint8 {
	x, y := int64(dRow), int64(dCol) // θ = atan2(y, x)
	switch {
	case y >= 0 && x > 0:
		if y < x {
			return 4 // [0, π/4)
		}
		return 5 // [π/4, π/2)
	case y == 0 && x == 0:
		return 4
	case y > 0 && x <= 0:
		if y > -x {
			return 6 // [π/2, 3π/4)
		}
		return 7 // [3π/4, π)
	case y == 0: // x < 0: θ = π
		return 7
	case x > 0: // y < 0
		if -y <= x {
			return 3 // [−π/4, 0)
		}
		return 2 // [−π/2, −π/4)
	case x == 0: // y < 0: θ = −π/2
		return 2
	default: // x < 0, y < 0
		if -y >= -x {
			return 1 // [−3π/4, −π/2)
		}
		return 0 // (−π, −3π/4)
	}
}

// Bins fills dist and polar (len K×N, anchor-major) with the distance and
// polar bins from each anchor to each patch. When the offsets between them
// span a modest box (always, for a bundle's 2048 patches), both bins come
// from one table indexed by the offset, built once per call; otherwise each
// pair is computed directly. Both give DistBin/PolarBin exactly.
func Bins(anchors, patches []Pos, width float64, dist, polar []uint8) {
	n := len(patches)
	if len(anchors) == 0 || n == 0 {
		return
	}
	minR, maxR, minC, maxC := bounds(patches)
	aminR, amaxR, aminC, amaxC := bounds(anchors)
	// Offsets Δ = patch − anchor lie in [minR−amaxR, maxR−aminR] × [...].
	r0, r1 := int64(minR)-int64(amaxR), int64(maxR)-int64(aminR)
	c0, c1 := int64(minC)-int64(amaxC), int64(maxC)-int64(aminC)
	h, w := r1-r0+1, c1-c0+1
	if h*w > 1<<20 || h*w > int64(len(anchors))*int64(n) {
		binsDirect(anchors, patches, width, dist, polar)
		return
	}
	tab := make([]uint16, h*w) // dist<<8 | polar
	for dr := r0; dr <= r1; dr++ {
		row := tab[(dr-r0)*w : (dr-r0+1)*w]
		for dc := c0; dc <= c1; dc++ {
			d := DistBin(math.Sqrt(float64(dr*dr+dc*dc)), width)
			row[dc-c0] = uint16(d)<<8 | uint16(PolarBin(int32(dr), int32(dc)))
		}
	}
	for a, ap := range anchors {
		drow := dist[a*n : (a+1)*n]
		prow := polar[a*n : (a+1)*n]
		base := (-int64(ap.Row)-r0)*w - int64(ap.Col) - c0
		for i, p := range patches {
			v := tab[base+int64(p.Row)*w+int64(p.Col)]
			drow[i], prow[i] = uint8(v>>8), uint8(v)
		}
	}
}

func bounds(ps []Pos) (minR, maxR, minC, maxC int32) {
	minR, maxR, minC, maxC = ps[0].Row, ps[0].Row, ps[0].Col, ps[0].Col
	for _, p := range ps[1:] {
		minR, maxR = min(minR, p.Row), max(maxR, p.Row)
		minC, maxC = min(minC, p.Col), max(maxC, p.Col)
	}
	return
}

func binsDirect(anchors, patches []Pos, width float64, dist, polar []uint8) {
	n := len(patches)
	for a, ap := range anchors {
		drow := dist[a*n : (a+1)*n]
		prow := polar[a*n : (a+1)*n]
		for i, p := range patches {
			dr, dc := p.Row-ap.Row, p.Col-ap.Col
			drow[i] = DistBin(math.Sqrt(float64(int64(dr)*int64(dr)+int64(dc)*int64(dc))), width)
			prow[i] = PolarBin(dr, dc)
		}
	}
}
