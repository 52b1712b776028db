#!/usr/bin/env bash
# One round of GPU work (see GPU.md): configure + build with -DCMAKE_CUDA_ARCHITECTURES=90a,
# run the GPU tests (ctest -L gpu), then time our CUDA block kernels (seqpar-bench --mode kernel
# --device cuda), the virtual-rank scheme benchmark (seqpar-model-check --device cuda: P = 8
# virtual ranks of ring, striped, zigzag and lightseq on the one GPU, S = 65536, 32 q / 8 kv
# heads, d128, causal, bf16, fwd+bwd; measured vs predicted efficiency), and torch SDPA's FLASH
# and CUDNN backends (sdpa_peer.py) on the kernel benchmark's shapes: bf16, d64 and d128, causal
# and full, seq 1k..32k at 16k tokens per batch (heads = 2048 / D).
# Writes into <outdir> (at most 8 files, for the device tool): run.log, build.log, ptxas.txt,
# ctest_gpu.log, kernels.jsonl (our rows, then the peers'), virtual_ranks.json (the per-step
# times, seqpar-model-check's JSON: `seqpar-model-check --input` reads it back, with its rate),
# kernel_bench.json (GPU, date, commit, every figure, the virtual-rank JSON and table) and
# table.md (both tables).
#
# Usage: benchmarks/device/run.sh <outdir>
# Environment: SEQPAR_GPU_BUILD (build folder, default build-gpu), SEQPAR_COMMIT (when the tree
# has no .git), SEQPAR_SEQS (default 1024,2048,4096,8192,16384,32768),
# SEQPAR_VR_RANKS, SEQPAR_VR_SEQ, SEQPAR_VR_REPEATS (virtual-rank benchmark, default 8, 65536,
# 3 timed rounds after 1 warm-up round; about 5 whole-sequence passes per round),
# SEQPAR_ALLOW_NO_GPU=1 (go on without a GPU: to check this script's logic on a CPU machine).
# Boost.Program_options (needed by seqpar-bench) and GoogleTest (needed by the tests) are
# usually absent on the GPU machine: carry build-gpu-deps/ (Debian .deb files fetched on a
# development machine by benchmarks/device/fetch_deps.sh); this script unpacks them with dpkg -x.
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 <outdir>" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
build=${SEQPAR_GPU_BUILD:-$repo/build-gpu}
deps=$repo/build-gpu-deps
seqs=${SEQPAR_SEQS:-1024,2048,4096,8192,16384,32768}
tokens=16384
hidden=2048
vr_ranks=${SEQPAR_VR_RANKS:-8}
vr_seq=${SEQPAR_VR_SEQ:-65536}
vr_repeats=${SEQPAR_VR_REPEATS:-3}
: >"$out/run.log"

log() { echo "[run.sh] $*" | tee -a "$out/run.log"; }
die() {
  log "FAILED: $*"
  exit 1
}

