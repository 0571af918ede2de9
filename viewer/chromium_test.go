package viewer

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// In headless Chromium the viewer page loads OpenSeadragon, opens the
// slide's Deep Zoom descriptor, fetches the attention and shows the
// prediction, and the patch at a point (#at=X,Y, as a click) (only when this build embeds OpenSeadragon).
func TestViewChromium(t *testing.T) {
	if !HaveOpenSeadragon() {
		t.Skip("OpenSeadragon not fetched (scripts/fetch-openseadragon.sh)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no chromium")
	}
	srv, _, dir := testWork(t)
	att := `{"patch_size_level0":256,"patches":[[0,0,0],[256,0,0.5],[512,256,1]],"prediction":"3+","probabilities":[0.1,0.1,0.2,0.6]}`
	if err := os.WriteFile(filepath.Join(dir, "slides", "s1", "attention.json"), []byte(att), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, c := range []struct{ hash, want string }{
		{"#at=300,10", "patch 1 at (256, 0), attention 0.500"},
		{"#at=600,300", "patch 2 at (512, 256), attention 1.000"},
		{"#at=1000,800", "(1000, 800): no patch"},
	} {
		dom := chromiumDOM(t, chromium, ts.URL+"/slides/s1/view"+c.hash)
		for _, want := range []string{"openseadragon-canvas", "<strong>HER2 3+</strong>", "0.100 / 0.100 / 0.200 / 0.600", `<div id="scale"><div style="width: `, c.want} {
			if !strings.Contains(dom, want) {
				t.Errorf("%s: the viewer's DOM lacks %q:\n%s", c.hash, want, dom)
			}
		}
	}
}

func chromiumDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+filepath.Join(home, "profile"), "--virtual-time-budget=10000",
		"--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	return out.String()
}
