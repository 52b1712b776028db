// Link calibration: a timed ping-pong of a small and a large message between rank 0 and a peer
// over a Communicator (model/calibration.hpp, measure_link).
#include <algorithm>
#include <chrono>

#include "comm/comm_staging.hpp"
#include "comm/communicator.hpp"
#include "core/log.hpp"
#include "model/calibration.hpp"

namespace seqpar {

namespace {

// Seconds of one round trip of `bytes` between rank 0 (sends first) and `other`.
StatusOr<double> round_trip(Communicator& comm, int other, CommScratch& buffer, size_t bytes) {
  const auto t0 = std::chrono::steady_clock::now();
  const P2POp send[] = {P2POp::send(other, buffer.data(), bytes)};
  const P2POp recv[] = {P2POp::recv(other, buffer.data(), bytes)};
  if (comm.rank() == 0) {
    SEQPAR_RETURN_IF_ERROR(comm.exchange(send));
    SEQPAR_RETURN_IF_ERROR(comm.exchange(recv));
  } else {
    SEQPAR_RETURN_IF_ERROR(comm.exchange(recv));
    SEQPAR_RETURN_IF_ERROR(comm.exchange(send));
  }
  SEQPAR_RETURN_IF_ERROR(CommScratch::sync(comm));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct BestRoundTrips {
  double small = 0.0;  // seconds
  double large = 0.0;
};

// Best round trips of the small and the large message over `repeats` rounds after one warm-up
// round. The two sizes alternate within a round, so a burst of load on the host hits both
// alike. Ranks other than 0 and `peer` return zeros.
StatusOr<BestRoundTrips> best_round_trips(Communicator& comm, const LinkMeasureOptions& o,
                                          CommScratch& buffer) {
  const int me = comm.rank();
  BestRoundTrips best;
  if (me != 0 && me != o.peer) return best;
  const int other = me == 0 ? o.peer : 0;
  for (int i = 0; i <= o.repeats; ++i) {
    SEQPAR_ASSIGN_OR_RETURN(const double small, round_trip(comm, other, buffer, o.small_bytes));
    SEQPAR_ASSIGN_OR_RETURN(const double large, round_trip(comm, other, buffer, o.large_bytes));
    if (i == 0) continue;  // warm-up
    best.small = i == 1 ? small : std::min(best.small, small);
    best.large = i == 1 ? large : std::min(best.large, large);
  }
  return best;
}

constexpr int kAttempts = 3;

}  // namespace

LinkFromRoundTrips link_from_round_trips(double small_round_trip_s, double large_round_trip_s,
                                         size_t small_bytes, size_t large_bytes) {
  const double small_one_way = small_round_trip_s / 2;
  const double large_one_way = large_round_trip_s / 2;
  LinkFromRoundTrips split;
  if (large_one_way > 0 && large_one_way >= kLinkMinLargeOverSmall * small_one_way) {
    split.latency_s = small_one_way;
    split.bandwidth_bytes_per_s =
        static_cast<double>(large_bytes - small_bytes) / (large_one_way - small_one_way);
    split.clean = true;
  } else {
    // Host noise swamped the small message: the large message's whole one-way time as transfer
    // time, a lower bound on the bandwidth; the latency cannot exceed that time either.
    split.latency_s = std::min(small_one_way, large_one_way);
    split.bandwidth_bytes_per_s = static_cast<double>(large_bytes) / std::max(large_one_way, 1e-9);
  }
  return split;
}

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
  // Rank 0 decides and sends every rank [latency s, bandwidth B/s, clean split (0/1)].
  double figures[3] = {0.0, 0.0, 0.0};
  for (int attempt = 0; attempt < kAttempts && figures[2] == 0.0; ++attempt) {
    SEQPAR_ASSIGN_OR_RETURN(const BestRoundTrips best, best_round_trips(comm, o, buffer));
    if (comm.rank() == 0) {
      const LinkFromRoundTrips split =
          link_from_round_trips(best.small, best.large, o.small_bytes, o.large_bytes);
      figures[0] = split.latency_s;
      figures[1] = split.bandwidth_bytes_per_s;
      figures[2] = split.clean ? 1.0 : 0.0;
    }
    SEQPAR_RETURN_IF_ERROR(broadcast_host(comm, figures, sizeof(figures), 0));
  }
  if (figures[2] == 0.0 && comm.rank() == 0) {
    SEQPAR_LOG_WARN("measure_link: the ", o.large_bytes, "-byte message to rank ", o.peer,
                    " was never ", kLinkMinLargeOverSmall, "x slower than the ", o.small_bytes,
                    "-byte one in ", kAttempts,
                    " attempts (a loaded host?); using its whole time for the bandwidth, a lower "
                    "bound. Retry on a quiet machine or with a larger message for a clean split.");
  }
  LinkSpec link;
  link.kind = o.kind;
  link.latency_s = figures[0];
  link.bandwidth_bytes_per_s = figures[1];
  return link;
}

}  // namespace seqpar
