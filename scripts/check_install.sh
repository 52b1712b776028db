#!/usr/bin/env bash
# Checks seqpar as an installed package, the way a user gets it:
#   1. builds the seqpar target in BUILD_DIR (configures it first when it has no CMakeCache.txt;
#      an already built tree, bootstrap.sh's build/, is reused as it is)
#   2. cmake --install BUILD_DIR --prefix <temporary prefix>
#   3. the installed tree: exactly libseqpar.so*, include/seqpar/*.h|*.hpp, the CMake package
#      (<libdir>/cmake/seqpar/) and seqpar.pc; no internal header, no static library, no path
#      into the source or build tree; libseqpar.so's SONAME/NEEDED/RUNPATH and its exported
#      symbols (only seqpar_* C functions and seqpar:: names the public headers declare)
#   4. every installed header compiles alone, with only what `pkg-config --cflags seqpar` gives
#      (<prefix>/include), plus MPI / CUDA / NCCL include paths for a header that includes
#      <mpi.h>, <cuda_runtime*.h>, <nccl.h> itself: .h as C11 and as C++20, .hpp as C++20,
#      -Wall -Wextra -Wpedantic -Werror
#   5. examples/consumer, a separate CMake project, against the prefix: find_package(seqpar)
#      -> seqpar::seqpar, builds examples/cpp/mpi_train_step.cpp and examples/c/mpi_train_step.c;
#      and the C example once more with pkg-config alone (examples/consumer/Makefile)
#   6. runs the three programs under mpirun -np 2 and -np 4, each with a timeout; they must load
#      libseqpar.so from the prefix (RUNPATH, no LD_LIBRARY_PATH) and exit 0
#   7. a copy of the prefix elsewhere still configures: the CMake package and seqpar.pc locate
#      the prefix from their own place
# Exits non-zero at the first failure, naming it; the temporary directory is kept then.
#
# usage: scripts/check_install.sh [BUILD_DIR]          (default: build/)
# environment: SEQPAR_CHECK_TIMEOUT  seconds per mpirun run (default 300)
#              SEQPAR_CHECK_KEEP=1   keep the temporary prefix and builds after a pass
#              CC, CXX               compilers of the consumer builds (default cc, c++)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
timeout_s=${SEQPAR_CHECK_TIMEOUT:-300}
jobs=$(nproc)
cc=${CC:-cc}
cxx=${CXX:-c++}

log() { echo "check_install: $*"; }
fail() {
  echo "check_install: FAIL: $*" >&2
  echo "check_install: the temporary files are kept in $work" >&2
  exit 1
}

usage() {
  echo "usage: $0 [BUILD_DIR]   (default: $root/build)" >&2
  exit 2
}

# ---- 1. build ----
build_library() {
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    log "configuring $build (no CMakeCache.txt there)"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEQPAR_WERROR=ON
  fi
  if grep -q '^SEQPAR_INSTALL:BOOL=OFF' "$build/CMakeCache.txt"; then
    fail "$build was configured with -DSEQPAR_INSTALL=OFF: it has no install rules"
  fi
  log "building the seqpar target in $build"
  cmake --build "$build" --target seqpar -j "$jobs" ||
    fail "cmake --build $build --target seqpar (is there an api/ target seqpar?)"
}

# ---- 2. install ----
install_package() {
  log "cmake --install $build --prefix $prefix"
  cmake --install "$build" --prefix "$prefix" >"$work/install.log" ||
    { cat "$work/install.log"; fail "cmake --install"; }
  log "installed files:"
  (cd "$prefix" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort | sed 's/^/  /')
}

