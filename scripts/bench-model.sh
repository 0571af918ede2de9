#!/usr/bin/env bash
# make bench-model: one full IPCA training step (default configuration:
# 2048 patches, 128 anchors, 256 prompts, 2048 IHC patches, depth 2, e_dim
# 256) and one H&E-only prediction, on this machine's CPU, with the pure-Go
# GoMLX backend (SIMD build and plain build), and the same step in PyTorch
# (scripts/ipca_ref.py bench, Debian's torch) on the same threads. Each
# benchmark runs in its own process so its peak RSS is its own.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=$(nproc)
steps=${BENCH_STEPS:-3}
out=$(mktemp)
run() { # label, GOEXPERIMENT, bench regexp
  local label=$1 exp=$2 re=$3
  GOEXPERIMENT=$exp go test -run '^$' -bench "$re" -benchtime "${steps}x" -count 1 -timeout 60m ./model |
    awk -v l="$label" '/^Benchmark/ {rss="?"; for (i=1;i<=NF;i++) if ($i=="peak-RSS-MB") rss=$(i-1); printf "%-28s %-56s %8.2f s/op  peak RSS %s MB\n", l, $1, $3/1e9, rss}' | tee -a "$out"
}
echo "model benchmarks, $threads threads, backend ${GOMLX_BACKEND:-go:ops_sequential (default)}"
run "pure Go, GOEXPERIMENT=simd" simd 'BenchmarkTrainStep/ipca/mask=0.00'
run "pure Go, GOEXPERIMENT=simd" simd 'BenchmarkTrainStep/ipca/mask=0.75'
run "pure Go, GOEXPERIMENT=simd" simd 'BenchmarkTrainStep/pama/mask=0.75'
run "pure Go, GOEXPERIMENT=simd" simd 'BenchmarkPredict'
run "pure Go, plain build" "" 'BenchmarkTrainStep/ipca/mask=0.75'
run "pure Go, plain build" "" 'BenchmarkPredict'
echo "PyTorch (Debian $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), $threads threads, same step as ipca/mask=0.00):"
torch_json=$(/usr/bin/python3 scripts/ipca_ref.py bench --threads "$threads" --steps 2)
echo "  $torch_json"
go_s=$(awk '/simd/ && /mask=0.00/ {print $(NF-5)}' "$out")
torch_s=$(/usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['step_s_median'])" "$torch_json")
/usr/bin/python3 -c "import sys; g,t=float(sys.argv[1]),float(sys.argv[2]); print(f'ratio torch / GoMLX (full IPCA step, no kernel masking): {t/g:.2f}x  (GoMLX {g:.2f} s, torch {t:.2f} s)')" "$go_s" "$torch_s"
rm -f "$out"
