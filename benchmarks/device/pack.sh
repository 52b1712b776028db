#!/usr/bin/env bash
# Prepares a GPU round on a development machine (no GPU needed): builds seqpar for the H200
# (Release, -DCMAKE_CUDA_ARCHITECTURES=90a: the real CUDA kernels compiled by nvcc) and packs
# what benchmarks/device/round.sh runs on the GPU machine, so that nothing is built there.
#
# Usage: benchmarks/device/pack.sh [PACK_DIR]
#   PACK_DIR   where the pack goes (default <repo>/build-gpu-pack/pack; emptied first)
# Environment:
#   SEQPAR_PACK_BUILD  build folder (default <repo>/build-gpu-pack; git-ignored like /build*/)
#   SEQPAR_PACK_JOBS   parallel build jobs (default 2; the build runs under nice -n 10)
#   CUDA_HOME          CUDA toolkit (default /usr/local/cuda; its nvcc and libcudart are used)
#
# The pack's build differs from a normal one only by options on this cmake command line (the
# project's defaults are untouched): MPI left out (the GPU machine has no Open MPI) and NCCL with
# it (an empty NCCL_LIBRARY: the NCCL communicator needs MPI, a build with NCCL but no MPI does
# not compile, and libnccl alone is 218 MB), Boost linked statically, libstdc++ and libgcc linked
# statically. GoogleTest is Debian's static library.
#
# Writes into PACK_DIR:
#   round.sh, sdpa_peer.py   the round's script and the torch SDPA peer timings
#   bin/                     seqpar-run, seqpar-bench, seqpar-model-check
#   tests/                   the GoogleTest executables whose ctest label is gpu (MPI tests excluded)
#   lib/                     the shared libraries they need that the GPU machine lacks (libcudart;
#                            never the driver's libcuda.so / libnvidia-*)
#   ptxas.txt                nvcc -Xptxas -v figures (registers, smem, spills) of every kernel
#   MANIFEST                 commit, date, build options, glibc needed, size and sha256 of each file
# and in the build folder: pack-build.log (configure + build output).
# Fails (non-zero) when the build fails, when a packed binary needs a library that is neither in
# lib/ nor a base system library (glibc's), or when the pack is 60 MiB or more.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${SEQPAR_PACK_BUILD:-$repo/build-gpu-pack}
pack=${1:-$build/pack}
jobs=${SEQPAR_PACK_JOBS:-2}
cuda=${CUDA_HOME:-/usr/local/cuda}
max_mib=60
# Libraries every Linux machine has (glibc's); everything else must come from lib/.
system_libs='^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so)'
# The driver's libraries: only on the GPU machine, never packed.
driver_libs='^(libcuda\.so|libnvidia-)'

log() { echo "[pack.sh] $*"; }
die() {
  echo "[pack.sh] FAILED: $*" >&2
  exit 1
}

[[ -x $cuda/bin/nvcc ]] || die "no nvcc at $cuda/bin/nvcc (set CUDA_HOME)"
command -v cmake >/dev/null || die "cmake not found"
command -v python3 >/dev/null || die "python3 not found (reads ctest's JSON)"
mkdir -p "$build"
build=$(cd "$build" && pwd)
mkdir -p "$pack"
pack=$(cd "$pack" && pwd)
[[ $pack != "$repo" && $pack != "$build" ]] || die "PACK_DIR must be a folder of its own"
# PACK_DIR is emptied below: only when it is empty or an earlier pack (it has a MANIFEST)
[[ -z $(ls -A "$pack") || -f $pack/MANIFEST ]] || die "$pack is neither empty nor a pack (no MANIFEST): not emptying it"
buildlog=$build/pack-build.log
log "source $repo, build $build, pack $pack"

# ---- 1. configure ----
generator=(-G "Unix Makefiles")
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ -f $build/CMakeCache.txt ]] && ! grep -q "^CMAKE_GENERATOR:INTERNAL=${generator[1]}$" "$build/CMakeCache.txt"; then
  log "removing $build/CMakeCache.txt (made by another generator)"
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
cmake_args=(
  -S "$repo" -B "$build" "${generator[@]}"
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc"
  -DCMAKE_CUDA_ARCHITECTURES=90a
  -DSEQPAR_CUDA_EMULATOR=OFF
  -DSEQPAR_CUDA_PTXAS_VERBOSE=ON
  -DSEQPAR_BUILD_TESTS=ON
  -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON
  -DNCCL_LIBRARY=
  -DBoost_USE_STATIC_LIBS=ON
  "-DCMAKE_EXE_LINKER_FLAGS=-static-libstdc++ -static-libgcc"
)
log "configure: cmake ${cmake_args[*]:4}"
nice -n 10 cmake "${cmake_args[@]}" >"$buildlog" 2>&1 || die "configure (see $buildlog)"
summary=$(grep -m1 "seqpar: CUDA=" "$buildlog" || true)
log "configure: ${summary#-- }"
[[ $summary == *"CUDA=ON"* ]] || die "CMake found no CUDA toolkit"
[[ $summary != *"emulated: ON"* ]] || die "this build is for the CPU emulator, not the GPU"
[[ $summary == *"Boost.Program_options=1"* ]] || die "no Boost.Program_options: the tools would be left out"
[[ $summary == *"GTest=TRUE"* || $summary == *"GTest=1"* ]] || die "no GoogleTest: the GPU tests would be left out"
grep -Eq "^CMAKE_CUDA_ARCHITECTURES:[A-Z]+=90a$" "$build/CMakeCache.txt" || die "CMAKE_CUDA_ARCHITECTURES is not 90a"

