# her2wsi — multi-stage build. Both stages use the same BASE distribution, so
# the binary runs against the very libraries it was linked with.
#   docker build -t her2wsi .                          # CPU, Debian 12
#   docker build -t her2wsi:cuda \
#     --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 .   # for GPU use
ARG BASE=debian:12-slim
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS go

FROM ${BASE} AS build
# The Go toolchain is self-contained: copy it rather than rely on the base.
COPY --from=go /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates gcc libc6-dev pkg-config libvips-dev libopenslide-dev libhdf5-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 GOEXPERIMENT=simd go build -trimpath -o /out/pipeline ./cmd/pipeline \
 # The runtime needs exactly the packages that own the linked libraries.
 && ldd /out/pipeline | awk '/=> \//{print $3}' | xargs -r realpath \
    | xargs -r dpkg -S 2>/dev/null | cut -d: -f1 | sort -u > /out/runtime-packages

FROM ${BASE} AS runtime
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/pipeline /usr/local/bin/pipeline
RUN useradd --create-home --uid 10001 her2wsi
USER her2wsi
WORKDIR /work
ENTRYPOINT ["pipeline"]
CMD ["--help"]
