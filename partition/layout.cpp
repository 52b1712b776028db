// Token layouts (contiguous, striped, zigzag, hybrid zigzag): segments, global <-> local maps,
// shard copies.
#include "partition/layout.hpp"

#include <algorithm>
#include <cstring>

#include "core/enum_names.hpp"

namespace seqpar {
namespace {

// Hybrid zigzag: rank = g * U + u. Group g is zigzag rank g over the R groups; rank u holds run u
// of a balanced split of the group's 2 * chunk tokens.
struct HybridCoords {
  int64_t chunk;  // S / (2R): one zigzag chunk
  int rings;      // R
};

HybridCoords hybrid_coords(int64_t seq, int ranks, int ulysses) {
  const int rings = ranks / ulysses;
  return {seq / (2 * int64_t{rings}), rings};
}

// Global position of index i of group g's local sequence (zigzag over R groups).
int64_t group_position(const HybridCoords& h, int group, int64_t i) {
  if (i < h.chunk) return group * h.chunk + i;
  return (2 * int64_t{h.rings} - 1 - group) * h.chunk + (i - h.chunk);
}

}  // namespace

constexpr auto kLayoutNames =
    enum_names<LayoutKind>("contiguous", "striped", "zigzag", "hybrid_zigzag");

const char* layout_name(LayoutKind kind) { return kLayoutNames.name(kind); }

StatusOr<Layout> Layout::make(LayoutKind kind, int64_t seq, int ranks, int ulysses_degree) {
  SEQPAR_REQUIRE(ranks >= 1, StatusCode::kInvalidArgument, "layout needs at least one rank, got ",
                 ranks);
  SEQPAR_REQUIRE(seq >= 1, StatusCode::kInvalidArgument, "sequence length must be positive, got ",
                 seq);
  SEQPAR_REQUIRE(ranks <= seq, StatusCode::kInvalidArgument, "more ranks (", ranks,
                 ") than tokens (seq ", seq, "): every rank needs at least one token");
  const bool hybrid = kind == LayoutKind::kHybridZigzag;
  SEQPAR_REQUIRE(hybrid || ulysses_degree == 1, StatusCode::kInvalidArgument, "the ",
                 layout_name(kind), " layout has no ulysses degree (got ", ulysses_degree, ")");
  SEQPAR_REQUIRE(ulysses_degree >= 1 && ranks % ulysses_degree == 0, StatusCode::kInvalidArgument,
                 "ulysses degree U = ", ulysses_degree, " must divide the ", ranks,
                 " ranks (the hybrid grid is U x R = P)");
  switch (kind) {
    case LayoutKind::kContiguous:
      return Layout(kind, seq, ranks, 1);
    case LayoutKind::kHybridZigzag: {
      const int64_t rings = ranks / ulysses_degree;
      SEQPAR_REQUIRE(seq % (2 * rings) == 0, StatusCode::kInvalidArgument, "seq ", seq,
                     " is not divisible by ", 2 * rings,
                     " (the hybrid_zigzag layout of a U x R = ", ulysses_degree, " x ", rings,
                     " grid needs 2R equal zigzag chunks; each group's tokens may split unevenly)");
      return Layout(kind, seq, ranks, ulysses_degree);
    }
    case LayoutKind::kStriped:
    case LayoutKind::kZigzag: {
      const int64_t parts = kind == LayoutKind::kZigzag ? 2 * int64_t{ranks} : int64_t{ranks};
      SEQPAR_REQUIRE(seq % parts == 0, StatusCode::kInvalidArgument, "seq ", seq,
                     " is not divisible by ", parts, " (the ", layout_name(kind), " layout over ",
                     ranks, " ranks needs ",
                     kind == LayoutKind::kZigzag ? "2P equal chunks" : "P equal shards",
                     "; the contiguous schemes take any seq)");
      return Layout(kind, seq, ranks, 1);
    }
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, "unknown layout kind ", static_cast<int>(kind));
}

BalancedSplit Layout::split() const {
  if (kind_ == LayoutKind::kHybridZigzag) {
    return {2 * hybrid_coords(seq_, ranks_, ulysses_).chunk, ulysses_};
  }
  return {seq_, ranks_};
}

int64_t Layout::local_seq(int rank) const {
  switch (kind_) {
    case LayoutKind::kContiguous:
      return split().size(rank);
    case LayoutKind::kHybridZigzag:
      return split().size(rank % ulysses_);
    case LayoutKind::kStriped:
    case LayoutKind::kZigzag:
      return seq_ / ranks_;
  }
  return 0;
}

int64_t Layout::max_local_seq() const { return local_seq(0); }  // the longer runs come first

bool Layout::uniform() const { return local_seq(0) == local_seq(ranks_ - 1); }

std::vector<Segment> Layout::segments(int rank) const {
  const int64_t local = local_seq(rank);
  switch (kind_) {
    case LayoutKind::kContiguous:
      return {Segment{0, local, split().begin(rank), 1}};
    case LayoutKind::kStriped:
      return {Segment{0, local, rank, ranks_}};
    case LayoutKind::kZigzag: {
      const int64_t chunk = local / 2;
      const int64_t late_chunk = 2 * int64_t{ranks_} - 1 - rank;
      return {Segment{0, chunk, rank * chunk, 1}, Segment{chunk, chunk, late_chunk * chunk, 1}};
    }
    case LayoutKind::kHybridZigzag: {
      // The rank's run [begin, begin + local) of its group's tokens, cut at the chunk boundary.
      const HybridCoords h = hybrid_coords(seq_, ranks_, ulysses_);
      const int group = rank / ulysses_;
      const int64_t begin = split().begin(rank % ulysses_);
      const int64_t end = begin + local;
      std::vector<Segment> segments;
      for (const int64_t chunk_begin : {int64_t{0}, h.chunk}) {
        const int64_t from = std::max(begin, chunk_begin);
        const int64_t to = std::min(end, chunk_begin + h.chunk);
        if (from < to) {
          segments.push_back(Segment{from - begin, to - from, group_position(h, group, from), 1});
        }
      }
      return segments;
    }
  }
  return {};
}

int64_t Layout::global_position(int rank, int64_t local) const {
  switch (kind_) {
    case LayoutKind::kContiguous:
      return split().begin(rank) + local;
    case LayoutKind::kStriped:
      return local * ranks_ + rank;
    case LayoutKind::kZigzag: {
      const int64_t chunk = seq_ / (2 * int64_t{ranks_});
      if (local < chunk) return rank * chunk + local;
      return (2 * int64_t{ranks_} - 1 - rank) * chunk + (local - chunk);
    }
    case LayoutKind::kHybridZigzag: {
      const HybridCoords h = hybrid_coords(seq_, ranks_, ulysses_);
      return group_position(h, rank / ulysses_, split().begin(rank % ulysses_) + local);
    }
  }
  return -1;
}

std::pair<int, int64_t> Layout::owner(int64_t global) const {
  switch (kind_) {
    case LayoutKind::kContiguous: {
      const BalancedSplit s = split();
      const int64_t r = s.part_of(global);
      return {static_cast<int>(r), global - s.begin(r)};
    }
    case LayoutKind::kStriped:
      return {static_cast<int>(global % ranks_), global / ranks_};
    case LayoutKind::kZigzag: {
      const int64_t chunk = seq_ / (2 * int64_t{ranks_});
      const int64_t c = global / chunk;
      const int64_t within = global % chunk;
      if (c < ranks_) return {static_cast<int>(c), within};
      return {static_cast<int>(2 * int64_t{ranks_} - 1 - c), chunk + within};
    }
    case LayoutKind::kHybridZigzag: {
      const HybridCoords h = hybrid_coords(seq_, ranks_, ulysses_);
      const int64_t c = global / h.chunk;  // zigzag chunk of the R groups
      const int64_t within = global % h.chunk;
      const bool early = c < h.rings;
      const int group = static_cast<int>(early ? c : 2 * int64_t{h.rings} - 1 - c);
      const int64_t index = (early ? 0 : h.chunk) + within;  // in the group's local sequence
      const BalancedSplit s = split();
      const int64_t u = s.part_of(index);
      return {group * ulysses_ + static_cast<int>(u), index - s.begin(u)};
    }
  }
  return {-1, -1};
}

void Layout::positions(int rank, int64_t* out) const {
  for (const Segment& s : segments(rank)) {
    for (int64_t i = 0; i < s.length; ++i)
      out[s.local_begin + i] = s.global_offset + s.global_stride * i;
  }
}

namespace {

// Copies a rank's rows between a global (B, S, row) tensor and its (B, S_local, row) shard.
void copy_rows(const Layout& layout, int rank, const char* src, char* dst, int64_t batch,
               size_t row_bytes, bool to_shard) {
  const int64_t seq = layout.seq();
  const int64_t local = layout.local_seq(rank);
  for (int64_t b = 0; b < batch; ++b) {
    for (const Segment& s : layout.segments(rank)) {
      for (int64_t i = 0; i < s.length; ++i) {
        const int64_t g = s.global_offset + s.global_stride * i;
        const size_t global_row = static_cast<size_t>(b * seq + g);
        const size_t shard_row = static_cast<size_t>(b * local + s.local_begin + i);
        if (to_shard) {
          std::memcpy(dst + shard_row * row_bytes, src + global_row * row_bytes, row_bytes);
        } else {
          std::memcpy(dst + global_row * row_bytes, src + shard_row * row_bytes, row_bytes);
        }
      }
    }
  }
}

}  // namespace

void scatter_to_shard(const Layout& layout, int rank, const void* global, void* shard,
                      int64_t batch, size_t row_bytes) {
  copy_rows(layout, rank, static_cast<const char*>(global), static_cast<char*>(shard), batch,
            row_bytes, /*to_shard=*/true);
}

void gather_from_shard(const Layout& layout, int rank, const void* shard, void* global,
                       int64_t batch, size_t row_bytes) {
  copy_rows(layout, rank, static_cast<const char*>(shard), static_cast<char*>(global), batch,
            row_bytes, /*to_shard=*/false);
}

}  // namespace seqpar
