package anchors

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

// BenchmarkAnchorsAllPPK is the anchors stage's computation for one slide:
// grid positions, diameter and the anchors of all eight ppk values.
// Reports the process's peak RSS (run one N per process for a clean
// figure: `make bench-anchors` does).
func BenchmarkAnchorsAllPPK(b *testing.B) {
	for _, n := range []int{4096, 20000, 100000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ps := blobs(n, 42)
			coords := make([]int64, 2*n)
			for i, p := range ps {
				coords[2*i], coords[2*i+1] = int64(p.Col+100000)*512, int64(p.Row+100000)*512
			}
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pos, err := GridPositions(coords, 512)
				if err != nil {
					b.Fatal(err)
				}
				_ = Diameter(pos)
				for _, ppk := range PPKValues {
					if a := Anchors(pos, ppk, DefaultKMeansConfig()); len(a) == 0 {
						b.Fatal("no anchors")
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(testutil.PeakRSSMB(), "peak_RSS_MB")
		})
	}
}

// BenchmarkBins2048x128 is the loader's bins for one bundle.
func BenchmarkBins2048x128(b *testing.B) {
	ps := blobs(2048, 7)
	an := ps[:128]
	w := BinWidth(Diameter(ps))
	dist, polar := make([]uint8, 128*2048), make([]uint8, 128*2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(dist)))
	for i := 0; i < b.N; i++ {
		Bins(an, ps, w, dist, polar)
	}
}
