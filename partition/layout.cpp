// Token layouts (contiguous, striped, zigzag, hybrid zigzag): segments, global <-> local maps,
// shard copies.
#include "partition/layout.hpp"

#include <algorithm>
#include <cstring>

namespace seqpar {
namespace {

// Hybrid zigzag: rank = g * U + u. Group g is zigzag rank g over the R groups; rank u holds
// local indices [u * n, (u + 1) * n) of the group's 2 * chunk tokens, n = S / P.
struct HybridCoords {
  int64_t chunk;  // S / (2R): one zigzag chunk
  int64_t n;      // S / P: tokens per rank
  int rings;      // R
};

HybridCoords hybrid_coords(int64_t seq, int ranks, int ulysses) {
  const int rings = ranks / ulysses;
  return {seq / (2 * int64_t{rings}), seq / ranks, rings};
}

// Global position of index i of group g's local sequence (zigzag over R groups).
int64_t group_position(const HybridCoords& h, int group, int64_t i) {
  if (i < h.chunk) return group * h.chunk + i;
  return (2 * int64_t{h.rings} - 1 - group) * h.chunk + (i - h.chunk);
}

}  // namespace

const char* layout_name(LayoutKind kind) {
  switch (kind) {
    case LayoutKind::kContiguous:
      return "contiguous";
    case LayoutKind::kStriped:
      return "striped";
    case LayoutKind::kZigzag:
      return "zigzag";
    case LayoutKind::kHybridZigzag:
      return "hybrid_zigzag";
  }
  return "?";
}

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
  if (hybrid) {
    const int64_t rings = ranks / ulysses_degree;
    const int64_t parts = 2 * rings * ulysses_degree;
    SEQPAR_REQUIRE(seq % parts == 0, StatusCode::kInvalidArgument, "seq ", seq,
                   " is not divisible by ", parts,
                   " (the hybrid_zigzag layout of a U x R = ", ulysses_degree, " x ", rings,
                   " grid needs 2R zigzag chunks, each group's split in U equal parts)");
    return Layout(kind, seq, ranks, ulysses_degree);
  }
  const int64_t parts = kind == LayoutKind::kZigzag ? 2 * int64_t{ranks} : int64_t{ranks};
  SEQPAR_REQUIRE(seq % parts == 0, StatusCode::kInvalidArgument, "seq ", seq,
                 " is not divisible by ", parts, " (the ", layout_name(kind), " layout over ",
                 ranks, " ranks needs ",
                 kind == LayoutKind::kZigzag ? "2P equal chunks)" : "P equal shards)");
  return Layout(kind, seq, ranks, 1);
}

std::vector<Segment> Layout::segments(int rank) const {
  const int64_t local = local_seq();
  switch (kind_) {
    case LayoutKind::kContiguous:
      return {Segment{0, local, rank * local, 1}};
    case LayoutKind::kStriped:
      return {Segment{0, local, rank, ranks_}};
    case LayoutKind::kZigzag: {
      const int64_t chunk = local / 2;
      const int64_t late_chunk = 2 * int64_t{ranks_} - 1 - rank;
      return {Segment{0, chunk, rank * chunk, 1}, Segment{chunk, chunk, late_chunk * chunk, 1}};
    }
    case LayoutKind::kHybridZigzag: {
      // The rank's part [begin, begin + n) of its group's tokens, cut at the chunk boundary.
      const HybridCoords h = hybrid_coords(seq_, ranks_, ulysses_);
      const int group = rank / ulysses_;
      const int64_t begin = (rank % ulysses_) * h.n;
      const int64_t end = begin + h.n;
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
  const int64_t n = local_seq();
  switch (kind_) {
    case LayoutKind::kContiguous:
      return rank * n + local;
    case LayoutKind::kStriped:
      return local * ranks_ + rank;
    case LayoutKind::kZigzag: {
      const int64_t chunk = n / 2;
      if (local < chunk) return rank * chunk + local;
      return (2 * int64_t{ranks_} - 1 - rank) * chunk + (local - chunk);
    }
    case LayoutKind::kHybridZigzag: {
      const HybridCoords h = hybrid_coords(seq_, ranks_, ulysses_);
      return group_position(h, rank / ulysses_, (rank % ulysses_) * h.n + local);
    }
  }
  return -1;
}

std::pair<int, int64_t> Layout::owner(int64_t global) const {
  const int64_t n = local_seq();
  switch (kind_) {
    case LayoutKind::kContiguous:
      return {static_cast<int>(global / n), global % n};
    case LayoutKind::kStriped:
      return {static_cast<int>(global % ranks_), global / ranks_};
    case LayoutKind::kZigzag: {
      const int64_t chunk = n / 2;
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
      return {group * ulysses_ + static_cast<int>(index / h.n), index % h.n};
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
  const int64_t local = layout.local_seq();
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
