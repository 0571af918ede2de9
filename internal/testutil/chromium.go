package testutil

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Chromium is the path of the chromium browser (Debian package chromium);
// the test is skipped without one.
func Chromium(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian package chromium)")
	}
	return p
}

// ChromiumDOM loads url in headless Chromium, with its own profile and HOME
// in a temporary folder, and returns the DOM once the page's scripts have
// run; flags go before the URL (such as --virtual-time-budget=MS). The test
// fails when Chromium fails or runs longer than timeout.
func ChromiumDOM(t testing.TB, chromium, url string, timeout time.Duration, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	home := t.TempDir()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(home, "profile")}, flags...)
	cmd := exec.CommandContext(ctx, chromium, append(args, "--dump-dom", url)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	return out.String()
}
