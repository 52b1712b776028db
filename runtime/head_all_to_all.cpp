// All-to-all counts of the head-sharding schemes (see head_all_to_all.hpp).
#include "runtime/head_all_to_all.hpp"

#include <new>

#include "core/dtype.hpp"

namespace seqpar {
namespace {

size_t total_of(const std::vector<size_t>& bytes) {
  size_t total = 0;
  for (size_t b : bytes) total += b;
  return total;
}

// Offsets of pieces laid out back to back in peer order.
std::vector<size_t> offsets_of(const std::vector<size_t>& bytes) {
  std::vector<size_t> offsets(bytes.size());
  for (size_t r = 1; r < bytes.size(); ++r) offsets[r] = offsets[r - 1] + bytes[r - 1];
  return offsets;
}

}  // namespace

size_t AllToAllSplit::send_total() const { return total_of(send_bytes); }
size_t AllToAllSplit::recv_total() const { return total_of(recv_bytes); }

PieceParts piece_parts(const AttentionProblem& p, int64_t tokens, const HeadSlice& slice) {
  const size_t rows = static_cast<size_t>(p.batch * tokens);
  const size_t row_bytes = static_cast<size_t>(p.head_dim) * dtype_size(p.dtype);
  return {rows * static_cast<size_t>(slice.q_count) * row_bytes,
          rows * static_cast<size_t>(slice.kv_count) * row_bytes,
          rows * static_cast<size_t>(slice.q_count) * sizeof(float)};
}

StatusOr<AllToAllSplit> head_all_to_all_split(const AttentionProblem& p, int64_t tokens,
                                              std::span<const HeadSlice> slices,
                                              const HeadSlice& mine, PieceMix mix,
                                              PieceDirection direction) {
  auto bytes_of = [&](const HeadSlice& slice) {
    const PieceParts parts = piece_parts(p, tokens, slice);
    return mix.q * parts.q + mix.kv * parts.kv + mix.stat * parts.stat;
  };
  const size_t ours = bytes_of(mine);
  AllToAllSplit split;
  try {
    for (const HeadSlice& peer : slices) {
      const size_t theirs = bytes_of(peer);
      const bool to_heads = direction == PieceDirection::kToHeads;
      split.send_bytes.push_back(to_heads ? theirs : ours);
      split.recv_bytes.push_back(to_heads ? ours : theirs);
    }
    split.send_offsets = offsets_of(split.send_bytes);
    split.recv_offsets = offsets_of(split.recv_bytes);
  } catch (const std::bad_alloc&) {
    return SEQPAR_FAIL(StatusCode::kOutOfMemory, "no memory for the all-to-all counts of ",
                       slices.size(), " ranks");
  }
  return split;
}

}  // namespace seqpar
