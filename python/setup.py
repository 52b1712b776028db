"""Builds seqpar's PyTorch extension (seqpar._C) against the torch in this environment.

    pip install --no-build-isolation ./python

libseqpar, the C++ library the extension calls through its C ABI, comes from
  SEQPAR_PREFIX=<prefix>   an installed seqpar (cmake --install): <prefix>/include/seqpar/,
                           <prefix>/lib*/libseqpar.so
or, when that is not set, a CMake build of this repository (the `seqpar` target only, CPU:
-DSEQPAR_ENABLE_CUDA=OFF, since the extension runs CPU tensors) in python/build/libseqpar/.
Either way the library is copied into the package next to the extension, which finds it there
(RUNPATH $ORIGIN): the installed package does not depend on the prefix or the build tree.
Environment: SEQPAR_CMAKE_ARGS (extra arguments of that CMake configure), SEQPAR_BUILD_JOBS.
"""

import glob
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def log(message):
    print(f"seqpar setup: {message}", file=sys.stderr, flush=True)


def library_in(prefix):
    """(include dir, the libseqpar.so.X.Y file) of an installed prefix, or None."""
    header = os.path.join(prefix, "include", "seqpar", "seqpar.h")
    libs = sorted(glob.glob(os.path.join(prefix, "lib*", "libseqpar.so.*.*")) +
                  glob.glob(os.path.join(prefix, "lib*", "*", "libseqpar.so.*.*")))  # multiarch
    libs = [lib for lib in libs if lib.count(".so.") == 1 and lib.split(".so.")[1].count(".") == 1]
    if os.path.isfile(header) and libs:
        return os.path.join(prefix, "include"), libs[0]
    return None


def build_library():
    """Builds and installs libseqpar from this repository into python/build/libseqpar/prefix."""
    if not os.path.isfile(os.path.join(REPO, "CMakeLists.txt")):
        raise RuntimeError("seqpar setup: SEQPAR_PREFIX is not set and this is not a seqpar "
                           f"checkout ({REPO} has no CMakeLists.txt): install seqpar with CMake "
                           "and set SEQPAR_PREFIX to its prefix")
    build = os.path.join(HERE, "build", "libseqpar")
    prefix = os.path.join(build, "prefix")
    jobs = os.environ.get("SEQPAR_BUILD_JOBS", str(os.cpu_count() or 1))
    configure = ["cmake", "-S", REPO, "-B", os.path.join(build, "cmake"),
                 "-DCMAKE_BUILD_TYPE=Release", "-DSEQPAR_BUILD_TESTS=OFF",
                 "-DSEQPAR_ENABLE_CUDA=OFF"] + shlex.split(os.environ.get("SEQPAR_CMAKE_ARGS", ""))
    steps = [configure,
             ["cmake", "--build", os.path.join(build, "cmake"), "--target", "seqpar", "-j", jobs],
             ["cmake", "--install", os.path.join(build, "cmake"), "--prefix", prefix]]
    for step in steps:
        log(" ".join(step))
        subprocess.run(step, check=True)
    found = library_in(prefix)
    if found is None:
        raise RuntimeError(f"seqpar setup: the CMake build installed no libseqpar in {prefix}")
    return found


def find_library():
    prefix = os.environ.get("SEQPAR_PREFIX")
    if prefix:
        found = library_in(prefix)
        if found is None:
            raise RuntimeError(f"seqpar setup: SEQPAR_PREFIX={prefix} has no include/seqpar/"
                               "seqpar.h and lib*/libseqpar.so.X.Y (run cmake --install first)")
        log(f"using the installed libseqpar of {prefix}")
        return found
    log("SEQPAR_PREFIX is not set: building libseqpar from this repository")
    return build_library()


class BuildWithLibrary(BuildExtension):
    """Finds (or builds) libseqpar first, and ships it next to the extension."""

    def build_extensions(self):
        # Always rebuilt: the extension compiles seqpar.hpp's inline layer and links libseqpar,
        # neither of which setuptools sees as a dependency (pip builds in the source tree).
        self.force = True
        include_dir, library = find_library()
        for ext in self.extensions:
            ext.include_dirs.append(include_dir)
            ext.extra_link_args += [library, "-Wl,-rpath,$ORIGIN"]
        super().build_extensions()
        self._library = library
        self._ship_library(os.path.dirname(self.get_ext_fullpath("seqpar._C")))

    def copy_extensions_to_source(self):  # build_ext --inplace, editable installs
        super().copy_extensions_to_source()
        self._ship_library(os.path.join(HERE, "seqpar"))

    def _ship_library(self, target):
        os.makedirs(target, exist_ok=True)
        shutil.copy2(self._library, os.path.join(target, os.path.basename(self._library)))
        log(f"copied {os.path.basename(self._library)} into {target}")


setup(
    ext_modules=[
        CppExtension(
            "seqpar._C",
            sources=["csrc/extension.cpp", "csrc/process_group_backend.cpp"],
            extra_compile_args=["-O2", "-g0", "-Wall"],
        )
    ],
    cmdclass={"build_ext": BuildWithLibrary},
)
