package watch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/pipeline"
)

// htmlEscape is how html/template writes s as text.
var htmlEscape = fixture.HTMLEscape

// htmlEscapeText is how a browser serialises a text node.
func htmlEscapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\u00a0", "&nbsp;").Replace(s)
}

func TestStatusAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{":8080", "127.0.0.1:8080"},
		{"8080", "127.0.0.1:8080"},
		{"127.0.0.1:9000", "127.0.0.1:9000"},
		{"localhost:9000", "localhost:9000"},
		{"0.0.0.0:8080", "0.0.0.0:8080"},
		{"[::1]:8080", "[::1]:8080"},
		{"[::]:8080", "[::]:8080"},
		{"", ""},
		{"nohost", ""},
		{"host:port", ""},
		{":99999", ""},
	} {
		got, err := StatusAddr(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("StatusAddr(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("StatusAddr(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	ln, err := ListenStatus(":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !isLoopback(ln.Addr()) {
		t.Fatalf("bare port bound to %s", ln.Addr())
	}
}

// statusFixture is a work folder with a report for a slide with a hostile
// name, a secret beside the work folder and a link to it inside, and a
// status page over a fixed snapshot.
type statusFixture struct {
	work   pipeline.Work
	secret string
	names  []string
	srv    *httptest.Server
}

// hostileName has no "/" (a file name cannot).
const hostileName = `<img src=x onerror=alert(1)><script>alert("x")<script> & 'q' $(rm -rf ~);ü 東.svs`

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	dir := t.TempDir()
	f := &statusFixture{work: pipeline.Work{Dir: filepath.Join(dir, "work")}, secret: filepath.Join(dir, "secret.txt")}
	if err := os.WriteFile(f.secret, []byte("TOP-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	names := append([]string{hostileName}, specialNames...)
	f.names = names
	now := time.Now()
	var done []FinishedSlide
	for i, n := range names {
		id := strings.TrimSuffix(n, filepath.Ext(n))
		row := pipeline.PredictRow{SlideID: id, Probs: []float64{0.1, 0.2, 0.3, 0.4}, Predicted: 3, ModelID: "m123", Time: now}
		if err := os.MkdirAll(f.work.SlideDir(id), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{f.work.QCPNG(id), f.work.HeatmapPNG(id)} {
			if err := os.WriteFile(p, []byte("\x89PNG"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := pipeline.WriteReport(f.work, pipeline.ReportData{SlideName: n, Row: row, Encoder: "tiny-clip"}); err != nil {
			t.Fatal(err)
		}
		done = append(done, FinishedSlide{Name: n, ID: id, Finished: now.Add(-time.Duration(i) * time.Minute),
			Prediction: &Prediction{Probs: row.Probs, Predicted: "3+", ModelID: "m123", Time: now}, Report: "slides/" + id + "/report.html"})
	}
	if err := os.WriteFile(f.work.PredictionsCSV(), []byte(fixture.PredictionsHeader+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.work.Dir, ".hidden"), []byte("hidden"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f.secret, filepath.Join(f.work.Dir, "link-out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(f.work.Dir, "dir-out")); err != nil {
		t.Fatal(err)
	}
	snap := Status{Inbox: "/in<box>", Work: f.work.Dir, Started: now, LastScan: now,
		Queue:   []QueuedSlide{{Name: "queued <i>copy</i>.svs", Size: 12345, State: "copying", Since: now}},
		Current: &CurrentSlide{Name: "busy &amp; <u>.svs", ID: "busy", Stage: pipeline.StageEmbed, Started: now},
		Done:    done,
		Failed:  []FinishedSlide{{Name: "bad<img src=x onerror=alert(1)>.svs", Reason: `slide: bad<img>.svs: not a slide "x"`, MovedTo: "failed/bad.svs", Finished: now}},
	}
	page, err := NewStatusPage(f.work, func() Status { return snap }, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { page.Close() })
	f.srv = httptest.NewServer(page)
	t.Cleanup(f.srv.Close)
	return f
}

// rawGet sends target byte for byte (no client-side cleaning).
func rawGet(t *testing.T, addr, target, host string) (int, string) {
	t.Helper()
	resp, body := rawRequest(t, addr, target, host)
	return resp.StatusCode, body
}

// rawRequest sends GET target with Host host and the header lines extra.
func rawRequest(t *testing.T, addr, target, host string, extra ...string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"Connection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestStatusPageEscapesNames(t *testing.T) {
	f := newStatusFixture(t)
	addr := strings.TrimPrefix(f.srv.URL, "http://")
	code, page := rawGet(t, addr, "/", addr)
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	for _, bad := range []string{"<script>", "<img", "<i>", "<u>", "<b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains raw %q", bad)
		}
	}
	for _, n := range append(f.names, "queued <i>copy</i>.svs", "busy &amp; <u>.svs", "bad<img src=x onerror=alert(1)>.svs") {
		if !strings.Contains(page, htmlEscape(n)) {
			t.Errorf("page lacks %q", htmlEscape(n))
		}
	}
	if !strings.Contains(page, `<meta http-equiv="refresh"`) {
		t.Error("no auto-refresh")
	}
	// Report links are escaped per path segment and lead to the reports.
	for _, n := range f.names {
		id := strings.TrimSuffix(n, filepath.Ext(n))
		link := WorkURL("slides/" + id + "/report.html")
		if !strings.Contains(page, `href="`+htmlEscape(link)+`"`) {
			t.Errorf("no link %q for %q", link, n)
		}
		code, rep := rawGet(t, addr, link, addr)
		if code != 200 || !strings.Contains(rep, `<span id="slide-name">`+htmlEscape(n)+`</span>`) || strings.Contains(rep, "<script>") {
			t.Errorf("report of %q: %d", n, code)
		}
		if !strings.Contains(rep, `src="qc.png"`) || !strings.Contains(rep, `<td id="slide-id">`+htmlEscape(id)+`</td>`) {
			t.Errorf("report of %q lacks its pictures or id", n)
		}
	}
	// JSON: valid, names intact.
	code, js := rawGet(t, addr, "/status.json", addr)
	var s Status
	if code != 200 || json.Unmarshal([]byte(js), &s) != nil || s.Done[0].Name != hostileName || strings.Contains(js, "<script>") {
		t.Fatalf("status.json: %d %.200s", code, js)
	}
}

// /work serves regular files of the work folder and nothing else.
func TestStatusPageServesOnlyWork(t *testing.T) {
	f := newStatusFixture(t)
	addr := strings.TrimPrefix(f.srv.URL, "http://")
	if code, body := rawGet(t, addr, "/work/predictions.csv", addr); code != 200 || !strings.HasPrefix(body, "slide_id,") {
		t.Fatalf("predictions.csv: %d %q", code, body)
	}
	for _, target := range []string{
		"/work/../../etc/passwd",
		"/work/%2e%2e/%2e%2e/etc/passwd",
		"/work/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
		"/work/..%2f..%2f..%2fetc%2fpasswd",
		"/work/..%5c..%5cetc%5cpasswd",
		"/work/%2e%2e%2fsecret.txt",
		"/work/../secret.txt",
		"/work/slides/../../secret.txt",
		"/work/%252e%252e/secret.txt",
		"/work/link-out",
		"/work/dir-out/secret.txt",
		"/work/.hidden",
		"/work/",
		"/work/slides",
		"/work/slides/",
		"/work//etc/passwd",
		"/work/%00",
		"/etc/passwd",
		"/../etc/passwd",
		"/secret.txt",
		"/index.html",
	} {
		code, body := rawGet(t, addr, target, addr)
		t.Logf("%-40s %d", target, code)
		if code != 400 && code != 404 {
			t.Errorf("%s: status %d, want 400 or 404", target, code)
		}
		if strings.Contains(body, "TOP-SECRET") || strings.Contains(body, "root:") || strings.Contains(body, "hidden") {
			t.Errorf("%s leaked: %.100q", target, body)
		}
	}
	// Only loopback host names (DNS rebinding), only GET and HEAD.
	if code, _ := rawGet(t, addr, "/", "attacker.example"); code != 403 {
		t.Errorf("foreign Host: %d, want 403", code)
	}
	if code, _ := rawGet(t, addr, "/", "localhost:1234"); code != 200 {
		t.Errorf("localhost Host: %d", code)
	}
	resp, err := http.Post(f.srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}

// chromiumPath finds Debian's chromium.
func chromiumPath() (string, error) { return exec.LookPath("chromium") }

// In a real browser the names are text, not markup: no injected element,
// every name in the DOM as a text node; the hostile report too.
func TestStatusPageChromium(t *testing.T) {
	path := testutil.Chromium(t)
	f := newStatusFixture(t)
	dom := testutil.ChromiumDOM(t, path, f.srv.URL+"/", 60*time.Second)
	if !strings.Contains(dom, "<h1>her2wsi watch</h1>") {
		t.Fatalf("page not loaded:\n%.500s", dom)
	}
	for _, bad := range []string{"<script>alert", "<img src=\"x\"", "<i>copy", "<u>"} {
		if strings.Contains(dom, bad) {
			t.Errorf("the DOM has an injected element %q", bad)
		}
	}
	for _, n := range append(f.names, "queued <i>copy</i>.svs", "bad<img src=x onerror=alert(1)>.svs") {
		if !strings.Contains(dom, htmlEscapeText(n)) {
			t.Errorf("the DOM lacks the text %q", htmlEscapeText(n))
		}
	}
	id := strings.TrimSuffix(hostileName, filepath.Ext(hostileName))
	rep := testutil.ChromiumDOM(t, path, f.srv.URL+WorkURL("slides/"+id+"/report.html"), 60*time.Second)
	if i := strings.Index(rep, "<h1>"); i >= 0 {
		t.Logf("report heading in the DOM: %.200s", rep[i:])
	}
	if !strings.Contains(rep, `<span id="slide-name">`+htmlEscapeText(hostileName)+`</span>`) || strings.Contains(rep, "<script>alert") {
		t.Errorf("report DOM:\n%.800s", rep)
	}
}

const testToken = "test-token-0123456789abcdef"

// newOutputsWork is a work folder with outputs (a report, a picture,
// predictions.csv) beside things never served: slides, features, and an
// inbox inside the work folder.
func newOutputsWork(t *testing.T) pipeline.Work {
	t.Helper()
	work := pipeline.Work{Dir: filepath.Join(t.TempDir(), "work")}
	for rel, body := range map[string]string{
		"predictions.csv":               fixture.PredictionsHeader + "\n",
		"slides/a/report.html":          "<p>report</p>",
		"slides/a/qc.png":               "\x89PNG",
		"slides/a/state.json":           "{}",
		"slides/a/x.tif":                "SLIDE",
		"slides/a/X.SVS":                "SLIDE",
		"slides/a/x.ndpi":               "SLIDE",
		"slides/a/features.h5":          "H5",
		"slides/a/model.safetensors":    "W",
		"inbox/x.svs":                   "SLIDE",
		"inbox/he.png":                  "SLIDE",
		"inbox/he.jpg":                  "SLIDE",
		"slides/a/x.jpg":                "SLIDE",
		"inbox/notes.txt":               "INBOX",
		"inbox/done/y.svs":              "SLIDE",
		"inbox/failed/y.svs.reason.txt": "INBOX",
	} {
		p := filepath.Join(work.Dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return work
}

// serveStatusPage serves a page for work under opt with ServeStatus on a
// loopback port (opt.Public forced by the caller, as a command does for a
// listener that is not loopback) and returns host:port.
func serveStatusPage(t *testing.T, work pipeline.Work, opt StatusOptions) string {
	t.Helper()
	snap := Status{Inbox: opt.Inbox, Work: work.Dir, Started: time.Now()}
	page, err := NewStatusPage(work, func() Status { return snap }, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { page.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, page, opt)
}

// serveOn runs ServeStatus on ln until the test ends.
func serveOn(t *testing.T, ln net.Listener, h http.Handler, opt StatusOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ServeStatus(ctx, ln, h, opt) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("ServeStatus: %v", err)
		}
	})
	return ln.Addr().String()
}

// A page other machines can reach wants the token: none or a wrong one is
// 401 with a short text, a bearer header or the cookie set by ?token= is
// let in; a loopback page needs none unless one is set.
func TestStatusPageToken(t *testing.T) {
	work := newOutputsWork(t)
	public := serveStatusPage(t, work, StatusOptions{Public: true, Token: testToken})
	loop := serveStatusPage(t, work, StatusOptions{})
	loopTok := serveStatusPage(t, work, StatusOptions{Token: testToken})
	for _, c := range []struct {
		name, addr, target string
		headers            []string
		want               int
	}{
		{"public no token", public, "/", nil, 401},
		{"public no token json", public, "/status.json", nil, 401},
		{"public no token work", public, "/work/predictions.csv", nil, 401},
		{"public no token unknown path", public, "/nothing", nil, 401},
		{"public bearer", public, "/", []string{"Authorization: Bearer " + testToken}, 200},
		{"public bearer lower-case scheme", public, "/status.json", []string{"Authorization: bearer " + testToken}, 200},
		{"public bearer work", public, "/work/predictions.csv", []string{"Authorization: Bearer " + testToken}, 200},
		{"public wrong bearer", public, "/", []string{"Authorization: Bearer " + testToken + "x"}, 401},
		{"public prefix of token", public, "/", []string{"Authorization: Bearer " + testToken[:len(testToken)-1]}, 401},
		{"public basic auth", public, "/", []string{"Authorization: Basic " + testToken}, 401},
		{"public wrong cookie", public, "/", []string{"Cookie: her2wsi_token_" + portOf(public) + "=" + testToken + "x"}, 401},
		{"public cookie", public, "/", []string{"Cookie: her2wsi_token_" + portOf(public) + "=" + testToken}, 200},
		{"public other port's cookie", public, "/", []string{"Cookie: her2wsi_token_1=" + testToken}, 401},
		{"public wrong query token", public, "/?token=nope", nil, 401},
		{"public query token", public, "/?token=" + testToken, nil, 303},
		{"loopback no token", loop, "/", nil, 200},
		{"loopback token set, none sent", loopTok, "/", nil, 401},
		{"loopback token set, bearer", loopTok, "/", []string{"Authorization: Bearer " + testToken}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawRequest(t, c.addr, c.target, c.addr, c.headers...)
			if resp.StatusCode != c.want {
				t.Fatalf("%s: %d, want %d: %.200q", c.target, resp.StatusCode, c.want, body)
			}
			if c.want == 401 {
				if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || len(body) > 200 || !strings.Contains(body, "unauthorized") ||
					strings.Contains(body, "slide_id") || strings.Contains(body, "her2wsi watch") {
					t.Errorf("401 body %q (%s)", body, resp.Header.Get("Content-Type"))
				}
				if !resp.Close {
					t.Error("a refused connection is kept open")
				}
			}
		})
	}

	// ?token= sets an HttpOnly, SameSite=Strict cookie and redirects to the
	// same URL without the token; the cookie then lets the browser in.
	resp, _ := rawRequest(t, public, "/work/predictions.csv?x=1&token="+testToken, public)
	ck := resp.Cookies()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/work/predictions.csv?x=1" || len(ck) != 1 ||
		ck[0].Value != testToken || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/" {
		t.Fatalf("?token=: %d, Location %q, cookies %v", resp.StatusCode, resp.Header.Get("Location"), resp.Header["Set-Cookie"])
	}
	for _, target := range []string{"//evil.example/?token=" + testToken, "/%2F%2Fevil.example?token=" + testToken} {
		resp, _ := rawRequest(t, public, target, public)
		if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") {
			t.Errorf("%s: %d, Location %q (an open redirect)", target, resp.StatusCode, loc)
		}
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	for _, u := range []string{"/?token=" + url.QueryEscape(testToken), "/status.json", "/work/slides/a/report.html"} {
		r, err := client.Get("http://" + public + u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || strings.Contains(r.Request.URL.String(), "token") {
			t.Errorf("%s with the cookie: %d at %s: %.100q", u, r.StatusCode, r.Request.URL, b)
		}
	}

	// A page other machines reach cannot be made without a token, nor with
	// a guessable one.
	for _, opt := range []StatusOptions{{Public: true}, {Public: true, Token: "short"}, {Token: "has space in the token"}, {Token: "semi;colon-0123456789"}, {MaxConns: -1}} {
		if p, err := NewStatusPage(work, func() Status { return Status{} }, opt); err == nil {
			p.Close()
			t.Errorf("NewStatusPage(%+v) accepted", opt)
		} else if !strings.HasPrefix(err.Error(), "watch: ") {
			t.Errorf("error %q", err)
		}
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// A page other machines reach answers only to its own names (DNS
// rebinding); a loopback page only to loopback names.
func TestStatusPageHosts(t *testing.T) {
	work := newOutputsWork(t)
	hn, err := os.Hostname()
	if err != nil || hn == "" {
		t.Skip("no host name")
	}
	allow := []string{"her2wsi.lab", "Scanner-PC.example.org:8080"}
	public := serveStatusPage(t, work, StatusOptions{Public: true, Token: testToken, AllowHosts: allow})
	loop := serveStatusPage(t, work, StatusOptions{AllowHosts: allow})
	bearer := "Authorization: Bearer " + testToken
	for _, c := range []struct {
		addr, host string
		want       int
	}{
		{public, "attacker.example", 403},
		{public, "attacker.example:80", 403},
		{public, "evil.her2wsi.lab", 403},
		{public, "her2wsi.lab.evil.example", 403},
		{public, "192.0.2.7", 403},
		{public, "her2wsi.lab", 200},
		{public, "HER2WSI.LAB.:1234", 200},
		{public, "scanner-pc.example.org", 200},
		{public, hn, 200},
		{public, hn + ":8080", 200},
		{public, "localhost:1", 200},
		{public, public, 200}, // the address connected to
		{public, "[::1]:8080", 200},
		{loop, "localhost", 200},
		{loop, loop, 200},
		{loop, "her2wsi.lab", 403},
		{loop, hn, 403},
		{loop, "attacker.example", 403},
	} {
		resp, body := rawRequest(t, c.addr, "/", c.host, bearer)
		if resp.StatusCode != c.want {
			t.Errorf("Host %q on the %s page: %d, want %d: %.100q", c.host, map[bool]string{true: "public", false: "loopback"}[c.addr == public], resp.StatusCode, c.want, body)
		}
		if c.want == 403 && (!strings.Contains(body, "forbidden host") || strings.Contains(body, "her2wsi watch")) {
			t.Errorf("Host %q: body %q", c.host, body)
		}
	}
}

// Only the work folder's own outputs are served: never a slide (whatever
// the case of its extension), never anything under an inbox inside the
// work folder (named directly or through a link), never other kinds.
func TestStatusPageNoSlides(t *testing.T) {
	work := newOutputsWork(t)
	link := filepath.Join(t.TempDir(), "inbox-link")
	if err := os.Symlink(filepath.Join(work.Dir, "inbox"), link); err != nil {
		t.Fatal(err)
	}
	for _, inbox := range []string{filepath.Join(work.Dir, "inbox"), link} {
		addr := serveStatusPage(t, work, StatusOptions{Inbox: inbox})
		for _, c := range []struct {
			target string
			want   int
		}{
			{"/work/predictions.csv", 200},
			{"/work/slides/a/report.html", 200},
			{"/work/slides/a/qc.png", 200},
			{"/work/slides/a/state.json", 200},
			{"/work/inbox/x.svs", 404},
			{"/work/inbox/he.png", 404},
			{"/work/inbox/he.jpg", 404},
			{"/work/slides/a/x.jpg", 404},
			{"/work/inbox/notes.txt", 404},
			{"/work/INBOX/notes.txt", 404},
			{"/work/inbox/done/y.svs", 404},
			{"/work/inbox/failed/y.svs.reason.txt", 404},
			{"/work/slides/a/x.tif", 404},
			{"/work/slides/a/X.SVS", 404},
			{"/work/slides/a/x.ndpi", 404},
			{"/work/slides/a/features.h5", 404},
			{"/work/slides/a/model.safetensors", 404},
			{"/work/slides/a/../../inbox/x.svs", 404},
		} {
			code, body := rawGet(t, addr, c.target, addr)
			if code != c.want && !(c.want == 404 && (code == 403 || code == 400)) {
				t.Errorf("inbox %s: %s: %d, want %d", inbox, c.target, code, c.want)
			}
			if c.want != 200 && (strings.Contains(body, "SLIDE") || strings.Contains(body, "INBOX") || strings.Contains(body, "H5")) {
				t.Errorf("%s leaked %.50q", c.target, body)
			}
		}
	}
}

// countListener counts the connections the server holds.
type countListener struct {
	net.Listener
	mu               sync.Mutex
	open, max, total int
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.open++
	l.total++
	l.max = max(l.max, l.open)
	l.mu.Unlock()
	return &countConn{Conn: c, l: l}, nil
}

func (l *countListener) stats() (open, max, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.max, l.total
}

type countConn struct {
	net.Conn
	l    *countListener
	once sync.Once
}

func (c *countConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Idle connections cannot hold the page (or the process's descriptors):
// the server holds at most MaxConns at once, drops the idle ones after
// the read-header timeout, and a real request is served within a bounded
// time.
func TestStatusServeConnCap(t *testing.T) {
	work := newOutputsWork(t)
	opt := StatusOptions{MaxConns: 4, ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}
	page, err := NewStatusPage(work, func() Status { return Status{Work: work.Dir} }, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countListener{Listener: ln}
	addr := serveOn(t, cl, page, opt)
	var idle []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond)
	if open, mx, _ := cl.stats(); open > 4 || mx > 4 {
		t.Fatalf("the server holds %d connections (at most %d), want at most 4", open, mx)
	}
	start := time.Now()
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get("http://" + addr + "/status.json")
	if err != nil {
		t.Fatalf("a request behind 20 idle connections: %v", err)
	}
	resp.Body.Close()
	took := time.Since(start)
	t.Logf("served after %v", took.Round(time.Millisecond))
	if resp.StatusCode != 200 || took > 10*time.Second {
		t.Fatalf("a request behind 20 idle connections: %d after %v", resp.StatusCode, took)
	}
	// The idle connections were closed by the server.
	for i, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("idle connection %d still open: %v", i, err)
		}
	}
	client.CloseIdleConnections()
	_, mx, total := cl.stats()
	t.Logf("at most %d connections held at once, %d accepted", mx, total)
	if mx > 4 || mx < 1 || total < 21 {
		t.Fatalf("at most %d connections at once, %d accepted; want at most 4 and 21", mx, total)
	}
}

// The server has every timeout and small headers; a response that cannot
// be written within WriteTimeout is cut.
func TestStatusServerTimeouts(t *testing.T) {
	srv := statusServer(http.NotFoundHandler(), StatusOptions{})
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 16<<10 {
		t.Fatalf("server limits: header %v, read %v, write %v, idle %v, header bytes %d", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	o := StatusOptions{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second}
	if srv := statusServer(http.NotFoundHandler(), o); srv.ReadHeaderTimeout != time.Second || srv.ReadTimeout != 2*time.Second || srv.WriteTimeout != 3*time.Second || srv.IdleTimeout != 4*time.Second {
		t.Fatalf("options not used: %+v", srv)
	}

	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		_, _ = io.WriteString(w, "late")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, ln, slow, StatusOptions{WriteTimeout: 100 * time.Millisecond})
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil && string(b) == "late" {
			t.Fatal("a response past WriteTimeout was delivered")
		}
	}
}

func TestStatusOptionsListener(t *testing.T) {
	tok, err := NewStatusToken()
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := NewStatusToken()
	if len(tok) < 40 || tok == tok2 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" || checkStatusToken(tok) != nil {
		t.Fatalf("token %q", tok)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if (StatusOptions{}).ForListener(ln).Public {
		t.Error("a loopback listener made the page public")
	}
	if u := StatusURL(ln, tok); u != "http://"+ln.Addr().String()+"/?token="+tok {
		t.Errorf("StatusURL = %q", u)
	}
	// Every interface (not bound here: only its address is looked at).
	all := fakeListener{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}}
	if !(StatusOptions{}).ForListener(all).Public {
		t.Error("0.0.0.0 is not public")
	}
	if hn, err := os.Hostname(); err == nil && hn != "" {
		if u := StatusURL(all, tok); u != "http://"+net.JoinHostPort(hn, "8080")+"/?token="+tok {
			t.Errorf("StatusURL(0.0.0.0) = %q", u)
		}
	}
	if !(StatusOptions{}).ForListener(fakeListener{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80}}).Public {
		t.Error("an interface's address is not public")
	}
}

type fakeListener struct{ addr net.Addr }

func (l fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr            { return l.addr }
