#!/usr/bin/env bash
# One training step (forward, cross-entropy, backward, Adam) of transmil and
# nystromformer at N = 2048 patches, official size (in_dim 1024, dim 512),
# here (GoMLX pure Go, BenchmarkTransMILStep) and in the official TransMIL
# code on the same cores (scripts/transmil_official.py bench), one after the
# other; prints the ratios official / GoMLX for wall time and CPU time.
# Usage: scripts/bench-transmil.sh /path/to/official  (a folder with
# models/TransMIL.py and nystrom_attention/, see scripts/transmil_official.py)
set -euo pipefail
official=${1:?usage: $0 OFFICIAL_DIR}
cd "$(dirname "$0")/.."
threads=$(nproc)
steps=${BENCH_STEPS:-2}
for v in transmil nystromformer; do
  go_line=$(GOEXPERIMENT=simd go test -run '^$' -bench "BenchmarkTransMILStep/$v/" -benchtime "${steps}x" -count 1 -timeout 60m ./model | grep '^Benchmark')
  echo "GoMLX:    $go_line"
  py_json=$(/usr/bin/python3 scripts/transmil_official.py bench --official "$official" --variant "$v" --steps "$steps" --threads "$threads")
  echo "official: $py_json"
  /usr/bin/python3 - "$go_line" "$py_json" <<'PY'
import json, sys
f = sys.argv[1].split()
go_s = float(f[2]) / 1e9
go_cpu = float(f[f.index("cpu-s/op") - 1])
o = json.loads(sys.argv[2])
print(f"{o['variant']}: official / GoMLX = {o['median_s'] / go_s:.2f}x wall ({o['median_s']:.1f} s vs {go_s:.1f} s), "
      f"{o['cpu_s_median'] / go_cpu:.2f}x CPU ({o['cpu_s_median']:.1f} s vs {go_cpu:.1f} s)")
PY
done
