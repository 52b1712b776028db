#!/usr/bin/env bash
# Checks seqpar's PyTorch extension (python/) the way a PyTorch user gets it:
#   1. a fresh venv (python3 -m venv) with torch from PyPI (SEQPAR_TORCH_SPEC, default
#      torch==2.15.*; the PyPI wheel is the CUDA one, used here on the CPU)
#   2. libseqpar installed from BUILD_DIR into a temporary prefix (cmake --install)
#   3. pip install --no-build-isolation ./python with SEQPAR_PREFIX=<that prefix>: the extension
#      built against the venv's torch, libseqpar copied into the package; then the prefix is
#      removed, so the installed package must stand alone
#   4. the torchrun tests (python/tests/run_torchrun_tests.sh: 2 and 4 ranks, gloo) and the
#      torchrun example (examples/torch/train_tiny_transformer.py, 2 ranks), from outside the
#      source tree so the installed package is the one imported
# Exits non-zero at the first failure, naming it.
#
# usage: scripts/check_torch_extension.sh [BUILD_DIR]      (default: build/)
# environment: SEQPAR_TORCH_VENV   the venv to make or reuse (default BUILD_DIR/torch-venv)
#              SEQPAR_TORCH_SPEC   what pip installs for torch (default torch==2.15.*)
#              SEQPAR_CHECK_TIMEOUT seconds per torchrun (default 900)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
venv=${SEQPAR_TORCH_VENV:-$build/torch-venv}
torch_spec=${SEQPAR_TORCH_SPEC:-torch==2.15.*}
timeout_s=${SEQPAR_CHECK_TIMEOUT:-900}

log() { echo "check_torch_extension: $*"; }
fail() {
  echo "check_torch_extension: FAIL: $*" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- 1. the venv and torch ----
if [[ ! -x "$venv/bin/python" ]]; then
  log "making the venv $venv"
  python3 -m venv "$venv" || fail "python3 -m venv (Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel ||
    fail "pip install pip setuptools wheel"
fi
py="$venv/bin/python"
# pip leaves a torch that already meets the spec alone (no download), and replaces another.
log "pip install $torch_spec numpy (PyPI; nothing to do when the venv has it)"
start=$SECONDS
"$py" -m pip install --quiet "$torch_spec" numpy || fail "pip install $torch_spec"
log "torch ready in $((SECONDS - start)) s"
"$py" -c "import torch; print('check_torch_extension: torch', torch.__version__)"

# ---- 2. libseqpar into a temporary prefix ----
cmake --build "$build" --target seqpar -j "$(nproc)" >/dev/null || fail "building libseqpar"
cmake --install "$build" --prefix "$work/prefix" >/dev/null || fail "cmake --install $build"

# ---- 3. the extension ----
log "pip install --no-build-isolation $root/python (SEQPAR_PREFIX=<temporary prefix>)"
start=$SECONDS
SEQPAR_PREFIX="$work/prefix" "$py" -m pip install --no-build-isolation --force-reinstall \
  --no-deps "$root/python" >"$work/pip.log" 2>&1 || { tail -n 60 "$work/pip.log"; fail "pip install ./python"; }
log "extension built and installed in $((SECONDS - start)) s"
rm -rf "$work/prefix"  # the package must not need it
(cd "$work" && "$py" -c "import seqpar.torch, seqpar._C as c; print('check_torch_extension: seqpar', c.version(), 'from', seqpar.torch.__file__)") ||
  fail "import seqpar.torch from the installed package"

# ---- 4. the torchrun tests and the example ----
export SEQPAR_TIMEOUT_S=${SEQPAR_TIMEOUT_S:-60}
(cd "$work" && PYTHON="$py" SEQPAR_TEST_TIMEOUT_S="$timeout_s" bash "$root/python/tests/run_torchrun_tests.sh") ||
  fail "the torchrun tests"
log "the torchrun example, 2 ranks"
(cd "$work" && OMP_NUM_THREADS=1 timeout "$timeout_s" "$venv/bin/torchrun" --standalone \
  --nproc-per-node 2 "$root/examples/torch/train_tiny_transformer.py") || fail "the torchrun example"
log "PASS"
