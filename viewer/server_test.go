package viewer

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/synth"
)

// testWork makes a work folder with one generated slide "s1" (a pyramid)
// and returns the server over it and the open slide.
func testWork(t testing.TB) (*Server, *slide.Slide, string) {
	return testWorkOf(t, false)
}

// testWorkOf is testWork, the slide stored as a DICOM series (opened from
// its level 0 instance) when dicom is set.
func testWorkOf(t testing.TB, dicom bool) (*Server, *slide.Slide, string) {
	t.Helper()
	dir := t.TempDir()
	sp := filepath.Join(dir, "s1.tif")
	o := synth.SlideOptions{Width: 1300, Height: 900, Pyramid: true, MPP: 0.25, Quality: 95,
		Tissue: []image.Rectangle{image.Rect(100, 80, 1200, 850)}}
	err := synth.WriteSlide(sp, o)
	if dicom {
		var files []string
		files, err = synth.WriteDICOM(dir, "s1", o)
		if err == nil {
			sp = files[0]
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	sl, err := slide.Open(sp, slide.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sl.Close() })
	work := pipeline.Work{Dir: filepath.Join(dir, "work")}
	rec := pipeline.SlideRecord{Slide: sl.Meta}
	if err := os.MkdirAll(work.SlideDir("s1"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(work.SlideJSON("s1"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Work: work, MaxSlides: 1, MaxTiles: 4, Quality: 95})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, sl, work.Dir
}

func get(t *testing.T, h http.Handler, url string) (int, []byte, http.Header) {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("GET", url, nil))
	b, _ := io.ReadAll(rr.Body)
	return rr.Code, b, rr.Header()
}

func TestServeDZIAndTiles(t *testing.T) {
	srv, sl, _ := testWork(t)
	checkDZIAndTiles(t, srv, sl)
}

// A DICOM slide is served like a TIFF one: its tiles are its pixels, and
// reduced levels are level 0 reduced.
func TestServeDICOM(t *testing.T) {
	srv, sl, _ := testWorkOf(t, true)
	if sl.Meta.Format != "dicom" || len(sl.Meta.Levels) < 3 {
		t.Fatalf("meta %+v", sl.Meta)
	}
	checkDZIAndTiles(t, srv, sl)
	checkReducedTiles(t, srv, sl)
}

func checkDZIAndTiles(t *testing.T, srv *Server, sl *slide.Slide) {
	t.Helper()
	code, b, _ := get(t, srv, "/slides/s1.dzi")
	if code != 200 || !strings.Contains(string(b), `Width="1300"`) || !strings.Contains(string(b), `Height="900"`) {
		t.Fatalf("dzi: %d %s", code, b)
	}
	g, _ := NewGeometry(1300, 900)
	top := g.Levels() - 1
	for _, c := range []struct {
		level    int
		col, row int64
	}{{top, 0, 0}, {top, 1, 2}, {top, 4, 3}, {top, 5, 3}, {top - 1, 1, 1}, {top - 2, 0, 0}, {0, 0, 0}} {
		tl, _ := g.Tile(c.level, c.col, c.row)
		code, b, h := get(t, srv, "/slides/s1_files/"+itoa(int64(c.level))+"/"+itoa(c.col)+"_"+itoa(c.row)+".jpeg")
		if code != 200 || h.Get("Content-Type") != "image/jpeg" {
			t.Fatalf("tile %+v: %d %s", c, code, b)
		}
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if int64(img.Bounds().Dx()) != tl.W || int64(img.Bounds().Dy()) != tl.H {
			t.Fatalf("tile %+v: %v, want %dx%d", c, img.Bounds(), tl.W, tl.H)
		}
		if c.level != top {
			continue
		}
		// the deepest level is level 0's pixels
		want, err := sl.ReadRegion(0, int(tl.X), int(tl.Y), int(tl.W), int(tl.H))
		if err != nil {
			t.Fatal(err)
		}
		// aligned, the tile differs from the slide by JPEG noise only;
		// one pixel off, by much more
		diff := func(dx, dy int) float64 {
			var sum, n float64
			for y := 1; y < want.H-1; y++ {
				for x := 1; x < want.W-1; x++ {
					r, g, bb, _ := img.At(x, y).RGBA()
					wr, wg, wb := want.At(x+dx, y+dy)
					sum += abs(float64(r>>8)-float64(wr)) + abs(float64(g>>8)-float64(wg)) + abs(float64(bb>>8)-float64(wb))
					n += 3
				}
			}
			return sum / n
		}
		d0 := diff(0, 0)
		if d0 > 4 {
			t.Errorf("tile %+v: mean difference %.2f from the slide's pixels", c, d0)
		}
		for _, d := range [][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
			if dd := diff(d[0], d[1]); dd <= d0 && !(c.col == 5 && c.row == 3) { // 5,3: glass only
				t.Errorf("tile %+v: shifted by %v it matches as well (%.2f ≤ %.2f)", c, d, dd, d0)
			}
		}
	}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func TestServe404(t *testing.T) {
	srv, _, _ := testWork(t)
	g, _ := NewGeometry(1300, 900)
	cols, rows, _ := g.Tiles(g.Levels() - 1)
	top := itoa(int64(g.Levels() - 1))
	for _, u := range []string{
		"/slides/nope.dzi", "/slides/s1_files/" + itoa(int64(g.Levels())) + "/0_0.jpeg", "/slides/s1_files/-1/0_0.jpeg",
		"/slides/s1_files/" + top + "/" + itoa(cols) + "_0.jpeg", "/slides/s1_files/" + top + "/0_" + itoa(rows) + ".jpeg",
		"/slides/s1_files/" + top + "/-1_0.jpeg", "/slides/s1_files/x/0_0.jpeg", "/slides/s1_files/1/0.jpeg",
		"/slides/../s1.dzi", "/slides/.hidden.dzi", "/slides/s1/attention.json", "/slides/nope/view", "/slides/s1/other",
		"/slides/s1_files/99999999999999999999/0_0.jpeg", "/viewer/nope.js", "/viewer/../server.go", "/elsewhere",
	} {
		if code, b, _ := get(t, srv, u); code != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", u, code, b)
		}
	}
}

func TestServeAttentionAndView(t *testing.T) {
	srv, _, dir := testWork(t)
	att := `{"patch_size_level0":256,"patches":[[0,0,0.5],[256,0,1]],"prediction":"2+","probabilities":[0.1,0.2,0.6,0.1]}`
	if err := os.WriteFile(filepath.Join(dir, "slides", "s1", "attention.json"), []byte(att), 0o644); err != nil {
		t.Fatal(err)
	}
	code, b, h := get(t, srv, "/slides/s1/attention.json")
	if code != 200 || string(b) != att || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("attention: %d %s", code, b)
	}
	code, b, h = get(t, srv, "/slides/s1/view")
	if code != 200 || !strings.Contains(string(b), `data-dzi="/slides/s1.dzi"`) || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("view: %d %s", code, b)
	}
	if HaveOpenSeadragon() != strings.Contains(string(b), "openseadragon.min.js") {
		t.Errorf("view: OpenSeadragon embedded %v, page:\n%s", HaveOpenSeadragon(), b)
	}
	if !HaveOpenSeadragon() && !strings.Contains(string(b), "fetch-openseadragon.sh") {
		t.Errorf("view without assets does not say how to fetch them:\n%s", b)
	}
	if code, _, _ := get(t, srv, "/viewer/viewer.js"); code != 200 {
		t.Errorf("viewer.js: %d", code)
	}
}

