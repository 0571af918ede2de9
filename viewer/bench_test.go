package viewer

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/slide"
)

// benchWork is a work folder over the large generated slide of `make
// bench` (40000×30000 at 40×, levels at downsample 1, 4, 16, 64), made
// once into .cache/bench; HER2WSI_BENCH_SLIDE points elsewhere.
func benchWork(b *testing.B) (pipeline.Work, *slide.Slide) {
	p := os.Getenv("HER2WSI_BENCH_SLIDE")
	if p == "" {
		p = filepath.Join("..", ".cache", "bench", "bench-40x.svs")
	}
	if _, err := os.Stat(p); err != nil {
		b.Skipf("benchmark slide %s missing: run `make bench-viewer` (it generates it)", p)
	}
	p, _ = filepath.Abs(p)
	sl, err := slide.Open(p, slide.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sl.Close() })
	work := pipeline.Work{Dir: filepath.Join(b.TempDir(), "work")}
	if err := os.MkdirAll(work.SlideDir("s1"), 0o755); err != nil {
		b.Fatal(err)
	}
	js, _ := json.Marshal(pipeline.SlideRecord{Slide: sl.Meta})
	if err := os.WriteFile(work.SlideJSON("s1"), js, 0o644); err != nil {
		b.Fatal(err)
	}
	return work, sl
}

// BenchmarkViewerTiles: random tiles at the deepest Deep Zoom level through
// Server.Tile (read, resize where needed, JPEG), one client, with a cold
// cache (a new server per batch of 256 tiles, so the slide is opened again
// too) and a warm one (the same tiles again), against the bare libvips
// region reads of the same areas (slide.ReadRegionsBare, the ceiling).
func BenchmarkViewerTiles(b *testing.B) {
	work, sl := benchWork(b)
	l0 := sl.Meta.Levels[0]
	g, err := NewGeometry(l0.Width, l0.Height)
	if err != nil {
		b.Fatal(err)
	}
	var ds []float64
	var sizes [][2]int64
	for _, lv := range sl.Meta.Levels {
		ds, sizes = append(ds, lv.Downsample), append(sizes, [2]int64{lv.Width, lv.Height})
	}
	top := g.Levels() - 1
	cols, rows, _ := g.Tiles(top)
	const n, batch = 2048, 256
	rng := rand.New(rand.NewPCG(1, 2))
	tiles := make([]Tile, n)
	regions := make([][4]int, n)
	for i := range tiles {
		t, _ := g.Tile(top, rng.Int64N(cols), rng.Int64N(rows))
		tiles[i] = t
		rd := g.ReadFor(t, ds, sizes)
		if rd.SlideLevel != 0 {
			b.Fatalf("deepest level read from slide level %d", rd.SlideLevel)
		}
		regions[i] = [4]int{int(rd.X), int(rd.Y), int(rd.W), int(rd.H)}
	}
	// Per batch, alternating which goes first so that neither gains from
	// the other's warm caches: the bare libvips reads of the batch's
	// regions (one C loop, pixels discarded) and the cold server's tiles,
	// each with the slide opened afresh.
	bareBatch := func(rs [][4]int) time.Duration {
		t0 := time.Now()
		s, err := slide.Open(sl.Meta.Path, slide.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.ReadRegionsBare(0, rs); err != nil {
			b.Fatal(err)
		}
		s.Close()
		return time.Since(t0)
	}
	ctx := context.Background()
	coldBatch := func(ts []Tile) (time.Duration, *Server) {
		t0 := time.Now()
		srv, err := New(Options{Work: work, CacheBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range ts {
			if _, err := srv.Tile(ctx, "s1", t.Level, t.Col, t.Row); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0), srv
	}
	var cold, warm, bare time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var last *Server
		for i := 0; i < n; i += batch {
			if last != nil {
				last.Close()
			}
			var dc, db time.Duration
			if (i/batch)%2 == 0 {
				db = bareBatch(regions[i : i+batch])
				dc, last = coldBatch(tiles[i : i+batch])
			} else {
				dc, last = coldBatch(tiles[i : i+batch])
				db = bareBatch(regions[i : i+batch])
			}
			cold, bare = cold+dc, bare+db
		}

		// Warm: the last batch's tiles again, from the server's cache.
		t0 := time.Now()
		for range n / batch {
			for _, t := range tiles[n-batch:] {
				if _, err := last.Tile(ctx, "s1", t.Level, t.Col, t.Row); err != nil {
					b.Fatal(err)
				}
			}
		}
		warm += time.Since(t0)
		last.Close()
	}
	b.StopTimer()
	total := float64(n * b.N)
	rate := func(d time.Duration) float64 { return total / d.Seconds() }
	b.ReportMetric(rate(bare), "bare-tiles/s")
	b.ReportMetric(rate(cold), "cold-tiles/s")
	b.ReportMetric(rate(warm), "warm-tiles/s")
	b.ReportMetric(rate(cold)/rate(bare), "cold/bare")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkViewerPan: 8 clients pan at the deepest level through the HTTP
// handler, each a walk of neighbouring tiles from its own random start;
// reports the tiles per second of all of them and the peak memory (the
// process's VmHWM and the Go heap's peak, sampled). Run it in its own
// process so the peak is its own.
func BenchmarkViewerPan(b *testing.B) {
	work, sl := benchWork(b)
	l0 := sl.Meta.Levels[0]
	g, _ := NewGeometry(l0.Width, l0.Height)
	top := g.Levels() - 1
	cols, rows, _ := g.Tiles(top)
	const clients, steps = 8, 400
	var heapPeak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > heapPeak.Load() {
				heapPeak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var elapsed time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for it := range b.N {
		srv, err := New(Options{Work: work})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(it), uint64(c)))
				col, row := rng.Int64N(cols), rng.Int64N(rows)
				dc, dr := int64(1), int64(0)
				for range steps {
					// A viewport's worth of neighbours: the tile and the
					// one below, then one step on (turning now and then).
					for _, r := range []int64{row, min(row+1, rows-1)} {
						url := "/slides/s1_files/" + strconv.Itoa(top) + "/" + strconv.FormatInt(col, 10) + "_" + strconv.FormatInt(r, 10) + ".jpeg"
						rr := httptest.NewRecorder()
						srv.ServeHTTP(rr, httptest.NewRequest("GET", url, nil))
						if rr.Code != 200 {
							b.Errorf("%s: %d", url, rr.Code)
							return
						}
					}
					if rng.IntN(8) == 0 {
						dc, dr = dr, dc
					}
					col, row = (col+dc+cols)%cols, (row+dr+rows)%rows
				}
			}()
		}
		wg.Wait()
		elapsed += time.Since(t0)
		srv.Close()
	}
	b.StopTimer()
	close(stop)
	sampler.Wait()
	b.ReportMetric(float64(clients*steps*2*b.N)/elapsed.Seconds(), "tiles/s")
	b.ReportMetric(float64(heapPeak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(vmHWMMB(), "peak-RSS-MB")
	b.ReportMetric(0, "ns/op")
}

// vmHWMMB is the process's peak resident memory (Linux; 0 elsewhere).
func vmHWMMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
