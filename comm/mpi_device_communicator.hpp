#pragma once
// The MPI backend on device memory (make_mpi_communicator(comm, Device::kCuda)): buffers are
// device pointers, ordered with the communicator's stream as comm/communicator.hpp says, in one
// of two modes, fixed when the communicator is made (split children inherit it):
// - CUDA-aware (the MPI library reports CUDA support: Open MPI's MPIX_Query_cuda_support()):
//   device pointers go to MPI as they are. A post records an event on the stream and the host
//   waits for it before the MPI calls, since MPI reads and writes the buffers from the host's
//   side of the ordering; that wait, bounded by timeout(), is the only one for the device (all
//   but reductions: see below). MPI has written the results when its requests complete, so wait()
//   adds nothing to the stream.
// - Staged (otherwise, or SEQPAR_MPI_CUDA_AWARE=0): through page-locked host buffers that each
//   pooled op owns and only grows. A post records an event on the stream; a private copy stream
//   waits for it and copies the send data to the host; receives are posted into host memory at
//   once, and the sends (and collectives) once their copy's event has completed, checked with
//   cudaEventQuery at every post, wait and progress() of the communicator family, in post order.
//   Before wait() blocks in MPI it posts every send still queued, waiting on the host (bounded)
//   for their copies, so two ranks waiting on each other never deadlock: a staged wait does wait
//   for the device work enqueued before the posts. Once MPI completes, the results are copied to
//   the device on a second private stream, after the post's event, and the communicator's stream
//   waits for that copy's event. Reusing an op waits (bounded) for its previous copies, which
//   wait for nothing else of the caller's.
// Reductions (all_reduce, reduce_scatter) are staged in both modes: every rank's contributions
// are gathered into host memory (MPI_Iallgather, MPI_Ialltoall) and reduced there in rank order
// by comm/host_reduce.hpp's rule, so every rank gets the threads backend's bits, bf16 and fp16
// included (MPI has no bf16 type and no reduction order); the result is copied back as above.
// Counted bytes follow the header convention, not these wire bytes. Events, streams and staging
// buffers are made on first use, staging buffers grown by half again when a bigger message comes:
// a warm step of fixed sizes allocates nothing, and messages that grow every step (the ring
// decoder's) pin memory a logarithmic number of times. abort() calls MPI_Abort. Builds
// with CUDA and MPI only.
#include <mpi.h>

#include <memory>

#include "comm/communicator.hpp"

namespace seqpar {

// A device-memory communicator over `owned` (taken over and freed with it; its error handler is
// set to return), CUDA-aware or staged.
StatusOr<std::unique_ptr<Communicator>> adopt_mpi_device_communicator(MPI_Comm owned,
                                                                      bool cuda_aware);

// Whether `comm` is a device-memory MPI communicator that passes device pointers to MPI.
bool is_cuda_aware_mpi_communicator(const Communicator& comm);

}  // namespace seqpar
