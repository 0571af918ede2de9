package tiling

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func randomMask(rng *rand.Rand, w, h, pct int) []uint8 {
	m := make([]uint8, w*h)
	for i := range m {
		if rng.IntN(100) < pct {
			m[i] = 1
		}
	}
	return m
}

// Brute-force references: outside pixels are ignored, as in morph.go.

func bruteDilate(m []uint8, w, h int, r float64) []uint8 {
	out := make([]uint8, len(m))
	R := int(r) + 1
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for dy := -R; dy <= R && out[y*w+x] == 0; dy++ {
				for dx := -R; dx <= R; dx++ {
					X, Y := x+dx, y+dy
					if X < 0 || Y < 0 || X >= w || Y >= h || float64(dx*dx+dy*dy) > r*r {
						continue
					}
					if m[Y*w+X] == 1 {
						out[y*w+x] = 1
						break
					}
				}
			}
		}
	}
	return out
}

func bruteErode(m []uint8, w, h int, r float64) []uint8 {
	out := make([]uint8, len(m))
	R := int(r) + 1
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if m[y*w+x] == 0 {
				continue
			}
			keep := uint8(1)
			for dy := -R; dy <= R && keep == 1; dy++ {
				for dx := -R; dx <= R; dx++ {
					X, Y := x+dx, y+dy
					if X < 0 || Y < 0 || X >= w || Y >= h || float64(dx*dx+dy*dy) > r*r {
						continue
					}
					if m[Y*w+X] == 0 {
						keep = 0
						break
					}
				}
			}
			out[y*w+x] = keep
		}
	}
	return out
}

func bruteMajority(m []uint8, w, h, k int) []uint8 {
	out := make([]uint8, len(m))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var ones, n int
			for Y := max(0, y-k); Y <= min(h-1, y+k); Y++ {
				for X := max(0, x-k); X <= min(w-1, x+k); X++ {
					n++
					ones += int(m[Y*w+X])
				}
			}
			switch {
			case 2*ones > n:
				out[y*w+x] = 1
			case 2*ones == n:
				out[y*w+x] = m[y*w+x]
			}
		}
	}
	return out
}

// bruteLabels labels connected components of pixels equal to val by flood
// fill with an explicit stack.
func bruteLabels(m []uint8, w, h int, val uint8, conn8 bool) ([]int, int) {
	lab := make([]int, len(m))
	for i := range lab {
		lab[i] = -1
	}
	n := 0
	for s := range m {
		if m[s] != val || lab[s] >= 0 {
			continue
		}
		stack := []int{s}
		lab[s] = n
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := p%w, p/w
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if (dx == 0 && dy == 0) || (!conn8 && dx != 0 && dy != 0) {
						continue
					}
					X, Y := x+dx, y+dy
					if X < 0 || Y < 0 || X >= w || Y >= h {
						continue
					}
					q := Y*w + X
					if m[q] == val && lab[q] < 0 {
						lab[q] = n
						stack = append(stack, q)
					}
				}
			}
		}
		n++
	}
	return lab, n
}

func bruteRemoveSmall(m []uint8, w, h, minArea int) []uint8 {
	lab, n := bruteLabels(m, w, h, 1, true)
	size := make([]int, n)
	for _, l := range lab {
		if l >= 0 {
			size[l]++
		}
	}
	out := slices.Clone(m)
	for i, l := range lab {
		if l >= 0 && size[l] < minArea {
			out[i] = 0
		}
	}
	return out
}

func bruteFillHoles(m []uint8, w, h, maxArea int) []uint8 {
	lab, n := bruteLabels(m, w, h, 0, false)
	size := make([]int, n)
	border := make([]bool, n)
	for i, l := range lab {
		if l < 0 {
			continue
		}
		size[l]++
		x, y := i%w, i/w
		if x == 0 || y == 0 || x == w-1 || y == h-1 {
			border[l] = true
		}
	}
	out := slices.Clone(m)
	for i, l := range lab {
		if l >= 0 && !border[l] && size[l] <= maxArea {
			out[i] = 1
		}
	}
	return out
}

func bruteGrow(seed, allowed []uint8, w, h int) []uint8 {
	u := make([]uint8, len(seed))
	for i := range u {
		u[i] = seed[i] | allowed[i]
	}
	lab, n := bruteLabels(u, w, h, 1, true)
	hasSeed := make([]bool, n)
	for i, l := range lab {
		if l >= 0 && seed[i] != 0 {
			hasSeed[l] = true
		}
	}
	out := make([]uint8, len(seed))
	for i, l := range lab {
		if l >= 0 && hasSeed[l] {
			out[i] = 1
		}
	}
	return out
}

