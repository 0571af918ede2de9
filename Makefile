# her2wsi — `make demo` and `make test` set up a fresh Debian 12 machine themselves.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/pipeline
DEMO := demo-out
# Real test slides: ../shared/data beside the checkout, else the workplace copy.
SHARED_DATA ?= $(firstword $(wildcard $(abspath ../shared/data) /work/shared/data) $(abspath ../shared/data))
export HER2WSI_DATA := $(SHARED_DATA)
# Go's SIMD experiment turns on GoMLX's AVX-512/AVX2 matrix kernels (about 3×
# faster model training and prediction); the build works without it.
export GOEXPERIMENT ?= simd

.PHONY: all setup build install uninstall test test-slurm vet docker-check demo bench bench-embed bench-anchors bench-model bench-clam bench-predict-large bench-learning bench-pipeline bench-viewer bench-dicom soak fuzz clean encoders encoders-check vit-model gpu-bundle

all: build

# The ONNX Runtime library the project pins (fetched from npm, checksum-verified).
ORT_LIB := $(abspath .cache/onnxruntime/1.30.0/libonnxruntime.so.1)
export HER2WSI_ORT_LIB ?= $(ORT_LIB)

setup:
	@scripts/setup.sh
	@scripts/fetch-openseadragon.sh
	@scripts/fetch-onnxruntime.sh >/dev/null

build: setup
	$(GO) build -o $(BIN) ./cmd/pipeline
	$(GO) build -o bin/embed-bench ./cmd/embed-bench

# PREFIX/bin/pipeline and the ONNX Runtime it loads, in PREFIX/lib/her2wsi/ (with
# the CUDA provider in gpu/ when `scripts/fetch-onnxruntime.sh gpu` fetched it):
# the installed binary finds them from its own path, so it runs from any folder.
PREFIX ?= /usr/local
install: build
	scripts/install.sh --bin $(BIN) $(DESTDIR)$(PREFIX)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/pipeline
	rm -rf $(DESTDIR)$(PREFIX)/lib/her2wsi

vet: setup
	$(GO) vet ./...

test: setup vet docker-check
	$(GO) test -count=1 -timeout 20m ./...

# The shipped Slurm array job (deploy/slurm/pipeline.sbatch) on a real
# one-node Slurm that the test brings up and takes down itself
# (deploy/slurm/local-cluster.sh; root; installs slurm-wlm, slurmdbd, munge
# and mariadb-server when missing); a few minutes. The cluster is taken down
# again here even when the test process was killed.
SLURM_TEST_DIR := /tmp/her2wsi-slurm-test
test-slurm: build
	@rc=0; HER2WSI_SLURM=1 PIPELINE=$(abspath $(BIN)) $(GO) test -count=1 -timeout 15m -run 'TestSlurmArrayJob' -v ./deploy || rc=$$?; \
	  HER2WSI_SLURM_DIR=$(SLURM_TEST_DIR) deploy/slurm/local-cluster.sh down >/dev/null 2>&1 || true; exit $$rc

# Without Docker: the Dockerfile's runtime stage holds every file the binary
# loads at run time (the libraries' Debian packages, ONNX Runtime in the
# installed layout); seconds.
docker-check: build
	scripts/docker-check.sh

