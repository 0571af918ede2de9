package viewer

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func maskOf(rows ...string) (int, int, []uint8) {
	w, h := len(rows[0]), len(rows)
	m := make([]uint8, w*h)
	for y, r := range rows {
		for x, c := range r {
			if c == '#' {
				m[y*w+x] = 1
			}
		}
	}
	return w, h, m
}

// signedArea by the shoelace formula (positive: clockwise on screen, y down).
func signedArea(l []float64) float64 {
	var a float64
	n := len(l) / 2
	for i := range n {
		j := (i + 1) % n
		a += l[2*i]*l[2*j+1] - l[2*j]*l[2*i+1]
	}
	return a / 2
}

// insideAny: even-odd rule over every loop.
func insideAny(loops [][]float64, x, y float64) bool {
	in := false
	for _, l := range loops {
		n := len(l) / 2
		for i := range n {
			j := (i + n - 1) % n
			xi, yi, xj, yj := l[2*i], l[2*i+1], l[2*j], l[2*j+1]
			if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
				in = !in
			}
		}
	}
	return in
}

func TestOutline(t *testing.T) {
	for _, c := range []struct {
		name  string
		rows  []string
		loops int
		areas []float64 // signed, in order of the loops (their top-left start)
		first []float64 // the first loop, when given
	}{
		{"empty", []string{"...", "..."}, 0, nil, nil},
		{"one pixel", []string{"...", ".#.", "..."}, 1, []float64{0.5}, []float64{1.5, 1, 2, 1.5, 1.5, 2, 1, 1.5}},
		{"block", []string{"....", ".##.", ".##.", "...."}, 1, []float64{3.5}, nil},
		{"full", []string{"##", "##"}, 1, []float64{3.5}, []float64{0.5, 0, 1.5, 0, 2, 0.5, 2, 1.5, 1.5, 2, 0.5, 2, 0, 1.5, 0, 0.5}},
		{"ring with a hole", []string{"###", "#.#", "###"}, 2, []float64{8.5, -0.5}, nil},
		{"two blobs", []string{"#..#", "#..#"}, 2, []float64{1.5, 1.5}, nil},
		{"diagonal pair joined", []string{"#.", ".#"}, 1, []float64{1.5}, nil},
		{"anti-diagonal pair joined", []string{".#", "#."}, 1, []float64{1.5}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, h, m := maskOf(c.rows...)
			loops := Outline(w, h, m)
			if len(loops) != c.loops {
				t.Fatalf("%d loops %v, want %d", len(loops), loops, c.loops)
			}
			for i, l := range loops {
				if a := signedArea(l); a != c.areas[i] {
					t.Errorf("loop %d %v: signed area %g, want %g", i, l, a, c.areas[i])
				}
			}
			if c.first != nil && !slices.Equal(loops[0], c.first) {
				t.Errorf("loop %v, want %v", loops[0], c.first)
			}
		})
	}
}

// On random masks every pixel centre is inside the outline exactly when it
// is tissue.
func TestOutlineRandomMasks(t *testing.T) {
	for _, c := range []struct {
		w, h    int
		density float64
		seed    uint64
	}{{7, 5, 0.3, 1}, {20, 13, 0.5, 2}, {31, 40, 0.7, 3}, {64, 64, 0.5, 4}, {1, 9, 0.5, 5}, {50, 1, 0.9, 6}} {
		r := rand.New(rand.NewPCG(c.seed, 9))
		m := make([]uint8, c.w*c.h)
		for i := range m {
			if r.Float64() < c.density {
				m[i] = 1
			}
		}
		loops := Outline(c.w, c.h, m)
		for y := range c.h {
			for x := range c.w {
				if got := insideAny(loops, float64(x)+0.5, float64(y)+0.5); got != (m[y*c.w+x] != 0) {
					t.Fatalf("%dx%d seed %d: pixel (%d,%d) tissue %v, inside the outline %v", c.w, c.h, c.seed, x, y, m[y*c.w+x] != 0, got)
				}
			}
		}
	}
}

func BenchmarkOutline(b *testing.B) {
	// a 2000×1500 mask with round blobs: the size of a slide's mask
	w, h := 2000, 1500
	m := make([]uint8, w*h)
	for y := range h {
		for x := range w {
			dx, dy := (x%400)-200, (y%300)-150
			if dx*dx+dy*dy < 120*120 {
				m[y*w+x] = 1
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		Outline(w, h, m)
	}
}