func diffAt(a, b []uint8, w int) string {
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at (%d,%d): got %d want %d", i%w, i/w, a[i], b[i])
		}
	}
	return ""
}

// TestMorphologyBruteForce compares the O(N) disk morphology and the other
// binary operations with direct definitions on small random masks, including
// fractional radii, radii larger than the image, thin and empty images.
func TestMorphologyBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	radii := []float64{0.5, 1, 1.5, 2, 2.2, 2.9, 3, 4.5, 7, 25}
	shapes := [][2]int{{1, 1}, {1, 9}, {9, 1}, {2, 3}, {13, 7}, {31, 29}, {40, 17}}
	for _, sh := range shapes {
		w, h := sh[0], sh[1]
		for _, pct := range []int{0, 3, 30, 70, 100} {
			m := randomMask(rng, w, h, pct)
			for _, r := range radii {
				name := fmt.Sprintf("%dx%d/%d%%/r=%v", w, h, pct, r)
				if d := diffAt(dilate(m, w, h, r), bruteDilate(m, w, h, r), w); d != "" {
					t.Errorf("dilate %s: %s", name, d)
				}
				if d := diffAt(erode(m, w, h, r), bruteErode(m, w, h, r), w); d != "" {
					t.Errorf("erode %s: %s", name, d)
				}
				want := bruteErode(bruteDilate(m, w, h, r), w, h, r)
				if d := diffAt(closeDisk(m, w, h, r), want, w); d != "" {
					t.Errorf("close %s: %s", name, d)
				}
			}
			for k := 0; k <= 4; k++ {
				if d := diffAt(majority(m, w, h, k), bruteMajority(m, w, h, k), w); d != "" {
					t.Errorf("majority %dx%d/%d%%/k=%d: %s", w, h, pct, k, d)
				}
			}
			for _, a := range []int{0, 1, 2, 3, 5, 20} {
				got := slices.Clone(m)
				removeSmallObjects(got, w, h, a)
				if d := diffAt(got, bruteRemoveSmall(m, w, h, a), w); d != "" {
					t.Errorf("removeSmallObjects %dx%d/%d%%/min=%d: %s", w, h, pct, a, d)
				}
				got = slices.Clone(m)
				fillHoles(got, w, h, a)
				want := slices.Clone(m)
				if a > 0 {
					want = bruteFillHoles(m, w, h, a)
				}
				if d := diffAt(got, want, w); d != "" {
					t.Errorf("fillHoles %dx%d/%d%%/max=%d: %s", w, h, pct, a, d)
				}
			}
			seed := randomMask(rng, w, h, 2)
			if d := diffAt(growInto(seed, m, w, h), bruteGrow(seed, m, w, h), w); d != "" {
				t.Errorf("growInto %dx%d/%d%%: %s", w, h, pct, d)
			}
		}
	}
}

// TestDiskShape checks the structuring element itself: dilating one pixel
// gives exactly the disk dx²+dy² ≤ r².
func TestDiskShape(t *testing.T) {
	const w, h = 41, 41
	for _, r := range []float64{1, 1.5, 2.5, 5, 7.3, 12} {
		m := make([]uint8, w*h)
		m[20*w+20] = 1
		d := dilate(m, w, h, r)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				dx, dy := float64(x-20), float64(y-20)
				want := uint8(0)
				if dx*dx+dy*dy <= r*r {
					want = 1
				}
				if d[y*w+x] != want {
					t.Fatalf("r=%v: pixel (%d,%d) = %d, want %d", r, x, y, d[y*w+x], want)
				}
			}
		}
	}
}

func TestOtsu(t *testing.T) {
	var hist [256]int
	for v := 0; v < 20; v++ {
		hist[v] = 100
	}
	for v := 100; v < 140; v++ {
		hist[v] = 50
	}
	if got := otsu(&hist); got < 20 || got > 100 {
		t.Errorf("bimodal histogram: threshold %d, want in (20, 100]", got)
	}
	var empty [256]int
	if got := otsu(&empty); got != 0 {
		t.Errorf("empty histogram: %d, want 0", got)
	}
	var one [256]int
	one[50] = 10
	if got := otsu(&one); got != 0 {
		t.Errorf("one-valued histogram: %d, want 0", got)
	}
}

func BenchmarkClose(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const w, h = 2500, 1900
	m := randomMask(rng, w, h, 40)
	b.SetBytes(w * h)
	b.ReportAllocs()
	for b.Loop() {
		closeDisk(m, w, h, 8)
	}
}
