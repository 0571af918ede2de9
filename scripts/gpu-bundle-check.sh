#!/usr/bin/env bash
# Checks a GPU bundle (scripts/gpu-bundle.sh) on the CPU, here: unpacks
# BUNDLE.tar.gz into an empty folder, runs its run.sh there in an empty
# environment (--device cpu, a small generated 40× slide, the tiny test
# encoder), and with the dynamic loader's trace (LD_DEBUG=libs) checks that
# every library the pipeline loads, dlopen'ed ones included (ONNX Runtime,
# libvips' OpenSlide module), comes from the bundle, glibc's excepted.
#
#   scripts/gpu-bundle-check.sh [BUNDLE_DIR]     (default .gpu/her2wsi-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:-.gpu/her2wsi-gpu}
[ -f "$bundle.tar.gz" ] || { echo "gpu-bundle-check: $bundle.tar.gz missing: run make gpu-bundle" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$bundle.tar.gz" -C "$tmp"
b=$tmp/$(basename "$bundle")

# 1. run.sh from the clean folder, environment emptied.
(cd "$tmp" && env -i HOME="$tmp" PATH=/usr/bin:/bin "$b/run.sh" --device cpu --slides 1 --size 8192 --readers 2 \
  --batch 32 --seconds 3 --encoder "$b/models/tiny-raw.onnx" --out "$tmp/out") > "$tmp/run.txt" 2>&1 || {
  echo "gpu-bundle-check: run.sh failed:" >&2; cat "$tmp/run.txt" >&2; exit 1; }
grep -q 'reader: tiffload' "$tmp/run.txt" || { echo "gpu-bundle-check: the slide did not open with tiffload:" >&2; cat "$tmp/run.txt" >&2; exit 1; }
grep -q 'patches/s' "$tmp/run.txt" || { echo "gpu-bundle-check: no rate printed:" >&2; cat "$tmp/run.txt" >&2; exit 1; }

# 2. Where each library the pipeline initialises comes from.
env -i HOME="$tmp" LD_LIBRARY_PATH="$b/lib" VIPSHOME="$b" LD_DEBUG=libs LD_DEBUG_OUTPUT="$tmp/ld" \
  "$b/bin/pipeline" run --input "$tmp/out/slides" --work "$tmp/work2" --stage tile,embed --encoder "$b/models/tiny-raw.onnx" >/dev/null 2>&1 || {
  echo "gpu-bundle-check: the traced run failed" >&2; exit 1; }
libs=$(cat "$tmp"/ld.* | sed -n 's/.*calling init: //p' | sort -u)
outside=$(grep -v "^$b/" <<< "$libs" | grep -Ev '/(ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv)\.so' || true)
if [ -n "$outside" ]; then
  echo "gpu-bundle-check: libraries loaded from outside the bundle:" >&2
  echo "$outside" >&2
  exit 1
fi
for want in vips-openslide.so libonnxruntime.so libopenslide.so libvips.so libhdf5; do
  grep -q "$want" <<< "$libs" || { echo "gpu-bundle-check: $want was not loaded" >&2; exit 1; }
done
cat "$tmp/run.txt"
echo "gpu-bundle-check: ok: run.sh works from a clean folder on the CPU; $(wc -l <<< "$libs") libraries loaded, all from the bundle but glibc's ($(grep -v "^$b/" <<< "$libs" | xargs -n1 basename | tr '\n' ' '))"
