#!/usr/bin/env bash
# Builds a self-contained bundle of the whole embed stage for a machine that
# has an NVIDIA driver and CUDA 13 libraries but no Go toolchain and no
# libvips (make gpu-bundle):
#
#   OUT/bin/pipeline, OUT/bin/embed-bench     the binaries
#   OUT/lib/*.so*                             every shared library they link, resolved with
#                                             ldd, except glibc's own (libc, libm, ld-linux, ...:
#                                             those must match the host's loader)
#   OUT/x86_64-linux-gnu/vips-modules-8.14/vips-openslide.so   libvips' OpenSlide
#                                             loader (a module libvips finds from $VIPSHOME)
#   OUT/lib/her2wsi/libonnxruntime.so.1       the CPU ONNX Runtime (the installed layout: the
#   OUT/lib/her2wsi/gpu/...                   binary finds both from its own path), and the
#                                             CUDA-enabled one with its CUDA provider
#   OUT/models/tiny-{clip,raw}.onnx           the small test encoders
#   OUT/scripts/export_plip.py                exports the random-weight ViT-B/32 where torch is
#   OUT/run.sh                                runs the embed stage on generated 40× slides
#                                             and prints patches/s (see its header)
#
#   scripts/gpu-bundle.sh [OUT]    (default .gpu/her2wsi-gpu; also OUT.tar.gz)
#
# Needs bin/pipeline and bin/embed-bench (make build) and the CUDA-enabled
# ONNX Runtime (scripts/fetch-onnxruntime.sh gpu). With CPU_ONLY=1 the CUDA
# files are left out (for testing the bundle where they cannot be fetched).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.gpu/her2wsi-gpu}
vipsmod=$(pkg-config --variable=libdir vips)/vips-modules-$(pkg-config --modversion vips | cut -d. -f1,2)

for b in bin/pipeline bin/embed-bench; do
  [ -x "$b" ] || { echo "gpu-bundle: $b missing: run make build" >&2; exit 1; }
done
cpu=$(scripts/fetch-onnxruntime.sh --check cpu)
gpu=
if [ -z "${CPU_ONLY:-}" ]; then
  gpu=$(scripts/fetch-onnxruntime.sh --check gpu) || {
    echo "gpu-bundle: the CUDA-enabled ONNX Runtime is missing: run scripts/fetch-onnxruntime.sh gpu" >&2
    exit 1
  }
fi
[ -f "$vipsmod/vips-openslide.so" ] || { echo "gpu-bundle: $vipsmod/vips-openslide.so missing (libvips without OpenSlide?)" >&2; exit 1; }

rm -rf "$out.tmp" && mkdir -p "$out.tmp"/{bin,lib/her2wsi,models,scripts}
cp bin/pipeline bin/embed-bench "$out.tmp/bin/"
# libvips looks for its modules in <libdir>/vips-modules-X.Y, libdir being
# its configured one with the prefix replaced by $VIPSHOME (Debian:
# /usr/lib/x86_64-linux-gnu → $VIPSHOME/x86_64-linux-gnu).
moddir=$out.tmp/$(basename "$(dirname "$vipsmod")")/$(basename "$vipsmod")
mkdir -p "$moddir"
cp "$vipsmod/vips-openslide.so" "$moddir/"

# glibc's libraries stay the host's: they go with its dynamic loader.
glibc='^(ld-linux.*|libc|libm|libpthread|libdl|librt|libresolv|libutil|libanl|libnsl|libBrokenLocale|libmvec|libcrypt|linux-vdso)\.so'
ldd bin/pipeline "$vipsmod/vips-openslide.so" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
while read -r so; do
  name=$(basename "$so")
  [[ $name =~ $glibc ]] && continue
  cp -L "$so" "$out.tmp/lib/$name"
done
if ldd bin/pipeline | grep -q 'not found'; then
  echo "gpu-bundle: bin/pipeline has unresolved libraries:" >&2
  ldd bin/pipeline | grep 'not found' >&2
  exit 1
fi

cp "$cpu" "$out.tmp/lib/her2wsi/libonnxruntime.so.1"
if [ -n "$gpu" ]; then
  mkdir -p "$out.tmp/lib/her2wsi/gpu"
  for f in libonnxruntime.so libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
    cp "$(dirname "$gpu")/$f" "$out.tmp/lib/her2wsi/gpu/$f"
  done
fi
cp features/testdata/encoders/tiny-clip.onnx features/testdata/encoders/tiny-clip.json \
   features/testdata/encoders/tiny-raw.onnx features/testdata/encoders/tiny-raw.json "$out.tmp/models/"
cp scripts/export_plip.py scripts/make_test_encoders.py "$out.tmp/scripts/"
cp scripts/gpu-run.sh "$out.tmp/run.sh"
git rev-parse --short HEAD > "$out.tmp/VERSION" 2>/dev/null || echo unknown > "$out.tmp/VERSION"

# Self-check from a clean environment with only the bundle's libraries: a
# generated Aperio slide must open through OpenSlide's header with the
# tiffload reader (without the module it would open as a flat image).
chk=$(mktemp -d)
trap 'rm -rf "$chk"' EXIT
env -i LD_LIBRARY_PATH="$out.tmp/lib" VIPSHOME="$out.tmp" "$out.tmp/bin/pipeline" synth --out "$chk/c.svs" --width 2048 --height 2048 >/dev/null 2>&1
info=$(env -i LD_LIBRARY_PATH="$out.tmp/lib" VIPSHOME="$out.tmp" "$out.tmp/bin/pipeline" info "$chk/c.svs" 2>&1) || true
if ! grep -q 'vendor aperio' <<< "$info" || ! grep -q 'reader: *tiffload' <<< "$info"; then
  echo "gpu-bundle: self-check failed: the bundled binary does not read a generated SVS through OpenSlide + tiffload:" >&2
  echo "$info" >&2
  exit 1
fi

rm -rf "$out" && mv "$out.tmp" "$out"
tar -czf "$out.tar.gz.tmp" -C "$(dirname "$out")" "$(basename "$out")" && mv "$out.tar.gz.tmp" "$out.tar.gz"
echo "gpu-bundle: $out ($(du -sh "$out" | cut -f1), $(ls "$out/lib" | grep -c '\.so') libraries; $out.tar.gz $(du -sh "$out.tar.gz" | cut -f1))" >&2
