#!/usr/bin/env bash
# One GPU round, run on the GPU machine from inside a pack made by benchmarks/device/pack.sh
# (no build there). Every step runs under `timeout` with a limit of its own, the limits adding up
# to about 8 minutes (one device call is at most 10): a hung step costs only itself, and the
# script always ends with a summary.
#   a. the GPU (nvidia-smi), the kernel's runtime, compute-sanitizer and cuobjdump (SASS counts)
#   b. the packed GPU test binaries (tests/*, run directly: ctest files hold the build machine's
#      paths), then the CUDA kernel tests once more under compute-sanitizer memcheck
#   c. device plans: seqpar-run --device cuda --backend threads --check for every scheme that
#      `seqpar-run --help` names, P = 2, 4, 8 (training step with --backward), and --phase
#      decode with its decoders; a plan that does not exist yet fails fast and is recorded
#   d. our kernels (seqpar-bench --mode kernel --device cuda) beside torch SDPA FLASH and CUDNN
#      (sdpa_peer.py) on the same shapes: bf16, d64 and d128, full and causal, 16k tokens per batch
#   e. the virtual-rank scheme benchmark: seqpar-model-check --device cuda (ring, striped,
#      zigzag, lightseq; measured vs predicted efficiency)
#
# Usage: cd <pack> && ./round.sh OUT_DIR
# Environment:
#   SEQPAR_ALLOW_NO_GPU=1   go on without a GPU (a dry run on a CPU machine: the steps that need
#                           one record their failure or skip, and the script goes on)
#   SEQPAR_ROUND_BUDGET_S   the whole round's limit in seconds (default 480); no step starts past it
#   SEQPAR_SEQS             kernel benchmark sequence lengths (default 4096,16384)
#   SEQPAR_PLAN_RANKS       device-plan rank counts (default "2 4 8")
#   SEQPAR_VR_RANKS, SEQPAR_VR_SEQ, SEQPAR_VR_REPEATS   virtual-rank benchmark (default 8, 32768, 3)
# Writes into OUT_DIR (7 files; the device tool brings back at most 8):
#   round.log           every step's log, nvidia-smi, SASS counts, the model-check table, the tables
#   tests.log           the test binaries' output (and compute-sanitizer's)
#   tests.jsonl         one line per test binary: status, counts, failed tests with their messages
#   device_plans.jsonl  one line per (scheme, P, phase): status, exit code, seconds, seqpar-run's
#                       JSON report or its last message
#   kernels.jsonl       seqpar-bench rows (impl seqpar), then torch SDPA's (impl torch-sdpa-*)
#   virtual_ranks.json  seqpar-model-check's per-step times (`seqpar-model-check --input` reads it)
#   summary.json        GPU, date, pack MANIFEST, each step's status and time, the kernel table
# Exit status: 0 every step ok, 1 some step failed or timed out, 2 no GPU (and no
# SEQPAR_ALLOW_NO_GPU) or bad arguments. Device plans that say "unsupported" are not failures.
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUT_DIR   (run from inside the pack that benchmarks/device/pack.sh made)" >&2
  exit 2
fi
pack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1" || exit 2
out=$(cd "$1" && pwd)
[[ -d $pack/bin && -d $pack/tests && -d $pack/lib ]] || {
  echo "$pack is not a pack (no bin/, tests/, lib/): make one with benchmarks/device/pack.sh" >&2
  exit 2
}
export LD_LIBRARY_PATH="$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
work=$(mktemp -d "${TMPDIR:-/tmp}/seqpar-round.XXXXXX")
export SEQPAR_CACHE_DIR=$work/cache  # calibration caches: not into the pack or OUT_DIR
budget=${SEQPAR_ROUND_BUDGET_S:-480}
seqs=${SEQPAR_SEQS:-4096,16384}
plan_ranks=${SEQPAR_PLAN_RANKS:-2 4 8}
vr_ranks=${SEQPAR_VR_RANKS:-8}
vr_seq=${SEQPAR_VR_SEQ:-32768}
vr_repeats=${SEQPAR_VR_REPEATS:-3}
deadline=$((SECONDS + budget))
rm -f "$out"/{round.log,tests.log,tests.jsonl,device_plans.jsonl,kernels.jsonl,virtual_ranks.json,summary.json}
touch "$out"/{round.log,tests.log,tests.jsonl,device_plans.jsonl,kernels.jsonl}
steps=$work/steps.jsonl  # one line per step, for summary.json
: >"$steps"

