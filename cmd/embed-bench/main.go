// Command embed-bench measures an ONNX encoder alone: patches/s of ONNX
// Runtime on pre-made full batches (the embed stage's ceiling), and of the
// Go-side preparation (resize + normalise) per core. It links no libvips or
// HDF5, so it runs on a bare GPU machine next to the ONNX Runtime library:
//
//	embed-bench --encoder vit.onnx --device cuda --batch 256 --seconds 20
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/internal/raster"
)

func main() {
	model := flag.String("encoder", "", "encoder .onnx file (required)")
	device := flag.String("device", "cpu", "cpu, cuda, cuda:N or auto")
	lib := flag.String("ort-lib", "", "ONNX Runtime library (default $"+features.LibraryEnv+")")
	batch := flag.Int("batch", 32, "samples per run")
	seconds := flag.Float64("seconds", 10, "time to measure")
	threads := flag.Int("threads", 0, "intra-op threads (0: default)")
	flag.Parse()
	if *model == "" {
		fmt.Fprintln(os.Stderr, "embed-bench: --encoder is required")
		os.Exit(2)
	}
	enc, err := features.Open(*model, features.Options{Device: *device, Library: *lib, Threads: *threads})
	if err != nil {
		fmt.Fprintln(os.Stderr, "embed-bench:", err)
		os.Exit(1)
	}
	defer enc.Close()
	b, err := enc.NewBatch(*batch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "embed-bench:", err)
		os.Exit(1)
	}
	defer b.Close()
	patch := raster.New(enc.PatchSize(), enc.PatchSize())
	for i := range patch.Pix {
		patch.Pix[i] = uint8(i*7 + i/768)
	}
	prep := enc.NewPreparer()
	// Preparation rate on one core.
	t0 := time.Now()
	nPrep := 0
	for time.Since(t0) < time.Second {
		if err := prep.Prepare(patch, b, nPrep%b.Cap); err != nil {
			fmt.Fprintln(os.Stderr, "embed-bench:", err)
			os.Exit(1)
		}
		nPrep++
	}
	prepRate := float64(nPrep) / time.Since(t0).Seconds()
	for s := 0; s < b.Cap; s++ {
		prep.Prepare(patch, b, s)
	}
	b.N = b.Cap
	// Warm-up (CUDA kernels, memory arenas), then measure.
	for i := 0; i < 3; i++ {
		if _, err := enc.Run(b); err != nil {
			fmt.Fprintln(os.Stderr, "embed-bench:", err)
			os.Exit(1)
		}
	}
	t0 = time.Now()
	runs := 0
	for time.Since(t0).Seconds() < *seconds || runs < 3 {
		if _, err := enc.Run(b); err != nil {
			fmt.Fprintln(os.Stderr, "embed-bench:", err)
			os.Exit(1)
		}
		runs++
	}
	el := time.Since(t0)
	rate := float64(runs**batch) / el.Seconds()
	lib2, ver := features.RuntimeInfo()
	fmt.Printf("encoder=%s device=%s batch=%d runs=%d ort=%s (%s) cpus=%d\n", enc.Name(), enc.Device(), *batch, runs, ver, lib2, runtime.NumCPU())
	fmt.Printf("ort_patches_per_s=%.1f ms_per_batch=%.2f prepare_patches_per_s_per_core=%.0f\n", rate, el.Seconds()*1000/float64(runs), prepRate)
}
