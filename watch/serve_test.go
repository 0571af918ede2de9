package watch

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/her2wsi/her2wsi/pipeline"
)

// A mounted handler (the slide viewer) sits behind the page's Host and
// token checks, and done slides link to it.
func TestStatusPageMountBehindChecks(t *testing.T) {
	work := newOutputsWork(t)
	opt := StatusOptions{Public: true, Token: testToken}
	snap := Status{Work: work.Dir, Started: time.Now(), Done: []FinishedSlide{{Name: "s1.svs", ID: "s1", Report: "slides/s1/report.html"}}}
	page, err := NewStatusPage(work, func() Status { return snap }, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { page.Close() })
	page.Mount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("viewer " + r.URL.Path)) }),
		func(id string) string { return "/slides/" + id + "/view" }, "/slides/", "/viewer/")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, ln, page, opt)
	bearer := "Authorization: Bearer " + testToken
	for _, c := range []struct {
		target, host string
		headers      []string
		want         int
		body         string
	}{
		{"/slides/s1/view", "127.0.0.1", nil, 401, ""},
		{"/slides/s1.dzi", "evil.example", []string{bearer}, 403, ""},
		{"/slides/s1/view", "127.0.0.1", []string{bearer}, 200, "viewer /slides/s1/view"},
		{"/viewer/viewer.js", "127.0.0.1", []string{bearer}, 200, "viewer /viewer/viewer.js"},
		{"/slidesx", "127.0.0.1", []string{bearer}, 404, ""},
		{"/", "127.0.0.1", []string{bearer}, 200, `<a href="/slides/s1/view">viewer</a>`},
	} {
		resp, body := rawRequest(t, addr, c.target, c.host, c.headers...)
		if resp.StatusCode != c.want || !strings.Contains(body, c.body) {
			t.Errorf("%s (Host %s): %d %q, want %d with %q", c.target, c.host, resp.StatusCode, first(body), c.want, c.body)
		}
	}
}

func first(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// Without a watcher, the page lists the journalled slides and every other
// slide with a report.
func TestWorkSnapshot(t *testing.T) {
	work := pipeline.Work{Dir: t.TempDir()}
	for _, id := range []string{"a", "b"} {
		if err := os.MkdirAll(work.SlideDir(id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(work.ReportHTML("b"), []byte("<p>b</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(JournalDir(work), 0o755); err != nil {
		t.Fatal(err)
	}
	j := `{"slide":"a.svs","id":"a","status":"done","report":"slides/a/report.html","finished":"2026-01-02T03:04:05Z"}`
	if err := os.WriteFile(filepath.Join(JournalDir(work), "a.json"), []byte(j), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(JournalDir(work), "f.json"), []byte(`{"slide":"f.svs","id":"f","status":"failed","reason":"truncated"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := WorkSnapshot(work)()
	if len(s.Done) != 2 || len(s.Failed) != 1 || s.Inbox != "" || len(s.Queue) != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	names := map[string]string{}
	for _, d := range s.Done {
		names[d.ID] = d.Name + " " + d.Report
	}
	if names["a"] != "a.svs slides/a/report.html" || names["b"] != "b slides/b/report.html" {
		t.Errorf("done %v", names)
	}
	if s.Failed[0].Reason != "truncated" {
		t.Errorf("failed %+v", s.Failed)
	}
}
