#!/usr/bin/env bash
# run.sh of the GPU bundle (make gpu-bundle; scripts/gpu-bundle.sh): the
# whole embed stage on generated 40× slides with the bundle's own binary and
# libraries (no Go, no libvips needed on the machine), against ONNX Runtime
# alone on the same model, device and batch; prints patches/s of both and
# their ratio, and the GPU's mean utilisation during the stage (nvidia-smi).
#
#   ./run.sh [--device cuda|cuda:N|cpu] [--encoder MODEL.onnx] [--batch 256]
#            [--readers 16] [--slides 2] [--size 32768] [--scaled-decode true|false]
#            [--seconds 15] [--out /tmp/her2wsi-gpu-run]
#
# Without --encoder: where python3 has torch, the random-weight ViT-B/32
# (PLIP's shape) is exported with the bundle's scripts/export_plip.py, fp16
# raw-patch contract on cuda (fp32 on cpu); else the bundle's tiny-raw test
# encoder, which measures the host side (reading, preparing) only.
# CUDA's libraries come from the machine: pip's nvidia-* wheels of python3,
# /usr/local/cuda/lib64, or LD_LIBRARY_PATH as given.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
device=cuda batch=256 readers=16 slides=2 size=32768 scaled=true seconds=15
out=/tmp/her2wsi-gpu-run encoder=
while [ $# -gt 0 ]; do
  case "$1" in
  --device) device=$2; shift 2 ;;
  --encoder) encoder=$2; shift 2 ;;
  --batch) batch=$2; shift 2 ;;
  --readers) readers=$2; shift 2 ;;
  --slides) slides=$2; shift 2 ;;
  --size) size=$2; shift 2 ;;
  --scaled-decode) scaled=$2; shift 2 ;;
  --seconds) seconds=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
  *) echo "run.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
log=$out/run.txt
: > "$log"
say() { echo "$*" | tee -a "$log"; }

wheel_libs=
if command -v python3 >/dev/null; then
  wheel_libs=$(python3 - <<'EOF' 2>/dev/null || true
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    dirs.update(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))
print(":".join(sorted(dirs)))
EOF
)
fi
# The bundle's libraries first; libvips finds its OpenSlide module from
# $VIPSHOME; the binary finds lib/her2wsi/ (ONNX Runtime) from its path.
export LD_LIBRARY_PATH=$here/lib${wheel_libs:+:$wheel_libs}:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export VIPSHOME=$here
P=$here/bin/pipeline

say "== her2wsi gpu bundle $(cat "$here/VERSION" 2>/dev/null) $(date -u +%FT%TZ) device=$device batch=$batch readers=$readers scaled-decode=$scaled cpus=$(nproc)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log" || true
case "$device" in cuda*)
  prov=$here/lib/her2wsi/gpu/libonnxruntime_providers_cuda.so
  [ -f "$prov" ] || { say "this bundle has no CUDA provider (built with CPU_ONLY): use --device cpu"; exit 1; }
  missing=$(ldd "$prov" 2>&1 | grep 'not found' | awk '{print $1}' | tr '\n' ' ')
  [ -z "$missing" ] || say "warning: libraries of the CUDA provider not found (CUDA 13 runtime, cuBLAS, cuDNN 9: pip install nvidia-cuda-runtime nvidia-cublas nvidia-cudnn-cu13 ..., or LD_LIBRARY_PATH): $missing"
  ;;
esac

if [ -z "$encoder" ]; then
  kind=cpu
  case "$device" in cuda*) kind=cuda ;; esac
  fp16=
  [ "$kind" = cuda ] && fp16=--fp16
  name=vit-raw${fp16:+-fp16}
  if [ -f "$out/models/$name.onnx" ]; then
    encoder=$out/models/$name.onnx
  elif command -v python3 >/dev/null && python3 -c 'import torch' 2>/dev/null; then
    say "exporting the random-weight ViT-B/32 ($name) ..."
    if python3 "$here/scripts/export_plip.py" --random --seed 0 --out-dir "$out/models" --name vit --contract raw $fp16 --device "$kind" --batch-check 2 > "$out/export.log" 2>&1; then
      encoder=$out/models/$name.onnx
    else
      say "export failed ($(tail -1 "$out/export.log")); using the tiny test encoder"
    fi
  fi
  [ -n "$encoder" ] || encoder=$here/models/tiny-raw.onnx
fi
say "encoder: $encoder"