# ---- 3. the installed tree ----
check_tree() {
  local lib
  lib=$(cd "$prefix" && find . -name libseqpar.so | sed 's|^\./||' | head -n 1)
  [[ -n "$lib" ]] || fail "no libseqpar.so under $prefix"
  libdir=$(dirname "$lib")
  log "library directory: <prefix>/$libdir"
  local required=("$libdir/cmake/seqpar/seqparConfig.cmake"
    "$libdir/cmake/seqpar/seqparConfigVersion.cmake" "$libdir/cmake/seqpar/seqparTargets.cmake"
    "$libdir/pkgconfig/seqpar.pc" include/seqpar/seqpar.h include/seqpar/seqpar.hpp)
  local f
  for f in "${required[@]}"; do
    [[ -e "$prefix/$f" ]] || fail "missing from the installed tree: <prefix>/$f"
  done

  # Nothing else: an internal header, a static library or a tool would show up here.
  local unexpected=()
  while IFS= read -r f; do
    case "$f" in
      include/seqpar/*.h | include/seqpar/*.hpp) ;;
      "$libdir"/libseqpar.so | "$libdir"/libseqpar.so.*) ;;
      "$libdir"/cmake/seqpar/*.cmake | "$libdir"/pkgconfig/seqpar.pc) ;;
      *) unexpected+=("$f") ;;
    esac
  done < <(cd "$prefix" && find . \( -type f -o -type l \) | sed 's|^\./||')
  ((${#unexpected[@]} == 0)) || fail "unexpected installed files: ${unexpected[*]}"

  # The public headers include only <seqpar/...>, standard, MPI/CUDA/NCCL headers.
  local internal
  internal=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](core|comm|partition|attention|runtime|model|harness|cuda_emu|tools)/' \
    "$prefix"/include/seqpar/* || true)
  [[ -z "$internal" ]] || fail "installed headers include internal headers:"$'\n'"$internal"

  # Relocatable and self-contained: no path into the source or the build tree.
  local leaks
  leaks=$(grep -rlF -e "$root/" -e "$build" "$prefix/$libdir/cmake" "$prefix/$libdir/pkgconfig" \
    "$prefix/include" || true)
  [[ -z "$leaks" ]] || fail "installed files name the source or build tree: $leaks"

  local so="$prefix/$lib" dyn
  dyn=$(readelf -d "$so")
  log "libseqpar.so dynamic section:"
  grep -E '\((SONAME|NEEDED|RUNPATH|RPATH)\)' <<<"$dyn" | sed 's/^ */  /'
  if grep -E '\((RUNPATH|RPATH)\)' <<<"$dyn" | grep -qF -e "$root/" -e "$build"; then
    fail "libseqpar.so's RUNPATH names the source or build tree"
  fi
  check_symbols "$so"
}

