#!/usr/bin/env bash
# seqpar through the PyTorch extension beside PyTorch's context-parallel ring engine, on this
# CPU machine: runs benchmarks/torch_cp_compare.py under torchrun (gloo) with P = 2 and P = 4
# (S = 4096, 8 q / 2 kv heads, D = 64, causal, fp32, fwd+bwd), writes
# benchmarks/results/torch_cp_cpu_<date>_p<P>.json and prints the README's markdown table.
# Usage: benchmarks/torch_cp_compare.sh [extra arguments for torch_cp_compare.py]
# Environment: PYTHON (default python3) and TORCHRUN (default torchrun), e.g.
#   PYTHON=/tmp/tv/bin/python TORCHRUN=/tmp/tv/bin/torchrun benchmarks/torch_cp_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCHRUN=${TORCHRUN:-torchrun}
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
day=$(date -u +%F)
for p in 2 4; do
  "$TORCHRUN" --standalone --nproc-per-node "$p" benchmarks/torch_cp_compare.py "$@" 2>&1 \
    | grep -v -e '^W[0-9]* ' -e 'OMP_NUM_THREADS'
done
"$PYTHON" - "$day" <<'EOF'
import json, sys
day = sys.argv[1]
print()
print("| P | threads/rank | seqpar ms (median / min) | torch ring ms (config) | torch / seqpar "
      "| p2p ring ms | p2p / seqpar | max rel err seqpar (out, dq, dk, dv) "
      "| max rel err torch ring | other load (cores) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for p in (2, 4):
    r = json.load(open(f"benchmarks/results/torch_cp_cpu_{day}_p{p}.json"))
    rows = {(x["peer"], x["config"]): x for x in r["rows"]}
    sp = next(x for x in r["rows"] if x["peer"] == "seqpar")
    rt = r["ratio_torch_over_seqpar"]
    tr = rows[("torch_ring", rt["torch_ring"]["config"])]
    pp = next((x for x in r["rows"] if x["peer"] == "p2p_ring"), None)
    err = lambda x: ", ".join(f"{x['errors'][n]['rel']:.0e}" for n in ("out", "dq", "dk", "dv"))
    ms = lambda x: f"{x['median_ms']:.0f} / {x['min_ms']:.0f}"
    p2p = (f"{ms(pp)} | {rt['p2p_ring']['ratio_median']:.2f}" if pp else "- | -")
    print(f"| {p} | {r['threads_per_rank']} | {ms(sp)} | {ms(tr)} ({tr['config']}) "
          f"| {rt['torch_ring']['ratio_median']:.2f} | {p2p} | {err(sp)} | {err(tr)} "
          f"| {r['other_load_cores']:.2f} |")
EOF
