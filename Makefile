# her2wsi — `make demo` and `make test` set up a fresh Debian 12 machine themselves.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/pipeline
DEMO := demo-out
# Real test slides: ../shared/data beside the checkout, else the workplace copy.
SHARED_DATA ?= $(firstword $(wildcard $(abspath ../shared/data) /work/shared/data) $(abspath ../shared/data))
export HER2WSI_DATA := $(SHARED_DATA)

.PHONY: all setup build test vet demo bench fuzz clean

all: build

# The ONNX Runtime library the project pins (fetched from npm, checksum-verified).
ORT_LIB := $(abspath .cache/onnxruntime/1.30.0/libonnxruntime.so.1)
export HER2WSI_ORT_LIB ?= $(ORT_LIB)

setup:
	@scripts/setup.sh
	@scripts/fetch-onnxruntime.sh >/dev/null

build: setup
	$(GO) build -o $(BIN) ./cmd/pipeline
	$(GO) build -o bin/embed-bench ./cmd/embed-bench

vet: setup
	$(GO) vet ./...

test: setup vet
	$(GO) test -count=1 -timeout 20m ./...

# The main job on a slide the demo makes itself: a synthetic 40× Aperio-style
# slide, tiled into 20× patches. Prints where the results are.
demo: build
	@mkdir -p $(DEMO)
	$(BIN) synth --out $(DEMO)/demo-slide.svs --width 16384 --height 12288 --mpp 0.25 --mag 40
	$(BIN) info $(DEMO)/demo-slide.svs
	$(BIN) tile --input $(DEMO)/demo-slide.svs --out $(DEMO)/work
	@echo
	@echo "demo results: $(DEMO)/work/slides/demo-slide/ (slide.json, coords.h5, qc.png)"

# Read-path throughput vs the bare libvips ceiling, tissue-mask time and peak
# memory on a generated 40000x30000 40x slide (made once, kept in .cache).
BENCH_SLIDE := .cache/bench/bench-40x.svs

$(BENCH_SLIDE): | build
	@mkdir -p $(dir $@)
	$(BIN) synth --out $@ --width 40000 --height 30000 --mpp 0.25 --mag 40 --blobs 3

# Each benchmark in its own process, so peak memory is the stage's own.
bench: build $(BENCH_SLIDE)
	$(GO) test -run '^$$' -bench 'BenchmarkReadPath' -benchtime 1x -count 1 -timeout 30m ./pipeline
	$(GO) test -run '^$$' -bench 'BenchmarkTileStage' -benchtime 1x -count 1 -timeout 30m ./pipeline
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/raster ./tiling

fuzz: setup
	$(GO) test -run '^$$' -fuzz FuzzParseTIFF -fuzztime 30s ./slide
	$(GO) test -run '^$$' -fuzz FuzzAperioDescription -fuzztime 15s ./slide
	$(GO) test -run '^$$' -fuzz FuzzPlanRead -fuzztime 15s ./tiling

clean:
	rm -rf bin $(DEMO) .cache
