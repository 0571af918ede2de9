package watch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/pipeline"
)

// StatusAddr completes a --http address: a bare port (":8080" or "8080")
// binds to loopback; a host given explicitly (0.0.0.0:8080, [::]:8080, an
// interface's address) is kept.
func StatusAddr(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("watch: empty --http address")
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", addr), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("watch: --http %q: want HOST:PORT or :PORT (%v)", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("watch: --http %q: bad port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// ListenStatus opens the status page's listener (see StatusAddr).
func ListenStatus(addr string) (net.Listener, error) {
	a, err := StatusAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return nil, fmt.Errorf("watch: status page: %w", err)
	}
	return ln, nil
}

// Status page defaults (see StatusOptions).
const (
	DefaultStatusMaxConns          = 64
	DefaultStatusReadHeaderTimeout = 10 * time.Second
	DefaultStatusReadTimeout       = 30 * time.Second
	DefaultStatusWriteTimeout      = time.Minute
	DefaultStatusIdleTimeout       = 30 * time.Second

	// StatusTokenEnv is the environment variable a command takes the
	// status page's token from when no --http-token is given.
	StatusTokenEnv = "HER2WSI_HTTP_TOKEN"

	statusMaxHeaderBytes = 16 << 10
	minStatusToken       = 16
)

// statusServedExts are the kinds of WORK files the page serves: reports,
// pictures, tables, journals, reasons. Slides, features and models never.
var statusServedExts = map[string]bool{".html": true, ".png": true, ".csv": true, ".json": true, ".txt": true}

// StatusOptions configure the status page and its server, for any command
// that serves it (watch today). The zero value is a loopback page with the
// default limits; a command fills it from its flags and completes it with
// ForListener.
type StatusOptions struct {
	// Public marks a listener other machines can reach (0.0.0.0, [::], an
	// interface's address): every request needs Token, and its Host (port
	// stripped) must be a loopback name, the machine's host name, the
	// address the client connected to, or one of AllowHosts. Without
	// Public, only loopback Host names are answered (DNS rebinding).
	// ForListener sets it for a listener that is not loopback.
	Public bool
	// Token, when set, is required of every request: Authorization: Bearer
	// TOKEN, or ?token=TOKEN once, which sets a cookie and redirects to the
	// same URL without it. Public requires one (see NewStatusToken).
	Token string
	// AllowHosts are further Host names a Public page answers to.
	AllowHosts []string
	// MaxConns caps the connections served at once (0:
	// DefaultStatusMaxConns); further clients wait in the kernel's backlog.
	MaxConns int
	// Inbox is the watcher's inbox: when it lies inside the work folder,
	// nothing under it is served.
	Inbox string
	// The server's timeouts (0: the Default* above).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// ForListener returns o for a page served on ln: Public when ln is not
// bound to a loopback address.
func (o StatusOptions) ForListener(ln net.Listener) StatusOptions {
	if !isLoopback(ln.Addr()) {
		o.Public = true
	}
	return o
}

// Validate checks the options.
func (o StatusOptions) Validate() error {
	if o.Public && o.Token == "" {
		return errors.New("watch: status page: a listener other than loopback needs a token")
	}
	if o.Token != "" {
		if err := checkStatusToken(o.Token); err != nil {
			return err
		}
	}
	if o.MaxConns < 0 {
		return fmt.Errorf("watch: status page: %d connections at most: want a positive number", o.MaxConns)
	}
	for _, d := range []time.Duration{o.ReadHeaderTimeout, o.ReadTimeout, o.WriteTimeout, o.IdleTimeout} {
		if d < 0 {
			return fmt.Errorf("watch: status page: negative timeout %v", d)
		}
	}
	for _, h := range o.AllowHosts {
		n := hostOnly(h)
		if n == "" || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789.-_:") != "" {
			return fmt.Errorf("watch: status page: allowed host %q: want a host name or an IP address", h)
		}
	}
	return nil
}

// checkStatusToken wants a token long enough not to be guessed, of
// characters that travel unchanged in a header and a cookie.
func checkStatusToken(t string) error {
	if len(t) < minStatusToken {
		return fmt.Errorf("watch: status page token: %d characters, want at least %d", len(t), minStatusToken)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("\"\\,;", c) >= 0 {
			return fmt.Errorf("watch: status page token: character %q not allowed (use letters, digits and -_.~)", c)
		}
	}
	return nil
}