# ---- 2. build (everything: ctest's gpu label is known only once the tests are built) ----
log "building with $jobs jobs under nice (log: $buildlog)"
t0=$SECONDS
nice -n 10 cmake --build "$build" -j "$jobs" >>"$buildlog" 2>&1 || {
  grep -E "error|Error" "$buildlog" | head -20 >&2
  die "build (see $buildlog)"
}
log "build ok in $((SECONDS - t0)) s"

# ptxas prints only for the .cu files compiled in this run: keep each object's figures in
# $build/ptxas/ and refresh those this run compiled (Ninja prints a command's output after its
# "[n/N] Building CUDA object ..." line).
mkdir -p "$build/ptxas"
awk -v dir="$build/ptxas" '
  /^\[[0-9]+\/[0-9]+\] / { f = ""; if ($0 ~ /Building CUDA object/) { n = $NF; gsub(/[\/.]/, "_", n); f = dir "/" n ".txt"; printf "" > f } }
  f != "" && /ptxas (info|warning)|bytes stack frame/ { print > f }' "$buildlog"
# ptxas.txt: one line per kernel (family<dtype, head dim>: registers, static smem, stack, spills),
# then ptxas's own lines.
cat "$build"/ptxas/*.txt >"$build/ptxas-raw.txt" 2>/dev/null
python3 - "$build/ptxas-raw.txt" >"$build/ptxas.txt" <<'PY'
import re, subprocess, sys
raw = open(sys.argv[1]).read()
rows = []
for line in raw.splitlines():
    m = re.search(r"Compiling entry function '(\w+)' for '(sm_\w+)'", line)
    if m:
        try:  # c++filt (binutils) demangles; without it the mangled name stays
            name = subprocess.run(["c++filt", m.group(1)], capture_output=True, text=True).stdout
        except OSError:
            name = ""
        name = re.sub(r"^void |\(anonymous namespace\)::|\w+::", "", name.strip())
        name = re.sub(r"\(.*$", "", name)  # the parameter list
        rows.append({"kernel": name or m.group(1), "arch": m.group(2), "used": "?", "frame": "?"})
    elif rows and "bytes stack frame" in line:
        rows[-1]["frame"] = " ".join(line.split())
    elif rows and "Used" in line and "registers" in line:
        rows[-1]["used"] = line.split("Used", 1)[1].strip()
print(f"nvcc -Xptxas -v: {len(rows)} kernels")
for r in rows:
    print(f"{r['kernel']:44s} {r['arch']}: {r['used']}; {r['frame']}")
print()
print(raw, end="")
PY
kernels=$(grep -c "Compiling entry function" "$build/ptxas.txt")
((kernels > 0)) || log "WARNING: no ptxas figures kept (build a fresh folder to get them)"

# ---- 3. which binaries: the gpu-labelled GoogleTest executables, and the tools ----
mapfile -t gpu_tests < <(ctest --test-dir "$build" -N -L gpu --show-only=json-v1 2>/dev/null | python3 -c '
import json, os, sys
seen = []
for t in json.load(sys.stdin).get("tests", []):
    exe = (t.get("command") or [""])[0]
    if not exe or "mpiexec" in os.path.basename(exe) or "mpirun" in os.path.basename(exe):
        continue  # MPI tests (nccl_comm_test) need mpirun: not on the GPU machine
    if exe not in seen:
        seen.append(exe)
print("\n".join(seen))')
((${#gpu_tests[@]} > 0)) || die "ctest lists no test labelled gpu in $build"
tools=(seqpar-run seqpar-bench seqpar-model-check)

# ---- 4. copy ----
rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/tests" "$pack/lib"
echo "incomplete: benchmarks/device/pack.sh did not finish" >"$pack/MANIFEST"
for t in "${tools[@]}"; do
  [[ -x $build/bin/$t ]] || die "$build/bin/$t was not built"
  cp "$build/bin/$t" "$pack/bin/" || die "copying $t"
done
for exe in "${gpu_tests[@]}"; do
  [[ -x $exe ]] || die "$exe was not built"
  cp "$exe" "$pack/tests/" || die "copying $exe"
done
cp "$repo/benchmarks/device/round.sh" "$repo/benchmarks/device/sdpa_peer.py" "$build/ptxas.txt" \
  "$pack/" || die "copying round.sh, sdpa_peer.py, ptxas.txt"
chmod +x "$pack/round.sh"
log "packed tools: ${tools[*]}"
log "packed GPU tests: $(cd "$pack/tests" && echo *)"

# Shared libraries: whatever ldd resolves outside glibc, copied under the name the binary asks for.
binaries=("$pack"/bin/* "$pack"/tests/*)
for b in "${binaries[@]}"; do
  while read -r name _ path _; do
    [[ $name =~ $system_libs ]] && continue
    if [[ $name =~ $driver_libs ]]; then
      log "not packing the driver's $name (needed by $(basename "$b"))"
      continue
    fi
    [[ -f $path ]] || continue  # "not found": the check below reports it
    [[ -e $pack/lib/$name ]] || { cp -L "$path" "$pack/lib/$name" && log "packed $name (from $path)"; }
  done < <(ldd "$b" | grep "=>")
done

# ---- 5. check: every library resolves from lib/ or glibc, the binaries start, the size ----
bad=0
for f in "${binaries[@]}" "$pack"/lib/*; do
  [[ -f $f ]] || continue
  while read -r line; do
    name=${line%% *}
    if [[ $line == *"not found"* ]]; then
      [[ $name == libcuda.so.1 ]] && continue  # the driver's: on the GPU machine only
      echo "[pack.sh] $(basename "$f"): $name not found" >&2
      bad=1
    elif [[ $line == *"=> /"* && ! $name =~ $system_libs && $line != *"=> $pack/lib/"* ]]; then
      echo "[pack.sh] $(basename "$f"): $name resolves outside the pack ($line)" >&2
      bad=1
    fi
  done < <(LD_LIBRARY_PATH=$pack/lib ldd "$f" 2>&1 | sed 's/^[[:space:]]*//')
