package anchors

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
)

// BenchmarkAnchorsPerPPK splits the anchors stage of one slide by ppk value
// (k-means++ seeding, Lloyd iterations and the nearest-patch search for
// k = ⌊N/ppk⌋ + 1 centroids), on the slide-like blobs of the stage
// benchmark. heap_MB is an upper bound of the peak heap the call adds: the
// bytes it allocates with the collector switched off.
func BenchmarkAnchorsPerPPK(b *testing.B) {
	for _, n := range []int{4096, 20000, 100000} {
		ps := blobs(n, 42)
		for _, ppk := range PPKValues {
			b.Run(fmt.Sprintf("N=%d/ppk=%d", n, ppk), func(b *testing.B) {
				heap := allocMB(func() { Anchors(ps, ppk, DefaultKMeansConfig()) })
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Anchors(ps, ppk, DefaultKMeansConfig())
				}
				b.StopTimer()
				// After the loop: ResetTimer drops reported metrics.
				b.ReportMetric(float64(NumAnchors(n, ppk)), "k")
				b.ReportMetric(heap, "heap_MB")
			})
		}
	}
}

// BenchmarkAnchorsStageHeap is the whole anchors computation of a slide
// (grid positions, diameter, anchors for all eight ppk values) with the
// garbage collector switched off for one run: heap_MB, the bytes allocated,
// bounds the peak heap from above whatever the collector does.
func BenchmarkAnchorsStageHeap(b *testing.B) {
	for _, n := range []int{4096, 20000, 100000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			coords := slideCoords(blobs(n, 42), 512)
			stage := func() {
				pos, err := GridPositions(coords, 512)
				if err != nil {
					b.Fatal(err)
				}
				_ = Diameter(pos)
				for _, ppk := range PPKValues {
					Anchors(pos, ppk, DefaultKMeansConfig())
				}
			}
			heap := allocMB(stage)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				stage()
			}
			b.StopTimer()
			b.ReportMetric(heap, "heap_MB")
		})
	}
}

// BenchmarkBinsBundle is the loader's bins for one bundle (2048 patches,
// 128 or 256 anchors): patches in raster order as a bundle holds them, in
// random order, and subsampled 1 in 4 on each axis (the reference's cap on
// a big slide: the offsets span a large box).
func BenchmarkBinsBundle(b *testing.B) {
	raster := blobs(2048, 7)
	slices.SortFunc(raster, func(p, q Pos) int {
		if p.Row != q.Row {
			return int(p.Row - q.Row)
		}
		return int(p.Col - q.Col)
	})
	shuffled := slices.Clone(raster)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	sub := slices.Clone(raster)
	for i := range sub {
		sub[i].Row *= 4
		sub[i].Col *= 4
	}
	for _, s := range []struct {
		name string
		ps   []Pos
	}{{"raster", raster}, {"shuffled", shuffled}, {"subsampled4", sub}} {
		for _, k := range []int{128, 256} {
			b.Run(fmt.Sprintf("%s/2048x%d", s.name, k), func(b *testing.B) {
				ps := s.ps
				an := make([]Pos, k)
				for i := range an {
					an[i] = ps[i*len(ps)/k] // spread over the slide
				}
				w := BinWidth(Diameter(ps))
				dist, polar := make([]uint8, k*len(ps)), make([]uint8, k*len(ps))
				b.SetBytes(int64(2 * len(dist)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					Bins(an, ps, w, dist, polar)
				}
			})
		}
	}
}

// BenchmarkDiameter: hull and calipers on a slide of N patches.
func BenchmarkDiameter(b *testing.B) {
	for _, n := range []int{4096, 100000} {
		ps := blobs(n, 42)
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = Diameter(ps)
			}
		})
	}
}

// slideCoords turns grid positions into level-0 coordinates [x0,y0,...] on
// a grid of the given step, away from the origin.
func slideCoords(ps []Pos, step int64) []int64 {
	coords := make([]int64, 2*len(ps))
	for i, p := range ps {
		coords[2*i], coords[2*i+1] = (int64(p.Col)+100000)*step, (int64(p.Row)+100000)*step
	}
	return coords
}

// allocMB runs f once with the collector off and returns the MB it
// allocated: an upper bound of the heap it can have live at any moment.
func allocMB(f func()) float64 {
	runtime.GC()
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return float64(m1.TotalAlloc-m0.TotalAlloc) / (1 << 20)
}
