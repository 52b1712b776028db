#pragma once
// The MPI_COMM_WORLD communicator for a test of an MPI test binary (mpi_test_main.cpp), or
// nullptr after recording a failure that says why.
#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>
#include <utility>

#include "comm/mpi_communicator.hpp"

namespace seqpar::testing {

inline std::unique_ptr<Communicator> mpi_world() {
  auto comm = make_mpi_communicator(MPI_COMM_WORLD);
  EXPECT_TRUE(comm.is_ok()) << comm.status().to_string();
  return comm.is_ok() ? std::move(comm).value() : nullptr;
}

}  // namespace seqpar::testing