done
((bad == 0)) || die "some libraries do not resolve from $pack/lib"
log "ldd: every packed binary resolves its libraries from lib/ or glibc (libcuda.so.1: the driver's)"
for t in "$pack"/bin/*; do
  LD_LIBRARY_PATH=$pack/lib "$t" --help >/dev/null 2>&1 || die "$(basename "$t") --help fails from the pack"
done
for t in "$pack"/tests/*; do
  LD_LIBRARY_PATH=$pack/lib "$t" --gtest_list_tests >/dev/null 2>&1 || die "$(basename "$t") --gtest_list_tests fails from the pack"
done
log "every tool answers --help and every test binary lists its tests from the pack"

# The newest glibc symbol version any binary needs (the GPU machine's glibc must be as new).
glibc=$(for f in "${binaries[@]}" "$pack"/lib/*; do objdump -T "$f" 2>/dev/null; done |
  grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -1)
commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
[[ $commit == unknown || -z $(git -C "$repo" status --porcelain 2>/dev/null) ]] || commit="$commit+dirty"
{
  echo "seqpar GPU pack (benchmarks/device/pack.sh; run: cd <pack> && ./round.sh OUT_DIR)"
  echo "commit: $commit"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "built on: $(uname -m), $(ldd --version | head -1), $(g++ --version | head -1)"
  echo "nvcc: $("$cuda/bin/nvcc" --version | grep -o 'release [0-9.]*, V[0-9.]*')"
  echo "cmake: ${cmake_args[*]:4}"
  echo "glibc needed: ${glibc:-none}"
  echo "ptxas kernels: $kernels"
  echo "files (bytes sha256 path):"
  (cd "$pack" && find . -type f ! -name MANIFEST | sort | while read -r f; do
    echo "  $(stat -c %s "$f") $(sha256sum "$f" | cut -d' ' -f1) ${f#./}"
  done)
} >"$pack/MANIFEST"

bytes=$(du -sb "$pack" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "size: $bytes bytes ($mib MiB)" >>"$pack/MANIFEST"
log "pack: $pack, $mib MiB ($(find "$pack" -type f | wc -l) files), commit $commit, glibc needed ${glibc:-none}"
((bytes < max_mib * 1048576)) || die "the pack is $mib MiB: $max_mib MiB or more does not leave room in a device call"
log "done. On the GPU machine: cd ${pack#"$repo"/} && ./round.sh \$OUT"
