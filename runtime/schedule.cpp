// Per-rank communication volumes of a schedule (see schedule.hpp).
#include "runtime/schedule.hpp"

namespace seqpar {

CommVolume& CommVolume::operator+=(const CommVolume& other) {
  for (size_t i = 0; i < calls.size(); ++i) calls[i] += other.calls[i];
  bytes_sent += other.bytes_sent;
  return *this;
}

void CommVolumeSink::add(int rank, CommOp op, int64_t bytes) {
  CommVolume& v = volumes_[static_cast<size_t>(rank)];
  ++v[op];
  v.bytes_sent += bytes;
}

// As the communicators count them: messages to oneself never leave the rank.
void CommVolumeSink::exchange(int rank, std::span<const Send> sends) {
  int64_t bytes = 0;
  for (const Send& s : sends) bytes += s.peer == rank ? 0 : s.bytes;
  add(rank, CommOp::kExchange, bytes);
}

void CommVolumeSink::all_to_all(int rank, RankGroup, std::span<const Send> sends) {
  int64_t bytes = 0;
  for (const Send& s : sends) bytes += s.peer == rank ? 0 : s.bytes;
  add(rank, CommOp::kAllToAll, bytes);
}

void CommVolumeSink::collective(int rank, Collective kind, RankGroup group, int64_t bytes) {
  const CommOp op = comm_op_of(kind);
  add(rank, op, collective_bytes_sent(op, group.count, bytes));
}

}  // namespace seqpar
