#pragma once
// HeadExchange: the head <-> sequence all-to-all of the head-sharding schemes (Ulysses over the
// world, hybrid inside each group of U ranks). Peer s of the communicator holds T_s tokens of all
// heads (runs of a balanced split: T_s differ by at most one); after an exchange in, this rank
// holds the peers' runs back to back (S_h = sum of T_s tokens) for its head slice
// (partition/head_split.hpp), and an exchange out returns results for those heads to the tokens'
// owners. Pieces travel in the storage dtype (statistics in fp32) with the counts of
// runtime/head_all_to_all.hpp; a kv head goes only to the ranks whose q heads read it, and its dK,
// dV shares are summed in fp32 at the token owner.
//
// Built once per plan: the splits and the head tensors live in its own arena, on the target's
// device, so a step allocates nothing; packing, unpacking and sums run on the target
// (runtime/buffer_ops.hpp).
#include <memory>
#include <span>
#include <vector>

#include "attention/dispatch.hpp"
#include "comm/communicator.hpp"
#include "partition/head_split.hpp"
#include "runtime/head_all_to_all.hpp"
#include "runtime/problem.hpp"
#include "runtime/schedule.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {

// What backward sends beside Q, dO, K, V and LSE.
enum class BackwardCarry {
  kDelta,  // delta = rowsum(dO * O), computed by the token owner (Ulysses)
  kOut,    // O itself, for heads-side code that computes delta (hybrid's ring)
};

// The four all-to-alls of an exchange (forward in Q, K, V; forward out O, LSE; backward in Q,
// dO, K, V, LSE and delta or O; backward out dQ, dK, dV), for peer `me` of the ranks holding
// `slices` and `tokens`: what HeadExchange posts, and what the schemes' schedules send.
struct HeadExchangeSplits {
  AllToAllSplit forward_in, forward_out, backward_in, backward_out;
  static StatusOr<HeadExchangeSplits> of(const AttentionProblem& p, std::span<const int64_t> tokens,
                                         std::span<const HeadSlice> slices, int me,
                                         BackwardCarry carry);

  // One all-to-all of `stage` as a schedule step (blocking): every rank r sends its pieces of
  // splits[r].*stage to the other members of groups[r], member u getting piece u.
  static void schedule_step(std::span<const HeadExchangeSplits> splits,
                            std::span<const RankGroup> groups,
                            AllToAllSplit HeadExchangeSplits::*stage, ScheduleSink& out);
};

class HeadExchange {
 public:
  // Peer r of `comm` holds slices[r] and tokens[r] tokens; `comm` outlives the exchange. The
  // arena lives on target.device and the element work runs on `target`. `backward` false: a
  // forward-only exchange, whose arena leaves out what only backward_in/backward_out use (dO and
  // delta heads, the dK, dV totals, the backward all-to-alls' larger buffers); those two must
  // not be called then. kOutOfMemory when the counts or the arena cannot be allocated.
  static StatusOr<std::unique_ptr<HeadExchange>> create(
      const AttentionProblem& p, Communicator& comm, std::vector<HeadSlice> slices,
      std::vector<int64_t> tokens, BackwardCarry carry, const KernelTarget& target,
      bool backward = true);

  // What create() allocates for peer `me` (no communicator needed).
  static StatusOr<size_t> workspace_bytes_for(const AttentionProblem& p,
                                              std::span<const HeadSlice> slices,
                                              std::span<const int64_t> tokens, int me,
                                              BackwardCarry carry, bool backward);

  const HeadSlice& mine() const { return mine_; }
  size_t workspace_bytes() const { return workspace_.bytes(); }

  // Q, K, V of our tokens -> q_heads(), k_heads(), v_heads().
  Status forward_in(const ForwardArgs& args);
  // O heads (B, S_h, q_r, D) in `o_dtype` (fp32 is rounded once to storage) and lse_heads() ->
  // args.out, args.lse.
  Status forward_out(const void* o_heads, DType o_dtype, const ForwardArgs& args);
  // Q, dO, K, V, LSE of our tokens and `delta` (B, Hq, T) fp32 (kDelta; ignored for kOut) or O
  // (kOut) -> q_heads(), dout_heads(), k_heads(), v_heads(), lse_heads() and delta_heads()
  // (kDelta) or out_heads() (kOut).
  Status backward_in(const BackwardArgs& args, const float* delta);
  // dQ (B, S_h, q_r, D), dK, dV (B, S_h, kv_r, D) heads in `grad_dtype` -> args.dq, and dK, dV
  // summed over the ranks sharing a kv head -> args.dk, args.dv.
  Status backward_out(const void* dq_heads, const void* dk_heads, const void* dv_heads,
                      DType grad_dtype, const BackwardArgs& args);

