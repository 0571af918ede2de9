#!/usr/bin/env bash
# Learning benchmark (not a test): generated cases whose label is strong in
# IHC and weak, spatial, in H&E; train ipca and pama on the same cases with
# the same settings; report their H&E-only test metrics side by side.
#   scripts/bench-learning.sh [CASES] [HE_SIGNAL] [EPOCHS]
set -euo pipefail
cases=${1:-200}
he=${2:-0.35}
epochs=${3:-40}
bin=${PIPELINE:-./bin/pipeline}
dir=${BENCH_DIR:-$(mktemp -d /tmp/her2wsi-learn.XXXXXX)}
echo "bench-learning: $cases cases, H&E signal $he, $epochs epochs, in $dir" >&2
"$bin" synth --cases "$cases" --out "$dir/work" --dim 64 --he-signal "$he" --min-patches 200 --max-patches 600 -log-format json >/dev/null 2>&1
cat >"$dir/model.json" <<JSON
{"in_dim":64,"e_dim":64,"depth":2,"heads":4,"mlp_ratio":2,"num_prompts":32,"max_anchors":64,"max_patches":1024,"max_ihc_patches":1024}
JSON
cat >"$dir/train.json" <<JSON
{"optimizer":"adam","lr":5e-4,"min_lr":1e-5,"epochs":$epochs,"patience":0,"effective_batch":8,"class_balanced":true,"seed":2024}
JSON
for m in ipca pama abmil; do
  "$bin" train --cases "$dir/work/cases.csv" --work "$dir/work" --features synthetic --variant "$m" \
    --model-config "$dir/model.json" --train-config "$dir/train.json" --out "$dir/$m" -log-format json 2>"$dir/$m.log" | grep -E "^(validation|test)" | sed "s/^/$m /"
done
