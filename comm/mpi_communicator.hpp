#pragma once
// The MPI backend: host buffers, non-blocking MPI calls on a private duplicate of the caller's
// communicator (our traffic never matches the caller's). Waits poll MPI_Testall until done or
// the timeout; abort() calls MPI_Abort. bf16/fp16 reductions go through fp32 scratch buffers
// (one rounding at the end). MPI does not promise a reduction order, so unlike the threads
// backend, reductions are not guaranteed to be in rank order. Sizes above INT_MAX: exchange
// messages are split into chunks; collectives and all_to_all_v pieces fail with kUnsupported.
// split() uses MPI_Comm_split, which is blocking and not bounded by timeout().
// Only in builds with SEQPAR_HAVE_MPI.
#include <mpi.h>

#include <memory>

#include "comm/communicator.hpp"

namespace seqpar {

// A communicator over the ranks of `comm` (duplicated; the duplicate is freed with the result).
// MPI must be initialised by the caller.
StatusOr<std::unique_ptr<Communicator>> make_mpi_communicator(MPI_Comm comm);

}  // namespace seqpar
