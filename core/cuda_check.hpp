#pragma once
// CUDA runtime error checks that return a located Status (CUDA builds only).
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/status.hpp"

#define SEQPAR_CUDA_CHECK(call)                                             \
  do {                                                                      \
    cudaError_t seqpar_err_ = (call);                                       \
    if (seqpar_err_ != cudaSuccess)                                         \
      return ::seqpar::make_status(                                         \
          ::seqpar::StatusCode::kCudaError, __FILE__, __LINE__,             \
          ::seqpar::str_cat(#call, ": ", cudaGetErrorString(seqpar_err_))); \
  } while (0)
#endif
