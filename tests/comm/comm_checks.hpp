#pragma once
// Backend-independent checks of every Communicator op, shared by the threads (host and device
// memory), mpirun and nccl tests. Each check runs on every rank of a group, derives its data from
// (rank, peer, index), so every rank knows what it must receive, and returns a Status naming the
// first wrong value. Data errors are collected until the end, so a rank with wrong data still
// joins every later op. On a device-memory communicator the buffers are device copies of the
// check's host vectors (comm_buffers.hpp), uploaded and downloaded on the communicator's stream.
#include <gtest/gtest.h>

#include "comm/communicator.hpp"

namespace seqpar::testing {

Status check_exchange_ring(Communicator& comm);  // shift both ways in one exchange
Status check_all_to_all_equal(Communicator& comm);
Status check_all_to_all_uneven(Communicator& comm);  // some pieces empty
Status check_all_gather(Communicator& comm);         // out of place and in place
Status check_reduce_scatter(Communicator& comm);     // sum, max x f32, f64, i64, bf16
Status check_all_reduce(Communicator& comm);         // same, out of place and in place
Status check_broadcast(Communicator& comm);          // every root
Status check_barrier(Communicator& comm);
Status check_split(Communicator& comm);  // color = rank % 2, then rank / 2; children's streams
Status check_nonblocking(Communicator& comm);  // four ops in flight, waits in any order
Status check_stats(Communicator& comm);        // calls and bytes per the header rules

}  // namespace seqpar::testing

#define SEQPAR_EXPECT_OK(expr)                                                   \
  do {                                                                           \
    const ::seqpar::Status seqpar_test_status_ = (expr);                         \
    EXPECT_TRUE(seqpar_test_status_.is_ok()) << seqpar_test_status_.to_string(); \
  } while (0)
