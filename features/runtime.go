package features

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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

// FindLibrary returns the ONNX Runtime library to load: explicit (a flag)
// if set, else $HER2WSI_ORT_LIB, else libonnxruntime.so.1 next to the
// executable or in its ../lib, else the newest copy that
// scripts/fetch-onnxruntime.sh put in a .cache/onnxruntime folder of the
// working directory or one of its parents.
func FindLibrary(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv(LibraryEnv)} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("features: onnx runtime library %s: %w", p, unwrapPath(err))
		}
		return filepath.Abs(p)
	}
	var cands []string
	if exe, err := os.Executable(); err == nil {
		d := filepath.Dir(exe)
		cands = append(cands, filepath.Join(d, "libonnxruntime.so.1"), filepath.Join(d, "..", "lib", "libonnxruntime.so.1"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			m, _ := filepath.Glob(filepath.Join(d, ".cache", "onnxruntime", "*", "libonnxruntime.so.1"))
			sort.Sort(sort.Reverse(sort.StringSlice(m)))
			cands = append(cands, m...)
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return filepath.Abs(c)
		}
	}
	return "", errors.New("features: no ONNX Runtime library found: run scripts/fetch-onnxruntime.sh (make setup does) or set " + LibraryEnv + " / --ort-lib")
}

// InitRuntime loads the ONNX Runtime library once per process. Loading a
// second, different library later is an error (ONNX Runtime has one
// environment per process).
func InitRuntime(lib string) error {
	rtMu.Lock()
	defer rtMu.Unlock()
	if rtPath != "" {
		if lib != "" && lib != rtPath {
			return fmt.Errorf("features: onnx runtime already loaded from %s; cannot switch to %s in one process", rtPath, lib)
		}
		return nil
	}
	path, err := FindLibrary(lib)
	if err != nil {
		return err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("features: load onnx runtime %s: %w", path, err)
	}
	rtPath = path
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
