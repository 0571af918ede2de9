#!/usr/bin/env bash
# Installs the pipeline binary and the ONNX Runtime it loads at run time
# (make install, and the Dockerfile's build stage):
#
#   PREFIX/bin/pipeline
#   PREFIX/lib/her2wsi/libonnxruntime.so.1        the pinned CPU build (scripts/fetch-onnxruntime.sh)
#   PREFIX/lib/her2wsi/gpu/libonnxruntime.so       the CUDA-enabled build and its providers, when
#   PREFIX/lib/her2wsi/gpu/libonnxruntime_providers_{shared,cuda}.so    `scripts/fetch-onnxruntime.sh gpu` fetched them
#
# The binary finds lib/her2wsi/ from its own path (features.FindLibrary), so
# it runs from any folder with no environment variable. The libraries are
# checked against their pinned SHA-256 first; nothing is fetched here.
#
#   scripts/install.sh [--bin FILE] PREFIX     (default FILE: bin/pipeline)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/pipeline
while [ $# -gt 0 ]; do
  case "$1" in
  --bin) bin=${2:?--bin needs a file}; shift 2 ;;
  --bin=*) bin=${1#--bin=}; shift ;;
  -*) echo "install: unknown option $1 (usage: scripts/install.sh [--bin FILE] PREFIX)" >&2; exit 2 ;;
  *) break ;;
  esac
done
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: scripts/install.sh [--bin FILE] PREFIX" >&2
  exit 2
fi
prefix=$1
if [ ! -x "$bin" ]; then
  echo "install: $bin: no such executable (make build makes bin/pipeline)" >&2
  exit 1
fi

cpu=$(scripts/fetch-onnxruntime.sh --check cpu) || {
  echo "install: the ONNX Runtime library is missing: run make setup (or scripts/fetch-onnxruntime.sh) first" >&2
  exit 1
}
gpu=
if compgen -G "${HER2WSI_CACHE:-$PWD/.cache}/onnxruntime/gpu-*" >/dev/null; then
  # Fetched with the GPU option: install the pinned build whole and verified, or fail.
  gpu=$(scripts/fetch-onnxruntime.sh --check gpu) || {
    echo "install: the CUDA-enabled ONNX Runtime in .cache/onnxruntime/ is incomplete: run scripts/fetch-onnxruntime.sh gpu again" >&2
    exit 1
  }
fi

lib=$prefix/lib/her2wsi
install -D -m 0755 "$bin" "$prefix/bin/pipeline"
install -D -m 0644 "$cpu" "$lib/libonnxruntime.so.1"
echo "install: $prefix/bin/pipeline, $lib/libonnxruntime.so.1" >&2
if [ -n "$gpu" ]; then
  for f in libonnxruntime.so libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
    install -D -m 0644 "$(dirname "$gpu")/$f" "$lib/gpu/$f"
  done
  echo "install: $lib/gpu/ (CUDA-enabled ONNX Runtime with its CUDA provider, for --device cuda|auto)" >&2
else
  echo "install: no CUDA provider (scripts/fetch-onnxruntime.sh gpu fetches it; install again after)" >&2
fi
