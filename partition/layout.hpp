#pragma once
// Token layouts: which global token positions each rank holds.
//   contiguous  rank r holds the r-th run of a balanced split of [0, S): S/P tokens each, and
//               one more on ranks r < S % P (so any S >= P works; shards differ by at most 1)
//   striped     rank r holds r, r+P, r+2P, ...                         needs S % P == 0
//   zigzag      2P chunks of S/(2P); rank r holds chunks r and 2P-1-r   needs S % (2P) == 0
//   hybrid_zigzag  a U x R grid, rank = g*U + u (U = ulysses_degree): zigzag over the R groups
//               (group g holds chunks g and 2R-1-g of 2R: S/R tokens), and rank u of the group
//               holds the u-th run of a balanced split of its group's S/R tokens (as
//               contiguous does over [0, S))                             needs S % (2R) == 0
// Striped and zigzag need equal shards (their ring steps pair equal blocks); contiguous and
// hybrid_zigzag give the first S % P (or S/R % U) ranks one token more.
// A rank's tokens are a list of affine segments (contiguous, striped: 1; zigzag: 2; hybrid: 1,
// or 2 for the rank whose part straddles its group's two chunks), which is what the block
// kernel's PositionMap takes. Local order = segment order, then position.
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.hpp"

namespace seqpar {

enum class LayoutKind : int { kContiguous = 0, kStriped, kZigzag, kHybridZigzag };
const char* layout_name(LayoutKind kind);

// [0, total) cut into `parts` runs whose lengths differ by at most one, the longer runs first:
// run i is [begin(i), begin(i) + size(i)).
struct BalancedSplit {
  int64_t total = 0;
  int64_t parts = 1;

  int64_t base() const { return total / parts; }
  int64_t extra() const { return total % parts; }  // runs with one more
  int64_t size(int64_t i) const { return base() + (i < extra() ? 1 : 0); }
  int64_t begin(int64_t i) const { return i * base() + (i < extra() ? i : extra()); }
  int64_t max_size() const { return base() + (extra() > 0 ? 1 : 0); }
  int64_t part_of(int64_t index) const {  // the run holding `index`
    const int64_t long_span = extra() * (base() + 1);
    return index < long_span ? index / (base() + 1) : extra() + (index - long_span) / base();
  }
};

// Local tokens [local_begin, local_begin + length) are global positions
// global_offset + global_stride * i for i in [0, length).
struct Segment {
  int64_t local_begin = 0;
  int64_t length = 0;
  int64_t global_offset = 0;
  int64_t global_stride = 1;
};

class Layout {
 public:
  // Fails with kInvalidArgument naming the rule when `seq` does not split as the layout needs,
  // or when ranks < 1 or ranks > seq. ulysses_degree is hybrid_zigzag's U (it must divide
  // ranks); the other layouts take only 1.
  static StatusOr<Layout> make(LayoutKind kind, int64_t seq, int ranks, int ulysses_degree = 1);

  LayoutKind kind() const { return kind_; }
  int64_t seq() const { return seq_; }
  int ranks() const { return ranks_; }
  int64_t local_seq(int rank) const;               // tokens `rank` holds
  int64_t max_local_seq() const;                   // the most tokens any rank holds
  bool uniform() const;                            // every rank holds the same number of tokens
  int ulysses_degree() const { return ulysses_; }  // U: 1 except for hybrid_zigzag

  std::vector<Segment> segments(int rank) const;
  int64_t global_position(int rank, int64_t local) const;
  std::pair<int, int64_t> owner(int64_t global) const;  // (rank, local index)
  void positions(int rank, int64_t* out) const;         // local_seq(rank) absolute positions

 private:
  Layout(LayoutKind kind, int64_t seq, int ranks, int ulysses)
      : kind_(kind), seq_(seq), ranks_(ranks), ulysses_(ulysses) {}
  BalancedSplit split() const;  // contiguous: of [0, S); hybrid_zigzag: of a group's S/R tokens

  LayoutKind kind_;
  int64_t seq_;
  int ranks_;
  int ulysses_;
};

// Copies a rank's rows of a global (B, S, row_bytes) tensor into its shard (B, S_local,
// row_bytes) with S_local = local_seq(rank), and back. row_bytes is H * D * element size.
void scatter_to_shard(const Layout& layout, int rank, const void* global, void* shard,
                      int64_t batch, size_t row_bytes);
void gather_from_shard(const Layout& layout, int rank, const void* shard, void* global,
                       int64_t batch, size_t row_bytes);

}  // namespace seqpar
