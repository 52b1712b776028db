#pragma once
// The all-to-all counts shared by the head-sharding schemes (Ulysses, and hybrid inside its
// groups): every piece carries one rank's tokens of one head slice (partition/head_split.hpp) as
// parts laid out back to back, pieces back to back in peer order. Counts and offsets are fixed at
// plan creation, so a step allocates nothing.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/status.hpp"
#include "partition/head_split.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

// Byte counts and offsets of one all_to_all_v, per peer.
struct AllToAllSplit {
  std::vector<size_t> send_bytes, send_offsets, recv_bytes, recv_offsets;

  size_t send_total() const;  // the whole send buffer
  size_t recv_total() const;  // the whole receive buffer
};

// Byte sizes of the parts of a piece carrying `tokens` tokens (of each batch) of one head slice.
struct PieceParts {
  size_t q = 0;     // (B, tokens, q_count, D) storage
  size_t kv = 0;    // (B, tokens, kv_count, D) storage
  size_t stat = 0;  // (B, q_count, tokens) fp32
};
PieceParts piece_parts(const AttentionProblem& p, int64_t tokens, const HeadSlice& slice);

// What a piece carries: q * PieceParts::q + kv * PieceParts::kv + stat * PieceParts::stat bytes.
struct PieceMix {
  size_t q = 0, kv = 0, stat = 0;
};

enum class PieceDirection {
  kToHeads,   // to each peer its heads of our tokens; from it our heads of its tokens
  kToTokens,  // to each peer our heads of its tokens; from it its heads of our tokens
};

// The all_to_all_v among the ranks of `slices` (peer r holds slices[r] and tokens[r] tokens;
// this rank is peer `me`) whose pieces carry `mix` of one peer's tokens of one peer's heads.
// kOutOfMemory when the counts cannot be allocated.
StatusOr<AllToAllSplit> head_all_to_all_split(const AttentionProblem& p,
                                              std::span<const int64_t> tokens,
                                              std::span<const HeadSlice> slices, int me,
                                              PieceMix mix, PieceDirection direction);

}  // namespace seqpar