# Generated 40× slides (0.25 µm/px, levels 1, 4, 16, ...: no 20× level).
mkdir -p "$out/slides"
for i in $(seq 1 "$slides"); do
  f=$out/slides/s40-$size-$i.svs
  [ -f "$f" ] || "$P" synth --out "$f" --width "$size" --height "$size" --mpp 0.25 --mag 40 --blobs 6 --seed "$i" >>"$out/synth.log" 2>&1
done
"$P" run --input "$out/slides" --work "$out/work" --stage tile > "$out/tile.log" 2>&1 || { say "tiling failed: $(tail -3 "$out/tile.log")"; exit 1; }
say "$("$P" info "$(ls "$out"/slides/*.svs | head -1)" 2>&1 | grep -E 'format:|reader:|levels:' | tr -s ' \n' ' ')"

# ONNX Runtime alone: the ceiling.
"$here/bin/embed-bench" --encoder "$encoder" --device "$device" --batch "$batch" --seconds "$seconds" > "$out/ort.log" 2>&1 || { say "embed-bench failed: $(tail -3 "$out/ort.log")"; exit 1; }
ort=$(grep -o 'ort_patches_per_s=[0-9.]*' "$out/ort.log" | tail -1 | cut -d= -f2)
say "$(grep 'encoder=' "$out/ort.log" | tail -1)"

# The whole embed stage, with the GPU sampled meanwhile.
smi=
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 > "$out/gpu-util.txt" 2>/dev/null &
  smi=$!
fi
set +e
"$P" run --input "$out/slides" --work "$out/work" --stage embed --force --encoder "$encoder" --device "$device" \
  --batch "$batch" --readers "$readers" --in-flight 2 --scaled-decode="$scaled" > "$out/embed.out" 2> "$out/embed.log"
rc=$?
set -e
[ -n "$smi" ] && kill "$smi" 2>/dev/null && wait "$smi" 2>/dev/null || true
if [ $rc -ne 0 ]; then
  say "embed stage failed (exit $rc): $(grep -v level=INFO "$out/embed.log" | tail -3)"
  exit 1
fi

# Stage rate: all patches over the span from the first slide's start to the
# last slide's end (the "embedded" lines: end time and elapsed per slide),
# so the session's start-up is not counted.
stage=$(awk '
  function secs(t,   a) { split(substr(t, 12, 12), a, ":"); return a[1]*3600 + a[2]*60 + a[3] }
  function dur(d,   v, n, u) {
    v = 0
    while (match(d, /^[0-9.]+(h|ms|µs|us|m|s)/)) {
      n = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
      if (n ~ /ms$/) v += n / 1000; else if (n ~ /(µs|us)$/) v += n / 1e6
      else if (n ~ /h$/) v += n * 3600; else if (n ~ /m$/) v += n * 60; else v += n + 0
    }
    return v
  }
  /msg=embedded/ {
    t = ""; e = ""; p = 0
    for (i = 1; i <= NF; i++) {
      if ($i ~ /^time=/) t = substr($i, 6)
      if ($i ~ /^elapsed=/) e = substr($i, 9)
      if ($i ~ /^patches=/) p = substr($i, 9)
    }
    end = secs(t); start = end - dur(e)
    if (n == 0 || start < s0) s0 = start
    if (n == 0 || end > s1) s1 = end
    n++; total += p
  }
  END { if (n && s1 > s0) printf "%d %.2f %.1f\n", total, s1 - s0, total / (s1 - s0) }' "$out/embed.log")
[ -n "$stage" ] || { say "no embedded slides in $out/embed.log"; exit 1; }
read -r patches span rate <<< "$stage"
say "embed stage: $patches patches in $span s: $rate patches/s ($slides slides, $readers readers, batch $batch)"
say "ONNX Runtime alone: $ort patches/s"
awk -v a="$rate" -v b="$ort" 'BEGIN { if (b > 0) printf "ratio stage / ONNX Runtime alone: %.2f\n", a / b }' | tee -a "$log"
if [ -s "$out/gpu-util.txt" ]; then
  awk '{ s += $1; n++ } END { if (n) printf "GPU utilisation during the stage: mean %.0f %% (%d samples, start-up included)\n", s / n, n }' "$out/gpu-util.txt" | tee -a "$log"
fi
grep -h 'busy' "$out/embed.log" | tail -1 | tee -a "$log" || true
say "== done ($log)"