// A slide the watcher moved out of its inbox is found where its journal
// says it went; a slide gone without one is 404.
func TestServeMovedSlide(t *testing.T) {
	srv, sl, work := testWork(t)
	src := sl.Meta.Path
	done := filepath.Join(filepath.Dir(src), "done")
	if err := os.MkdirAll(done, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, filepath.Join(done, "s1.tif")); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := get(t, srv, "/slides/s1.dzi"); code != http.StatusNotFound {
		t.Fatalf("moved without a journal: %d %s", code, b)
	}
	if err := os.MkdirAll(filepath.Join(work, "watch"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "watch", "s1.json"), []byte(`{"id":"s1","moved_to":"done/s1.tif"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := get(t, srv, "/slides/s1.dzi"); code != 200 {
		t.Fatalf("moved with a journal: %d %s", code, b)
	}
	if err := os.WriteFile(filepath.Join(work, "watch", "s1.json"), []byte(`{"id":"s1","moved_to":"../../etc/passwd"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv2, err := New(Options{Work: pipeline.Work{Dir: work}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if code, _, _ := get(t, srv2, "/slides/s1.dzi"); code != http.StatusNotFound {
		t.Errorf("journal pointing out of the inbox: %d", code)
	}
}

// A tile of a reduced Deep Zoom level shows the slide's level-0 pixels
// there, reduced (from whichever slide level it was read).
func TestServeReducedTiles(t *testing.T) {
	srv, sl, _ := testWork(t)
	checkReducedTiles(t, srv, sl)
}

func checkReducedTiles(t *testing.T, srv *Server, sl *slide.Slide) {
	t.Helper()
	g, _ := NewGeometry(1300, 900)
	top := g.Levels() - 1
	for _, c := range []struct {
		down     int // levels below the deepest
		col, row int64
	}{{1, 1, 1}, {2, 0, 0}, {2, 1, 0}, {3, 0, 0}} {
		l := top - c.down
		tl, _ := g.Tile(l, c.col, c.row)
		_, b, _ := get(t, srv, "/slides/s1_files/"+itoa(int64(l))+"/"+itoa(c.col)+"_"+itoa(c.row)+".jpeg")
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("level %d tile %d,%d: %v (%s)", l, c.col, c.row, err, b)
		}
		f := int64(1) << c.down
		// as DeepZoomGenerator: the region is clipped to the slide, then
		// stretched to the tile
		full, err := sl.ReadRegion(0, int(tl.X*f), int(tl.Y*f), int(min(tl.W*f, 1300-tl.X*f)), int(min(tl.H*f, 900-tl.Y*f)))
		if err != nil {
			t.Fatal(err)
		}
		want, err := raster.Resize(full, int(tl.W), int(tl.H))
		if err != nil {
			t.Fatal(err)
		}
		var sum, n float64
		for y := 0; y < want.H; y++ {
			for x := 0; x < want.W; x++ {
				r, g, bb, _ := img.At(x, y).RGBA()
				wr, wg, wb := want.At(x, y)
				sum += abs(float64(r>>8)-float64(wr)) + abs(float64(g>>8)-float64(wg)) + abs(float64(bb>>8)-float64(wb))
				n += 3
			}
		}
		if mean := sum / n; mean > 8 {
			t.Errorf("level %d (downsample %d) tile %d,%d: mean difference %.2f from level 0 reduced", l, f, c.col, c.row, mean)
		} else {
			t.Logf("level %d (downsample %d) tile %d,%d: mean difference %.2f", l, f, c.col, c.row, mean)
		}
	}
}

// Many readers at once over two slides with room for one open slide: every
// tile is served, and the same as served alone; a slide tiled again
// (slide.json rewritten) is opened again.
func TestServeConcurrentEviction(t *testing.T) {
	srv, _, work := testWork(t)
	// a second slide: the same file under another id
	b, err := os.ReadFile(filepath.Join(work, "slides", "s1", "slide.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "slides", "s2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "slides", "s2", "slide.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	urls := []string{}
	for _, id := range []string{"s1", "s2"} {
		for _, tile := range []string{"11/0_0", "11/1_1", "10/0_0", "9/0_0", "11/2_1"} {
			urls = append(urls, "/slides/"+id+"_files/"+tile+".jpeg")
		}
	}
	want := map[string][]byte{}
	for _, u := range urls {
		code, b, _ := get(t, srv, u)
		if code != 200 {
			t.Fatalf("%s: %d %s", u, code, b)
		}
		want[u] = b
	}
	errs := make(chan string, 64)
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 20; i++ {
				u := urls[(g*7+i)%len(urls)]
				code, b, _ := get(t, srv, u)
				if code != 200 || !bytes.Equal(b, want[u]) {
					errs <- u
				}
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	close(errs)
	for u := range errs {
		t.Errorf("%s: not served as alone", u)
	}
	// tiled again: the new record's slide (here: gone) is what counts
	rec := strings.Replace(string(b), `"path":"`, `"path":"/nonexistent`, 1)
	later := time.Now().Add(2 * time.Second)
	p := filepath.Join(work, "slides", "s2", "slide.json")
	if err := os.WriteFile(p, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, srv, "/slides/s2_files/11/0_0.jpeg"); code != http.StatusNotFound {
		t.Errorf("slide tiled again from a file now gone: %d, want 404", code)
	}
	if code, _, _ := get(t, srv, "/slides/s1_files/11/0_0.jpeg"); code != 200 {
		t.Errorf("the other slide: %d", code)
	}
}

// The tile cache is bounded by bytes: with room for about three of these
// tiles, it holds what fits, never more than its budget, and drops the
// least recently used first.
func TestTileCacheBytes(t *testing.T) {
	_, _, dir := testWork(t)
	ctx := t.Context()
	big, err := New(Options{Work: pipeline.Work{Dir: dir}, CacheBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	tiles := [][2]int64{{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}}
	cost := map[[2]int64]int64{}
	var total int64
	for _, c := range tiles {
		b, err := big.Tile(ctx, "s1", 11, c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		_, after := big.CacheStats()
		cost[c] = after - total
		total = after
		if cost[c] < int64(len(b)) {
			t.Fatalf("tile %v counts %d bytes, its JPEG alone %d", c, cost[c], len(b))
		}
	}
	if n, _ := big.CacheStats(); n != len(tiles) {
		t.Fatalf("a large cache holds %d tiles, want %d", n, len(tiles))
	}
	budget := cost[tiles[0]] + cost[tiles[1]] + cost[tiles[2]] + 10
	for _, c := range []struct {
		name   string
		budget int64
		wantN  int
	}{
		{"three fit", budget, 3},
		{"none kept", -1, 0},
		{"smaller than a tile", 100, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, err := New(Options{Work: pipeline.Work{Dir: dir}, CacheBytes: c.budget})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			for i, tc := range tiles {
				if _, err := srv.Tile(ctx, "s1", 11, tc[0], tc[1]); err != nil {
					t.Fatal(err)
				}
				if i == 3 { // touch the oldest still kept: tile 1 becomes the LRU
					if _, err := srv.Tile(ctx, "s1", 11, tiles[1][0], tiles[1][1]); err != nil {
						t.Fatal(err)
					}
				}
				if _, b := srv.CacheStats(); b > max(c.budget, 0) {
					t.Fatalf("after tile %d the cache counts %d bytes, over its budget %d", i, b, c.budget)
				}
			}
			n, b := srv.CacheStats()
			if n < c.wantN-1 || n > c.wantN {
				t.Errorf("cache holds %d tiles (%d bytes), want %d (budget %d)", n, b, c.wantN, c.budget)
			}
			if c.wantN == 3 {
				// kept: the last two and the one touched after tile 3; dropped: the rest
				var kept []int
				for i, tc := range tiles {
					if srv.inCache("s1", 11, tc) {
						kept = append(kept, i)
					}
				}
				if n == 3 && !slices.Equal(kept, []int{1, 4, 5}) && !slices.Equal(kept, []int{3, 4, 5}) {
					t.Errorf("kept tiles %v, want the most recently used", kept)
				}
				if !slices.Contains(kept, 5) || slices.Contains(kept, 0) {
					t.Errorf("kept tiles %v: the newest must stay and the oldest go", kept)
				}
			}
		})
	}
}

// Every model's stored attention is served by ?model=; unknown or
// malformed model ids are 404, and the view page offers each run.
func TestServeModelAttention(t *testing.T) {
	srv, _, dir := testWork(t)
	work := pipeline.Work{Dir: dir}
	latest := `{"patch_size_level0":256,"patches":[[0,0,1]],"prediction":"3+","model":"bbbb","time":"2026-12-02T11:00:00Z"}`
	older := `{"patch_size_level0":256,"patches":[[0,0,0.5]],"prediction":"1+","model":"aaaa","variant":"pama","time":"2026-12-01T11:00:00Z"}`
	if err := os.MkdirAll(work.AttentionDir("s1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string]string{work.AttentionJSON("s1"): latest, work.ModelAttentionJSON("s1", "bbbb"): latest, work.ModelAttentionJSON("s1", "aaaa"): older} {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		url  string
		code int
		want string
	}{
		{"/slides/s1/attention.json", 200, latest},
		{"/slides/s1/attention.json?model=bbbb", 200, latest},
		{"/slides/s1/attention.json?model=aaaa", 200, older},
		{"/slides/s1/attention.json?model=cccc", 404, "no attention of model cccc"},
		{"/slides/s1/attention.json?model=../s1/attention", 404, ""},
		{"/slides/s1/attention.json?model=a.b", 404, ""},
		{"/slides/s1/view?model=aaaa", 200, `data-attention="/slides/s1/attention.json?model=aaaa"`},
		{"/slides/s1/view?model=cccc", 404, "no attention of model cccc"},
		{"/slides/s1/view?model=..%2Fx", 404, ""},
		{"/slides/s1/view", 200, `<option value="aaaa">pama aaaa · 1&#43; · 2026-12-01T11:00:00Z</option>`},
	} {
		code, b, _ := get(t, srv, c.url)
		if code != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d, want %d with %q:\n%s", c.url, code, c.code, c.want, b)
		}
	}
	if runs := srv.ModelRuns("s1"); len(runs) != 2 || runs[0].Model != "bbbb" || runs[1].Variant != "pama" {
		t.Errorf("model runs, latest first: %+v", runs)
	}
}

// Whatever the path, the server answers 200, 404 or 405, never 500 or a
// crash.
func FuzzServePath(f *testing.F) {
	srv, _, _ := testWork(f)
	for _, s := range []string{"/slides/s1.dzi", "/slides/s1_files/11/0_0.jpeg", "/slides/s1_files/0/0_0.jpeg", "/slides/s1_files/11/99_0.jpeg",
		"/slides/s1_files/-3/0_0.jpeg", "/slides/s1/view", "/slides/s1/attention.json?model=x", "/slides/s1/tiling.json", "/viewer/viewer.js",
		"/slides/s1_files/11/0_0.jpeg_files/1/0_0.jpeg", "/slides/_files/1/0_0.jpeg", "/slides/s1_files/9223372036854775807/0_0.jpeg",
		"/slides/s1_files/11/9223372036854775807_9223372036854775807.jpeg", "/slides/%2e%2e/x.dzi", "/slides/a//b.dzi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		req, err := http.NewRequest("GET", "http://x"+p, nil)
		if err != nil || req.URL.Path == "" {
			return
		}
		rr := httptest.NewRecorder()
		srv.ServeHTTP(rr, req)
		if rr.Code != 200 && rr.Code != 404 && rr.Code != 405 {
			t.Errorf("%q: %d %s", p, rr.Code, rr.Body.String())
		}
	})
}

// inCache says whether tile (col, row) of level of slide id is cached (tests).
func (s *Server) inCache(id string, level int, cr [2]int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	suffix := "\x00" + strconv.Itoa(level) + "/" + strconv.FormatInt(cr[0], 10) + "_" + strconv.FormatInt(cr[1], 10)
	for k := range s.tiles {
		if strings.HasPrefix(k, id+"\x00") && strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}
