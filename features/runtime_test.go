package features

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// touch makes an empty file (with its folders) under root.
func touch(t *testing.T, root, rel string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The lookup order: flag, environment, installed layout, checkout layout,
// beside the executable, the working directory's .cache; within a place the
// CUDA-enabled build first for cuda/auto, the CPU build first for cpu.
func TestFindLibraryOrder(t *testing.T) {
	root := t.TempDir()
	exe := touch(t, root, "prefix/bin/pipeline")
	wd := filepath.Join(root, "checkout", "sub", "dir")
	files := map[string]string{
		"flag":       touch(t, root, "flag/libonnxruntime.so.1"),
		"env":        touch(t, root, "env/libonnxruntime.so.1"),
		"inst-cpu":   touch(t, root, "prefix/lib/her2wsi/libonnxruntime.so.1"),
		"inst-gpu":   touch(t, root, "prefix/lib/her2wsi/gpu/libonnxruntime.so"),
		"cache-cpu":  touch(t, root, "prefix/.cache/onnxruntime/1.30.0/libonnxruntime.so.1"),
		"cache-old":  touch(t, root, "prefix/.cache/onnxruntime/1.9.0/libonnxruntime.so.1"),
		"cache-gpu":  touch(t, root, "prefix/.cache/onnxruntime/gpu-1.29.0/libonnxruntime.so"),
		"beside-cpu": touch(t, root, "prefix/bin/libonnxruntime.so.1"),
		"beside-gpu": touch(t, root, "prefix/bin/libonnxruntime.so"),
		"wd-cpu":     touch(t, root, "checkout/.cache/onnxruntime/1.30.0/libonnxruntime.so.1"),
		"wd-gpu":     touch(t, root, "checkout/.cache/onnxruntime/gpu-1.29.0/libonnxruntime.so"),
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	find := func(explicit, env string, gpu bool) string {
		t.Helper()
		got, err := findLibrary(explicit, env, exe, wd, gpu)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range files {
			if v == got {
				return k
			}
		}
		t.Fatalf("found %s, not one of the test files", got)
		return ""
	}
	if got := find(files["flag"], files["env"], false); got != "flag" {
		t.Errorf("flag and env set: got %s", got)
	}
	if got := find("", files["env"], true); got != "env" {
		t.Errorf("env set: got %s", got)
	}
	// Removing each CPU-order winner in turn reveals the next.
	cpuOrder := []string{"inst-cpu", "inst-gpu", "cache-cpu", "cache-old", "cache-gpu", "beside-cpu", "beside-gpu", "wd-cpu", "wd-gpu"}
	gpuOrder := []string{"inst-gpu", "inst-cpu", "cache-gpu", "cache-cpu", "cache-old", "beside-gpu", "beside-cpu", "wd-gpu", "wd-cpu"}
	for i, want := range gpuOrder {
		if got := find("", "", true); got != want {
			t.Errorf("gpu step %d: got %s, want %s", i, got, want)
		}
		// Check the CPU order over what remains, without removing anything.
		for _, w := range cpuOrder {
			if _, err := os.Stat(files[w]); err == nil {
				if got := find("", "", false); got != w {
					t.Errorf("gpu step %d: cpu lookup got %s, want %s", i, got, w)
				}
				break
			}
		}
		os.Remove(files[want])
	}
	// Nothing left: the error lists every place searched.
	_, err := findLibrary("", "", exe, wd, false)
	if err == nil {
		t.Fatal("no library: no error")
	}
	for _, p := range []string{
		filepath.Join(root, "prefix/lib/her2wsi/libonnxruntime.so.1"),
		filepath.Join(root, "prefix/lib/her2wsi/gpu/libonnxruntime.so"),
		filepath.Join(root, "prefix/.cache/onnxruntime/[0-9]*/libonnxruntime.so.1"),
		filepath.Join(root, "prefix/.cache/onnxruntime/gpu-*/libonnxruntime.so"),
		filepath.Join(root, "prefix/bin/libonnxruntime.so.1"),
		filepath.Join(wd, ".cache/onnxruntime/[0-9]*/libonnxruntime.so.1"),
		filepath.Join(root, "checkout/.cache/onnxruntime/gpu-*/libonnxruntime.so"),
		"/.cache/onnxruntime/[0-9]*/libonnxruntime.so.1",
		"fetch-onnxruntime.sh", "make install", LibraryEnv, "--ort-lib",
	} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not name %s: %v", p, err)
		}
	}
	if !strings.HasPrefix(err.Error(), "features: no ") {
		t.Errorf("error: %v", err)
	}
}

// A flag or environment value naming a missing file is an error naming the
// file and where it came from, not a fall-through to the other places.
func TestFindLibraryMissingExplicit(t *testing.T) {
	root := t.TempDir()
	exe := touch(t, root, "prefix/bin/pipeline")
	touch(t, root, "prefix/lib/her2wsi/libonnxruntime.so.1")
	missing := filepath.Join(root, "nope", "libonnxruntime.so.1")
	for _, c := range []struct{ flag, env, from string }{{missing, "", "--ort-lib"}, {"", missing, "$" + LibraryEnv}} {
		_, err := findLibrary(c.flag, c.env, exe, root, false)
		if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), c.from) || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("%s: %v", c.from, err)
		}
	}
	// The installed layout also works with no working directory known.
	got, err := findLibrary("", "", exe, "", false)
	if err != nil || got != filepath.Join(root, "prefix/lib/her2wsi/libonnxruntime.so.1") {
		t.Errorf("installed layout: %s, %v", got, err)
	}
}

// cuda and auto prefer the CUDA-enabled build; FindLibrary passes the flag
// through.
func TestFindLibraryDevice(t *testing.T) {
	for dev, gpu := range map[string]bool{"": false, "cpu": false, "cuda": true, "cuda:1": true, "auto": true, "bad": false} {
		if wantsGPU(dev) != gpu {
			t.Errorf("device %q: wants gpu %v", dev, !gpu)
		}
	}
	missing := filepath.Join(t.TempDir(), "x.so")
	if _, err := FindLibrary(missing, "cuda"); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing flag file: %v", err)
	}
}
