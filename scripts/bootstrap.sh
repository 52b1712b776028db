#!/usr/bin/env bash
# From a fresh Debian machine (root or sudo, no GPU needed): install what is missing from
# Debian's packages, build seqpar, then
#   bootstrap.sh run    one mpirun-launched attention training step (4 ranks, zigzag, forward +
#                       backward) checked against the fp64 reference; exits non-zero on failure
#   bootstrap.sh test   the whole test suite (ctest); the installed package checked with the
#                       consumer project examples/consumer (scripts/check_install.sh); the
#                       PyTorch extension pip-installed into a venv with torch from PyPI and
#                       its torchrun tests, 2 and 4 ranks (scripts/check_torch_extension.sh); with the
#                       CUDA toolkit's headers at hand, also the GPU tests on the CPU emulator (a
#                       second build, build-emu/, with -DSEQPAR_CUDA_EMULATOR=ON: the CUDA kernels
#                       and device code run there)
set -euo pipefail
mode=${1:-}
if [[ "$mode" != run && "$mode" != test ]]; then
  echo "usage: $0 run|test" >&2
  exit 2
fi
cd "$(dirname "$0")/.."

packages=(cmake make g++ openmpi-bin libopenmpi-dev libboost-program-options-dev libgtest-dev
  libboost-context-dev pkg-config python3-venv python3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# CUDA, when installed, is found by CMake (/usr/local/cuda/bin/nvcc): the CUDA parts then compile too.
if [[ -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then export PATH=/usr/local/cuda/bin:$PATH; fi

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSEQPAR_WERROR=ON
cmake --build build -j "$jobs"

# Open MPI refuses to start as root unless told; oversubscribe so 4 ranks run on fewer cores.
if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1

if [[ "$mode" == run ]]; then
  mpirun --oversubscribe -np 4 build/bin/seqpar-run --backend mpi --scheme zigzag --mask causal \
    --seq 4096 --heads 8 --kv-heads 2 --head-dim 64 --dtype fp32 --backward --check
  exit 0
fi

ctest --test-dir build --output-on-failure -j "$jobs"
# The installed package: cmake --install build/ to a temporary prefix, examples/consumer built
# against it (find_package(seqpar), and pkg-config) and run under mpirun -np 2 and 4.
bash scripts/check_install.sh build
# The PyTorch extension: torch from PyPI into build/torch-venv, pip install ./python against the
# installed libseqpar, the torchrun tests (gloo, 2 and 4 ranks) and the torchrun example.
bash scripts/check_torch_extension.sh build
# The GPU tests, which skip above without a GPU, on the CPU emulator (cuda_emu/).
if [[ -f /usr/local/cuda/include/cuda_runtime_api.h ]]; then
  cmake -S . -B build-emu -DCMAKE_BUILD_TYPE=Release -DSEQPAR_WERROR=ON -DSEQPAR_CUDA_EMULATOR=ON
  cmake --build build-emu -j "$jobs"
  ctest --test-dir build-emu -L gpu --output-on-failure -j "$jobs"
else
  echo "bootstrap: no CUDA toolkit headers in /usr/local/cuda: the GPU tests on the emulator are left out"
fi
