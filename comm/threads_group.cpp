// Threads backend shared state: channels, the domain's abort status, group construction.
#include "comm/threads_group.hpp"

namespace seqpar {

Status ThreadsDomain::abort_status(const std::string& op_name) const {
  return Status(StatusCode::kAborted, str_cat("threads ", op_name, ": the group was aborted by rank ",
                                              abort_rank, ": ", abort_reason));
}

PostedSend* Channel::find(uint64_t seq) {
  if (seq < first_seq || seq - first_seq >= sends.size()) return nullptr;
  return &sends[static_cast<size_t>(seq - first_seq)];
}

void Channel::pop_finished() {
  while (!sends.empty() && sends.front().sender_finished && sends.front().receiver_finished) {
    sends.pop_front();
    ++first_seq;
  }
}

const char* collective_kind_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllToAllV: return "all_to_all";
    case CollectiveKind::kAllGather: return "all_gather";
    case CollectiveKind::kReduceScatter: return "reduce_scatter";
    case CollectiveKind::kAllReduce: return "all_reduce";
    case CollectiveKind::kBroadcast: return "broadcast";
    case CollectiveKind::kBarrier: return "barrier";
    case CollectiveKind::kSplit: return "split";
  }
  return "unknown";
}

ThreadsGroup::ThreadsGroup(std::shared_ptr<ThreadsDomain> domain, std::vector<int> domain_ranks)
    : domain_(std::move(domain)),
      domain_ranks_(std::move(domain_ranks)),
      channels_(domain_ranks_.size() * domain_ranks_.size()) {}

}  // namespace seqpar
