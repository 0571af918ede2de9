#!/usr/bin/env bash
# make bench-clam: one CLAM training step (2048 patches of in_dim 512, the
# official defaults: gated, small, k_sample 8, bag_weight 0.7; forward with
# the instance clustering loss, backward, Adam) of clam_sb and clam_mb in Go
# (BenchmarkCLAMTrainStep) against the official mahmoodlab/CLAM code
# (models/model_clam.py run by scripts/clam_ref.py bench --repo, Debian's
# torch) on the same threads, alternating the two ROUNDS times so that other
# load on the machine hits both alike; prints the ratio official / Go per
# round and the median.
#   CLAM_REPO=/path/to/CLAM scripts/bench-clam.sh [ROUNDS]
# CLAM_REPO is a checkout of https://github.com/mahmoodlab/CLAM (only
# models/model_clam.py is read); it is not part of this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=${CLAM_REPO:-/tmp/clam-official}
rounds=${1:-3}
steps=${BENCH_STEPS:-3}
if [ ! -f "$repo/models/model_clam.py" ]; then
  echo "bench-clam: no $repo/models/model_clam.py; set CLAM_REPO to a checkout of https://github.com/mahmoodlab/CLAM" >&2
  exit 2
fi
threads=$(nproc)
export GOEXPERIMENT=${GOEXPERIMENT-simd}
go test -c -o /tmp/bench-clam.test ./model
ratios=()
for r in $(seq 1 "$rounds"); do
  gout=$(cd model && /tmp/bench-clam.test -test.run '^$' -test.bench 'BenchmarkCLAMTrainStep' -test.benchtime "${steps}x" -test.count 1)
  tj=$(/usr/bin/python3 scripts/clam_ref.py bench --repo "$repo" --threads "$threads" --steps "$steps")
  for v in clam_sb clam_mb; do
    g=$(echo "$gout" | awk -v v="$v" '$1 ~ "/"v"/" {print $3/1e9}')
    t=$(/usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]+'_step_s_median'])" "$tj" "$v")
    ratio=$(/usr/bin/python3 -c "import sys; print(f'{float(sys.argv[2])/float(sys.argv[1]):.2f}')" "$g" "$t")
    echo "round $r $v: Go $(printf %.3f "$g") s, official $(printf %.3f "$t") s, official/Go ${ratio}x"
    ratios+=("$v:$ratio")
  done
done
/usr/bin/python3 - "${ratios[@]}" <<'PY'
import statistics, sys
by = {}
for a in sys.argv[1:]:
    v, r = a.split(":")
    by.setdefault(v, []).append(float(r))
for v, rs in by.items():
    print(f"{v}: official / Go median {statistics.median(rs):.2f}x over {len(rs)} rounds")
PY
rm -f /tmp/bench-clam.test
