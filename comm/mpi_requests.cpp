// MpiRequests: polling, size checks and withdrawal of one op's MPI requests.
#include "comm/mpi_requests.hpp"

#include <algorithm>
#include <thread>

namespace seqpar {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

Status require_int_count(size_t count, const char* op_name) {
  SEQPAR_REQUIRE(count <= kMaxMpiCount, StatusCode::kUnsupported, "mpi ", op_name, ": ", count,
                 " elements exceed the MPI int count limit");
  return Status::ok();
}

void MpiRequests::begin(const char* op_name, bool point_to_point, int rank,
                        std::chrono::milliseconds timeout) {
  op_name_ = op_name;
  point_to_point_ = point_to_point;
  rank_ = rank;
  timeout_ = timeout;
}

void MpiRequests::add_recv(MPI_Request request, int peer, size_t bytes) {
  requests_.push_back(request);
  expected_.push_back(Expected{peer, static_cast<int>(bytes)});
}

void MpiRequests::add(MPI_Request request) {
  requests_.push_back(request);
  expected_.push_back(Expected{-1, 0});
}

void MpiRequests::add_peer(const char* role, int peer) { peers_.push_back(Peer{role, peer}); }

Status MpiRequests::wait(std::chrono::steady_clock::time_point deadline) {
  statuses_.resize(requests_.size());
  for (int polls = 0;; ++polls) {
    int done = 0;
    SEQPAR_MPI_CHECK(
        MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, statuses_.data()));
    if (done != 0) return check_sizes();
    if (std::chrono::steady_clock::now() >= deadline) return timed_out("");
    if (polls < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

Status MpiRequests::timed_out(const char* what) const {
  return SEQPAR_FAIL(StatusCode::kTimeout, "mpi ", op_name_, " timed out after ", timeout_.count(),
                     " ms on rank ", rank_, what, peer_list());
}

bool MpiRequests::any_unfinished() const {
  return std::any_of(requests_.begin(), requests_.end(),
                     [](MPI_Request r) { return r != MPI_REQUEST_NULL; });
}

bool MpiRequests::withdraw() {
  const bool unfinished = any_unfinished();
  if (unfinished && !point_to_point_) return false;
  for (size_t i = 0; i < requests_.size(); ++i) {
    if (requests_[i] == MPI_REQUEST_NULL) continue;
    if (expected_[i].peer >= 0) MPI_Cancel(&requests_[i]);
    MPI_Request_free(&requests_[i]);
  }
  requests_.clear();
  expected_.clear();
  peers_.clear();
  return true;
}

Status MpiRequests::check_sizes() const {
  for (size_t i = 0; i < requests_.size(); ++i) {
    if (expected_[i].peer < 0) continue;
    int received = 0;
    MPI_Get_count(&statuses_[i], MPI_BYTE, &received);
    SEQPAR_REQUIRE(received == expected_[i].bytes, StatusCode::kMismatch, "mpi ", op_name_,
                   ": recv from rank ", expected_[i].peer, " expected ", expected_[i].bytes,
                   " bytes but got ", received);
  }
  return Status::ok();
}

std::string MpiRequests::peer_list() const {
  std::string text;
  for (const Peer& peer : peers_) {
    text += str_cat(text.empty() ? " (" : ", ", peer.role, " rank ", peer.peer);
  }
  return text.empty() ? text : text + ")";
}

}  // namespace seqpar
