#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library the project pins, from the npm
# registry, into .cache/onnxruntime/ — idempotently (skips a file whose
# checksum already matches) and verified by SHA-256.
#
#   scripts/fetch-onnxruntime.sh        CPU: onnxruntime-node's libonnxruntime.so.1
#   scripts/fetch-onnxruntime.sh gpu    CUDA: a CUDA-enabled core + providers (ORT 1.29.0, CUDA 13)
#   scripts/fetch-onnxruntime.sh --check [cpu|gpu]
#                                       fetch nothing: fail unless the files are there and verified
#
# Prints the path of the core library on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${HER2WSI_CACHE:-$PWD/.cache}/onnxruntime
CHECK=
if [ "${1:-}" = --check ]; then CHECK=1; shift; fi
MODE=${1:-cpu}

CPU_VERSION=1.30.0
CPU_PKG=onnxruntime-node@$CPU_VERSION
CPU_FILE=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
CPU_SHA=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23

GPU_VERSION=1.29.0
GPU_CORE_PKG=com.github.asus4.onnxruntime@0.4.9
GPU_PROV_PKG=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
GPU_DIR=package/Plugins/Linux/x64
declare -A GPU_SHA=(
  [libonnxruntime.so]=5715f06d8992ca8eeeddcce43df3a7d38f97d537052126f558e912cb312460ca
  [libonnxruntime_providers_shared.so]=086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d
  [libonnxruntime_providers_cuda.so]=56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
)

ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# extract PKG MEMBER DEST SHA: npm pack PKG into a temp folder, take MEMBER.
extract() {
  local pkg=$1 member=$2 dest=$3 sha=$4 tmp
  ok "$dest" "$sha" && return 0
  if [ -n "$CHECK" ]; then
    if [ -f "$dest" ]; then
      echo "fetch-onnxruntime: $dest: checksum mismatch (want $sha): fetch it again with scripts/fetch-onnxruntime.sh $MODE" >&2
    else
      echo "fetch-onnxruntime: $dest: not fetched: run scripts/fetch-onnxruntime.sh $MODE" >&2
    fi
    exit 1
  fi
  command -v npm >/dev/null || { echo "fetch-onnxruntime: npm is needed to fetch $pkg (apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "fetch-onnxruntime: fetching $pkg ($member)" >&2
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" "$member"
  if ! ok "$tmp/$member" "$sha"; then
    echo "fetch-onnxruntime: checksum mismatch for $member from $pkg" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$dest")"
  mv "$tmp/$member" "$dest.tmp.$$" && mv "$dest.tmp.$$" "$dest"
}

case "$MODE" in
cpu)
  dest=$CACHE/$CPU_VERSION/libonnxruntime.so.1
  extract "$CPU_PKG" "$CPU_FILE" "$dest" "$CPU_SHA"
  echo "$dest"
  ;;
gpu)
  dir=$CACHE/gpu-$GPU_VERSION
  extract "$GPU_CORE_PKG" "$GPU_DIR/libonnxruntime.so" "$dir/libonnxruntime.so" "${GPU_SHA[libonnxruntime.so]}"
  extract "$GPU_CORE_PKG" "$GPU_DIR/libonnxruntime_providers_shared.so" "$dir/libonnxruntime_providers_shared.so" "${GPU_SHA[libonnxruntime_providers_shared.so]}"
  extract "$GPU_PROV_PKG" "$GPU_DIR/libonnxruntime_providers_cuda.so" "$dir/libonnxruntime_providers_cuda.so" "${GPU_SHA[libonnxruntime_providers_cuda.so]}"
  echo "$dir/libonnxruntime.so"
  ;;
*)
  echo "usage: $0 [--check] [cpu|gpu]" >&2
  exit 2
  ;;
esac
