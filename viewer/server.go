package viewer

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/slide"
)

// Server defaults (see Options).
const (
	DefaultMaxSlides   = 8
	DefaultCacheBytes  = 256 << 20 // ~13 000 tiles of ~20 kB
	DefaultJPEGQuality = 80
)

// tileOverhead is what the cache counts per tile besides its JPEG and key
// (list element, map entry, struct).
const tileOverhead = 160

// Options configure a Server.
type Options struct {
	Work pipeline.Work
	// MaxSlides is how many slides stay open at once (least recently
	// used closed first; 0: DefaultMaxSlides).
	MaxSlides int
	// CacheBytes bounds the encoded tiles kept in memory, counted as their
	// JPEG bytes plus key and bookkeeping (0: DefaultCacheBytes; negative:
	// none kept). Least recently used tiles go first.
	CacheBytes int64
	// MaxTiles, when positive, also bounds how many tiles are kept.
	MaxTiles int
	// Concurrency is how many tiles are read at once (0: the CPUs).
	Concurrency int
	// Quality is the tiles' JPEG quality (0: DefaultJPEGQuality).
	Quality int
}

// Server answers, under /slides/:
//
//	/slides/<id>.dzi                          the Deep Zoom descriptor
//	/slides/<id>_files/<level>/<col>_<row>.jpeg  a tile, read from the slide
//	/slides/<id>/attention.json               the model's attention per patch
//	/slides/<id>/tiling.json                  the tissue outline and the patch grid
//	/slides/<id>/view                         the OpenSeadragon viewer page
//
// and /viewer/ its scripts. The slide is the file named in WORK's
// slides/<id>/slide.json. Anything unknown or out of range is 404. It does
// no authentication: mount it behind the status page (watch.StatusPage).
type Server struct {
	opt  Options
	root *os.Root
	sem  chan struct{}

	mu     sync.Mutex
	slides map[string]*list.Element // of *openSlide
	lru    *list.List
	tiles  map[string]*list.Element // of *cachedTile
	tlru   *list.List
	tbytes int64              // what the cached tiles count (cost)
	reads  singleflight.Group // one read per tile however many ask at once
}

type openSlide struct {
	id      string
	s       *slide.Slide
	geom    *Geometry
	ds      []float64
	sizes   [][2]int64
	stamp   string // slide.json's modification time and size when opened
	refs    int
	evicted bool
}

type cachedTile struct {
	key string
	b   []byte
}

// New serves opt.Work's slides.
func New(opt Options) (*Server, error) {
	if opt.MaxSlides <= 0 {
		opt.MaxSlides = DefaultMaxSlides
	}
	if opt.CacheBytes == 0 {
		opt.CacheBytes = DefaultCacheBytes
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = runtime.NumCPU()
	}
	if opt.Quality <= 0 || opt.Quality > 100 {
		opt.Quality = DefaultJPEGQuality
	}
	root, err := os.OpenRoot(opt.Work.Dir)
	if err != nil {
		return nil, fmt.Errorf("viewer: %w", err)
	}
	return &Server{opt: opt, root: root, sem: make(chan struct{}, opt.Concurrency),
		slides: map[string]*list.Element{}, lru: list.New(), tiles: map[string]*list.Element{}, tlru: list.New()}, nil
}

// Close closes every open slide and the work folder.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e := s.lru.Front(); e != nil; e = e.Next() {
		o := e.Value.(*openSlide)
		o.evicted = true
		if o.refs == 0 {
			o.s.Close()
		}
	}
	s.slides, s.lru = map[string]*list.Element{}, list.New()
	return s.root.Close()
}

var errNotFound = errors.New("not found")

// validID: a slide id as the work folder holds it (it may have folders in
// front), never reaching out of slides/.
func validID(id string) bool {
	if id == "" || !fs.ValidPath(id) || strings.ContainsAny(id, "\\\x00") {
		return false
	}
	for _, seg := range strings.Split(id, "/") {
		if strings.HasPrefix(seg, ".") {
			return false
		}
	}
	return true
}

