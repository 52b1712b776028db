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

StatusOr<AllToAllSplit> head_all_to_all_split(const AttentionProblem& p,
                                              std::span<const int64_t> tokens,
                                              std::span<const HeadSlice> slices, int me,
                                              PieceMix mix, PieceDirection direction) {
  auto bytes_of = [&](int64_t count, const HeadSlice& slice) {
    const PieceParts parts = piece_parts(p, count, slice);
    return mix.q * parts.q + mix.kv * parts.kv + mix.stat * parts.stat;
  };
  const HeadSlice& mine = slices[static_cast<size_t>(me)];
  const int64_t ours = tokens[static_cast<size_t>(me)];
  AllToAllSplit split;
  try {
    for (size_t d = 0; d < slices.size(); ++d) {
      // To heads: peer d gets its heads of our tokens, and sends our heads of its tokens.
      // To tokens: the reverse.
      const size_t their_heads_our_tokens = bytes_of(ours, slices[d]);
      const size_t our_heads_their_tokens = bytes_of(tokens[d], mine);
      const bool to_heads = direction == PieceDirection::kToHeads;
      split.send_bytes.push_back(to_heads ? their_heads_our_tokens : our_heads_their_tokens);
      split.recv_bytes.push_back(to_heads ? our_heads_their_tokens : their_heads_our_tokens);
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
