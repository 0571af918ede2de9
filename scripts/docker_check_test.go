package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func dockerCheck(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("./docker-check.sh", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The Dockerfile passes the static part of the check; Dockerfiles that lose
// the installed layout, the package list, the CUDA build or the PATH fail it,
// each with its reason.
func TestDockerfileCheck(t *testing.T) {
	if out, err := dockerCheck(t, nil, "--dockerfile-only"); err != nil || !strings.Contains(out, "Dockerfile: ok") {
		t.Fatalf("the Dockerfile: %v\n%s", err, out)
	}
	orig, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, old, new, want string }{
		{"no prefix copy", "COPY --from=build /out/prefix/ /usr/local/\n", "", "does not COPY --from=build /out/prefix/"},
		{"copy off PATH", "COPY --from=build /out/prefix/ /usr/local/", "COPY --from=build /out/prefix/ /opt/her2wsi/", "/opt/her2wsi/bin is not on the default PATH"},
		{"no package list", "$(cat /tmp/runtime-packages)", "libvips42", "does not apt-get install the packages listed"},
		{"no install.sh", "scripts/install.sh --bin /out/pipeline /out/prefix", "cp /out/pipeline /out/prefix/bin/", "does not run scripts/install.sh"},
		{"no CUDA build", "scripts/fetch-onnxruntime.sh gpu", "true", "does not fetch the CUDA-enabled ONNX Runtime"},
		{"other prefix", "scripts/runtime-packages.sh /out/prefix", "scripts/runtime-packages.sh /out/other", "reads /out/other but install.sh installs into /out/prefix"},
	} {
		if !strings.Contains(string(orig), c.old) {
			t.Fatalf("%s: the Dockerfile has no %q", c.name, c.old)
		}
		f := filepath.Join(t.TempDir(), "Dockerfile")
		os.WriteFile(f, []byte(strings.Replace(string(orig), c.old, c.new, 1)), 0o644)
		out, err := dockerCheck(t, []string{"DOCKERFILE=" + f}, "--dockerfile-only")
		if err == nil || !strings.Contains(out, "FAIL: "+f+": ") || !strings.Contains(out, c.want) {
			t.Errorf("%s: want a failure with %q: %v\n%s", c.name, c.want, err, out)
		}
	}
}

// A library the binary loads that no package of the runtime stage provides,
// or that no package owns at all, fails the full check (make docker-check
// runs the passing case on the real binary).
func TestDockerCheckCatchesMissingLibraries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline binary several times")
	}
	if _, err := os.Stat("../bin/pipeline"); err != nil {
		t.Skip("bin/pipeline is not built (make build)")
	}
	if out, err := exec.Command("../scripts/fetch-onnxruntime.sh", "--check").CombinedOutput(); err != nil {
		t.Skipf("ONNX Runtime not fetched: %s", out)
	}
	// A library of a package nothing in the runtime stage depends on.
	foreign := ""
	for _, c := range []string{"/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", "/usr/lib/x86_64-linux-gnu/libhdf5_serial_hl.so.100"} {
		if _, err := os.Stat(c); err == nil {
			foreign = c
			break
		}
	}
	if foreign == "" {
		t.Skip("no library of an unrelated package here")
	}
	b, err := os.ReadFile("/usr/lib/x86_64-linux-gnu/libz.so.1")
	if err != nil {
		t.Skip(err)
	}
	unowned := filepath.Join(t.TempDir(), "libz-copy.so.1")
	os.WriteFile(unowned, b, 0o644)
	out, err := dockerCheck(t, []string{"DOCKER_CHECK_PRELOAD=" + foreign + " " + unowned})
	for _, w := range []string{
		foreign + " (package ", "the runtime stage installs neither",
		unowned + " is loaded at run time, but no Debian package owns it",
		"2 problem(s)",
	} {
		if err == nil || !strings.Contains(out, w) {
			t.Errorf("want %q: %v\n%s", w, err, out)
		}
	}
}
