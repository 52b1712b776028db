#pragma once
// Allocation checks shared by the threads (host and device memory) and the mpirun allocation
// tests: after warm-up, the exchange pattern of the ring schemes' step loops, and the
// collectives, allocate nothing on any rank. On a device-memory communicator the buffers are
// device copies (comm_buffers.hpp), refilled and read back outside the counted calls. Link with
// counting_new.cpp.
#include "comm/communicator.hpp"

namespace seqpar::testing {

// 3 warm-up steps, then 20 counted steps, each: start_exchange {send K and V to the next rank,
// recv K and V from the previous one}, start_exchange {send to rank - s, recv from rank + s}
// (the backward's dK/dV share, s cycling through 1..P-1), then wait both. Checks the data
// every step, and that the counted steps made no C++ heap allocation on this rank.
Status check_exchange_steps_allocate_nothing(Communicator& comm);

// 3 warm-up rounds, then 10 counted rounds of every collective (all_reduce in place and out of
// place, f32 and bf16; all_gather; reduce_scatter; broadcast from a rotating root; barrier;
// all_to_all; all_to_all_v), blocking and started then waited. Checks the all_reduce sums, and
// that the counted rounds made no C++ heap allocation on this rank.
Status check_collectives_allocate_nothing(Communicator& comm);

}  // namespace seqpar::testing
