#!/usr/bin/env bash
# GPU check for the embed stage: ONNX Runtime's CUDA throughput (patches/s)
# for a random-weight PLIP-sized encoder (CLIP ViT-B/32) at batch 256, fp32
# and fp16, CLIP and raw-patch contracts, plus a CPU run for comparison.
#
#   scripts/gpu-check.sh [OUT_DIR]
#
# Needs on the GPU machine:
#   - a CUDA-enabled ONNX Runtime in $ORT_GPU_DIR (libonnxruntime.so,
#     libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so;
#     `scripts/fetch-onnxruntime.sh gpu` fetches ORT 1.29.0 for CUDA 13);
#   - the CUDA 13 runtime, cuBLAS and cuDNN 9 (system or pip nvidia-* wheels);
#   - bin/embed-bench (built here with `make build`: it links only libc);
#   - python3 with torch, for exporting the random model (scripts/export_plip.py).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$out"
log=$out/gpu-check.txt
ORT_GPU_DIR=${ORT_GPU_DIR:-.cache/onnxruntime/gpu-1.29.0}
BENCH=${EMBED_BENCH:-bin/embed-bench}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
models=${MODELS:-/tmp/gpu-check-models}

say() { echo "$*" | tee -a "$log"; }

# CUDA libraries shipped in Python wheels (nvidia-cublas, nvidia-cudnn-cu13, ...).
wheel_libs=$(python3 - <<'EOF' 2>/dev/null
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    dirs.update(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))
    dirs.update(glob.glob(os.path.join(sp, "nvidia", "*", "lib64")))
print(":".join(sorted(dirs)))
EOF
)
export LD_LIBRARY_PATH=$ORT_GPU_DIR:$wheel_libs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}

say "== gpu-check $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"
say "ort: $(ls "$ORT_GPU_DIR" 2>&1 | tr '\n' ' ')"
say "missing libraries of the CUDA provider: $(ldd "$ORT_GPU_DIR/libonnxruntime_providers_cuda.so" 2>&1 | grep -c 'not found') $(ldd "$ORT_GPU_DIR/libonnxruntime_providers_cuda.so" 2>&1 | grep 'not found' | tr -s ' \t\n' ' ')"

t0=$(date +%s)
python3 scripts/export_plip.py --random --seed 0 --out-dir "$models" --name vit --contract both --device cuda --batch-check 2 > "$out/export-fp32.log" 2>&1 \
  || say "export fp32 failed: $(tail -3 "$out/export-fp32.log")"
python3 scripts/export_plip.py --random --seed 0 --out-dir "$models" --name vit --contract both --fp16 --device cuda --batch-check 2 > "$out/export-fp16.log" 2>&1 \
  || say "export fp16 failed: $(tail -3 "$out/export-fp16.log")"
say "export: $(( $(date +%s) - t0 )) s; $(ls "$models" | tr '\n' ' ')"

for m in vit vit-fp16 vit-raw vit-raw-fp16; do
  [ -f "$models/$m.onnx" ] || continue
  HER2WSI_ORT_LIB=$ORT_GPU_DIR/libonnxruntime.so "$BENCH" --encoder "$models/$m.onnx" --device cuda \
    --batch 256 --seconds "$SECONDS_PER_RUN" 2>&1 | tee -a "$log"
done
# The same library on the CPU, for comparison.
HER2WSI_ORT_LIB=$ORT_GPU_DIR/libonnxruntime.so "$BENCH" --encoder "$models/vit.onnx" --device cpu \
  --batch 32 --seconds 10 2>&1 | tee -a "$log"
say "== done"
