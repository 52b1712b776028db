#pragma once
// Ulysses (DeepSpeed-Ulysses) attention: sequence-sharded in and out (contiguous layout), head-
// sharded inside. Forward: one all-to-all turns every rank's Q, K, V tokens into the whole
// sequence for a slice of heads (partition/head_split.hpp), the rank runs the block kernel once
// over the whole sequence for those heads, and a second all-to-all returns O and LSE to the
// tokens' owners. Backward: delta = rowsum(dO * O) is computed at the token owner; Q, dO, K, V,
// LSE and delta go out in one all-to-all, dQ, dK, dV come back in another, and a kv head shared
// by several ranks (Hkv < P) gets its dK, dV shares summed in fp32 at the token owner.
//
// Uneven head splits are all_to_all_v calls whose counts and offsets are fixed at plan creation.
// Pieces travel in the storage dtype (LSE and delta in fp32); K/V heads are never replicated to
// Hq heads, and a kv head goes only to the ranks whose q heads read it.
#include <memory>
#include <vector>

#include "core/host_buffer.hpp"
#include "partition/head_split.hpp"
#include "runtime/head_all_to_all.hpp"
#include "runtime/scheme.hpp"

namespace seqpar {

class UlyssesAttention final : public Scheme {
 public:
  static StatusOr<std::unique_ptr<Scheme>> create(const SchemeContext& context);

  Status forward(const ForwardArgs& args) override;
  Status backward(const BackwardArgs& args) override;
  size_t workspace_bytes() const override { return workspace_.bytes(); }

 private:
  explicit UlyssesAttention(const SchemeContext& context) : ctx_(context) {}
  // Byte sizes of the parts of a piece carrying S_local tokens of `slice`'s heads.
  PieceParts parts_of(const HeadSlice& slice) const;
  Status allocate_workspace();
  Status all_to_all(const AllToAllSplit& split);  // send_ -> recv_
  BlockShape block_shape() const;

  SchemeContext ctx_;
  std::vector<HeadSlice> slices_;  // (P): every rank's heads
  HeadSlice mine_;                 // this rank's heads
  int64_t local_seq_ = 0;          // S_local
  // All-to-all counts and offsets per peer (runtime/head_all_to_all.hpp): forward Q,K,V in and
  // O,LSE out; backward Q,dO,K,V,LSE,delta in and dQ,dK,dV out.
  AllToAllSplit forward_in_, forward_out_, backward_in_, backward_out_;

  // One arena, carved once (see allocate_workspace). Heads are this rank's slice; S the whole
  // sequence.
  HostBuffer workspace_;
  char* send_ = nullptr;             // the largest send of the four all-to-alls
  char* recv_ = nullptr;             // the largest receive of the four
  void* q_heads_ = nullptr;          // (B, S, q_r, D) storage
  void* k_heads_ = nullptr;          // (B, S, kv_r, D) storage
  void* v_heads_ = nullptr;          // (B, S, kv_r, D) storage
  void* dout_heads_ = nullptr;       // (B, S, q_r, D) storage
  float* acc_q_ = nullptr;           // (B, S, q_r, D) fp32: O (forward) or dQ (backward)
  float* lse_heads_ = nullptr;       // (B, q_r, S) fp32
  float* delta_heads_ = nullptr;     // (B, q_r, S) fp32
  float* dkv_heads_ = nullptr;       // (2, B, S, kv_r, D) fp32: dK then dV of this rank's heads
  float* delta_local_ = nullptr;     // (B, Hq, S_local) fp32: rowsum(dO * O) of our tokens
  float* dkv_total_ = nullptr;       // (2, B, S_local, Hkv, D) fp32: our tokens' dK, dV, summed
  float* kernel_scratch_ = nullptr;  // the block kernels' work area
};

}  // namespace seqpar
