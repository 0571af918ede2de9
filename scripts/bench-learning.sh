#!/usr/bin/env bash
# Learning benchmark (not a test): generated paired H&E/IHC cases whose label
# is strong in IHC and weak, in the same registered places, in H&E (tissue
# blobs and tumour of varying size and position); `pipeline compare` trains
# ipca, pama and abmil with the same seeds on the same cases and settings and
# reports their H&E-only test metrics with bootstrap CIs and paired
# differences (compare.md, compare.json, forest.png, roc.png).
#   scripts/bench-learning.sh [CASES] [HE_SIGNAL] [EPOCHS] [SEEDS] [CV]
# Defaults (README "make bench-learning"): 100 cases, H&E signal 0.35, 20
# epochs, 5 seeds, no cross-validation (each seed trains on all 70 training
# cases and keeps its last epoch: a validation fold of ~14 cases picks
# epochs at random). BENCH_DIR keeps the folder (a rerun resumes), JOBS sets
# how many runs train at once (default: one per CPU).
set -euo pipefail
cases=${1:-100}
he=${2:-0.35}
epochs=${3:-20}
seeds=${4:-5}
cv=${5:-0}
bin=${PIPELINE:-./bin/pipeline}
dir=${BENCH_DIR:-$(mktemp -d /tmp/her2wsi-learn.XXXXXX)}
mkdir -p "$dir"
echo "bench-learning: $cases cases, H&E signal $he, $epochs epochs, $seeds seeds, cv $cv, in $dir" >&2
if [ ! -f "$dir/work/cases.csv" ]; then
  "$bin" synth --cases "$cases" --out "$dir/work" --dim 64 --he-signal "$he" --min-patches 80 --max-patches 240 -log-format json >/dev/null 2>&1
fi
cat >"$dir/model.json" <<JSON
{"in_dim":64,"e_dim":64,"depth":2,"heads":4,"mlp_ratio":2,"num_prompts":32,"max_anchors":64,"max_patches":1024,"max_ihc_patches":1024}
JSON
cat >"$dir/train.json" <<JSON
{"optimizer":"adam","lr":5e-4,"min_lr":1e-5,"epochs":$epochs,"patience":0,"effective_batch":4,"class_balanced":true,"seed":2024}
JSON
start=$(date +%s)
"$bin" compare --cases "$dir/work/cases.csv" --work "$dir/work" --features synthetic \
  --variants ipca,pama,abmil --seeds "$seeds" --cv "$cv" --jobs "${JOBS:-0}" \
  --model-config "$dir/model.json" --train-config "$dir/train.json" --out "$dir/compare" -log-format json 2>"$dir/compare.log"
echo "bench-learning: $(( $(date +%s) - start )) s; pictures: $dir/compare/forest.png $dir/compare/roc.png" >&2