// record reads slides/<id>/slide.json.
func (s *Server) record(id string) (pipeline.SlideRecord, error) {
	var rec pipeline.SlideRecord
	if !validID(id) {
		return rec, errNotFound
	}
	b, err := s.root.ReadFile(path.Join("slides", id, "slide.json"))
	if err != nil {
		return rec, errNotFound
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("viewer: slide %s: slide.json: %w", id, err)
	}
	return rec, nil
}

// slidePath is the slide's file: where it was tiled from or, for a slide
// the watcher has since moved out of its inbox (to done/), where its
// journal (WORK/watch/<id>.json) says it went.
func (s *Server) slidePath(id string, rec pipeline.SlideRecord) (string, error) {
	p := rec.Slide.Path
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p, nil
	}
	var j struct {
		MovedTo string `json:"moved_to"`
	}
	if b, err := s.root.ReadFile(path.Join("watch", id+".json")); err == nil && json.Unmarshal(b, &j) == nil && j.MovedTo != "" && filepath.IsLocal(j.MovedTo) {
		q := filepath.Join(filepath.Dir(p), j.MovedTo)
		if fi, err := os.Stat(q); err == nil && fi.Mode().IsRegular() {
			return q, nil
		}
	}
	return "", fmt.Errorf("%w: slide %s: its file %s is gone", errNotFound, id, p)
}

// acquire opens (or finds open) the slide id; release gives it back.
// A slide tiled again (slide.json changed) is opened again.
func (s *Server) acquire(id string) (*openSlide, error) {
	if !validID(id) {
		return nil, errNotFound
	}
	stamp := ""
	if fi, err := s.root.Stat(path.Join("slides", id, "slide.json")); err == nil {
		stamp = fi.ModTime().UTC().Format(time.RFC3339Nano) + "/" + strconv.FormatInt(fi.Size(), 10)
	}
	s.mu.Lock()
	if e, ok := s.slides[id]; ok {
		o := e.Value.(*openSlide)
		if o.stamp == stamp {
			s.lru.MoveToFront(e)
			o.refs++
			s.mu.Unlock()
			return o, nil
		}
		s.evict(e)
	}
	s.mu.Unlock()
	if stamp == "" {
		return nil, errNotFound
	}
	rec, err := s.record(id)
	if err != nil {
		return nil, err
	}
	if rec.Imported != "" || rec.Slide.Path == "" {
		return nil, fmt.Errorf("%w: slide %s has no slide file here (its features were imported)", errNotFound, id)
	}
	sp, err := s.slidePath(id, rec)
	if err != nil {
		return nil, err
	}
	sl, err := slide.Open(sp, slide.Options{MPP: rec.Params.MPP, Reader: rec.Params.Reader})
	if err != nil {
		return nil, fmt.Errorf("%w: slide %s: %v", errNotFound, id, err)
	}
	l0 := sl.Meta.Levels[0]
	g, err := NewGeometry(l0.Width, l0.Height)
	if err != nil {
		sl.Close()
		return nil, err
	}
	o := &openSlide{id: id, s: sl, geom: g, stamp: stamp, refs: 1}
	for _, lv := range sl.Meta.Levels {
		o.ds = append(o.ds, lv.Downsample)
		o.sizes = append(o.sizes, [2]int64{lv.Width, lv.Height})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.slides[id]; ok { // opened meanwhile
		if old := e.Value.(*openSlide); old.stamp == stamp {
			sl.Close()
			s.lru.MoveToFront(e)
			old.refs++
			return old, nil
		}
		s.evict(e)
	}
	s.slides[id] = s.lru.PushFront(o)
	for s.lru.Len() > s.opt.MaxSlides {
		s.evict(s.lru.Back())
	}
	return o, nil
}

// evict drops an open slide from the cache, closing it once its last
// reader is done. The caller holds s.mu.
func (s *Server) evict(e *list.Element) {
	old := e.Value.(*openSlide)
	s.lru.Remove(e)
	delete(s.slides, old.id)
	old.evicted = true
	if old.refs == 0 {
		old.s.Close()
	}
}

func (s *Server) release(o *openSlide) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o.refs--
	if o.evicted && o.refs == 0 {
		o.s.Close()
	}
}