# Exported symbols: C functions seqpar_* only (the C++ API is inline in the headers). Weak
# instantiations of the standard library's templates (libstdc++ gives namespace std default
# visibility) are counted apart and allowed.
check_symbols() {
  local so=$1
  nm -D --defined-only --format=posix "$so" | awk '{print $1, $2}' >"$work/symbols.raw"
  awk '{print $1}' "$work/symbols.raw" | c++filt >"$work/symbols.demangled"
  paste -d '\t' "$work/symbols.raw" "$work/symbols.demangled" >"$work/symbols"
  local total=0 c_api=0 std_weak=0 other=()
  local raw type demangled
  while IFS=$'\t' read -r raw demangled; do
    type=${raw##* }
    raw=${raw% *}
    total=$((total + 1))
    case "$raw" in
      seqpar_*) c_api=$((c_api + 1)); continue ;;
      _init | _fini | _edata | _end | __bss_start) total=$((total - 1)); continue ;;
    esac
    # The C++ API is inline in the headers: no seqpar:: symbol belongs in the library (the
    # internal classes share the public names, so a name check could not tell them apart).
    if [[ "$demangled" != *seqpar::* && "$type" == [WVu] &&
      "$demangled" =~ (std::|__gnu_cxx::|__cxxabiv1) ]]; then
      std_weak=$((std_weak + 1))
      continue
    fi
    other+=("$demangled")
  done <"$work/symbols"
  log "libseqpar.so exports $total symbols: $c_api C (seqpar_*), $std_weak weak" \
    "standard-library instantiations, ${#other[@]} other"
  if ((${#other[@]})); then
    printf '%s\n' "${other[@]}" | sort >"$work/symbols.internal"
    log "symbols outside the public API (first 20 of ${#other[@]}; all in $work/symbols.internal):"
    head -n 20 "$work/symbols.internal" | sed 's/^/  /'
    fail "libseqpar.so exports ${#other[@]} symbols outside the public API (hidden visibility," \
      "or -Wl,--exclude-libs,ALL for the internal static libraries)"
  fi
  ((c_api > 0)) || fail "libseqpar.so exports no seqpar_* C function"
}

# ---- 4. every installed header alone ----
# The text of an installed header and of the <seqpar/...> headers it includes, recursively.
header_closure() {
  local todo=("$1") seen=" " h inc
  while ((${#todo[@]})); do
    h=${todo[0]}
    todo=("${todo[@]:1}")
    [[ "$seen" != *" $h "* && -f "$prefix/include/seqpar/$h" ]] || continue
    seen+="$h "
    cat "$prefix/include/seqpar/$h"
    while IFS= read -r inc; do todo+=("$inc"); done < <(sed -nE \
      's@^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]seqpar/([^>"]+)[>"].*@\1@p' \
      "$prefix/include/seqpar/$h")
  done
}

# -isystem flags for MPI's headers: its pkg-config module, else mpicc's (Open MPI, MPICH).
mpi_include_flags() {
  local m flag
  for m in mpi-c ompi-c mpich; do
    if pkg-config --exists "$m"; then
      for flag in $(pkg-config --cflags-only-I "$m"); do echo "-isystem ${flag#-I}"; done
      return 0
    fi
  done
  for flag in $(mpicc -showme:compile 2>/dev/null || mpicc -compile-info 2>/dev/null); do
    [[ "$flag" == -I* ]] && echo "-isystem ${flag#-I}"
  done
  return 0
}

# The directory holding <name> among the CUDA toolkit's and NCCL's usual places, if any.
find_header_dir() {
  local d
  for d in ${CUDA_HOME:+"$CUDA_HOME/include"} ${NCCL_HOME:+"$NCCL_HOME/include"} \
    /usr/local/cuda/include /usr/include; do
    [[ -f "$d/$1" ]] && { echo "$d"; return 0; }
  done
  return 1
}

# Each installed header compiles alone: with the prefix's include directory (and what
# `pkg-config --cflags seqpar` adds), plus, only for a header that includes them itself, the
# third-party headers a user of it provides: MPI (<mpi.h>), the CUDA runtime and NCCL.
check_headers() {
  local pc_flags base=() flag
  pc_flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags seqpar) || fail "pkg-config --cflags seqpar"
  for flag in $pc_flags; do
    if [[ "$flag" == -I* && "$(realpath -m "${flag#-I}")" != "$(realpath -m "$prefix/include")" ]]; then
      base+=("-isystem" "${flag#-I}") # a dependency's headers: their warnings are not ours
    else
      base+=("$flag")
    fi
  done
  log "compiling each installed header alone: ${base[*]} (+ MPI/CUDA/NCCL where it includes them)"
  local warn=(-Wall -Wextra -Wpedantic -Werror -fsyntax-only) h name text extra needs dir dep
  for h in "$prefix"/include/seqpar/*; do
    name=${h##*/}
    text=$(header_closure "$name")
    extra=()
    needs=""
    if grep -qE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<mpi\.h>' <<<"$text"; then
      # shellcheck disable=SC2207
      extra+=($(mpi_include_flags))
      needs+=" MPI"
    fi
    for dep in cuda_runtime_api.h cuda_runtime.h nccl.h; do
      grep -qE "^[[:space:]]*#[[:space:]]*include[[:space:]]*<${dep//./\\.}>" <<<"$text" || continue
      if ! dir=$(find_header_dir "$dep"); then
        log "  <seqpar/$name> skipped: it includes <$dep>, which is not installed here"
        continue 2
      fi
      extra+=(-isystem "$dir")
      needs+=" <$dep>"
    done
    printf '#include <seqpar/%s>\n' "$name" >"$work/header_tu"
    if [[ "$name" == *.h ]]; then
      "$cc" -std=c11 "${warn[@]}" "${base[@]}" "${extra[@]}" -x c "$work/header_tu" ||
        fail "<seqpar/$name> does not compile alone as C11"
    fi
    local standard
    for standard in c++17 c++20; do
      "$cxx" -std=$standard "${warn[@]}" "${base[@]}" "${extra[@]}" -x c++ "$work/header_tu" ||
        fail "<seqpar/$name> does not compile alone as ${standard^^}"
    done
    log "  <seqpar/$name> ok${needs:+ (with$needs)}"
  done
}

# ---- 5. the consumers ----
build_consumers() {
  local consumer_build="$work/consumer-build"
  log "configuring examples/consumer against $prefix (find_package(seqpar))"
  CC="$cc" CXX="$cxx" cmake -S "$root/examples/consumer" -B "$consumer_build" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" ||
    fail "configuring examples/consumer"
  local found
  found=$(sed -n 's/^seqpar_DIR:PATH=//p' "$consumer_build/CMakeCache.txt")
  [[ "$(realpath -m "$found")" == "$(realpath -m "$prefix")"/* ]] ||
    fail "examples/consumer found seqpar in '$found', not in $prefix"
  log "building examples/consumer"
  cmake --build "$consumer_build" -j "$jobs" || fail "building examples/consumer"
  programs=("$consumer_build/mpi_train_step_cpp" "$consumer_build/mpi_train_step_c")

  log "building the C example with pkg-config alone (examples/consumer/Makefile)"
  mkdir -p "$work/pkgconfig-build"
  PKG_CONFIG_PATH="$pcdir" make -C "$root/examples/consumer" CC="$cc" O="$work/pkgconfig-build" ||
    fail "the pkg-config build of examples/c/mpi_train_step.c"
  programs+=("$work/pkgconfig-build/mpi_train_step_c_pkgconfig")

  local p resolved
  for p in "${programs[@]}"; do
    resolved=$(ldd "$p" | awk '/libseqpar\.so/ {print $3}')
    [[ "$resolved" == "$prefix"/* ]] ||
      fail "${p##*/} loads libseqpar.so from '${resolved:-nowhere}', not from $prefix"
  done
  log "all three programs load libseqpar.so from the prefix"
}

# ---- 6. the runs ----
run_programs() {
  if [[ $(id -u) -eq 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  export OMPI_MCA_rmaps_base_oversubscribe=1
  local mpirun_flags=()
  local mpirun_version
  mpirun_version=$(mpirun --version 2>&1 || true)  # no pipe into grep -q under pipefail
  if [[ "$mpirun_version" == *"Open MPI"* ]]; then mpirun_flags+=(--oversubscribe); fi
  local np p name out rc
  for np in 2 4; do
    for p in "${programs[@]}"; do
      name=${p##*/}
      out="$work/run-$name-np$np.log"
      log "mpirun -np $np $name (timeout ${timeout_s}s)"
      rc=0
      timeout -k 10 "$timeout_s" mpirun "${mpirun_flags[@]}" -np "$np" "$p" >"$out" 2>&1 || rc=$?
      sed 's/^/  | /' "$out"
      if ((rc == 124 || rc == 137)); then fail "$name under mpirun -np $np timed out after ${timeout_s}s"; fi
      ((rc == 0)) || fail "$name under mpirun -np $np exited with $rc"
    done
  done
}

# ---- 7. relocation: the installed tree moved as a whole still configures ----
check_relocated() {
  local moved="$work/prefix-moved" consumer_build="$work/consumer-moved" found libdir_pc
  log "moving the prefix to $moved: find_package and pkg-config must follow it"
  cp -a "$prefix" "$moved"
  CC="$cc" CXX="$cxx" cmake -S "$root/examples/consumer" -B "$consumer_build" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$moved" >"$work/consumer-moved.log" ||
    { cat "$work/consumer-moved.log"; fail "configuring examples/consumer against the moved prefix"; }
  found=$(sed -n 's/^seqpar_DIR:PATH=//p' "$consumer_build/CMakeCache.txt")
  [[ "$(realpath -m "$found")" == "$(realpath -m "$moved")"/* ]] ||
    fail "after the move, find_package(seqpar) found '$found'"
  libdir_pc=$(PKG_CONFIG_PATH="$moved/$libdir/pkgconfig" pkg-config --variable=libdir seqpar)
  [[ -f "$libdir_pc/libseqpar.so" && "$(realpath -m "$libdir_pc")" == "$(realpath -m "$moved")"/* ]] ||
    fail "after the move, pkg-config's libdir is '$libdir_pc'"
  log "the moved prefix configures (CMake and pkg-config)"
}

main() {
  (($# <= 1)) || usage
  [[ "${1:-}" != -h && "${1:-}" != --help ]] || usage
  build=$(realpath -m "${1:-$root/build}")
  work=$(mktemp -d "${TMPDIR:-/tmp}/seqpar-check-install.XXXXXX")
  prefix="$work/prefix"
  command -v pkg-config >/dev/null || fail "pkg-config is not installed"
  command -v mpirun >/dev/null || fail "mpirun is not on PATH"

  build_library
  install_package
  check_tree
  pcdir="$prefix/$libdir/pkgconfig"
  check_headers
  build_consumers
  run_programs
  check_relocated

  if [[ "${SEQPAR_CHECK_KEEP:-0}" == 1 ]]; then
    log "kept $work"
  else
    rm -rf "$work"
  fi
  log "PASS: installed package, headers, CMake and pkg-config consumers, mpirun -np 2 and 4"
}

main "$@"
