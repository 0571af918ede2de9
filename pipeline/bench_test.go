package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil"
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
// exact read path (slide + tiling.PatchReader: 512×512 at level 0 decoded
// whole by libvips and halved to 256×256; scaled JPEG decoding, measured
// by BenchmarkScaledDecode, off) with the bare libvips ceiling (the same
// regions fetched in one C loop, no Go in between). The two alternate in
// rounds on separately opened handles so machine noise hits both alike;
// the reported ratio is path/ceiling.
func BenchmarkReadPath(b *testing.B) {
	path := benchSlide(b)
	const n = 1536
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			open := func() *slide.Slide {
				s, err := slide.Open(path, slide.Options{NoScaledDecode: true})
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
			b.ResetTimer()
			tPath, tBare := alternate(b, 3, runPath, runBare)
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

// alternate runs x and y rounds times in each of b.N iterations, x first
// in even rounds and y first in odd ones, so that machine noise hits both
// alike, and returns the total time each took.
func alternate(b *testing.B, rounds int, x, y func() time.Duration) (tx, ty time.Duration) {
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			if r%2 == 0 {
				tx += x()
				ty += y()
			} else {
				ty += y()
				tx += x()
			}
		}
	}
	return tx, ty
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
	b.ReportMetric(maskTime.Seconds()/float64(b.N), "mask_s")
	b.ReportMetric(total.Seconds()/float64(b.N), "stage_s")
	b.ReportMetric(testutil.PeakRSSMB(), "peak_RSS_MB")
}

// BenchmarkScaledDecode measures, on one core, the embed stage's
// read+preprocess path on the benchmark slide (512 px at level 0 → 256 at
// 20×) with scaled JPEG decoding against the exact path (every pixel
// decoded by libvips' tiffload, then box-averaged), and the scaled read
// against its ceiling: bare libjpeg-turbo decoding of the same tiles at
// 1/2 scale, whole, from memory, in one C loop (and the same through
// libvips' jpegload_buffer with shrink 2, the alternative that was not
// kept: vips/bare). The preparation is the
// encoder contract's: CLIP (Pillow bicubic 256→224 + normalise, the CPU's
// contract) and raw (uint8 patches, resized on the GPU). The modes
// alternate chunk by chunk (the machine is shared: noise then hits all
// alike) on separately opened slides; times are the process's CPU time, so
// the rates are per core; the ratios are reported.
func BenchmarkScaledDecode(b *testing.B) {
	path := benchSlide(b)
	const n, chunk = 768, 64
	open := func(no bool) *slide.Slide {
		s, err := slide.Open(path, slide.Options{NoScaledDecode: no})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	sScaled, sExact, sBare := open(false), open(true), open(false)
	defer sScaled.Close()
	defer sExact.Close()
	defer sBare.Close()
	plan, patches := benchPatches(b, sScaled, n)
	if plan.Level != 0 || plan.ReadSize != 512 || !sScaled.ScaledDecoding(0, 2) || sExact.ScaledDecoding(0, 2) {
		b.Fatalf("plan %+v: want 512 px at level 0 with scaled decoding on one slide only", plan)
	}
	var bare []*slide.BareTiles
	for c := 0; c < n; c += chunk {
		var regions [][4]int
		for _, p := range patches[c : c+chunk] {
			regions = append(regions, [4]int{int(p.X), int(p.Y), plan.ReadSize, plan.ReadSize})
		}
		bt, err := sBare.LoadTilesBare(0, regions)
		if err != nil {
			b.Fatal(err)
		}
		defer bt.Free()
		bare = append(bare, bt)
	}
	for _, contract := range []string{"clip", "raw"} {
		b.Run("contract="+contract, func(b *testing.B) {
			enc := testEncoder(b, "tiny-"+contract+".onnx")
			fb, err := enc.NewBatch(64)
			if err != nil {
				b.Fatal(err)
			}
			defer fb.Close()
			prep := enc.NewPreparer()
			dst := raster.New(plan.PatchSize, plan.PatchSize)
			prScaled, prExact := tiling.NewPatchReader(sScaled, plan), tiling.NewPatchReader(sExact, plan)
			run := func(pr *tiling.PatchReader, ps []tiling.Patch, withPrep bool) time.Duration {
				t0 := testutil.ProcessCPU()
				for i, p := range ps {
					if err := pr.Read(p.X, p.Y, dst); err != nil {
						b.Fatal(err)
					}
					if withPrep {
						if err := prep.Prepare(dst, fb, i%fb.Cap); err != nil {
							b.Fatal(err)
						}
					}
				}
				return testutil.ProcessCPU() - t0
			}
			decode := func(bt *slide.BareTiles) time.Duration {
				t0 := testutil.ProcessCPU()
				if err := bt.Decode(2); err != nil {
					b.Fatal(err)
				}
				return testutil.ProcessCPU() - t0
			}
			decodeVips := func(bt *slide.BareTiles) time.Duration {
				t0 := testutil.ProcessCPU()
				if err := bt.DecodeVips(2); err != nil {
					b.Fatal(err)
				}
				return testutil.ProcessCPU() - t0
			}
			// Times are the process's CPU time (this goroutine's, libvips'
			// worker threads', the runtime's): per-core rates that the
			// other processes of a shared machine do not skew as they skew
			// wall time.
			run(prScaled, patches, true) // warm the handles and the page cache
			run(prExact, patches, true)
			var tScaled, tExact, tRead, tBare, tVips time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for c := 0; c < n/chunk; c++ {
					ps := patches[c*chunk : (c+1)*chunk]
					if c%2 == 0 {
						tScaled += run(prScaled, ps, true)
						tExact += run(prExact, ps, true)
						tRead += run(prScaled, ps, false)
						tBare += decode(bare[c])
						tVips += decodeVips(bare[c])
					} else {
						tVips += decodeVips(bare[c])
						tBare += decode(bare[c])
						tRead += run(prScaled, ps, false)
						tExact += run(prExact, ps, true)
						tScaled += run(prScaled, ps, true)
					}
				}
			}
			b.StopTimer()
			k := float64(n * b.N)
			scaled, exact, read, ceil := k/tScaled.Seconds(), k/tExact.Seconds(), k/tRead.Seconds(), k/tBare.Seconds()
			b.ReportMetric(scaled, "scaled_patches/s")
			b.ReportMetric(exact, "exact_patches/s")
			b.ReportMetric(scaled/exact, "scaled/exact")
			b.ReportMetric(read, "scaled_read_patches/s")
			b.ReportMetric(ceil, "bare_decode_patches/s")
			b.ReportMetric(read/ceil, "read/bare")
			b.ReportMetric(scaled/ceil, "read+prep/bare")
			b.ReportMetric(k/tVips.Seconds(), "vips_shrink_decode_patches/s")
			b.ReportMetric(k/tVips.Seconds()/ceil, "vips/bare")
			b.ReportMetric(0, "ns/op")
		})
	}
}
