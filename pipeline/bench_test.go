package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/tiling"
)

// benchSlide is the large generated slide of `make bench`: 40000×30000 at
// 40× (0.25 µm/px) with levels at downsample 1, 4, 16, 64 (no 20× level),
// made once by `pipeline synth` into .cache/bench. HER2WSI_BENCH_SLIDE
// points elsewhere.
func benchSlide(b *testing.B) string {
	p := os.Getenv("HER2WSI_BENCH_SLIDE")
	if p == "" {
		p = filepath.Join("..", ".cache", "bench", "bench-40x.svs")
	}
	if _, err := os.Stat(p); err != nil {
		b.Skipf("benchmark slide %s missing: run `make bench` (it generates it)", p)
	}
	return p
}

// benchPatches returns the first n kept patches of the slide, in raster
// order, as the embed stage would read them.
func benchPatches(b *testing.B, s *slide.Slide, n int) (tiling.ReadPlan, []tiling.Patch) {
	l0 := s.Meta.Levels[0]
	mpp, _, err := s.MPP()
	if err != nil {
		b.Fatal(err)
	}
	levels := make([]tiling.LevelInfo, len(s.Meta.Levels))
	for i, lv := range s.Meta.Levels {
		levels[i] = tiling.LevelInfo{Width: lv.Width, Height: lv.Height, Downsample: lv.Downsample}
	}
	g := tiling.DefaultGridConfig()
	plan, err := tiling.PlanRead(levels, mpp, g)
	if err != nil {
		b.Fatal(err)
	}
	mw, mh, mmpp := tiling.MaskSize(l0.Width, l0.Height, mpp, g)
	low, err := s.ScaledLevelImage(s.ThumbnailLevel(max(mw, mh)), mw, mh)
	if err != nil {
		b.Fatal(err)
	}
	mask, err := tiling.TissueMask(low, mmpp, tiling.DefaultMaskConfig())
	if err != nil {
		b.Fatal(err)
	}
	ps := tiling.Grid(l0.Width, l0.Height, plan.PatchSizeLevel0, mask, g.MinTissue)
	if len(ps) < n {
		b.Fatalf("only %d patches", len(ps))
	}
	return plan, ps[:n]
}

// BenchmarkReadPath compares, with 1 and 2 workers, the patches/s of the
// real read path (slide.ReadRegionInto + tiling.PatchReader: 512×512 at
// level 0 halved to 256×256) with the bare libvips ceiling (the same
// regions fetched in one C loop, no Go in between). The two alternate in
// rounds on separately opened handles so machine noise hits both alike;
// the reported ratio is path/ceiling.
func BenchmarkReadPath(b *testing.B) {
	path := benchSlide(b)
	const n = 1536
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			open := func() *slide.Slide {
				s, err := slide.Open(path, slide.Options{})
				if err != nil {
					b.Fatal(err)
				}
				return s
			}
			sPath, sBare := open(), open()
			defer sPath.Close()
			defer sBare.Close()
			plan, patches := benchPatches(b, sPath, n)
			if plan.Level != 0 || plan.ReadSize != 512 {
				b.Fatalf("plan %+v: want 512 px at level 0", plan)
			}
			// Split the patches round-robin over the workers.
			shares := make([][]tiling.Patch, workers)
			for i, p := range patches {
				shares[i%workers] = append(shares[i%workers], p)
			}
			runPath := func() time.Duration {
				t0 := time.Now()
				var wg sync.WaitGroup
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func(ps []tiling.Patch) {
						defer wg.Done()
						pr := tiling.NewPatchReader(sPath, plan)
						dst := raster.New(plan.PatchSize, plan.PatchSize)
						for _, p := range ps {
							if err := pr.Read(p.X, p.Y, dst); err != nil {
								b.Error(err)
								return
							}
						}
					}(shares[w])
				}
				wg.Wait()
				return time.Since(t0)
			}
			runBare := func() time.Duration {
				t0 := time.Now()
				var wg sync.WaitGroup
				for w := 0; w < workers; w++ {
					regions := make([][4]int, len(shares[w]))
					for i, p := range shares[w] {
						regions[i] = [4]int{int(p.X), int(p.Y), plan.ReadSize, plan.ReadSize}
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := sBare.ReadRegionsBare(plan.Level, regions); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				return time.Since(t0)
			}
			runPath() // warm both handles and the page cache
			runBare()
			var tPath, tBare time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for r := 0; r < 3; r++ {
					if r%2 == 0 {
						tPath += runPath()
						tBare += runBare()
					} else {
						tBare += runBare()
						tPath += runPath()
					}
				}
			}
			b.StopTimer()
			reads := float64(3 * n * b.N)
			pathRate, bareRate := reads/tPath.Seconds(), reads/tBare.Seconds()
			b.ReportMetric(pathRate, "path_patches/s")
			b.ReportMetric(bareRate, "bare_patches/s")
			b.ReportMetric(pathRate/bareRate, "ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkTileStage times the whole tile stage on the benchmark slide and
// reports the tissue-mask time and the process's peak resident memory.
func BenchmarkTileStage(b *testing.B) {
	path := benchSlide(b)
	work := Work{Dir: b.TempDir()}
	in := Input{Path: path, ID: slide.ID(path)}
	opt := DefaultTileOptions()
	var maskTime, total time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r := TileSlide(context.Background(), in, work, opt)
		if r.Err != nil {
			b.Fatal(r.Err)
		}
		total += time.Since(t0)
		maskTime += r.MaskTime
		if r.NumPatches < 1000 {
			b.Fatalf("only %d patches", r.NumPatches)
		}
	}
	b.StopTimer()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(maskTime.Seconds()/float64(b.N), "mask_s")
	b.ReportMetric(total.Seconds()/float64(b.N), "stage_s")
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak_RSS_MB")
}
