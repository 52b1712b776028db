// agree_across_ranks: one all-gather of a failure flag; check_ranks_agree: one of the values.
// Both are host values: on a device-memory communicator they are staged through the device
// (comm/comm_staging.hpp), which is fine for plan creation, never for a step.
#include "runtime/agreement.hpp"

#include <cstring>
#include <vector>

#include "comm/comm_staging.hpp"

namespace seqpar {

Status agree_across_ranks(const Status& local, Communicator& comm, const char* what) {
  const int32_t failed = local.is_ok() ? 0 : 1;
  std::vector<int32_t> all(static_cast<size_t>(comm.size()));
  SEQPAR_RETURN_IF_ERROR(all_gather_host(comm, &failed, all.data(), sizeof(failed)));
  if (!local.is_ok()) return local;
  std::string failed_ranks;
  for (int r = 0; r < comm.size(); ++r) {
    if (all[static_cast<size_t>(r)] != 0)
      failed_ranks += str_cat(failed_ranks.empty() ? "" : ", ", r);
  }
  SEQPAR_REQUIRE(failed_ranks.empty(), StatusCode::kAborted, "rank(s) ", failed_ranks,
                 " failed to ", what, " (see their errors)");
  return Status::ok();
}

void Fingerprint::add_problem(const AttentionProblem& p) {
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &p.softmax_scale, sizeof(scale_bits));
  add("batch", p.batch);
  add("seq", p.seq);
  add("heads", p.heads_q);
  add("kv_heads", p.heads_kv);
  add("head_dim", p.head_dim);
  add("mask", static_cast<int64_t>(p.mask));
  add("dtype", static_cast<int64_t>(p.dtype));
  add("softmax_scale (bits)", int64_t{scale_bits});
}

Status check_ranks_agree(const Fingerprint& mine, Communicator& comm) {
  const std::vector<int64_t>& values = mine.values;
  const size_t fields = values.size();
  std::vector<int64_t> all(fields * static_cast<size_t>(comm.size()));
  SEQPAR_RETURN_IF_ERROR(
      all_gather_host(comm, values.data(), all.data(), fields * sizeof(int64_t)));
  for (int r = 1; r < comm.size(); ++r) {
    for (size_t f = 0; f < fields; ++f) {
      const int64_t first = all[f];
      const int64_t other = all[static_cast<size_t>(r) * fields + f];
      SEQPAR_REQUIRE(first == other, StatusCode::kMismatch,
                     "ranks disagree on the plan: ", mine.names[f], " is ", first,
                     " on rank 0 but ", other, " on rank ", r);
    }
  }
  return Status::ok();
}

}  // namespace seqpar