func (s *Server) cachedTile(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.tiles[key]; ok {
		s.tlru.MoveToFront(e)
		return e.Value.(*cachedTile).b, true
	}
	return nil, false
}

// cost is what a cached tile counts against Options.CacheBytes.
func (t *cachedTile) cost() int64 { return int64(len(t.b)+len(t.key)) + tileOverhead }

// keepTile caches a tile, dropping the least recently used ones until the
// cache is within its byte budget (and count, when set). A tile larger
// than the whole budget is not kept.
func (s *Server) keepTile(key string, b []byte) {
	t := &cachedTile{key: key, b: b}
	if t.cost() > s.opt.CacheBytes {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tiles[key]; ok {
		return
	}
	s.tiles[key] = s.tlru.PushFront(t)
	s.tbytes += t.cost()
	for s.tbytes > s.opt.CacheBytes || (s.opt.MaxTiles > 0 && s.tlru.Len() > s.opt.MaxTiles) {
		e := s.tlru.Back()
		old := e.Value.(*cachedTile)
		s.tlru.Remove(e)
		delete(s.tiles, old.key)
		s.tbytes -= old.cost()
	}
}

// CacheStats says how many tiles the cache holds and what they count
// against Options.CacheBytes.
func (s *Server) CacheStats() (tiles int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlru.Len(), s.tbytes
}

// Tile returns the JPEG of tile (col, row) of Deep Zoom level of slide id.
func (s *Server) Tile(ctx context.Context, id string, level int, col, row int64) ([]byte, error) {
	o, err := s.acquire(id)
	if err != nil {
		return nil, err
	}
	defer s.release(o)
	t, ok := o.geom.Tile(level, col, row)
	if !ok {
		return nil, fmt.Errorf("%w: slide %s has no tile %d/%d_%d", errNotFound, id, level, col, row)
	}
	key := id + "\x00" + o.stamp + "\x00" + strconv.Itoa(level) + "/" + strconv.FormatInt(col, 10) + "_" + strconv.FormatInt(row, 10)
	if b, ok := s.cachedTile(key); ok {
		return b, nil
	}
	v, err, _ := s.reads.Do(key, func() (any, error) {
		// Shared by every request for this tile: the first one's
		// cancellation does not fail the others.
		return s.readTile(context.WithoutCancel(ctx), o, t, key)
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// regionPool holds the read buffers of readTile (a tile's region is
// encoded, never kept).
var regionPool = sync.Pool{New: func() any { return &raster.RGB{} }}

func (s *Server) readTile(ctx context.Context, o *openSlide, t Tile, key string) ([]byte, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	rd := o.geom.ReadFor(t, o.ds, o.sizes)
	img := regionPool.Get().(*raster.RGB)
	defer regionPool.Put(img)
	n := 3 * int(rd.W) * int(rd.H)
	if cap(img.Pix) < n {
		img.Pix = make([]uint8, n)
	}
	img.W, img.H, img.Pix = int(rd.W), int(rd.H), img.Pix[:n]
	if err := o.s.ReadRegionInto(rd.SlideLevel, int(rd.X), int(rd.Y), img); err != nil {
		return nil, err
	}
	tile := img
	if int64(img.W) != t.W || int64(img.H) != t.H {
		var err error
		if tile, err = raster.Resize(img, int(t.W), int(t.H)); err != nil {
			return nil, err
		}
	}
	b, err := slide.EncodeJPEG(tile, s.opt.Quality)
	if err != nil {
		return nil, fmt.Errorf("viewer: slide %s: tile: %w", o.id, err)
	}
	s.keepTile(key, b)
	return b, nil
}

// Geometry returns the Deep Zoom pyramid of slide id.
func (s *Server) Geometry(id string) (*Geometry, error) {
	o, err := s.acquire(id)
	if err != nil {
		return nil, err
	}
	defer s.release(o)
	return o.geom, nil
}

// parseTile splits "<id>_files/<level>/<col>_<row>.jpeg".
func parseTile(p string) (id string, level int, col, row int64, ok bool) {
	i := strings.LastIndex(p, "_files/")
	if i <= 0 {
		return
	}
	id, rest := p[:i], p[i+len("_files/"):]
	ls, name, found := strings.Cut(rest, "/")
	if !found || !strings.HasSuffix(name, ".jpeg") {
		return
	}
	cs, rs, found := strings.Cut(strings.TrimSuffix(name, ".jpeg"), "_")
	l, err1 := strconv.Atoi(ls)
	c, err2 := strconv.ParseInt(cs, 10, 64)
	r, err3 := strconv.ParseInt(rs, 10, 64)
	if !found || err1 != nil || err2 != nil || err3 != nil {
		return
	}
	return id, l, c, r, true
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if strings.HasPrefix(p, "/viewer/") {
		s.serveAsset(w, r, strings.TrimPrefix(p, "/viewer/"))
		return
	}
	p, ok := strings.CutPrefix(p, "/slides/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(p, ".dzi"):
		g, err := s.Geometry(strings.TrimSuffix(p, ".dzi"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write([]byte(g.DZI("jpeg")))
	case strings.HasSuffix(p, ".jpeg"):
		id, l, c, rr, ok := parseTile(p)
		if !ok {
			http.NotFound(w, r)
			return
		}
		b, err := s.Tile(r.Context(), id, l, c, rr)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "private, max-age=300")
		_, _ = w.Write(b)
	case strings.HasSuffix(p, "/tiling.json"):
		s.serveTiling(w, r, strings.TrimSuffix(p, "/tiling.json"))
	case strings.HasSuffix(p, "/attention.json"):
		s.serveAttention(w, r, strings.TrimSuffix(p, "/attention.json"))
	case strings.HasSuffix(p, "/view"):
		s.serveView(w, r, strings.TrimSuffix(p, "/view"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errNotFound):
		msg := "404 page not found"
		if m := err.Error(); m != errNotFound.Error() {
			msg = m
		}
		http.Error(w, msg, http.StatusNotFound)
	case errors.Is(err, context.Canceled):
	default:
		slog.Warn("viewer", "url", r.URL.Path, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// validModel: a model id as the predict stage names its attention files
// (hex digits; letters, digits, '-' and '_' accepted).
func validModel(m string) bool {
	if m == "" || len(m) > 64 {
		return false
	}
	for _, c := range m {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// attentionFile is the attention of slide id: model's (?model=) when
// given, else the latest (attention.json).
func attentionFile(id, model string) string {
	if model != "" {
		return path.Join("slides", id, "attention", model+".json")
	}
	return path.Join("slides", id, "attention.json")
}

func (s *Server) serveAttention(w http.ResponseWriter, r *http.Request, id string) {
	model := r.URL.Query().Get("model")
	if !validID(id) || (model != "" && !validModel(model)) {
		http.NotFound(w, r)
		return
	}
	f, err := s.root.Open(attentionFile(id, model))
	if err != nil {
		msg := "no attention for this slide: run the predict stage"
		if model != "" {
			msg = "no attention of model " + model + " for this slide"
		}
		http.Error(w, msg, http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "attention.json", fi.ModTime(), f)
}

// ModelRun is one model's stored prediction of a slide
// (attention/<model>.json).
type ModelRun struct {
	Model      string `json:"model"`
	Variant    string `json:"variant"`
	RunDir     string `json:"run_dir"`
	Prediction string `json:"prediction"`
	Time       string `json:"time"`
}

// ModelRuns lists the models whose attention is stored for slide id,
// latest first.
func (s *Server) ModelRuns(id string) []ModelRun {
	if !validID(id) {
		return nil
	}
	entries, err := fs.ReadDir(s.root.FS(), path.Join("slides", id, "attention"))
	if err != nil {
		return nil
	}
	var runs []ModelRun
	for _, e := range entries {
		m, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || !validModel(m) {
			continue
		}
		b, err := s.root.ReadFile(attentionFile(id, m))
		var run ModelRun
		if err != nil || json.Unmarshal(b, &run) != nil {
			continue
		}
		run.Model = m
		runs = append(runs, run)
	}
	sort.SliceStable(runs, func(a, b int) bool { return runs[a].Time > runs[b].Time })
	return runs
}

func urlPathEscape(s string) string { return url.PathEscape(s) }
