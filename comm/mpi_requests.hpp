#pragma once
// The MPI requests of one posted operation, shared by the host and the device MPI communicators:
// polled with MPI_Testall until done or a deadline (kTimeout naming the op and its peers), the
// byte counts of receives checked at completion, and withdrawn when the op is let go unfinished.
// Also the MPI error check and the int count limit both communicators apply.
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstddef>
#include <string>
#include <vector>

#include "core/status.hpp"

namespace seqpar {

std::string mpi_error_string(int code);

// Returns a located kCommError when an MPI call fails.
#define SEQPAR_MPI_CHECK(call)                                                          \
  do {                                                                                  \
    const int seqpar_mpi_err_ = (call);                                                 \
    if (seqpar_mpi_err_ != MPI_SUCCESS)                                                 \
      return ::seqpar::make_status(                                                     \
          ::seqpar::StatusCode::kCommError, __FILE__, __LINE__,                         \
          ::seqpar::str_cat(#call, ": ", ::seqpar::mpi_error_string(seqpar_mpi_err_))); \
  } while (0)

// MPI counts are ints.
inline constexpr size_t kMaxMpiCount = static_cast<size_t>(INT_MAX);
Status require_int_count(size_t count, const char* op_name);

// Pooled with its op: the vectors keep their capacity from one post to the next.
class MpiRequests {
 public:
  // Starts a post. Point-to-point requests can be withdrawn if the op is abandoned; those of
  // collectives cannot (MPI forbids cancelling or freeing them).
  void begin(const char* op_name, bool point_to_point, int rank, std::chrono::milliseconds timeout);

  // A receive whose arrival size is checked against `bytes` at completion.
  void add_recv(MPI_Request request, int peer, size_t bytes);
  void add(MPI_Request request);
  // A peer named in the timeout message, as "<role> rank <peer>".
  void add_peer(const char* role, int peer);

  // Polls until every request completed (then checks the receive sizes) or `deadline`.
  Status wait(std::chrono::steady_clock::time_point deadline);
  // The kTimeout of this op, `what` saying what it waited for ("" : the peers).
  Status timed_out(const char* what) const;

  // Withdraws the requests still active (a receive is cancelled unless its message already
  // matched, then every request is freed) and clears the post. Returns false, withdrawing
  // nothing, for an unfinished collective: MPI may still use its buffers, so the op owning them
  // must never be reused.
  bool withdraw();
  // Whether any request has not completed (a withdrawal cancels or frees it, but MPI may still
  // be reading or writing its buffer).
  bool any_unfinished() const;

  const char* op_name() const { return op_name_; }
  int rank() const { return rank_; }

 private:
  struct Expected {
    int peer;  // -1: nothing to check
    int bytes;
  };
  struct Peer {
    const char* role;
    int peer;
  };

  Status check_sizes() const;
  std::string peer_list() const;  // " (send to rank 1, recv from rank 3)", or ""

  const char* op_name_ = "";
  bool point_to_point_ = false;
  int rank_ = 0;
  std::chrono::milliseconds timeout_{0};
  std::vector<Peer> peers_;
  std::vector<MPI_Request> requests_;
  std::vector<MPI_Status> statuses_;
  std::vector<Expected> expected_;
};

}  // namespace seqpar
