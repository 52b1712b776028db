#pragma once
// seqpar's C++ entry point for code that embeds it as its attention backend.
//
//   auto comm = seqpar::make_mpi_communicator(MPI_COMM_WORLD);      // or run_threads / nccl
//   seqpar::PlanConfig config;                                      // problem + scheme
//   auto plan = seqpar::Plan::create(config, *comm.value());        // collective, once
//   plan.value()->forward({q, k, v, out, lse});                    // many times
//   plan.value()->backward({q, k, v, out, lse, dout, dq, dk, dv});
//
// Tensors are each rank's shard in the plan's layout (plan->layout()); see runtime/problem.hpp.
// Decoding: seqpar::DecodePlan (runtime/decode_plan.hpp). This header still re-exports internal
// headers; a narrow public API and a C ABI (seqpar.h) over it are open work. It includes no
// device code.
#include "comm/communicator.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/plan.hpp"
