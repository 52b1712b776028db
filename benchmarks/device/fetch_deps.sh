#!/usr/bin/env bash
# Downloads the Debian packages that benchmarks/device/run.sh unpacks on the GPU machine, which
# reaches no package registry: Boost.Program_options (seqpar-bench, seqpar-run) and GoogleTest
# (the GPU tests). Run on a development machine before a GPU session, then carry
# build-gpu-deps (git-ignored, about 10 MB) with the device tool's `carry`.
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