  void* q_heads() const { return buf_.q_heads; }
  void* k_heads() const { return buf_.k_heads; }
  void* v_heads() const { return buf_.v_heads; }
  void* dout_heads() const { return buf_.dout_heads; }
  void* out_heads() const { return buf_.out_heads; }
  float* lse_heads() const { return buf_.lse_heads; }
  float* delta_heads() const { return buf_.delta_heads; }

 private:
  HeadExchange(const AttentionProblem& p, Communicator& comm, const KernelTarget& target)
      : p_(p), comm_(comm), target_(target) {}
  Status plan(std::vector<HeadSlice> slices, std::vector<int64_t> tokens, BackwardCarry carry);
  int64_t tokens_of(int peer) const { return tokens_[static_cast<size_t>(peer)]; }
  int64_t begin_of(int peer) const { return token_begin_[static_cast<size_t>(peer)]; }
  Status all_to_all(const AllToAllSplit& split);  // send_ -> recv_
  // Packs q-like (B, T, Hq, D), kv (B, T, Hkv, D) storage and stats (B, Hq, T) fp32 of our
  // T tokens, cut by each peer's heads, all-to-alls, and unpacks into q-like (B, S_h, q_r, D),
  // kv (B, S_h, kv_r, D) storage and stats (B, q_r, S_h) fp32 of our heads.
  Status to_heads(const AllToAllSplit& split, std::span<const void* const> q_like,
                  std::span<const void* const> kv, std::span<const float* const> stats,
                  std::span<void* const> q_heads, std::span<void* const> kv_heads,
                  std::span<float* const> stat_heads);
  // Packs q-like (B, S_h, q_r, D), kv (B, S_h, kv_r, D) in `dtype` and stats (B, q_r, S_h) fp32
  // of our heads, cut by each peer's tokens (rounded once to storage), and all-to-alls.
  Status to_tokens(const AllToAllSplit& split, DType dtype, std::span<const void* const> q_like,
                   std::span<const void* const> kv, std::span<const float* const> stats);

  AttentionProblem p_;
  Communicator& comm_;
  KernelTarget target_;               // where the arena lives and the element work runs
  std::vector<HeadSlice> slices_;     // (peers): every peer's heads
  HeadSlice mine_;                    // this rank's heads
  std::vector<int64_t> tokens_;       // (peers): T_s, the tokens of peer s
  std::vector<int64_t> token_begin_;  // (peers): where peer s's tokens start in the S_h tokens
  int64_t heads_seq_ = 0;             // S_h = sum of T_s
  BackwardCarry carry_ = BackwardCarry::kDelta;
  HeadExchangeSplits splits_;

  // One arena on target_.device, carved at creation.
  struct Buffers {
    char* send = nullptr;          // the largest send of the four all-to-alls (forward-only: two)
    char* recv = nullptr;          // the largest receive of the four (forward-only: two)
    void* q_heads = nullptr;       // (B, S_h, q_r, D) storage
    void* k_heads = nullptr;       // (B, S_h, kv_r, D) storage
    void* v_heads = nullptr;       // (B, S_h, kv_r, D) storage
    void* dout_heads = nullptr;    // (B, S_h, q_r, D) storage (backward only)
    void* out_heads = nullptr;     // (B, S_h, q_r, D) storage (kOut only: the hybrid's ring output)
    float* lse_heads = nullptr;    // (B, q_r, S_h) fp32
    float* delta_heads = nullptr;  // (B, q_r, S_h) fp32 (kDelta, backward only)
    float* dkv_total = nullptr;    // (2, B, T_me, Hkv, D) fp32: our tokens' dK, dV (backward only)
  };
  static void add_regions(WorkspaceArena& arena, Buffers& buffers, const AttentionProblem& p,
                          const HeadExchangeSplits& splits, const HeadSlice& mine,
                          int64_t my_tokens, int64_t heads_seq, BackwardCarry carry, bool backward);
  WorkspaceBuffer workspace_;
  Buffers buf_;
};

}  // namespace seqpar
