// Threads backend shared state: channels, collective slots, the domain's abort status, group
// construction.
#include "comm/threads/threads_group.hpp"

#include "core/enum_names.hpp"

namespace seqpar {

Status ThreadsDomain::abort_status(const std::string& op_name) const {
  return Status(StatusCode::kAborted,
                str_cat("threads ", op_name, ": the group was aborted by rank ", abort_rank, ": ",
                        abort_reason));
}

uint64_t Channel::post(const void* data, size_t bytes, threads_device::Event ready,
                       threads_device::Event read) {
  if (next_send_seq_ - first_seq_ == ring_.size()) grow();
  at(next_send_seq_) = PostedSend{data, bytes, ready, read};
  return next_send_seq_++;
}

PostedSend* Channel::find(uint64_t seq) {
  if (seq < first_seq_ || seq >= next_send_seq_) return nullptr;
  return &at(seq);
}

void Channel::pop_finished() {
  while (first_seq_ < next_send_seq_ && at(first_seq_).sender_finished &&
         at(first_seq_).receiver_finished) {
    ++first_seq_;
  }
}

void Channel::grow() {
  std::vector<PostedSend> grown(2 * ring_.size());
  for (uint64_t seq = first_seq_; seq < next_send_seq_; ++seq) {
    grown[static_cast<size_t>(seq % grown.size())] = at(seq);
  }
  ring_.swap(grown);
}

const char* collective_kind_name(CollectiveKind kind) {
  static constexpr auto kNames = enum_names<CollectiveKind>(
      "all_to_all", "all_gather", "reduce_scatter", "all_reduce", "broadcast", "barrier", "split");
  return kNames.name(kind);
}

void CollectiveSlot::reset(CollectiveKind new_kind, size_t ranks) {
  kind = new_kind;
  args.resize(ranks);
  posted_by.assign(ranks, false);
  posted = 0;
  phase_done = {};
  active_copies = 0;
  released = 0;
  failure = Status::ok();
  enqueued = false;
}

ThreadsGroup::ThreadsGroup(std::shared_ptr<ThreadsDomain> domain, std::vector<int> domain_ranks)
    : domain_(std::move(domain)),
      domain_ranks_(std::move(domain_ranks)),
      channels_(domain_ranks_.size() * domain_ranks_.size()) {
  for (uint64_t seq = 0; seq < kInitialSpareSlots; ++seq) open_slot(seq, CollectiveKind::kBarrier);
  for (uint64_t seq = 0; seq < kInitialSpareSlots; ++seq) close_slot(seq);
}

CollectiveSlot& ThreadsGroup::open_slot(uint64_t seq, CollectiveKind kind) {
  auto it = slots_.find(seq);
  if (it != slots_.end()) return it->second;
  if (spare_slots_.empty()) {
    it = slots_.try_emplace(seq).first;
    spare_slots_.reserve(slots_.size());  // close_slot then never allocates
  } else {
    SlotMap::node_type spare = std::move(spare_slots_.back());
    spare_slots_.pop_back();
    spare.key() = seq;
    it = slots_.insert(std::move(spare)).position;
  }
  CollectiveSlot& slot = it->second;
  slot.reset(kind, domain_ranks_.size());
  // Device memory: the slot's events are made with the slot (the first time it opens), so a
  // warm group, whichever spare it opens, makes none.
  if (domain_->device_memory) {
    Status events = slot.done_events.reserve(kMaxPhases * domain_ranks_.size());
    if (!events.is_ok()) slot.failure = std::move(events);
  }
  return slot;
}

void ThreadsGroup::close_slot(uint64_t seq) {
  SlotMap::node_type closed = slots_.extract(seq);
  closed.mapped().split_children.clear();  // child groups live on in their communicators
  spare_slots_.push_back(std::move(closed));
}

}  // namespace seqpar
