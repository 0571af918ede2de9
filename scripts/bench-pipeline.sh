#!/usr/bin/env bash
# make bench-pipeline: slides/hour end to end (tile → embed → anchors, streamed)
# on generated 40× slides, with the small test encoder and with the
# random-weight ViT-B/32 (PLIP's shape), and how busy each stage was: the
# slowest stage busy ≥ 90 % of the wall time means the others hide behind it.
#   scripts/bench-pipeline.sh [SLIDES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8}
bin=bin/pipeline
dir=$(mktemp -d /tmp/her2wsi-benchpipe.XXXXXX)
for i in $(seq 1 "$n"); do
  "$bin" synth --out "$dir/in/slide$i.svs" --width 16384 --height 12288 --mpp 0.25 --mag 40 --seed "$i" >/dev/null
done
for enc in features/testdata/encoders/tiny-clip.onnx .cache/models/vit-b32-random.onnx; do
  if [ ! -f "$enc" ]; then echo "($enc missing: make vit-model)"; continue; fi
  echo "== $n slides, encoder $(basename "$enc"), $(nproc) CPUs"
  "$bin" run --input "$dir/in" --work "$dir/work-$(basename "$enc" .onnx)" --stage tile,embed,anchors \
    --encoder "$enc" -log-format json 2>&1 >/dev/null | grep -E "^stage |slides/hour"
done
rm -rf "$dir"