log() { echo "[round $(date -u +%H:%M:%S) +$((SECONDS))s] $*" | tee -a "$out/round.log"; }

# jline k1 v1 k2 v2 ...: one JSON object (values that read as numbers become numbers).
jline() {
  python3 -c '
import json, sys
def val(v):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v
a = sys.argv[1:]
print(json.dumps({a[i]: val(a[i + 1]) for i in range(0, len(a), 2)}))' "$@"
}

# step NAME STATUS SECONDS DETAIL: one line of steps.jsonl, and of round.log.
step() {
  jline step "$1" status "$2" seconds "$3" detail "$4" >>"$steps"
  log "step $1: $2 ($3 s) $4"
}

# limited SECONDS CMD...: CMD under timeout, its limit cut to what the round's budget has left.
# Exit 200 without running CMD when under 5 seconds are left.
limited() {
  local want=$1 left=$((deadline - SECONDS))
  shift
  ((left < want)) && want=$left
  ((want >= 5)) || return 200
  timeout -k 5 "$want" "$@"
}

# status_of RC: ok | timeout | not run (round budget spent) | fail (exit RC)
status_of() {
  case $1 in
    0) echo ok ;;
    124 | 137) echo timeout ;;
    200) echo "not run (round budget spent)" ;;
    *) echo "fail (exit $1)" ;;
  esac
}

commit=$(sed -n 's/^commit: //p' "$pack/MANIFEST" 2>/dev/null)
log "seqpar GPU round: pack $pack (commit ${commit:-unknown}), out $out, budget ${budget} s"

