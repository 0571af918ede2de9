#!/usr/bin/env bash
# Learning benchmark (not a test): generated paired H&E/IHC cases whose label
# is strong in IHC and weaker, in the same registered places, in H&E (tissue
# blobs and tumour of varying size and position); `pipeline compare` trains
# every variant with the same seeds on the same cases and settings and
# reports their H&E-only test metrics with bootstrap CIs and paired
# differences (compare.md, compare.json, forest.png, roc.png): the shape of
# the paper's Table 2.
#   scripts/bench-learning.sh [CASES] [HE_SIGNAL] [EPOCHS] [SEEDS] [CV]
# Defaults (README "make bench-learning"): 200 cases (140 train, 60 test),
# H&E signal 1.0 (half the IHC stain's 2, one noise SD along one of 64
# directions: invisible in a single patch), 20 epochs, 5 seeds, no
# cross-validation (each seed trains on every training case and keeps its
# last epoch). At H&E signal 0.35 with 100 cases every variant stayed at
# chance (README). VARIANTS overrides the variant list; BENCH_DIR keeps the
# folder (a rerun resumes); JOBS sets how many runs train at once (default:
# one per CPU).
set -euo pipefail
cases=${1:-200}
he=${2:-1.0}
epochs=${3:-20}
seeds=${4:-5}
cv=${5:-0}
variants=${VARIANTS:-ipca,pama,abmil,clam_sb,transmil,nystromformer,slidegraph}
bin=${PIPELINE:-./bin/pipeline}
dir=${BENCH_DIR:-$(mktemp -d /tmp/her2wsi-learn.XXXXXX)}
mkdir -p "$dir"
echo "bench-learning: $cases cases, H&E signal $he, $epochs epochs, $seeds seeds, cv $cv, variants $variants, in $dir" >&2
if [ ! -f "$dir/work/cases.csv" ]; then
  "$bin" synth --cases "$cases" --out "$dir/work" --dim 64 --he-signal "$he" --min-patches 80 --max-patches 240 \
    --slide-graph -log-format json >/dev/null 2>"$dir/synth.log"
fi
# Shared settings: IPCA/PAMA at the scale of 64-d features (e_dim 64, 2
# blocks, 4 heads); the baselines take their official constructor values
# except where 64-d features call for a smaller width: TransMIL and the
# Nyströmformer at dim 64 (32 landmarks; the official 512 with 256
# landmarks costs ~1.5 s per 200-patch slide here, a 70-min run), and
# SlideGraph+ with the notebook's dropout 0.5. TransMIL/Nyströmformer run
# without their official to_out dropout 0.1 (dropout 0, as every other
# variant here): the README's table was made before that dropout was wired
# in; drop the key to get the official 0.1.
cat >"$dir/model.json" <<JSON
{"in_dim":64,"e_dim":64,"depth":2,"heads":4,"mlp_ratio":2,"num_prompts":32,"max_anchors":64,"max_patches":1024,"max_ihc_patches":1024}
JSON
echo '{"dim":64,"dropout":0}' >"$dir/nystrom.json"
echo '{"dropout":0.5}' >"$dir/slidegraph.json"
cat >"$dir/train.json" <<JSON
{"optimizer":"adam","lr":5e-4,"min_lr":1e-5,"epochs":$epochs,"patience":0,"effective_batch":4,"class_balanced":true,"seed":2024}
JSON
own=()
for v in ${variants//,/ }; do
  case $v in
  transmil | nystromformer) own+=(--variant-config "$v=$dir/nystrom.json") ;;
  slidegraph) own+=(--variant-config "$v=$dir/slidegraph.json") ;;
  esac
done
start=$(date +%s)
"$bin" compare --cases "$dir/work/cases.csv" --work "$dir/work" --features synthetic \
  --variants "$variants" --seeds "$seeds" --cv "$cv" --jobs "${JOBS:-0}" "${own[@]}" \
  --model-config "$dir/model.json" --train-config "$dir/train.json" --out "$dir/compare" -log-format json 2>"$dir/compare.log"
echo "bench-learning: $(( $(date +%s) - start )) s; table: $dir/compare/compare.md; pictures: $dir/compare/forest.png $dir/compare/roc.png" >&2
