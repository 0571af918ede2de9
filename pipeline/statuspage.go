package pipeline

import (
	"bytes"
	"context"
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
	"strconv"
	"strings"
	"time"

	"github.com/her2wsi/her2wsi/internal/cases"
)

// StatusAddr completes a --http address: a bare port (":8080" or "8080")
// binds to loopback; a host given explicitly (0.0.0.0:8080, [::]:8080, an
// interface's address) is kept.
func StatusAddr(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("pipeline: empty --http address")
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", addr), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("pipeline: --http %q: want HOST:PORT or :PORT (%v)", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("pipeline: --http %q: bad port", addr)
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
		return nil, fmt.Errorf("pipeline: status page: %w", err)
	}
	return ln, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// ServeStatus serves h on ln until ctx is cancelled.
func ServeStatus(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("pipeline: status page: %w", err)
}

// StatusPage is the watcher's status page:
//
//	/             queue, in progress, done (prediction, report link), failed (reason)
//	/status.json  the same as JSON
//	/work/...     regular files of the work folder (reports, pictures,
//	              predictions.csv) and nothing else: no folder listings,
//	              no hidden files, nothing reached through ".." or a link
//	              leaving the folder
type StatusPage struct {
	root     *os.Root
	snapshot func() WatchStatus
	loopback bool // only accept Host names that are loopback (DNS rebinding)
}

// NewStatusPage serves snapshots and the work folder's files. With
// loopbackOnly, requests must name a loopback host.
func NewStatusPage(work Work, snapshot func() WatchStatus, loopbackOnly bool) (*StatusPage, error) {
	root, err := os.OpenRoot(work.Dir)
	if err != nil {
		return nil, fmt.Errorf("pipeline: status page: %w", err)
	}
	return &StatusPage{root: root, snapshot: snapshot, loopback: loopbackOnly}, nil
}

// Close releases the work folder.
func (p *StatusPage) Close() error { return p.root.Close() }

func (p *StatusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if p.loopback && !loopbackHost(r.Host) {
		http.Error(w, "forbidden host", http.StatusForbidden)
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
		http.NotFound(w, r)
	}
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveWork serves one regular file under WORK. rel is already
// percent-decoded (so %2e%2e arrives as "..").
func (p *StatusPage) serveWork(w http.ResponseWriter, r *http.Request, rel string) {
	if rel == "" || !fs.ValidPath(rel) || strings.ContainsAny(rel, "\\\x00") {
		http.Error(w, "bad path", http.StatusBadRequest)
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
<h1>her2wsi watch</h1>
<p class="meta">inbox <code>{{.Inbox}}</code> · work <code>{{.Work}}</code> · running for {{ago .Started}} · last scan {{ago .LastScan}} ago · <a href="/work/predictions.csv">predictions.csv</a> · <a href="/status.json">status.json</a></p>
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
{{range .Done}}<tr><td class="name">{{.Name}}</td>{{with .Prediction}}<td><strong>{{.Predicted}}</strong></td>{{range .Probs}}<td class="num">{{prob .}}</td>{{end}}{{else}}<td colspan="5">-</td>{{end}}<td>{{when .Finished}}</td><td>{{if .Report}}<a href="{{workURL .Report}}">report</a>{{end}}</td></tr>
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
	if err := statusTemplate.Execute(&b, p.snapshot()); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}