# The main job on a slide the demo makes itself: a synthetic 40× Aperio-style
# slide, tiled into 20× patches and embedded with the small test encoder
# (PLIP's weights cannot be downloaded here; see scripts/README-encoders.md).
demo: build
	@mkdir -p $(DEMO)
	$(BIN) synth --out $(DEMO)/demo-slide.svs --width 16384 --height 12288 --mpp 0.25 --mag 40
	$(BIN) info $(DEMO)/demo-slide.svs
	$(BIN) run --input $(DEMO)/demo-slide.svs --work $(DEMO)/work --stage tile,embed,anchors \
	  --encoder features/testdata/encoders/tiny-clip.onnx
	@# A small IPCA model trained on generated paired H&E/IHC cases with the
	@# test encoder's 8 dimensions (real PLIP weights and cohorts cannot be
	@# downloaded here), then H&E-only prediction of the demo slide. The demo's
	@# cases carry a strong H&E signal (--he-signal 6; the generator's default
	@# 0.35 is the learning benchmark's weak one) so that this small model
	@# (scripts/demo-model.json) learns it in its 30 epochs
	@# (scripts/demo-train.json, about 20 s on 2 cores; no kernel masking:
	@# these small slides have only a few anchors); train prints the test
	@# metrics and what they mean. cmd/pipeline's TestDemoModelBeatsChance runs
	@# these two lines.
	$(BIN) synth --cases 40 --out $(DEMO)/cases --dim 8 --features tiny-clip --min-patches 40 --max-patches 100 --he-signal 6 -log-format json 2>/dev/null
	@rm -rf $(DEMO)/model # always a fresh run (a run folder resumes its checkpoint)
	$(BIN) train --cases $(DEMO)/cases/cases.csv --work $(DEMO)/cases --features tiny-clip --out $(DEMO)/model \
	  --model-config scripts/demo-model.json --train-config scripts/demo-train.json --val-fold -1
	$(BIN) run --input $(DEMO)/demo-slide.svs --work $(DEMO)/work --stage predict --model $(DEMO)/model --features tiny-clip
	@echo
	@echo "demo results: $(DEMO)/work/predictions.csv; report $(DEMO)/work/slides/demo-slide/report.html (with qc.png, heatmap.png; features/tiny-clip.h5, anchors.h5, state.json beside them)"
	@cat $(DEMO)/work/predictions.csv
	@echo "(the demo slide is a generated picture and the model learned from generated cases: this prediction shows the pipeline end to end, not a HER2 reading; the report says so too)"

# Read-path throughput vs the bare libvips ceiling, tissue-mask time and peak
# memory on a generated 40000x30000 40x slide (made once, kept in .cache).
BENCH_SLIDE := .cache/bench/bench-40x.svs

$(BENCH_SLIDE): | build
	@mkdir -p $(dir $@)
	$(BIN) synth --out $@ --width 40000 --height 30000 --mpp 0.25 --mag 40 --blobs 3

# Deep Zoom tiles per second (cold and warm cache) against the bare libvips
# region reads of the same areas, and peak memory while 8 clients pan.
bench-viewer: build $(BENCH_SLIDE)
	$(GO) test -run '^$$' -bench 'BenchmarkViewerTiles' -benchtime 1x -count 1 -timeout 30m ./viewer
	$(GO) test -run '^$$' -bench 'BenchmarkViewerPan' -benchtime 1x -count 1 -timeout 30m ./viewer

# DICOM read path against SVS on the same generated 40x pixels (ratio: dicom/svs).
bench-dicom: setup
	$(GO) test -run '^$$' -bench 'BenchmarkDICOMReadPath' -benchtime 1x -count 1 -timeout 30m ./slide

# Each benchmark in its own process, so peak memory is the stage's own.
bench: build $(BENCH_SLIDE)
	$(GO) test -run '^$$' -bench 'BenchmarkReadPath' -benchtime 1x -count 1 -timeout 30m ./pipeline
	$(GO) test -run '^$$' -bench 'BenchmarkScaledDecode' -benchtime 1x -count 1 -timeout 30m ./pipeline
	$(GO) test -run '^$$' -bench 'BenchmarkTileStage' -benchtime 1x -count 1 -timeout 30m ./pipeline
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/raster ./tiling

# CLAM training step (clam_sb, clam_mb) against the official mahmoodlab/CLAM
# code on the same threads (CLAM_REPO: a checkout of it), as a ratio.
bench-clam: setup
	scripts/bench-clam.sh

# Model: training step and prediction time and peak memory per backend/build,
# and the same step in PyTorch (Debian's torch) with their ratio.
bench-model: setup
	scripts/bench-model.sh

# Whole-slide prediction: time and peak memory at 2048, 20k and 50k patches.
bench-predict-large: setup
	scripts/bench-predict-large.sh

# Learning on generated paired cases (IHC signal strong, H&E weaker in the same
# registered places): `pipeline compare` of ipca, pama, abmil, clam_sb,
# transmil, nystromformer and slidegraph over 5 seeds (200 cases, 20 epochs;
# README "make bench-learning"), bootstrap CIs and paired differences, forest
# plot and ROC bands: the shape of the paper's Table 2. About 65 min on 2
# vCPUs shared with other jobs. BENCH_DIR=DIR keeps (and resumes) the folder;
# VARIANTS=ipca,pama,... a shorter list.
bench-learning: build
	PIPELINE=$(BIN) scripts/bench-learning.sh

