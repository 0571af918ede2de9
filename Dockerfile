# her2wsi — multi-stage build. Both stages use the same BASE distribution, so
# the binary runs against the very libraries it was linked with.
#   docker build -t her2wsi .                          # CPU, Debian 12
#   docker build -t her2wsi:cuda \
#     --build-arg BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04 .   # for GPU use (CUDA 13, cuDNN 9)
# The runtime image holds the installed layout of `make install`:
# /usr/local/bin/pipeline and /usr/local/lib/her2wsi/ (the pinned ONNX Runtime;
# in the CUDA variant also gpu/ with the CUDA-enabled build and its CUDA
# provider), which the binary finds from its own path.
# `make docker-check` checks, without Docker, that the runtime stage holds
# every file the binary loads.
ARG BASE=debian:12-slim
ARG GO_IMAGE=golang:1.26-bookworm
# ORT_GPU: also install the CUDA-enabled ONNX Runtime and its CUDA provider
# (auto: when BASE is a CUDA image; true or false to choose).
ARG ORT_GPU=auto

FROM ${GO_IMAGE} AS go

FROM ${BASE} AS build
ARG BASE
ARG ORT_GPU
# The Go toolchain is self-contained: copy it rather than rely on the base.
COPY --from=go /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates gcc libc6-dev pkg-config libvips-dev libopenslide-dev libhdf5-dev npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The pinned ONNX Runtime, from npm, checksum-verified (its own layer).
COPY scripts/fetch-onnxruntime.sh scripts/
RUN scripts/fetch-onnxruntime.sh >/dev/null \
 && case "$ORT_GPU:$BASE" in true:* | auto:*cuda*) scripts/fetch-onnxruntime.sh gpu >/dev/null ;; esac
# OpenSeadragon for the slide viewer, from npm, checksum-verified; embedded
# into the binary by go:embed.
COPY scripts/fetch-openseadragon.sh scripts/
RUN scripts/fetch-openseadragon.sh
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 GOEXPERIMENT=simd go build -trimpath -o /out/pipeline ./cmd/pipeline \
 && scripts/install.sh --bin /out/pipeline /out/prefix \
 # The runtime needs exactly the packages that own the libraries the binary
 # and ONNX Runtime link (ldd + dpkg -S).
 && scripts/runtime-packages.sh /out/prefix > /out/runtime-packages

FROM ${BASE} AS runtime
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/prefix/ /usr/local/
RUN useradd --create-home --uid 10001 her2wsi
USER her2wsi
WORKDIR /work
ENTRYPOINT ["pipeline"]
CMD ["--help"]
