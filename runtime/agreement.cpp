// agree_across_ranks: one all-gather of a failure flag.
#include "runtime/agreement.hpp"

#include <vector>

namespace seqpar {

Status agree_across_ranks(const Status& local, Communicator& comm, const char* what) {
  const int32_t failed = local.is_ok() ? 0 : 1;
  std::vector<int32_t> all(static_cast<size_t>(comm.size()));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(&failed, all.data(), sizeof(failed)));
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

}  // namespace seqpar