# ---- 0. a GPU, and the tools ----
gpu_name="none"
if command -v nvidia-smi >/dev/null 2>&1 && timeout 60 nvidia-smi -L >/dev/null 2>&1; then
  gpu_name=$(timeout 60 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
  log "GPU: $gpu_name"
elif [[ ${SEQPAR_ALLOW_NO_GPU:-0} == 1 ]]; then
  log "no GPU visible; SEQPAR_ALLOW_NO_GPU=1: going on (tests will skip, benchmarks fail)"
else
  log "FAILED: no GPU visible (nvidia-smi missing or reports none); nothing to do here"
  exit 2
fi
command -v cmake >/dev/null 2>&1 || die "cmake not found"
command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]] || die "nvcc not found"
commit=${SEQPAR_COMMIT:-$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [[ $commit != unknown ]] && [[ -n $(git -C "$repo" status --porcelain 2>/dev/null) ]]; then
  commit="$commit+dirty"
fi
log "commit: $commit; build folder: $build"

# ---- 1. carried .deb files (Boost.Program_options, GoogleTest) ----
prefix_args=()
if compgen -G "$deps/debs/*.deb" >/dev/null; then
  rm -rf "$deps/root"
  mkdir -p "$deps/root"
  for f in "$deps"/debs/*.deb; do dpkg -x "$f" "$deps/root" || die "dpkg -x $f"; done
  prefix_args=(-DCMAKE_PREFIX_PATH="$deps/root/usr")
  log "unpacked $(ls "$deps"/debs/*.deb | wc -l) carried .deb files into $deps/root"
else
  log "no $deps/debs/*.deb carried: using whatever Boost/GoogleTest the machine has"
fi

# ---- 2. configure + build ----
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [[ -f $build/CMakeCache.txt ]] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${generator[1]:-Unix Makefiles}" "$build/CMakeCache.txt"; then
  rm -rf "$build"  # a cache from another generator
fi
{
  timeout 300 cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90a -DSEQPAR_CUDA_PTXAS_VERBOSE=ON "${prefix_args[@]}" 2>&1
} >"$out/build.log" || die "configure (see build.log)"
summary=$(grep -m1 "seqpar: CUDA=" "$out/build.log" || true)
log "configure: ${summary#-- }"
[[ $summary == *"CUDA=ON"* ]] || die "CUDA toolkit not found by CMake"
have_boost=1
have_gtest=1
[[ $summary == *"Boost.Program_options=1"* ]] || have_boost=0
[[ $summary == *"GTest=TRUE"* || $summary == *"GTest=1"* ]] || have_gtest=0
((have_boost)) || log "WARNING: Boost.Program_options not found: seqpar-bench is not built, so our kernel benchmark is skipped (carry build-gpu-deps/)"
((have_gtest)) || log "WARNING: GoogleTest not found: the GPU tests are not built (carry build-gpu-deps/)"
log "building with $(nproc) jobs"
timeout 480 cmake --build "$build" -j"$(nproc)" >>"$out/build.log" 2>&1 || die "build (see build.log)"
grep -E "Compiling entry function|registers|spill" "$out/build.log" |
  sed -E "s/_ZN6seqpar14cuda_attention[0-9]+_GLOBAL__N__[0-9a-f_]+_cu_[0-9a-f]+//" >"$out/ptxas.txt" || true
log "build ok; ptxas figures in ptxas.txt ($(grep -c registers "$out/ptxas.txt") kernels)"

# ---- 3. GPU tests ----
tests_status="not run"
if ((have_gtest)); then
  if timeout 600 ctest --test-dir "$build" -L gpu --output-on-failure --timeout 300 \
    >"$out/ctest_gpu.log" 2>&1; then
    tests_status="pass"
  else
    tests_status="fail"
  fi
  [[ $gpu_name != none || $tests_status != pass ]] || tests_status="skipped (no GPU)"
  log "ctest -L gpu: $tests_status ($(grep -E "tests passed|tests failed" "$out/ctest_gpu.log" | tail -1))"
  [[ $tests_status == pass ]] || log "WARNING: GPU tests fail: the timings below are of wrong kernels"
fi

# ---- 4. our kernels ----
: >"$out/kernels.jsonl"
if ((have_boost)); then
  IFS=, read -ra seq_list <<<"$seqs"
  for d in 64 128; do
    for mask in full causal; do
      for s in "${seq_list[@]}"; do
        b=$((tokens / s))
        ((b >= 1)) || b=1
        h=$((hidden / d))
        if ! timeout 120 "$build/bin/seqpar-bench" --mode kernel --device cuda --dtype bf16 \
          --batch "$b" --seq "$s" --heads "$h" --kv-heads "$h" --head-dim "$d" --mask "$mask" \
          --json >>"$out/kernels.jsonl" 2>>"$out/run.log"; then
          log "seqpar-bench failed: d=$d mask=$mask seq=$s"
        fi
      done
    done
  done
  log "ours: $(wc -l <"$out/kernels.jsonl") rows"
fi
ours_rows=$(wc -l <"$out/kernels.jsonl")

# ---- 5. the virtual-rank scheme benchmark (the input of seqpar-model-check's comparison) ----
# Each virtual rank's every step of ring, striped, zigzag and lightseq, and one rank's whole
# sequence as one block, timed with the CUDA kernels (median of the rounds); measured vs
# predicted efficiency, the model fed the kept-tile rate of this run's own blocks.
vr_status="not run (needs seqpar-model-check: Boost.Program_options)"
vr_table="$build/virtual_ranks.txt"
rm -f "$vr_table" "$out/virtual_ranks.json"
if ((have_boost)); then
  timeout 300 "$build/bin/seqpar-model-check" --device cuda --ranks "$vr_ranks" --seq "$vr_seq" \
    --heads 32 --kv-heads 8 --head-dim 128 --mask causal --dtype bf16 --backward --warmup 1 \
    --repeats "$vr_repeats" --schemes ring,striped,zigzag,lightseq \
    --write "$out/virtual_ranks.json" >"$vr_table" 2>>"$out/run.log"
  vr_rc=$?
  if ((vr_rc == 0)); then
    vr_status=ok
    tee -a "$out/run.log" <"$vr_table"
  else
    vr_status="failed (exit $vr_rc; 124: timed out, 3: no GPU; see run.log)"
    rm -f "$vr_table"
  fi
  log "virtual ranks (P=$vr_ranks, S=$vr_seq): $vr_status"
fi

# ---- 6. torch SDPA peers ----
if timeout 400 python3 "$repo/benchmarks/device/sdpa_peer.py" --seqs "$seqs" --tokens "$tokens" \
  --hidden "$hidden" >>"$out/kernels.jsonl" 2>>"$out/run.log"; then
  log "peers: $(($(wc -l <"$out/kernels.jsonl") - ours_rows)) rows"
else
  log "sdpa_peer.py failed (see run.log)"
fi
peer_rows=$(($(wc -l <"$out/kernels.jsonl") - ours_rows))

# ---- 7. JSON + tables ----
python3 - "$out" "$gpu_name" "$commit" "$tests_status" "$vr_table" "$vr_status" <<'PY' || die "summary"
import datetime, json, os, sys
out, gpu, commit, tests, vr_table, vr_status = sys.argv[1:7]
def rows(name):
    try:
        return [json.loads(l) for l in open(f"{out}/{name}") if l.strip()]
    except FileNotFoundError:
        return []
every = rows("kernels.jsonl")
for r in every:
    r.setdefault("impl", "seqpar")  # seqpar-bench rows carry no impl; the peers' do
ours = [r for r in every if r["impl"] == "seqpar"]
peers = [r for r in every if r["impl"] != "seqpar"]
vr = {"status": vr_status}
if os.path.exists(f"{out}/virtual_ranks.json") and os.path.exists(vr_table):
    vr["steps"] = json.load(open(f"{out}/virtual_ranks.json"))
    vr["table"] = open(vr_table).read()
doc = {"what": "block attention kernels, one GPU, bf16, median of CUDA-event timings",
       "flops": "forward 4*B*H*S*S*D (halved for causal), backward 2.5x forward",
       "gpu": gpu, "date": datetime.date.today().isoformat(), "commit": commit,
       "gpu_tests": tests, "rows": ours + peers,
       "virtual_ranks": vr}
json.dump(doc, open(f"{out}/kernel_bench.json", "w"), indent=1)
key = lambda r: (r["head_dim"], r["mask"], r["seq"])
by = {}
for r in ours + peers:
    by.setdefault(key(r), {})[r["impl"]] = r
def fig(r, what):
    return "-" if r is None or what not in r else f"{r[what]:.0f}"
lines = [f"GPU {gpu}, {doc['date']}, commit {commit}, GPU tests: {tests}. TFLOP/s (fwd / bwd).", "",
         "| D | mask | S | B | seqpar fwd | flash fwd | cudnn fwd | seqpar bwd | flash bwd | cudnn bwd | fwd vs flash |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
for k in sorted(by):
    e = by[k]
    o, f, c = e.get("seqpar"), e.get("torch-sdpa-flash"), e.get("torch-sdpa-cudnn")
    b = next(iter(e.values())).get("batch", "?")
    ratio = f"{o['fwd_tflops'] / f['fwd_tflops']:.2f}" if o and f and "fwd_tflops" in f else "-"
    lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {b} | {fig(o, 'fwd_tflops')} | {fig(f, 'fwd_tflops')} | "
                 f"{fig(c, 'fwd_tflops')} | {fig(o, 'bwd_tflops')} | {fig(f, 'bwd_tflops')} | "
                 f"{fig(c, 'bwd_tflops')} | {ratio} |")
lines += ["", f"Virtual ranks (seqpar-model-check --device cuda): {vr_status}."]
if "table" in vr:
    lines += ["", "```", vr["table"].rstrip(), "```"]
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "wrote $out/kernel_bench.json and $out/table.md"
[[ $tests_status != fail ]] || exit 1
((ours_rows > 0 && peer_rows > 0)) || die "no benchmark figures from ours or from the peers"
[[ $vr_status == ok ]] || die "the virtual-rank benchmark: $vr_status"
