#!/usr/bin/env bash
# Runs python/tests/test_distributed.py under torchrun (gloo, CPU) with 2 and then 4 ranks.
#
#   PYTHON=/path/to/venv/bin/python python/tests/run_torchrun_tests.sh [rank counts...]
#
# PYTHON (default python3) must import seqpar.torch: CI installs the package with pip; a local
# run from the source tree sets PYTHONPATH=<repo>/python. Each rank count runs under `timeout`
# (SEQPAR_TEST_TIMEOUT_S, default 900 s). Exits non-zero when any run fails or times out.
# SEQPAR_TEST_SEED and SEQPAR_TEST_FILTER pass through to the tests (see the script's docstring).
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
limit="${SEQPAR_TEST_TIMEOUT_S:-900}"
ranks=("$@")
[ ${#ranks[@]} -gt 0 ] || ranks=(2 4)

export SEQPAR_TIMEOUT_S="${SEQPAR_TIMEOUT_S:-60}"  # seqpar's own wait limit: no endless hang
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# choose_scheme's measured CPU rate is cached on disk: keep the tests' cache out of ~/.cache.
if [ -z "${SEQPAR_CACHE_DIR:-}" ]; then
  SEQPAR_CACHE_DIR="$(mktemp -d)"
  export SEQPAR_CACHE_DIR
  trap 'rm -rf "$SEQPAR_CACHE_DIR"' EXIT
fi

"$python" -c "import seqpar.torch" || {
  echo "run_torchrun_tests: $python cannot import seqpar.torch (install it, or set PYTHONPATH)" >&2
  exit 2
}

status=0
start=$(date +%s)
for n in "${ranks[@]}"; do
  echo "=== torchrun --standalone --nproc-per-node $n test_distributed.py"
  t0=$(date +%s)
  timeout --kill-after=30 "$limit" \
    "$python" -m torch.distributed.run --standalone --nproc-per-node "$n" \
    "$here/test_distributed.py"
  rc=$?
  echo "=== $n ranks: exit $rc, $(( $(date +%s) - t0 )) s"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "=== $n ranks: timed out after $limit s" >&2
  fi
  [ $rc -eq 0 ] || status=1
done
verdict=passed; [ $status -eq 0 ] || verdict=FAILED
echo "=== all rank counts: $(( $(date +%s) - start )) s, $verdict"
exit $status
