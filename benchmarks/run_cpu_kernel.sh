#!/usr/bin/env bash
# Times the CPU block kernel (one core) with seqpar-bench and writes
# benchmarks/results/cpu_kernel_<date>.json: machine, date, commit, and one row per case.
# Usage: benchmarks/run_cpu_kernel.sh [build dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:-build}/bin/seqpar-bench
day=$(date -u +%F)
out=benchmarks/results/cpu_kernel_${day}.json
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
rows=()
for mask in full causal; do
  for dtype in fp32 bf16; do
    rows+=("$("$bench" --mode kernel --seq 2048 --heads 8 --kv-heads 8 --head-dim 64 --dtype "$dtype" --mask "$mask" --json)")
  done
done
{
  printf '{"what": "CPU block kernel, one core, median of 5", "cpu": "%s", "cores": %s, "date": "%s", "commit": "%s",\n "rows": [\n' \
    "$cpu" "$(nproc)" "$day" "$(git rev-parse --short HEAD)"
  for i in "${!rows[@]}"; do
    printf '  %s%s\n' "${rows[$i]}" "$([[ $i -lt $((${#rows[@]} - 1)) ]] && echo ,)"
  done
  printf ' ]}\n'
} > "$out"
echo "wrote $out"
