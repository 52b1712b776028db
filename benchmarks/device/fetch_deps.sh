#!/usr/bin/env bash
# Only for the fallback build ON the GPU machine (benchmarks/GPU_NOTES.md, "Fallback"), when the
# pack that benchmarks/device/pack.sh makes here does not start there. Downloads Debian's
# Boost.Program_options and GoogleTest packages, which the GPU machine lacks and cannot fetch
# (it reaches no package registry), into build-gpu-deps/debs (git-ignored, about 10 MB).
# Carry build-gpu-deps with the device tool's `carry`; there, before pack.sh:
#   mkdir -p build-gpu-deps/root && for f in build-gpu-deps/debs/*.deb; do dpkg -x "$f" build-gpu-deps/root; done
#   CMAKE_PREFIX_PATH=$PWD/build-gpu-deps/root/usr SEQPAR_PACK_JOBS=16 benchmarks/device/pack.sh
#
# Usage: benchmarks/device/fetch_deps.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
debs=$repo/build-gpu-deps/debs
mkdir -p "$debs"
cd "$debs"
apt-get download libboost1.74-dev libboost-program-options1.74-dev \
  libboost-program-options1.74.0 libgtest-dev
ls -l "$debs"
