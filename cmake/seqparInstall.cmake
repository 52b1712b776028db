# Install rules for the seqpar package (included from the top-level CMakeLists.txt when the
# seqpar target, api/, exists and SEQPAR_INSTALL is ON). `cmake --install <build> --prefix P`
# puts under P:
#   <libdir>/libseqpar.so*                 the shared library; the internal static libraries
#                                          (core, comm, ...) are linked into it, never installed
#   include/seqpar/*.h, *.hpp              the public headers, nothing else
#   <libdir>/cmake/seqpar/                 seqparConfig.cmake, seqparConfigVersion.cmake and the
#                                          exported target seqpar::seqpar (seqparTargets*.cmake)
#   <libdir>/pkgconfig/seqpar.pc           for pkg-config / pkgconf
# Every installed file locates the prefix from its own place (CMake: _IMPORT_PREFIX and
# PACKAGE_PREFIX_DIR; pkg-config: ${pcfiledir}), so an installed tree can be moved as a whole.
# scripts/check_install.sh installs to a temporary prefix and builds examples/consumer against it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SEQPAR_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/seqpar" CACHE STRING
  "Where the CMake package files of seqpar go, relative to the install prefix")
mark_as_advanced(SEQPAR_INSTALL_CMAKEDIR)

# ---- the library: versioned file names, RPATH for the installed layout ----
# 0.x: the ABI may change with every minor version, so the soname carries major.minor
# (libseqpar.so.0.1); the api/ target may set its own.
get_target_property(seqpar_install_soversion seqpar SOVERSION)
if(NOT seqpar_install_soversion)
  set_target_properties(seqpar PROPERTIES
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
endif()
# The installed library keeps in its RUNPATH the directories of what it links outside the
# prefix and outside the system's directories (libcudart and libnccl in /usr/local/cuda/lib,
# an MPI under /opt, ...), and none of the build tree; $ORIGIN finds anything installed beside it.
set_target_properties(seqpar PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
get_target_property(seqpar_install_rpath seqpar INSTALL_RPATH)
if(NOT seqpar_install_rpath)
  set_target_properties(seqpar PROPERTIES INSTALL_RPATH "$ORIGIN")
endif()

install(TARGETS seqpar EXPORT seqparTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT seqpar_runtime
          NAMELINK_COMPONENT seqpar_development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT seqpar_development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT seqpar_runtime)
# (the include directory comes from the target's own $<INSTALL_INTERFACE:include>)

# ---- the public headers: include/seqpar/ only (the internal ones stay in the source tree) ----
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/seqpar
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT seqpar_development
  FILES_MATCHING PATTERN "*.h" PATTERN "*.hpp")

# ---- what the exported target's interface needs, to be found again by the consumer ----
# Read from the target itself (api/ decides what is PUBLIC): its INTERFACE_LINK_LIBRARIES, as
# written (generator expressions included). PRIVATE dependencies (the internal static libraries
# and what they link: CUDA::cudart, NCCL, MPI) are inside libseqpar.so and its DT_NEEDED/RUNPATH,
# and need nothing from the consumer.
get_target_property(seqpar_install_iface seqpar INTERFACE_LINK_LIBRARIES)
if(NOT seqpar_install_iface)
  set(seqpar_install_iface "")
endif()
set(seqpar_install_mpi_components "")
foreach(lang C CXX)
  if(seqpar_install_iface MATCHES "MPI::MPI_${lang}([^A-Za-z_]|$)")
    list(APPEND seqpar_install_mpi_components ${lang})
  endif()
endforeach()
set(seqpar_install_needs_cuda OFF)
if(seqpar_install_iface MATCHES "CUDA::")
  set(seqpar_install_needs_cuda ON)
endif()
set(seqpar_install_needs_threads OFF)
if(seqpar_install_iface MATCHES "Threads::Threads")
  set(seqpar_install_needs_threads ON)
endif()
if(seqpar_install_iface MATCHES "seqpar_nccl_dep")
  message(FATAL_ERROR "seqpar install: the public interface of seqpar links seqpar_nccl_dep "
    "(NCCL); the public headers need only the ncclComm_t handle: link NCCL PRIVATE")
endif()

set(SEQPAR_CONFIG_DEPENDENCIES "")
if(seqpar_install_needs_threads)
  string(APPEND SEQPAR_CONFIG_DEPENDENCIES "find_dependency(Threads)\n")
endif()
if(seqpar_install_mpi_components)
  list(JOIN seqpar_install_mpi_components " " seqpar_install_mpi_list)
  string(APPEND SEQPAR_CONFIG_DEPENDENCIES
    "find_dependency(MPI COMPONENTS ${seqpar_install_mpi_list})\n")
endif()
if(seqpar_install_needs_cuda)
  # Hint the toolkit seqpar was built with, unless the consumer names one.
  get_filename_component(seqpar_install_cuda_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  string(APPEND SEQPAR_CONFIG_DEPENDENCIES
    "if(NOT DEFINED CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND "
    "EXISTS \"${seqpar_install_cuda_root}\")\n"
    "  set(CUDAToolkit_ROOT \"${seqpar_install_cuda_root}\")\n"
    "endif()\n"
    "find_dependency(CUDAToolkit)\n")
endif()
if(SEQPAR_CONFIG_DEPENDENCIES STREQUAL "")
  set(SEQPAR_CONFIG_DEPENDENCIES "# (none: the public interface of seqpar::seqpar links nothing else)\n")
endif()
# What this libseqpar.so was built with (informational for consumers).
foreach(feature MPI CUDA NCCL)
  if(SEQPAR_HAVE_${feature})
    set(SEQPAR_CONFIG_WITH_${feature} ON)
  else()
    set(SEQPAR_CONFIG_WITH_${feature} OFF)
  endif()
endforeach()
set(SEQPAR_CONFIG_CUDA_EMULATED ${SEQPAR_CUDA_EMULATION})

# ---- the CMake package ----
install(EXPORT seqparTargets NAMESPACE seqpar:: FILE seqparTargets.cmake
  DESTINATION ${SEQPAR_INSTALL_CMAKEDIR} COMPONENT seqpar_development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/seqparConfig.cmake.in
  ${PROJECT_BINARY_DIR}/seqpar-package/seqparConfig.cmake
  INSTALL_DESTINATION ${SEQPAR_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API (the soname carries it too), so find_package(seqpar 0.1)
# accepts 0.1.z only; from 1.0 on, SameMajorVersion.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/seqpar-package/seqparConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/seqpar-package/seqparConfig.cmake
  ${PROJECT_BINARY_DIR}/seqpar-package/seqparConfigVersion.cmake
  DESTINATION ${SEQPAR_INSTALL_CMAKEDIR} COMPONENT seqpar_development)

# ---- pkg-config: seqpar.pc, the prefix relative to the .pc file's own directory ----
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(SEQPAR_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(SEQPAR_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH seqpar_install_pc_up "/seqpar-prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    "/seqpar-prefix")
  string(REGEX REPLACE "/$" "" seqpar_install_pc_up "${seqpar_install_pc_up}")
  set(SEQPAR_PC_PREFIX "\${pcfiledir}/${seqpar_install_pc_up}")
  set(SEQPAR_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(SEQPAR_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(SEQPAR_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# Requires / Cflags / Libs for what the public headers need, as for the CMake package: MPI by
# its pkg-config module when there is one (mpi-c on Debian, ompi-c, mpich), else its flags.
set(SEQPAR_PC_REQUIRES "")
set(SEQPAR_PC_CFLAGS "")
set(SEQPAR_PC_LIBS "")
if(seqpar_install_mpi_components)
  find_package(PkgConfig QUIET)
  set(seqpar_install_mpi_pc "")
  if(PKG_CONFIG_FOUND)
    foreach(candidate mpi-c ompi-c mpich)
      pkg_check_modules(seqpar_install_pc_${candidate} QUIET ${candidate})
      if(seqpar_install_pc_${candidate}_FOUND)
        set(seqpar_install_mpi_pc ${candidate})
        break()
      endif()
    endforeach()
  endif()
  if(seqpar_install_mpi_pc)
    set(SEQPAR_PC_REQUIRES "${seqpar_install_mpi_pc}")
  else()
    if(TARGET MPI::MPI_C)
      set(seqpar_install_mpi_lang C)
    else()
      set(seqpar_install_mpi_lang CXX)
    endif()
    foreach(dir IN LISTS MPI_${seqpar_install_mpi_lang}_INCLUDE_DIRS)
      string(APPEND SEQPAR_PC_CFLAGS " -I${dir}")
    endforeach()
    foreach(lib IN LISTS MPI_${seqpar_install_mpi_lang}_LIBRARIES)
      string(APPEND SEQPAR_PC_LIBS " ${lib}")
    endforeach()
  endif()
endif()
if(seqpar_install_needs_cuda)
  foreach(dir IN LISTS CUDAToolkit_INCLUDE_DIRS)
    string(APPEND SEQPAR_PC_CFLAGS " -I${dir}")
  endforeach()
  string(APPEND SEQPAR_PC_LIBS " -L${CUDAToolkit_LIBRARY_DIR} -lcudart")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/seqpar.pc.in ${PROJECT_BINARY_DIR}/seqpar-package/seqpar.pc
  @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/seqpar-package/seqpar.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT seqpar_development)

message(STATUS "seqpar: install rules for seqpar::seqpar (public interface needs: "
  "MPI=[${seqpar_install_mpi_components}] CUDA=${seqpar_install_needs_cuda}; "
  "pkg-config Requires: '${SEQPAR_PC_REQUIRES}')")
