#pragma once
// Head splits: which query and kv heads each rank owns when attention heads are sharded across
// ranks (Ulysses). Every rank gets a contiguous range of q heads and a contiguous range of kv
// heads such that the block kernel's rule, local q head h reads local kv head
// h / (q_count / kv_count), reads the right kv head with no head offsets:
//   Hkv >= P  each rank owns whole kv heads (as even as possible: counts differ by at most one
//             when Hkv % P != 0) with their whole groups of Hq / Hkv q heads;
//   Hkv <  P  the ranks are spread over the kv heads as evenly as possible (consecutive ranks
//             share one kv head), and each kv head's group of q heads is split among its ranks
//             in contiguous parts as even as possible; each such rank holds one kv head, which
//             is therefore replicated to exactly the ranks that share it, no further.
// Needs Hq >= P (every rank gets at least one q head) and Hq % Hkv == 0.
#include <cstdint>
#include <vector>

#include "core/status.hpp"

namespace seqpar {

struct HeadSlice {
  int64_t q_begin = 0;  // q heads [q_begin, q_begin + q_count)
  int64_t q_count = 0;
  int64_t kv_begin = 0;  // kv heads [kv_begin, kv_begin + kv_count)
  int64_t kv_count = 0;
};

// One slice per rank, in rank order. kInvalidArgument when Hq < P or the heads do not group.
StatusOr<std::vector<HeadSlice>> split_heads(int64_t heads_q, int64_t heads_kv, int ranks);

}  // namespace seqpar
