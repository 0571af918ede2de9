package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// htmlEscape is how html/template writes s as text.
func htmlEscape(s string) string {
	var b bytes.Buffer
	if err := template.Must(template.New("").Parse("{{.}}")).Execute(&b, s); err != nil {
		panic(err)
	}
	return b.String()
}

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
	work   Work
	secret string
	names  []string
	srv    *httptest.Server
}

// hostileName has no "/" (a file name cannot).
const hostileName = `<img src=x onerror=alert(1)><script>alert("x")<script> & 'q' $(rm -rf ~);ü 東.svs`

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	dir := t.TempDir()
	f := &statusFixture{work: Work{Dir: filepath.Join(dir, "work")}, secret: filepath.Join(dir, "secret.txt")}
	if err := os.WriteFile(f.secret, []byte("TOP-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	names := append([]string{hostileName}, specialNames...)
	f.names = names
	now := time.Now()
	var done []FinishedSlide
	for i, n := range names {
		id := strings.TrimSuffix(n, filepath.Ext(n))
		row := PredictRow{SlideID: id, Probs: []float64{0.1, 0.2, 0.3, 0.4}, Predicted: 3, ModelID: "m123", Time: now}
		if err := os.MkdirAll(f.work.SlideDir(id), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{f.work.QCPNG(id), f.work.HeatmapPNG(id)} {
			if err := os.WriteFile(p, []byte("\x89PNG"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := WriteReport(f.work, ReportData{SlideName: n, Row: row, Encoder: "tiny-clip"}); err != nil {
			t.Fatal(err)
		}
		done = append(done, FinishedSlide{Name: n, ID: id, Finished: now.Add(-time.Duration(i) * time.Minute),
			Prediction: &WatchPrediction{Probs: row.Probs, Predicted: "3+", ModelID: "m123", Time: now}, Report: "slides/" + id + "/report.html"})
	}
	if err := os.WriteFile(f.work.PredictionsCSV(), []byte(predictionsHeader+"\n"), 0o644); err != nil {
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
	snap := WatchStatus{Inbox: "/in<box>", Work: f.work.Dir, Started: now, LastScan: now,
		Queue:   []QueuedSlide{{Name: "queued <i>copy</i>.svs", Size: 12345, State: "copying", Since: now}},
		Current: &CurrentSlide{Name: "busy &amp; <u>.svs", ID: "busy", Stage: StageEmbed, Started: now},
		Done:    done,
		Failed:  []FinishedSlide{{Name: "bad<img src=x onerror=alert(1)>.svs", Reason: `slide: bad<img>.svs: not a slide "x"`, MovedTo: "failed/bad.svs", Finished: now}},
	}
	page, err := NewStatusPage(f.work, func() WatchStatus { return snap }, true)
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
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
	var s WatchStatus
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

// chromiumDOM loads url in headless Chromium and returns the DOM after
// scripts would have run.
func chromiumDOM(t *testing.T, path, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, path, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(home, "profile"), "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	return out.String()
}

// In a real browser the names are text, not markup: no injected element,
// every name in the DOM as a text node; the hostile report too.
func TestStatusPageChromium(t *testing.T) {
	path, err := chromiumPath()
	if err != nil {
		t.Skip("chromium not installed (Debian package chromium)")
	}
	f := newStatusFixture(t)
	dom := chromiumDOM(t, path, f.srv.URL+"/")
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
	rep := chromiumDOM(t, path, f.srv.URL+WorkURL("slides/"+id+"/report.html"))
	if i := strings.Index(rep, "<h1>"); i >= 0 {
		t.Logf("report heading in the DOM: %.200s", rep[i:])
	}
	if !strings.Contains(rep, `<span id="slide-name">`+htmlEscapeText(hostileName)+`</span>`) || strings.Contains(rep, "<script>alert") {
		t.Errorf("report DOM:\n%.800s", rep)
	}
}

// The report: probabilities, the predicted class marked, model id and time,
// pictures only when they exist, every name escaped.
func TestWriteReport(t *testing.T) {
	work := Work{Dir: t.TempDir()}
	id := `r<1>&"x"`
	row := PredictRow{SlideID: id, Probs: []float64{0.05, 0.15, 0.7, 0.1}, Predicted: 2, ModelID: "abc<def>", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := os.MkdirAll(work.SlideDir(id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(work.HeatmapPNG(id), []byte("png"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(work, ReportData{SlideName: id + ".svs", Row: row, Encoder: "plip"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(work.ReportHTML(id))
	if err != nil {
		t.Fatal(err)
	}
	rep := string(b)
	for _, want := range []string{
		`<span id="slide-name">` + htmlEscape(id+".svs") + `</span>`,
		`<strong id="predicted">2&#43;</strong>`,
		`<tr class="predicted"><td>2&#43;</td><td class="num">0.700</td>`,
		`<td class="num">0.050</td>`,
		`<code id="model-id">abc&lt;def&gt;</code>`,
		`2026-01-02T03:04:05Z`,
		`<img src="heatmap.png"`,
		`no thumbnail`,
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(rep, `src="qc.png"`) || strings.Contains(rep, "<1>") {
		t.Error("report has a missing picture or an unescaped name")
	}
}
