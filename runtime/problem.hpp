#pragma once
// The attention problem a Plan is made for (global, identical on every rank), the configs of a
// Plan and a DecodePlan, and the per-rank tensors that forward and backward take, in the rank's
// layout.
#include <cstdint>
#include <string_view>

#include "attention/block_params.hpp"
#include "core/dtype.hpp"
#include "core/tensor.hpp"
#include "runtime/scheme_kind.hpp"

namespace seqpar {

struct AttentionProblem {
  int64_t batch = 1;
  int64_t seq = 0;       // global sequence length S
  int64_t heads_q = 0;   // Hq
  int64_t heads_kv = 0;  // Hkv; Hq % Hkv == 0
  int64_t head_dim = 0;  // D
  MaskKind mask = MaskKind::kCausal;
  DType dtype = DType::kBF16;  // storage type of q, k, v, out, dout and the gradients
  float softmax_scale = 0.0f;  // 0: 1 / sqrt(D)
};

struct PlanConfig {
  AttentionProblem problem;
  SchemeKind scheme = SchemeKind::kZigzag;
  Device device = Device::kHost;  // where the tensors live and the kernels run
  void* stream = nullptr;         // the caller's cudaStream_t (device plans); not owned
  int ranks_per_node =
      0;  // consecutive ranks sharing a node (0: all); tree's hierarchy, hybrid's groups
  // hybrid's U: ranks per Ulysses group (consecutive ranks; U x R = P). 0: choose, as
  // runtime/hybrid_grid.hpp says (the widest group inside a node that the heads allow).
  int ulysses_degree = 0;
  // Scan this rank's Q, K, V (and dO) before each step, and its dQ, dK, dV after backward, for
  // NaN or Inf (bad input, or an overflow of the storage dtype), and fail, aborting the group,
  // when any holds one. One pass over the rank's shards, small next to the attention work.
  // Host plans: synchronous, the failing step itself fails. Device plans: kernels on the plan's
  // stream and a deferred report, so no step waits on the host for the device: the failure is
  // returned by the first forward/backward that starts after the device has finished the failing
  // step's report (the next call, or the one after when the device runs a step behind), and at
  // the latest by Plan::finite_check_result(), which waits for it (runtime/plan.hpp).
  bool check_finite = true;
  // false: a forward-only plan (prefill/inference): no backward buffers (delta, the dK, dV and
  // dQ shares and totals, the backward head tensors and gathers); backward() fails with a clear
  // error. Ranks may disagree on it (it is not in the plan's fingerprint): forward is the same
  // either way, and a backward on a group with a forward-only rank fails there and aborts the
  // group, so no rank is left waiting.
  bool backward = true;
};

// What a step is for. train: forward (+ backward); prefill: the forward over a prompt (a
// forward-only plan); decode: new tokens against a KV cache (a DecodePlan). The runtime does not
// read it: it is the phase the model (model/) and the harness (harness/) are asked about.
enum class Phase : int { kTrain = 0, kPrefill, kDecode };
const char* phase_name(Phase phase);  // "train", "prefill", "decode"
StatusOr<Phase> parse_phase(std::string_view name);

// What a DecodePlan is made for (runtime/decode_plan.hpp): a KV cache of a prompt of
// problem.seq tokens (S >= P) sharded over the ranks, and steps of q_len new tokens, replicated
// on every rank, that attend to every earlier cached token and causally among themselves
// (problem.mask is not used: DecodePlan::resolved sets it to causal).
struct DecodeConfig {
  AttentionProblem problem;  // seq: the prompt's tokens
  int64_t q_len = 1;         // n: new tokens per step
  int64_t capacity = 0;      // the most tokens the cache will hold (0: seq + q_len, one step)
  DecoderKind decoder = DecoderKind::kTree;
  Device device = Device::kHost;  // where the cache, the tokens and the kernels are
  void* stream = nullptr;
  int ranks_per_node = 0;  // consecutive ranks sharing a node (0: all): tree's hierarchy
};

// Shards are (B, S_local, H, D) in the plan's layout; lse is (B, Hq, S_local) fp32.
struct ForwardArgs {
  const void* q = nullptr;  // (B, S_local, Hq, D)
  const void* k = nullptr;  // (B, S_local, Hkv, D)
  const void* v = nullptr;  // (B, S_local, Hkv, D)
  void* out = nullptr;      // (B, S_local, Hq, D)
  float* lse = nullptr;     // (B, Hq, S_local)
};

struct BackwardArgs {
  const void* q = nullptr;     // (B, S_local, Hq, D)
  const void* k = nullptr;     // (B, S_local, Hkv, D)
  const void* v = nullptr;     // (B, S_local, Hkv, D)
  const void* out = nullptr;   // (B, S_local, Hq, D) forward output
  const float* lse = nullptr;  // (B, Hq, S_local) forward LSE
  const void* dout = nullptr;  // (B, S_local, Hq, D)
  void* dq = nullptr;          // (B, S_local, Hq, D)
  void* dk = nullptr;          // (B, S_local, Hkv, D)
  void* dv = nullptr;          // (B, S_local, Hkv, D)
};

// Forward FLOPs of the whole problem: 4 * B * Hq * S * S * D, halved for causal.
// Backward is 2.5x forward (the FlashAttention convention, docs/reference_figures.md).
double attention_forward_flops(const AttentionProblem& p);

}  // namespace seqpar
