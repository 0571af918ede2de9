#!/usr/bin/env bash
# Installs what building and testing her2wsi needs on Debian 12, idempotently:
# only missing packages are installed, and nothing when all are present.
set -euo pipefail

APT_PACKAGES=(
  gcc pkg-config            # cgo
  libvips-dev               # slide reading (libvips 8.14)
  openslide-tools libopenslide-dev  # OpenSlide formats (associated images via its C API); openslide-show-properties for tests
  libhdf5-dev hdf5-tools    # HDF5 outputs; h5dump for tests
  python3-h5py              # tests check that h5py reads our files
  chromium                  # the watch folder's status page is tested in headless Chromium
)
# npm fetches the ONNX Runtime library (scripts/fetch-onnxruntime.sh).
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

# `scripts/setup.sh export`: also what exporting ONNX encoders needs (make vit-model).
if [ "${1:-}" = export ]; then
  APT_PACKAGES+=(python3-torch python3-onnx python3-numpy python3-pil)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "setup: Go is not installed (expected at /usr/local/go); install Go >= 1.26 from https://go.dev/dl" >&2
  exit 1
fi
