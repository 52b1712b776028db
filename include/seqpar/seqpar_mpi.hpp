#pragma once
// Adopting an MPI communicator (only for programs that use MPI; seqpar/seqpar.hpp needs no
// mpi.h). The communicator crosses into libseqpar as its Fortran handle (MPI_Comm_c2f), which
// the library turns back with its own MPI's MPI_Comm_f2c, so no MPI handle type is part of the
// ABI. Link your program with MPI as usual, with the same MPI libseqpar was built with (two MPI
// libraries in one process share no handles; `ldd libseqpar.so` names it). Collective: make the
// communicator once, not per step.
// ```cpp
// #include <mpi.h>
// #include <seqpar/seqpar_mpi.hpp>
//
// int rank_of_world() {
//   auto comm = seqpar::make_mpi_communicator(MPI_COMM_WORLD);  // after MPI_Init
//   return comm.is_ok() ? comm->rank() : -1;
// }
// ```
#include <mpi.h>

#include "seqpar/seqpar.hpp"

namespace seqpar {
inline namespace v0 {

static_assert(sizeof(MPI_Fint) == sizeof(int), "seqpar passes MPI_Fint as an int");

// A communicator over the ranks of `comm` (duplicated; the duplicate is freed with the result),
// moving `device` memory. MPI must be initialised, and stay so until the result is destroyed.
inline StatusOr<Communicator> make_mpi_communicator(MPI_Comm comm, Device device = Device::kHost) {
  seqpar_comm* handle = nullptr;
  Status status = detail::from_c(seqpar_comm_from_mpi_fortran_device(
      static_cast<int>(MPI_Comm_c2f(comm)), static_cast<int32_t>(device), &handle));
  if (!status.is_ok()) return status;
  return Communicator::adopt(handle);
}

}  // namespace v0
}  // namespace seqpar
