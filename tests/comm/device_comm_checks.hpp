#pragma once
// Checks of a device-memory Communicator, shared by the threads and mpi device tests
// (threads_device_comm_test.cpp, mpi_device_comm_test.cpp): every check of comm_checks.hpp by
// name, and the ordering of the communication with the compute stream (memsets enqueued right
// before a post are what the peers receive, and the work enqueued after wait() sees the received
// data, with no host synchronisation in between: with the emulator's random stream interleaving,
// a missing event wait shows up as a wrong byte) and the device reductions against the host rule.
// Each runs on every rank of a group whose device-memory communicator has its stream set (a
// compute stream of the rank's own) and returns a Status naming the first wrong value.
#include <cstddef>

#include "comm/communicator.hpp"
#include "comm_checks.hpp"

namespace seqpar::testing {

struct NamedCheck {
  const char* name;
  Status (*check)(Communicator&);
};

// Every check of comm_checks.hpp, with its name for SCOPED_TRACE.
inline constexpr NamedCheck kCommChecks[] = {{"exchange_ring", check_exchange_ring},
                                             {"all_to_all_equal", check_all_to_all_equal},
                                             {"all_to_all_uneven", check_all_to_all_uneven},
                                             {"all_gather", check_all_gather},
                                             {"reduce_scatter", check_reduce_scatter},
                                             {"all_reduce", check_all_reduce},
                                             {"broadcast", check_broadcast},
                                             {"barrier", check_barrier},
                                             {"split", check_split},
                                             {"nonblocking", check_nonblocking},
                                             {"stats", check_stats}};

#ifdef SEQPAR_HAVE_CUDA
// `iterations` times: the compute stream scribbles over the send buffer and then writes this
// iteration's bytes (memsets enqueued right before the post); a ring exchange; the compute stream
// then copies the received bytes into the iteration's slot of a log, downloaded at the end (the
// check's only host synchronisation). A copy out that ran before the memset, a copy in that
// overwrote the receive buffer before the previous log copy read it, or a log copy that ran
// before the copy in, leaves a wrong byte in the log.
Status exchange_follows_the_compute_stream(Communicator& comm, int iterations);

// The same for collectives: the compute stream scribbles and then writes the rank's input (i32
// elements of four equal bytes), then an in-place all_reduce (sum), an all_gather and a
// broadcast from a rotating root, whose results are copied into the log.
Status collectives_follow_the_compute_stream(Communicator& comm, int iterations);

// all_reduce and reduce_scatter on device memory give, bit for bit, what comm/host_reduce.hpp's
// rank-order rule gives on the host for the same inputs, in every dtype (f32, bf16, f16, f64, i32,
// i64), sum and max; `count` elements per rank's reduce_scatter slice, so all_reduce reduces
// count * P.
Status reductions_match_the_host_rule(Communicator& comm, size_t count);
#endif

}  // namespace seqpar::testing