# ---- a. the GPU and the tools ----
t0=$SECONDS
gpu=none
if command -v nvidia-smi >/dev/null && limited 20 nvidia-smi -L >"$work/smi.txt" 2>&1 && grep -q "^GPU " "$work/smi.txt"; then
  tee -a "$out/round.log" <"$work/smi.txt"
  gpu=$(limited 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
  limited 20 nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,power.limit,compute_mode,mig.mode.current \
    --format=csv >>"$out/round.log" 2>&1
  step gpu ok $((SECONDS - t0)) "$gpu"
elif [[ ${SEQPAR_ALLOW_NO_GPU:-0} == 1 ]]; then
  step gpu "skipped: no GPU" $((SECONDS - t0)) "SEQPAR_ALLOW_NO_GPU=1: a dry run, the GPU steps record their failure"
else
  step gpu "fail: no GPU" $((SECONDS - t0)) "nvidia-smi missing or lists no GPU (SEQPAR_ALLOW_NO_GPU=1 for a dry run)"
fi
log "host: $(uname -srm) ($([[ $(uname -r) == 4.4.0 ]] && echo gVisor || echo 'not gVisor: Firecracker?')); $(ldd --version 2>&1 | head -1); needs $(sed -n 's/^glibc needed: //p' "$pack/MANIFEST" 2>/dev/null)"
# ldd resolves every library of the pack here (libcuda.so.1 comes from the driver)
missing=$(for f in "$pack"/bin/* "$pack"/tests/*; do ldd "$f" 2>&1 | grep "not found"; done | sort -u | tr -s ' \t\n' ' ')
if [[ -z $missing ]]; then step libraries ok 0 "every packed binary's libraries resolve"; else step libraries fail 0 "$missing"; fi

t0=$SECONDS
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [[ -n $sanitizer ]]; then
  version=$(limited 20 "$sanitizer" --version 2>&1 | grep -m1 -i version)
  step sanitizer-probe ok $((SECONDS - t0)) "$sanitizer: $version"
else
  step sanitizer-probe "skipped: no compute-sanitizer" 0 ""
fi

# SASS: count the instructions that matter in each kernel (no GPU needed, only cuobjdump)
t0=$SECONDS
cuobjdump=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2>/dev/null || true)
if [[ -n $cuobjdump ]] && limited 30 "$cuobjdump" --dump-sass "$pack/bin/seqpar-bench" >"$work/sass.txt" 2>&1; then
  python3 - "$work/sass.txt" >"$work/sass.json" <<'PY'
import collections, json, re, sys
want = ["HGMMA", "HMMA", "LDSM", "STSM", "LDGSTS", "UTMALDG", "LDL", "STL", "BAR", "SHFL", "MUFU"]
kernels, name = {}, None
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"Function : (\S+)", line)
    if m:
        name = m.group(1)
        k = re.search(r"\d+([a-z_]+_kernel)I\d*(\w+?)(?:Li(\d+)E)?E", name)
        if k:
            name = f"{k.group(1)}<{k.group(2)}{', ' + k.group(3) if k.group(3) else ''}>"
        kernels[name] = collections.Counter()
        continue
    m = re.search(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9]*)", line)
    if m and name:
        kernels[name]["total"] += 1
        if m.group(1) in want:
            kernels[name][m.group(1)] += 1
print(json.dumps({k: dict(v) for k, v in kernels.items()}))
PY
  python3 -c 'import json, sys
for k, v in json.load(open(sys.argv[1])).items():
    print(f"  {k:48s} " + " ".join(f"{n}={c}" for n, c in sorted(v.items())))' "$work/sass.json" >>"$out/round.log"
  step sass ok $((SECONDS - t0)) "$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))), "kernels: counts in round.log")' "$work/sass.json")"
else
  echo '{}' >"$work/sass.json"
  step sass "skipped: no cuobjdump" $((SECONDS - t0)) "${cuobjdump:+cuobjdump failed}"
fi

if [[ $gpu == none && ${SEQPAR_ALLOW_NO_GPU:-0} != 1 ]]; then
  log "no GPU: stopping here"
  python3 -c 'import json, sys; json.dump({"gpu": "none", "steps": [json.loads(l) for l in open(sys.argv[1])]}, open(sys.argv[2], "w"), indent=1)' \
    "$steps" "$out/summary.json"
  rm -rf "$work"
  exit 2
fi

# ---- b. the GPU tests, then memcheck on the kernel tests ----
# tests_line NAME RC SECONDS GTEST_JSON: one line of tests.jsonl; prints the status.
tests_line() {
  python3 - "$@" >>"$out/tests.jsonl" <<'PY'
import json, os, sys
name, rc, secs, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
row = {"binary": name, "rc": rc, "seconds": secs}
if os.path.exists(path):
    doc = json.load(open(path))
    cases = [t for s in doc.get("testsuites", []) for t in s.get("testsuite", [])]
    failed = [t for t in cases if t.get("failures")]
    skipped = [t for t in cases if t.get("result") == "SKIPPED"]
    row.update(tests=doc.get("tests", len(cases)), failures=len(failed), skipped=len(skipped),
               failed=[{"name": f"{t.get('classname')}.{t.get('name')}",
                        "message": t["failures"][0].get("failure", "")[:400]} for t in failed[:20]])
if rc in (124, 137):
    row["status"] = "timeout"
elif rc == 200:
    row["status"] = "not run (round budget spent)"
elif "tests" not in row:
    row["status"] = f"crash (exit {rc}, no gtest JSON)"
elif rc != 0 or row["failures"]:
    row["status"] = "fail"
elif row["skipped"] == row["tests"]:
    row["status"] = "skipped (every test)"
else:
    row["status"] = "pass"
print(json.dumps(row))
PY
  tail -1 "$out/tests.jsonl" | python3 -c 'import json, sys; r = json.loads(sys.stdin.read()); print(r["status"], "-", r.get("tests", 0), "tests,", r.get("failures", 0), "failed,", r.get("skipped", 0), "skipped")'
}

t_step=$SECONDS
step_end=$((SECONDS + 150))
test_status=ok
for t in "$pack"/tests/*; do
  name=$(basename "$t")
  t0=$SECONDS
  left=$((step_end - SECONDS))
  ((left < 120)) || left=120
  echo "===== $name" >>"$out/tests.log"
  rm -f "$work/$name.json"
  limited "$left" "$t" --gtest_output="json:$work/$name.json" >>"$out/tests.log" 2>&1
  rc=$?
  result=$(tests_line "$name" "$rc" $((SECONDS - t0)) "$work/$name.json")
  log "test $name: $result ($((SECONDS - t0)) s)"
  [[ $result == pass* || ($gpu == none && $result == skipped*) ]] || test_status=fail
done
step tests "$test_status" $((SECONDS - t_step)) "$(wc -l <"$out/tests.jsonl") binaries: see tests.jsonl"

t0=$SECONDS
if [[ -z $sanitizer ]]; then
  step memcheck "skipped: no compute-sanitizer" 0 ""
elif [[ $gpu == none ]]; then
  step memcheck "skipped: no GPU" 0 ""
else
  echo "===== compute-sanitizer --tool memcheck test_attention_cuda" >>"$out/tests.log"
  limited 60 "$sanitizer" --tool memcheck --error-exitcode 9 --print-limit 20 \
    "$pack/tests/test_attention_cuda" --gtest_output="json:$work/memcheck.json" >>"$out/tests.log" 2>&1
  rc=$?
  result=$(tests_line "memcheck:test_attention_cuda" "$rc" $((SECONDS - t0)) "$work/memcheck.json")
  errors=$(grep -m1 "ERROR SUMMARY" "$out/tests.log" | tail -1)
  if grep -q "Device not supported" "$out/tests.log"; then
    step memcheck "refused" $((SECONDS - t0)) "compute-sanitizer: Device not supported (gVisor?)"
  else
    case $rc in
      0) step memcheck ok $((SECONDS - t0)) "$result; $errors" ;;
      9) step memcheck "fail: memory errors" $((SECONDS - t0)) "$errors (see tests.log)" ;;
      *) step memcheck "$(status_of "$rc")" $((SECONDS - t0)) "$result; $errors" ;;
    esac
  fi
fi

# ---- c. the schemes' device plans on virtual ranks ----
help=$("$pack/bin/seqpar-run" --help 2>&1 | tr -s ' \n' '  ')
# "--scheme arg (=auto) auto (...), or ring, striped, ... or tree; under --phase decode: auto, tree or ring"
schemes=$(sed -nE 's/.*--scheme arg \(=[a-z]+\) .*\), or ([a-z, ]+ or [a-z]+);.*/\1/p' <<<"$help" | sed 's/ or /, /; s/,//g')
decoders=$(sed -nE 's/.*under --phase decode: ([a-z, ]+ or [a-z]+).*/\1/p' <<<"$help" | sed -E 's/ or /, /; s/,//g; s/\bauto\b//g; s/ +/ /g; s/^ | $//g')
if [[ -z $schemes ]]; then
  schemes="ring striped zigzag lightseq ulysses hybrid tree"
  log "could not read the schemes from seqpar-run --help: using $schemes"
fi
[[ -n $decoders ]] || decoders="tree ring"
log "device plans: schemes $schemes; decoders $decoders; P = $plan_ranks"

# plan_line SCHEME P PHASE RC SECONDS STDOUT STDERR: one line of device_plans.jsonl; prints the status.
plan_line() {
  python3 - "$@" >>"$out/device_plans.jsonl" <<'PY'
import json, re, sys
scheme, ranks, phase, rc, secs, so, se = sys.argv[1:8]
rc = int(rc)
stdout, stderr = open(so, errors="replace").read(), open(se, errors="replace").read()
row = {"scheme": scheme, "ranks": int(ranks), "phase": phase, "rc": rc, "seconds": int(secs)}
report = None
for line in stdout.splitlines():
    if line.startswith("{"):
        try:
            report = json.loads(line)
        except ValueError:
            pass
if report is not None:
    row["report"] = report
lines = [l for l in (stderr + stdout).splitlines() if l.strip() and not l.startswith("{")]
if lines:
    row["message"] = lines[-1][:400]
text = (stderr + stdout).lower()
if rc == 0:
    row["status"] = "pass"
elif rc in (124, 137):
    row["status"] = "timeout"
elif rc == 200:
    row["status"] = "not run (round budget spent)"
elif re.search(r"unsupported|not supported|unrecogni[sz]ed|unknown option|no such option", text):
    row["status"] = "unsupported"
else:
    row["status"] = "fail"
print(json.dumps(row))
print(row["status"], file=sys.stderr)
PY
}

t_step=$SECONDS
step_end=$((SECONDS + 50))
problem=(--batch 1 --heads 8 --kv-heads 4 --head-dim 128 --mask causal --dtype bf16 --iters 1 --warmup 1 --timeout 20 --json)
plan_runs=()
for p in $plan_ranks; do
  for s in $schemes; do plan_runs+=("$s $p train"); done
  for s in $decoders; do plan_runs+=("$s $p decode"); done
done
for r in "${plan_runs[@]}"; do
  read -r s p phase <<<"$r"
  if [[ $phase == train ]]; then
    args=(--scheme "$s" --seq 1024 --backward)
  else
    args=(--scheme "$s" --phase decode --q-len 2 --seq 4096)
  fi
  left=$((step_end - SECONDS))
  ((left < 15)) || left=15
  t0=$SECONDS
  limited "$left" "$pack/bin/seqpar-run" --device cuda --backend threads --ranks "$p" --check \
    "${problem[@]}" "${args[@]}" >"$work/plan.out" 2>"$work/plan.err"
  rc=$?
  result=$(plan_line "$s" "$p" "$phase" "$rc" $((SECONDS - t0)) "$work/plan.out" "$work/plan.err" 2>&1)
  log "plan $s P=$p $phase: $result (exit $rc, $((SECONDS - t0)) s) $(tail -c 200 "$work/plan.err" | tail -1)"
done
plan_counts=$(python3 -c 'import collections, json, sys
c = collections.Counter(json.loads(l)["status"] for l in open(sys.argv[1]) if l.strip())
print(", ".join(f"{v} {k}" for k, v in sorted(c.items())))' "$out/device_plans.jsonl")
plan_status=ok
grep -q '"status": "pass"' "$out/device_plans.jsonl" || plan_status="unsupported (no plan ran)"
grep -q '"status": "not run' "$out/device_plans.jsonl" && plan_status="partly not run (round budget spent)"
grep -qE '"status": "(fail|timeout)"' "$out/device_plans.jsonl" && plan_status=fail
step device-plans "$plan_status" $((SECONDS - t_step)) "${#plan_runs[@]} runs: $plan_counts"

# ---- d. our kernels beside torch SDPA FLASH and CUDNN ----
t_step=$SECONDS
step_end=$((SECONDS + 70))
tokens=16384
hidden=2048
IFS=, read -ra seq_list <<<"$seqs"
bench_fail=0
bench_notrun=0
for d in 64 128; do
  for mask in full causal; do
    for s in "${seq_list[@]}"; do
      b=$((tokens / s))
      ((b >= 1)) || b=1
      left=$((step_end - SECONDS))
      ((left < 25)) || left=25
      limited "$left" "$pack/bin/seqpar-bench" --mode kernel --device cuda --dtype bf16 \
        --batch "$b" --seq "$s" --heads $((hidden / d)) --kv-heads $((hidden / d)) --head-dim "$d" \
        --mask "$mask" --json >>"$out/kernels.jsonl" 2>"$work/bench.err"
      rc=$?
      if ((rc == 200)); then
        bench_notrun=$((bench_notrun + 1))
      elif ((rc != 0)); then
        bench_fail=$((bench_fail + 1))
        log "seqpar-bench d=$d $mask S=$s: $(status_of $rc): $(tail -1 "$work/bench.err")"
      fi
    done
  done
done
ours_rows=$(grep -c . "$out/kernels.jsonl")
if ((bench_fail > 0)); then
  st="fail ($bench_fail runs failed)"
elif ((bench_notrun > 0)); then
  st="partly not run (round budget spent)"
else
  st=ok
fi
step kernels-seqpar "$st" $((SECONDS - t_step)) "$ours_rows rows; $bench_notrun runs not started"

t0=$SECONDS
limited 80 python3 "$pack/sdpa_peer.py" --seqs "$seqs" --tokens "$tokens" --hidden "$hidden" \
  >>"$out/kernels.jsonl" 2>"$work/peer.err"
rc=$?
tee -a "$out/round.log" <"$work/peer.err" >/dev/null
peer_rows=$(($(grep -c . "$out/kernels.jsonl") - ours_rows))
step kernels-sdpa "$(status_of $rc)" $((SECONDS - t0)) "$peer_rows rows; $(tail -1 "$work/peer.err")"

# ---- e. the virtual-rank scheme benchmark ----
t0=$SECONDS
limited 60 "$pack/bin/seqpar-model-check" --device cuda --ranks "$vr_ranks" --seq "$vr_seq" \
  --heads 32 --kv-heads 8 --head-dim 128 --mask causal --dtype bf16 --backward --warmup 1 \
  --repeats "$vr_repeats" --schemes ring,striped,zigzag,lightseq \
  --write "$out/virtual_ranks.json" >"$work/vr.txt" 2>"$work/vr.err"
rc=$?
cat "$work/vr.txt" "$work/vr.err" >>"$out/round.log"
step virtual-ranks "$(status_of $rc)" $((SECONDS - t0)) "P=$vr_ranks S=$vr_seq: $(tail -1 "$work/vr.err")"
[[ $rc == 0 ]] || rm -f "$out/virtual_ranks.json"

# ---- summary ----
python3 - "$out" "$steps" "$pack/MANIFEST" "$work/sass.json" "$work/vr.txt" "$gpu" "$SECONDS" <<'PY' | tee -a "$out/round.log"
import datetime, json, os, sys
out, steps_path, manifest, sass, vr_txt, gpu, secs = sys.argv[1:8]
def rows(name):
    path = f"{out}/{name}"
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []
steps = [json.loads(l) for l in open(steps_path) if l.strip()]
kernels = rows("kernels.jsonl")
for r in kernels:
    r.setdefault("impl", "seqpar")  # seqpar-bench rows carry no impl; the peers' do
man = open(manifest).read() if os.path.exists(manifest) else ""
doc = {"what": "seqpar GPU round (benchmarks/device/round.sh)", "gpu": gpu,
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "commit": next((l[8:] for l in man.splitlines() if l.startswith("commit: ")), "unknown"),
       "seconds": int(secs), "steps": steps, "tests": rows("tests.jsonl"),
       "device_plans": [{k: r[k] for k in ("scheme", "ranks", "phase", "status", "rc")}
                        for r in rows("device_plans.jsonl")],
       "sass": json.load(open(sass)) if os.path.exists(sass) else {},
       "virtual_ranks_table": open(vr_txt).read() if os.path.exists(vr_txt) else "",
       "kernels": kernels, "manifest": man}
json.dump(doc, open(f"{out}/summary.json", "w"), indent=1)

print(f"\n== seqpar GPU round: GPU {gpu}, commit {doc['commit']}, {secs} s")
print(f"{'step':16s} {'seconds':>7s}  status: detail")
for s in steps:
    print(f"{s['step']:16s} {s['seconds']:7}  {s['status']}: {str(s['detail'])[:150]}")
by = {}
for r in kernels:
    if "seq" in r:
        by.setdefault((r.get("head_dim"), r.get("mask"), r.get("seq")), {})[r["impl"]] = r
if by:
    def f(r, k):
        return f"{r[k]:.0f}" if r and isinstance(r.get(k), (int, float)) else "-"
    def ratio(a, b, k):
        ok = a and b and isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float)) and b[k]
        return f"{a[k] / b[k]:.2f}" if ok else "-"
    print("\nTFLOP/s  D mask      S | seqpar fwd flash cudnn | seqpar bwd flash cudnn | fwd, bwd vs flash")
    for k in sorted(by, key=str):
        e = by[k]
        o, fl, cu = e.get("seqpar"), e.get("torch-sdpa-flash"), e.get("torch-sdpa-cudnn")
        print(f"       {k[0]!s:>3} {k[1]!s:6} {k[2]!s:>6} | {f(o, 'fwd_tflops'):>10} {f(fl, 'fwd_tflops'):>5} "
              f"{f(cu, 'fwd_tflops'):>5} | {f(o, 'bwd_tflops'):>10} {f(fl, 'bwd_tflops'):>5} {f(cu, 'bwd_tflops'):>5} | "
              f"{ratio(o, fl, 'fwd_tflops')}, {ratio(o, fl, 'bwd_tflops')}")
PY
files=$(find "$out" -type f | wc -l)
log "wrote $files files into $out: $(cd "$out" && echo *)"
((files <= 8)) || log "WARNING: more than 8 files in $out: the device tool brings back 8"
rc=0
grep -qE '"status": "(fail|timeout|crash)' "$steps" && rc=1
rm -rf "$work"
if ((rc)); then log "round done: some step failed (see above)"; else log "round done"; fi
exit $rc
