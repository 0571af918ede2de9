package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/features"
)

// The installed binary (scripts/install.sh, which make install runs) loads
// its ONNX Runtime from PREFIX/lib/her2wsi/ whatever the working directory,
// with no environment variable, also when started through a symlink;
// HER2WSI_ORT_LIB still overrides, and without the library the error lists
// the places searched.
func TestInstalledBinaryRunsAnywhere(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(filepath.Join(root, "scripts", "fetch-onnxruntime.sh"), "--check")
	out, err := check.Output()
	if err != nil {
		t.Skipf("ONNX Runtime not fetched (make setup fetches it): %v", err)
	}
	cacheLib := strings.TrimSpace(string(out))
	var run string
	tmp := t.TempDir()
	built := filepath.Join(tmp, "build", "pipeline")
	if out, err := exec.Command("go", "build", "-o", built, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	prefix := filepath.Join(tmp, "prefix")
	if out, err := exec.Command(filepath.Join(root, "scripts", "install.sh"), "--bin", built, prefix).CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	installedLib := filepath.Join(prefix, "lib", "her2wsi", "libonnxruntime.so.1")
	for _, f := range []string{filepath.Join(prefix, "bin", "pipeline"), installedLib} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("not installed: %v", err)
		}
	}
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, features.LibraryEnv+"=") {
			env = append(env, e)
		}
	}
	encoder := filepath.Join(root, "features", "testdata", "encoders", "tiny-clip.onnx")
	// pipeline runs the installed binary (or a link to it) in a folder
	// outside the checkout.
	pipeline := func(exe, dir string, extraEnv []string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(exe, args...)
		cmd.Dir = dir
		cmd.Env = append(append([]string(nil), env...), extraEnv...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	bin := filepath.Join(prefix, "bin", "pipeline")
	elsewhere := t.TempDir()
	if out, err := pipeline(bin, elsewhere, nil, "synth", "--out", "slide.svs", "--width", "2048", "--height", "1536", "--mpp", "0.5", "--mag", "20"); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	embed := []string{"run", "--input", "slide.svs", "--work", "work", "--encoder", encoder, "-v"}
	run, err = pipeline(bin, elsewhere, nil, append(embed, "--stage", "tile,embed")...)
	if err != nil {
		t.Fatalf("run --stage tile,embed from %s: %v\n%s", elsewhere, err, run)
	}
	if !strings.Contains(run, "library="+installedLib) {
		t.Errorf("did not load %s:\n%s", installedLib, run)
	}
	feats := filepath.Join(elsewhere, "work", "slides", "slide", "features", "tiny-clip.h5")
	if _, err := os.Stat(feats); err != nil {
		t.Fatalf("no features: %v\n%s", err, run)
	}

	// Through a symlink in another folder, run from a third one.
	linkDir := t.TempDir()
	link := filepath.Join(linkDir, "pipeline")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	third := t.TempDir()
	embedAbs := []string{"run", "--input", filepath.Join(elsewhere, "slide.svs"), "--work", filepath.Join(elsewhere, "work"), "--encoder", encoder, "-v", "--stage", "embed", "--force"}
	if out, err := pipeline(link, third, nil, embedAbs...); err != nil || !strings.Contains(out, "library="+installedLib) {
		t.Errorf("through a symlink: %v\n%s", err, out)
	}

	// The CUDA-enabled build, when installed, is the one --device cuda loads.
	gpuLib := filepath.Join(prefix, "lib", "her2wsi", "gpu", "libonnxruntime.so")
	if _, err := os.Stat(gpuLib); err == nil {
		out, err := pipeline(bin, third, nil, append(embedAbs, "--device", "cuda")...)
		if !strings.Contains(out, filepath.Dir(gpuLib)) {
			t.Errorf("--device cuda did not use %s: %v\n%s", gpuLib, err, out)
		}
	}

	// HER2WSI_ORT_LIB overrides the installed copy.
	if out, err := pipeline(bin, third, []string{features.LibraryEnv + "=" + cacheLib}, embedAbs...); err != nil || !strings.Contains(out, "library="+cacheLib) {
		t.Errorf("%s=%s: %v\n%s", features.LibraryEnv, cacheLib, err, out)
	}

	// Without the installed library: an error listing where it looked.
	if err := os.RemoveAll(filepath.Join(prefix, "lib")); err != nil {
		t.Fatal(err)
	}
	run, err = pipeline(bin, third, nil, embedAbs...)
	if err == nil || !strings.Contains(run, "no ONNX Runtime library found") || !strings.Contains(run, installedLib) || !strings.Contains(run, filepath.Join(prefix, ".cache", "onnxruntime")) {
		t.Errorf("no library: %v\n%s", err, run)
	}
}
