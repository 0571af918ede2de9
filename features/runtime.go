package features

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv names the environment variable that points at the ONNX Runtime
// shared library (e.g. a CUDA-enabled build); the --ort-lib flag wins over it.
const LibraryEnv = "HER2WSI_ORT_LIB"

var (
	rtMu   sync.Mutex
	rtPath string // library the process environment was created with
)

// File names and folders of the ONNX Runtime builds the project uses.
const (
	// CPULibraryFile is the CPU build (onnxruntime-node's), GPULibraryFile
	// the CUDA-enabled core; CUDAProviderFile sits beside the latter.
	CPULibraryFile = "libonnxruntime.so.1"
	GPULibraryFile = "libonnxruntime.so"
	// InstallLibDir is where `make install` (scripts/install.sh) puts the
	// library, relative to the folder of the installed binary:
	// PREFIX/bin/pipeline loads PREFIX/lib/her2wsi/libonnxruntime.so.1, and
	// the CUDA-enabled build from its GPUSubdir.
	InstallLibDir = "../lib/her2wsi"
	GPUSubdir     = "gpu"
	// CacheDir is where scripts/fetch-onnxruntime.sh keeps the libraries in
	// a checkout: <version>/libonnxruntime.so.1 and gpu-<version>/.
	CacheDir = ".cache/onnxruntime"
)

// FindLibrary returns the ONNX Runtime library to load for a device (cpu,
// cuda, cuda:N, auto; "" is cpu). The first that exists wins:
//
//  1. explicit (the --ort-lib flag), then $HER2WSI_ORT_LIB: used as given,
//     an error if the file is missing;
//  2. the installed layout, relative to the executable (symlinks resolved):
//     ../lib/her2wsi/libonnxruntime.so.1 and ../lib/her2wsi/gpu/libonnxruntime.so;
//  3. the checkout layout, for bin/pipeline inside a checkout:
//     ../.cache/onnxruntime/<version>/libonnxruntime.so.1 and
//     ../.cache/onnxruntime/gpu-<version>/libonnxruntime.so (newest first);
//  4. beside the executable (a bundle such as make gpu-bundle's);
//  5. .cache/onnxruntime/ in the working directory or one of its parents
//     (go test, go run).
//
// Within each place the CUDA-enabled build comes first for cuda and auto,
// the CPU build first otherwise. The error when none exists lists every
// place searched.
func FindLibrary(explicit, device string) (string, error) {
	exe, err := os.Executable()
	if err == nil {
		if r, rerr := filepath.EvalSymlinks(exe); rerr == nil {
			exe = r
		}
	} else {
		exe = ""
	}
	wd, _ := os.Getwd()
	return findLibrary(explicit, os.Getenv(LibraryEnv), exe, wd, wantsGPU(device))
}

// wantsGPU says whether a device prefers the CUDA-enabled build.
func wantsGPU(device string) bool {
	kind, _, _ := ParseDevice(device)
	return kind == "cuda" || kind == "auto"
}

// findLibrary is FindLibrary with its inputs given: env is $HER2WSI_ORT_LIB,
// exe the resolved executable ("" if unknown), wd the working directory.
func findLibrary(explicit, env, exe, wd string, gpu bool) (string, error) {
	for _, src := range []struct{ path, from string }{{explicit, "--ort-lib"}, {env, "$" + LibraryEnv}} {
		if src.path == "" {
			continue
		}
		if _, err := os.Stat(src.path); err != nil {
			return "", fmt.Errorf("features: onnx runtime library %s (from %s): %w", src.path, src.from, unwrapPath(err))
		}
		return filepath.Abs(src.path)
	}
	var searched []string
	seen := map[string]bool{}
	// look tries each pattern in order (globs over version folders match
	// newest version first); a place already searched is skipped.
	look := func(patterns ...string) string {
		for _, p := range patterns {
			if seen[p] {
				continue
			}
			seen[p] = true
			searched = append(searched, p)
			m, _ := filepath.Glob(p)
			sortVersionsDesc(m)
			for _, c := range m {
				if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
					return c
				}
			}
		}
		return ""
	}
	order := func(cpu, gpuLib string) []string {
		if gpu {
			return []string{gpuLib, cpu}
		}
		return []string{cpu, gpuLib}
	}
	var places [][]string
	if exe != "" {
		d := filepath.Dir(exe)
		inst := filepath.Join(d, InstallLibDir)
		cache := filepath.Join(d, "..", CacheDir)
		places = append(places,
			order(filepath.Join(inst, CPULibraryFile), filepath.Join(inst, GPUSubdir, GPULibraryFile)),
			order(filepath.Join(cache, "[0-9]*", CPULibraryFile), filepath.Join(cache, "gpu-*", GPULibraryFile)),
			order(filepath.Join(d, CPULibraryFile), filepath.Join(d, GPULibraryFile)))
	}
	if wd != "" {
		for d := wd; ; d = filepath.Dir(d) {
			cache := filepath.Join(d, CacheDir)
			places = append(places, order(filepath.Join(cache, "[0-9]*", CPULibraryFile), filepath.Join(cache, "gpu-*", GPULibraryFile)))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, pl := range places {
		if c := look(pl...); c != "" {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("features: no ONNX Runtime library found: --ort-lib and $%s are not set, and none of %s exists: run scripts/fetch-onnxruntime.sh in the checkout (make setup does), or make install, or set %s / --ort-lib",
		LibraryEnv, strings.Join(searched, ", "), LibraryEnv)
}

// sortVersionsDesc orders paths whose folder names hold dotted versions
// (1.30.0, gpu-1.29.0) newest first: 1.30.0 before 1.9.0.
func sortVersionsDesc(paths []string) {
	key := func(p string) []int {
		var v []int
		for _, f := range strings.FieldsFunc(filepath.Base(filepath.Dir(p)), func(r rune) bool { return r < '0' || r > '9' }) {
			n, _ := strconv.Atoi(f)
			v = append(v, n)
		}
		return v
	}
	sort.SliceStable(paths, func(i, j int) bool {
		a, b := key(paths[i]), key(paths[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return paths[i] > paths[j]
	})
}

// InitRuntime loads the ONNX Runtime library once per process: lib if set,
// else FindLibrary's choice for the device. Loading a second, different
// library later is an error (ONNX Runtime has one environment per process).
func InitRuntime(lib, device string) error {
	rtMu.Lock()
	defer rtMu.Unlock()
	if rtPath != "" {
		if lib != "" && lib != rtPath {
			return fmt.Errorf("features: onnx runtime already loaded from %s; cannot switch to %s in one process", rtPath, lib)
		}
		return nil
	}
	path, err := FindLibrary(lib, device)
	if err != nil {
		return err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("features: load onnx runtime %s: %w", path, err)
	}
	rtPath = path
	slog.Debug("onnx runtime loaded", "library", path, "version", ort.GetVersion())
	return nil
}

// RuntimeInfo reports the loaded library and its version ("" before
// InitRuntime).
func RuntimeInfo() (path, version string) {
	rtMu.Lock()
	defer rtMu.Unlock()
	if rtPath == "" {
		return "", ""
	}
	return rtPath, ort.GetVersion()
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
