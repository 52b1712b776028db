#pragma once
// The local block kernel contract (docs/architecture.md): one call computes attention of a block
// of queries against a block of keys/values. Both backends, the CPU kernels and the CUDA kernels
// (attention/dispatch.hpp picks by target), take these params; the runtime never writes its own
// mask logic.
//
// Layouts (row-major, contiguous):
//   q, dout, out, dq      (B, Sq, Hq, D)
//   k, v, dk, dv          (B, Sk, Hkv, D)
//   lse, delta            (B, Hq, Sq) fp32, natural log
// GQA/MQA: query head h reads kv head h / (Hq / Hkv); K/V are never replicated.
// Positions: absolute token positions of the block's rows, so causal keeps (i, j) iff
// k_pos(j) <= q_pos(i) for ring, striped, zigzag and tree alike.
#include <cstdint>
#include <string_view>

#include "core/dtype.hpp"

namespace seqpar {

enum class MaskKind : int { kFull = 0, kCausal };
const char* mask_name(MaskKind mask);                  // "full", "causal"
StatusOr<MaskKind> parse_mask(std::string_view name);  // the names above

// pos(i) = offset + stride * i, or index[i] when an index array is given.
struct PositionMap {
  int64_t offset = 0;
  int64_t stride = 1;
  const int64_t* index = nullptr;  // overrides the affine map; not owned

  static PositionMap affine(int64_t offset, int64_t stride = 1) {
    return {offset, stride, nullptr};
  }
  static PositionMap indexed(const int64_t* index) { return {0, 1, index}; }
  int64_t at(int64_t i) const { return index != nullptr ? index[i] : offset + stride * i; }
};

// The one masking rule. A later sliding window or per-token document id adds its clause here
// and in block_may_have_work(); no scheme and no kernel has mask logic of its own. constexpr so
// that the CUDA kernels (built with --expt-relaxed-constexpr) call these very functions.
constexpr bool attention_pair_kept(MaskKind mask, int64_t q_pos, int64_t k_pos) {
  return mask == MaskKind::kFull || k_pos <= q_pos;
}

// Smallest and largest position of rows [begin, end) of a map (end > begin).
struct PositionRange {
  int64_t lo = 0;
  int64_t hi = 0;
};

inline PositionRange position_range(const PositionMap& map, int64_t begin, int64_t end) {
  if (map.index == nullptr) {  // affine: the extremes are at the ends
    const int64_t first = map.at(begin);
    const int64_t last = map.at(end - 1);
    return first <= last ? PositionRange{first, last} : PositionRange{last, first};
  }
  PositionRange r{map.index[begin], map.index[begin]};
  for (int64_t i = begin + 1; i < end; ++i) {
    r.lo = map.index[i] < r.lo ? map.index[i] : r.lo;
    r.hi = map.index[i] > r.hi ? map.index[i] : r.hi;
  }
  return r;
}

// Tile-level forms of attention_pair_kept, for skipping work: a tile of queries with positions
// in q and keys with positions in k may keep some pair / keeps every pair.
constexpr bool block_may_have_work(MaskKind mask, PositionRange q, PositionRange k) {
  return mask == MaskKind::kFull || k.lo <= q.hi;
}
constexpr bool block_fully_kept(MaskKind mask, PositionRange q, PositionRange k) {
  return mask == MaskKind::kFull || k.hi <= q.lo;
}

// A call the CPU kernels make between tiles, so that a communication backend which moves data
// only inside its own calls (Open MPI on the host) progresses the transfers a scheme posted
// before the kernel, while the kernel runs. Must be cheap and must not touch the kernel's
// buffers. GPU kernels ignore it (their transfers run on their own stream).
struct KernelProgressHook {
  void (*fn)(void* context) = nullptr;
  void* context = nullptr;
  void operator()() const {
    if (fn != nullptr) fn(context);
  }
};

struct BlockShape {
  int64_t batch = 0;
  int64_t seq_q = 0;
  int64_t seq_k = 0;
  int64_t heads_q = 0;
  int64_t heads_kv = 0;
  int64_t head_dim = 0;
};

struct BlockForwardParams {
  BlockShape shape;
  DType dtype = DType::kF32;  // storage type of q, k, v
  const void* q = nullptr;    // (B, Sq, Hq, D)
  const void* k = nullptr;    // (B, Sk, Hkv, D)
  const void* v = nullptr;    // (B, Sk, Hkv, D)
  float* out = nullptr;       // (B, Sq, Hq, D) fp32, normalised
  float* lse = nullptr;       // (B, Hq, Sq) fp32
  PositionMap q_pos;
  PositionMap k_pos;
  MaskKind mask = MaskKind::kFull;
  float softmax_scale = 1.0f;
  // false: overwrite (out, lse) with this block's result (fully masked rows: out 0, lse -inf).
  // true: merge this block into the running (out, lse) in fp32.
  bool accumulate = false;
  // CPU kernels' work area, cpu_block_scratch_floats(shape) floats, from the caller's workspace
  // (a Plan's); null: the calling thread's own, grown on first use.
  float* scratch = nullptr;
  KernelProgressHook progress;  // called once per query tile (CPU kernels)
};

struct BlockBackwardParams {
  BlockShape shape;
  DType dtype = DType::kF32;     // storage type of q, k, v, dout
  const void* q = nullptr;       // (B, Sq, Hq, D)
  const void* k = nullptr;       // (B, Sk, Hkv, D)
  const void* v = nullptr;       // (B, Sk, Hkv, D)
  const void* dout = nullptr;    // (B, Sq, Hq, D)
  const float* lse = nullptr;    // (B, Hq, Sq) FINAL merged LSE over all keys
  const float* delta = nullptr;  // (B, Hq, Sq) rowsum(dout * out_final)
  float* dq = nullptr;           // (B, Sq, Hq, D) fp32, accumulated (+=); may be null
  float* dk = nullptr;  // (B, Sk, Hkv, D) fp32, accumulated (+=), summed over a group's q heads
  float* dv = nullptr;  // (B, Sk, Hkv, D) fp32, accumulated (+=)
  PositionMap q_pos;
  PositionMap k_pos;
  MaskKind mask = MaskKind::kFull;
  float softmax_scale = 1.0f;
  float* scratch = nullptr;     // as BlockForwardParams::scratch
  KernelProgressHook progress;  // called once per key tile (CPU kernels)
};

}  // namespace seqpar
