#!/usr/bin/env bash
# make bench-predict-large: H&E-only prediction of one whole slide at 2048
# patches (the reference's cap: the baseline), 20k and 50k patches (a real
# 40× breast slide at 20×), 128 anchors, default IPCA, pure-Go backend.
# Each size runs in its own process so its peak RSS is its own; time and
# peak RSS are reported as ratios to the 2048-patch baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./model
echo "prediction of one slide, $(nproc) threads, backend ${GOMLX_BACKEND:-go:ops_sequential (default)}"
base_s="" base_mb=""
for n in 2048 20000 50000; do
  line=$( (cd model && "$bin" -test.run '^$' -test.bench "BenchmarkPredictLarge/patches=$n\$" -test.benchtime "${BENCH_STEPS:-1}x") | awk '/^Benchmark/ {rss="?"; for (i=1;i<=NF;i++) if ($i=="peak-RSS-MB") rss=$(i-1); printf "%.2f %s\n", $3/1e9, rss}')
  read -r s mb <<<"$line"
  if [ -z "$base_s" ]; then base_s=$s base_mb=$mb; fi
  awk -v n="$n" -v s="$s" -v mb="$mb" -v bs="$base_s" -v bm="$base_mb" 'BEGIN {printf "%6d patches: %7.2f s (%.1f× the 2048-patch time)  peak RSS %6.0f MB (%.1f×)  %.2f ms/patch\n", n, s, s/bs, mb, mb/bm, 1000*s/n}'
done