# End to end (tile → embed → anchors, streamed) on generated slides: slides/hour
# and each stage's busy share, with the test encoder and the random ViT-B/32.
bench-pipeline: build
	scripts/bench-pipeline.sh 8

# Many training steps, repeated, under a watchdog (fails with the stacks if a
# step hangs); GOMLX_BACKEND=go shows the parallel executor's deadlock.
soak: setup
	HER2WSI_SOAK_STEPS=300 HER2WSI_SOAK_ROUNDS=5 $(GO) test -count=1 -run TestSoakTraining -v -timeout 60m ./model

# Anchors: k-means for all eight ppk values at N = 4096, 20000, 100000 (one
# process each, so peak RSS is that size's), and the loader's bins.
bench-anchors: setup
	@for n in 4096 20000 100000; do \
	  $(GO) test -run '^$$' -bench "BenchmarkAnchorsAllPPK/N=$$n\$$" -benchtime 2x ./anchors | grep Benchmark; done
	$(GO) test -run '^$$' -bench BenchmarkBins2048x128 -benchtime 2s ./anchors | grep Benchmark

PY := /usr/bin/python3

# Regenerate the small test encoders committed in features/testdata/encoders.
encoders:
	@scripts/setup.sh export
	$(PY) scripts/make_test_encoders.py
encoders-check:
	@scripts/setup.sh export
	$(PY) scripts/make_test_encoders.py --check

# A full-size random-weight ViT-B/32 (PLIP's architecture) for benchmarks:
# ~350 MB per contract, ~2 min on 2 cores with Debian's torch.
VIT_MODEL := .cache/models/vit-b32-random.onnx
vit-model: $(VIT_MODEL)
$(VIT_MODEL):
	@scripts/setup.sh export
	$(PY) scripts/export_plip.py --random --seed 0 --out-dir .cache/models --name vit-b32-random --batch-check 1

# The embed stage against ONNX Runtime alone on the same batches (the ceiling).
bench-embed: build $(VIT_MODEL)
	$(GO) test -run '^$$' -bench BenchmarkEmbedStage -benchtime 1x -timeout 60m ./pipeline
	bin/embed-bench --encoder $(VIT_MODEL) --batch 32 --seconds 20

# The whole embed stage for a CUDA machine without Go or libvips, in
# .gpu/her2wsi-gpu/ (+ .tar.gz; ignored): the binaries, every library they
# link (ldd; glibc excepted), libvips' OpenSlide module, ONNX Runtime with
# its CUDA provider, and run.sh (the stage on generated 40× slides against
# ONNX Runtime alone; scripts/gpu-run.sh). The files scripts/gpu-check.sh
# needs (ONNX Runtime alone) stay in .gpu/ as before. scripts/gpu-bundle-check.sh
# then runs the bundle on the CPU from an empty folder and environment and
# checks that every library loaded is the bundle's (glibc's excepted).
gpu-bundle: build
	scripts/fetch-onnxruntime.sh gpu >/dev/null
	mkdir -p .gpu && cp -L .cache/onnxruntime/gpu-1.29.0/*.so bin/embed-bench .gpu/
	scripts/gpu-bundle.sh .gpu/her2wsi-gpu
	scripts/gpu-bundle-check.sh .gpu/her2wsi-gpu

fuzz: setup
	$(GO) test -run '^$$' -fuzz FuzzParseTIFF -fuzztime 30s ./slide
	$(GO) test -run '^$$' -fuzz FuzzAperioDescription -fuzztime 15s ./slide
	$(GO) test -run '^$$' -fuzz FuzzSniff -fuzztime 15s ./slide
	$(GO) test -run '^$$' -fuzz FuzzPlanRead -fuzztime 15s ./tiling
	$(GO) test -run '^$$' -fuzz FuzzServePath -fuzztime 15s ./viewer

clean:
	rm -rf bin $(DEMO) .cache
