// split_heads: the head assignment of head-sharded attention (see head_split.hpp).
#include "partition/head_split.hpp"

namespace seqpar {
namespace {

// Start of part i when `total` items are split into `parts` contiguous parts as evenly as
// possible (the first total % parts parts get one more).
int64_t even_part_begin(int64_t total, int64_t parts, int64_t i) {
  const int64_t base = total / parts;
  const int64_t extra = total % parts;
  return i * base + (i < extra ? i : extra);
}

}  // namespace

StatusOr<std::vector<HeadSlice>> split_heads(int64_t heads_q, int64_t heads_kv, int ranks) {
  SEQPAR_REQUIRE(ranks >= 1 && heads_kv >= 1 && heads_q % heads_kv == 0,
                 StatusCode::kInvalidArgument, "head split needs ranks >= 1 and heads (", heads_q,
                 ") a multiple of kv-heads (", heads_kv, ")");
  SEQPAR_REQUIRE(heads_q >= ranks, StatusCode::kInvalidArgument,
                 "ulysses needs at least as many query heads (H) as ranks (P): H = ", heads_q,
                 ", P = ", ranks);
  const int64_t group = heads_q / heads_kv;  // q heads per kv head
  std::vector<HeadSlice> slices(static_cast<size_t>(ranks));
  if (heads_kv >= ranks) {  // whole kv heads per rank, with their whole q groups
    for (int r = 0; r < ranks; ++r) {
      HeadSlice& s = slices[static_cast<size_t>(r)];
      s.kv_begin = even_part_begin(heads_kv, ranks, r);
      s.kv_count = even_part_begin(heads_kv, ranks, r + 1) - s.kv_begin;
      s.q_begin = s.kv_begin * group;
      s.q_count = s.kv_count * group;
    }
    return slices;
  }
  // Fewer kv heads than ranks: kv head j is shared by ranks [first, first + sharing), which
  // split its q group. Hq >= P gives group >= sharing, so every part is non-empty.
  for (int64_t j = 0; j < heads_kv; ++j) {
    const int64_t first = even_part_begin(ranks, heads_kv, j);
    const int64_t sharing = even_part_begin(ranks, heads_kv, j + 1) - first;
    for (int64_t i = 0; i < sharing; ++i) {
      HeadSlice& s = slices[static_cast<size_t>(first + i)];
      s.kv_begin = j;
      s.kv_count = 1;
      s.q_begin = j * group + even_part_begin(group, sharing, i);
      s.q_count = even_part_begin(group, sharing, i + 1) - even_part_begin(group, sharing, i);
    }
  }
  return slices;
}

}  // namespace seqpar