// NewStatusToken returns a random URL-safe token (256 bits).
func NewStatusToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("watch: status page token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// StatusURL is the address to open for the page served on ln: its IP, or
// the machine's host name when ln listens on every interface; with token,
// the ?token= that logs the browser in.
func StatusURL(ln net.Listener, token string) string {
	host := ln.Addr().String()
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		h := ta.IP.String()
		if ta.IP.IsUnspecified() {
			h = "localhost"
			if hn, err := os.Hostname(); err == nil && hn != "" {
				h = hn
			}
		}
		host = net.JoinHostPort(h, strconv.Itoa(ta.Port))
	}
	u := "http://" + host + "/"
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	return u
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// statusServer is the page's http.Server: bounded headers, and timeouts so
// that idle or slow clients give their connection back.
func statusServer(h http.Handler, opt StatusOptions) *http.Server {
	orDefault := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDefault(opt.ReadHeaderTimeout, DefaultStatusReadHeaderTimeout),
		ReadTimeout:       orDefault(opt.ReadTimeout, DefaultStatusReadTimeout),
		WriteTimeout:      orDefault(opt.WriteTimeout, DefaultStatusWriteTimeout),
		IdleTimeout:       orDefault(opt.IdleTimeout, DefaultStatusIdleTimeout),
		MaxHeaderBytes:    statusMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
}

// ServeStatus serves h on ln until ctx is cancelled, with opt's limits:
// at most opt.MaxConns connections at once, and the server's timeouts.
func ServeStatus(ctx context.Context, ln net.Listener, h http.Handler, opt StatusOptions) error {
	if err := opt.Validate(); err != nil {
		return err
	}
	n := opt.MaxConns
	if n == 0 {
		n = DefaultStatusMaxConns
	}
	srv := statusServer(h, opt)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(newLimitListener(ln, n))
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("watch: status page: %w", err)
}

// limitListener accepts a connection only while fewer than cap(sem) are
// open; the others wait in the kernel's backlog, holding no descriptor.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// StatusPage is the watcher's status page:
//
//	/             queue, in progress, done (prediction, report link), failed (reason)
//	/status.json  the same as JSON
//	/work/...     WORK's own outputs (reports, pictures, predictions.csv,
//	              journals: .html .png .csv .json .txt) and nothing else:
//	              no slide, nothing under the inbox, no folder listings,
//	              no hidden files, nothing reached through ".." or a link
//	              leaving the folder
//
// Requests must name an allowed Host and, when a token is set, carry it
// (see StatusOptions).
type StatusPage struct {
	root     *os.Root
	snapshot func() Status
	opt      StatusOptions
	hosts    map[string]bool // Public: Host names allowed besides loopback ones and the local address
	inbox    []string        // the inbox relative to WORK (as given and links resolved), when inside
	tokenSum [sha256.Size]byte
	mounts   []mount
	viewURL  func(id string) string // the slide viewer's page, when mounted
}

type mount struct {
	prefix string
	h      http.Handler
}

// Mount serves h, behind the page's Host and token checks, for request
// paths under each of prefixes (e.g. the slide viewer's /slides/ and
// /viewer/); viewURL, when set, links each done slide to its viewer page.
// Call it before serving.
func (p *StatusPage) Mount(h http.Handler, viewURL func(id string) string, prefixes ...string) {
	for _, pre := range prefixes {
		p.mounts = append(p.mounts, mount{pre, h})
	}
	if viewURL != nil {
		p.viewURL = viewURL
	}
}

// NewStatusPage serves snapshots and the work folder's outputs under opt.
func NewStatusPage(work pipeline.Work, snapshot func() Status, opt StatusOptions) (*StatusPage, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(work.Dir)
	if err != nil {
		return nil, fmt.Errorf("watch: status page: %w", err)
	}
	p := &StatusPage{root: root, snapshot: snapshot, opt: opt, tokenSum: sha256.Sum256([]byte(opt.Token))}
	if opt.Public {
		p.hosts = map[string]bool{}
		for _, h := range opt.AllowHosts {
			p.hosts[hostOnly(h)] = true
		}
		if hn, err := os.Hostname(); err == nil && hn != "" {
			hn = hostOnly(hn)
			p.hosts[hn] = true
			if short, _, ok := strings.Cut(hn, "."); ok && short != "" {
				p.hosts[short] = true
			}
		}
	}
	if opt.Inbox != "" {
		p.inbox = insideRels(work.Dir, opt.Inbox)
	}
	return p, nil
}

// insideRels is dir relative to root, slash-separated, when dir lies inside
// root: as given and with links resolved ("." when it is root).
func insideRels(root, dir string) []string {
	var rels []string
	add := func(root, dir string) {
		r, err := filepath.Rel(root, dir)
		if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || filepath.IsAbs(r) {
			return
		}
		rels = append(rels, filepath.ToSlash(r))
	}
	ar, err1 := filepath.Abs(root)
	ad, err2 := filepath.Abs(dir)
	if err1 == nil && err2 == nil {
		add(ar, ad)
	}
	er, err1 := filepath.EvalSymlinks(root)
	ed, err2 := filepath.EvalSymlinks(dir)
	if err1 == nil && err2 == nil {
		add(er, ed)
	}
	return rels
}

// Close releases the work folder.
func (p *StatusPage) Close() error { return p.root.Close() }

func (p *StatusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
	if !p.hostAllowed(r) {
		refuse(w, http.StatusForbidden, fmt.Sprintf("forbidden host %q: this status page does not answer to that name (allow it with --http-allow-host)", hostOnly(r.Host)))
		return
	}
	if p.opt.Token != "" && !p.authorized(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch up := r.URL.Path; {
	case up == "/":
		p.servePage(w, r)
	case up == "/status.json":
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(p.snapshot())
	case strings.HasPrefix(up, "/work/"):
		p.serveWork(w, r, strings.TrimPrefix(up, "/work/"))
	default:
		for _, m := range p.mounts {
			if strings.HasPrefix(up, m.prefix) {
				m.h.ServeHTTP(w, r)
				return
			}
		}
		http.NotFound(w, r)
	}
}

// refuse answers a request that gets nothing and closes its connection, so
// that refused clients do not keep one of the few open.
func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}

// hostAllowed: loopback names always (an SSH tunnel, a local browser);
// on a Public page also the address the client connected to, the machine's
// names and AllowHosts. A name that DNS rebinding could point here is
// never allowed unless listed.
func (p *StatusPage) hostAllowed(r *http.Request) bool {
	if loopbackHost(r.Host) {
		return true
	}
	if !p.opt.Public {
		return false
	}
	host := hostOnly(r.Host)
	if host == "" {
		return false
	}
	if p.hosts[host] {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ta, ok := la.(*net.TCPAddr); ok && ta.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// authorized checks the token (header or cookie, in constant time); a
// ?token= sets the cookie and redirects to the URL without it. It has
// answered the request when it returns false.
func (p *StatusPage) authorized(w http.ResponseWriter, r *http.Request) bool {
	if q := r.URL.Query(); q.Has("token") {
		if !p.validToken(q.Get("token")) {
			p.unauthorized(w)
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: p.cookieName(r), Value: p.opt.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		q.Del("token")
		loc := r.URL.EscapedPath()
		if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.Contains(loc, `\`) {
			loc = "/"
		}
		if len(q) > 0 {
			loc += "?" + q.Encode()
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, loc, http.StatusSeeOther)
		return false
	}
	ok := false
	if scheme, tok, found := strings.Cut(r.Header.Get("Authorization"), " "); found && strings.EqualFold(scheme, "Bearer") {
		ok = p.validToken(strings.TrimSpace(tok))
	}
	if c, err := r.Cookie(p.cookieName(r)); !ok && err == nil {
		ok = p.validToken(c.Value)
	}
	if !ok {
		p.unauthorized(w)
	}
	return ok
}

func (p *StatusPage) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="her2wsi"`)
	refuse(w, http.StatusUnauthorized, "unauthorized: open the URL with ?token= printed when the page started, or send Authorization: Bearer TOKEN")
}

func (p *StatusPage) validToken(t string) bool {
	sum := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(sum[:], p.tokenSum[:]) == 1
}

// cookieName carries the port, so that pages on two ports of one host
// (cookies ignore ports) keep their own tokens.
func (p *StatusPage) cookieName(r *http.Request) string {
	if ta, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		return "her2wsi_token_" + strconv.Itoa(ta.Port)
	}
	return "her2wsi_token"
}

// hostOnly is a Host header's name: port and brackets stripped, lower case,
// no trailing dot.
func hostOnly(hostport string) string {
	host := strings.TrimSpace(hostport)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

func loopbackHost(hostport string) bool {
	host := hostOnly(hostport)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// servedKind: a WORK output the page shows, never a slide. PNG is both:
// the work folder's pictures (qc.png, heatmap.png) are PNG, and so are
// image inputs; those are in the inbox, which is never served.
func servedKind(rel string) bool {
	ext := strings.ToLower(path.Ext(rel))
	return statusServedExts[ext] && (ext == ".png" || !pipeline.HasSlideExtension(rel))
}

// underInbox says whether rel lies in the inbox (case folded, for
// case-insensitive file systems).
func (p *StatusPage) underInbox(rel string) bool {
	for _, in := range p.inbox {
		if in == "." || strings.EqualFold(rel, in) ||
			(len(rel) > len(in) && rel[len(in)] == '/' && strings.EqualFold(rel[:len(in)], in)) {
			return true
		}
	}
	return false
}

// serveWork serves one regular file under WORK. rel is already
// percent-decoded (so %2e%2e arrives as "..").
func (p *StatusPage) serveWork(w http.ResponseWriter, r *http.Request, rel string) {
	if rel == "" || !fs.ValidPath(rel) || strings.ContainsAny(rel, "\\\x00") {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	if !servedKind(rel) || p.underInbox(rel) {
		http.NotFound(w, r)
		return
	}
	for _, seg := range strings.Split(rel, "/") {
		if strings.HasPrefix(seg, ".") {
			http.NotFound(w, r)
			return
		}
	}
	f, err := p.root.Open(rel) // refuses links that leave WORK
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, path.Base(rel), fi.ModTime(), f)
}

// WorkURL is the status page's link to a WORK-relative file, each path
// segment escaped.
func WorkURL(rel string) string {
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/work/" + strings.Join(segs, "/")
}

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"workURL": WorkURL,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return time.Since(t).Round(time.Second).String()
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"size": func(n int64) string {
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"label": cases.LabelName,
	"prob":  func(p float64) string { return fmt.Sprintf("%.3f", p) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>her2wsi watch</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
td.name { overflow-wrap: anywhere; max-width: 40em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta, .empty { color: #666; }
.note { color: #a94442; }
</style>
</head>
<body>
<h1>her2wsi {{if .Inbox}}watch{{else}}serve{{end}}</h1>
<p class="meta">{{if .Inbox}}inbox <code>{{.Inbox}}</code> · {{end}}work <code>{{.Work}}</code> · running for {{ago .Started}} · last scan {{ago .LastScan}} ago · <a href="/work/predictions.csv">predictions.csv</a> · <a href="/status.json">status.json</a></p>
{{with .Note}}<p class="note">{{.}}</p>{{end}}

<h2>In progress</h2>
{{with .Current}}<table id="in-progress"><tr><th>slide</th><th>stage</th><th>for</th></tr>
<tr><td class="name">{{.Name}}</td><td>{{.Stage}}</td><td>{{ago .Started}}</td></tr></table>
{{else}}<p class="empty">nothing</p>{{end}}

<h2>Queue ({{len .Queue}})</h2>
{{if .Queue}}<table id="queue"><tr><th>slide</th><th>size</th><th>state</th><th>unchanged for</th></tr>
{{range .Queue}}<tr><td class="name">{{.Name}}</td><td class="num">{{size .Size}}</td><td>{{.State}}</td><td>{{ago .Since}}</td></tr>
{{end}}</table>
{{else}}<p class="empty">empty</p>{{end}}

<h2>Done ({{len .Done}})</h2>
{{if .Done}}<table id="done"><tr><th>slide</th><th>HER2</th><th>0</th><th>1+</th><th>2+</th><th>3+</th><th>finished</th><th>report</th></tr>
{{range .Done}}<tr><td class="name">{{.Name}}</td>{{with .Prediction}}<td><strong>{{.Predicted}}</strong></td>{{range .Probs}}<td class="num">{{prob .}}</td>{{end}}{{else}}<td colspan="5">-</td>{{end}}<td>{{when .Finished}}</td><td>{{if .Report}}<a href="{{workURL .Report}}">report</a>{{end}}{{if and $.View .ID}} <a href="{{call $.View .ID}}">viewer</a>{{end}}</td></tr>
{{end}}</table>
{{else}}<p class="empty">none yet</p>{{end}}

<h2>Failed ({{len .Failed}})</h2>
{{if .Failed}}<table id="failed"><tr><th>slide</th><th>reason</th><th>finished</th><th>moved to</th></tr>
{{range .Failed}}<tr><td class="name">{{.Name}}</td><td>{{.Reason}}</td><td>{{when .Finished}}</td><td>{{.MovedTo}}</td></tr>
{{end}}</table>
{{else}}<p class="empty">none</p>{{end}}
</body>
</html>
`))

func (p *StatusPage) servePage(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	page := struct {
		Status
		View func(string) string
	}{p.snapshot(), p.viewURL}
	if err := statusTemplate.Execute(&b, page); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}
