// Link calibration: a timed ping-pong of a small and a large message between rank 0 and a peer
// over a Communicator (launch/calibration.hpp, measure_link).
#include <algorithm>
#include <chrono>
#include <vector>

#include "comm/communicator.hpp"
#include "launch/calibration.hpp"
#include "launch/comm_staging.hpp"

namespace seqpar {

namespace {

// Best round-trip seconds of `bytes` between rank 0 (sends first) and `peer` over `repeats`
// round trips after one warm-up. Other ranks return 0.
StatusOr<double> best_round_trip(Communicator& comm, int peer, CommScratch& buffer, size_t bytes,
                                 int repeats) {
  const int me = comm.rank();
  if (me != 0 && me != peer) return 0.0;
  const int other = me == 0 ? peer : 0;
  double best = 0.0;
  for (int i = 0; i <= repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (me == 0) {
      const P2POp send[] = {P2POp::send(other, buffer.data(), bytes)};
      SEQPAR_RETURN_IF_ERROR(comm.exchange(send));
      const P2POp recv[] = {P2POp::recv(other, buffer.data(), bytes)};
      SEQPAR_RETURN_IF_ERROR(comm.exchange(recv));
    } else {
      const P2POp recv[] = {P2POp::recv(other, buffer.data(), bytes)};
      SEQPAR_RETURN_IF_ERROR(comm.exchange(recv));
      const P2POp send[] = {P2POp::send(other, buffer.data(), bytes)};
      SEQPAR_RETURN_IF_ERROR(comm.exchange(send));
    }
    SEQPAR_RETURN_IF_ERROR(CommScratch::sync(comm));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i > 0) best = best == 0.0 ? seconds : std::min(best, seconds);  // i == 0: warm-up
  }
  return best;
}

}  // namespace

StatusOr<LinkSpec> measure_link(Communicator& comm, const LinkMeasureOptions& o) {
  SEQPAR_REQUIRE(comm.size() >= 2, StatusCode::kInvalidArgument,
                 "measure_link needs at least 2 ranks (got ", comm.size(), ")");
  SEQPAR_REQUIRE(o.peer >= 1 && o.peer < comm.size(), StatusCode::kInvalidArgument,
                 "measure_link: peer ", o.peer, " is not a rank other than 0 of ", comm.size());
  SEQPAR_REQUIRE(o.small_bytes >= 1 && o.large_bytes > o.small_bytes && o.repeats >= 1,
                 StatusCode::kInvalidArgument,
                 "measure_link: need 1 <= small_bytes < large_bytes and repeats >= 1");
  CommScratch buffer;
  SEQPAR_RETURN_IF_ERROR(buffer.allocate(comm, o.large_bytes));
  SEQPAR_ASSIGN_OR_RETURN(double small_rt,
                          best_round_trip(comm, o.peer, buffer, o.small_bytes, o.repeats));
  SEQPAR_ASSIGN_OR_RETURN(double large_rt,
                          best_round_trip(comm, o.peer, buffer, o.large_bytes, o.repeats));
  // Rank 0's figures go to every rank: [latency, bandwidth].
  double figures[2] = {0.0, 0.0};
  if (comm.rank() == 0) {
    const double latency = small_rt / 2;
    const double transfer = large_rt / 2 - latency;
    figures[0] = latency;
    figures[1] = transfer > 0 ? static_cast<double>(o.large_bytes - o.small_bytes) / transfer : 0.0;
  }
  SEQPAR_RETURN_IF_ERROR(broadcast_host(comm, figures, sizeof(figures), 0));
  SEQPAR_REQUIRE(figures[1] > 0, StatusCode::kInternal,
                 "measure_link: the large message was not slower than the small one; use a "
                 "larger message");
  LinkSpec link;
  link.kind = o.kind;
  link.latency_s = figures[0];
  link.bandwidth_bytes_per_s = figures[1];
  return link;
}

}  // namespace seqpar
