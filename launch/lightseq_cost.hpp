#pragma once
// Cost of runtime/lightseq_attention.cpp's step loops over lightseq_schedule(P), in lock step:
//   forward   step t: each rank computes its pair (or a helper the pair of the rank it helps)
//             while the next step's inputs (K, V to the pair's query owner; Q to a helper) are
//             in flight: max(compute, inputs); then a helper's fp32 (O, LSE) partial goes back,
//             after its compute, and the owner waits for it: added.
//   backward  the same inputs (Q, dO, LSE and delta to helpers); each step's shares (dK, dV to
//             the kv owner, a helper's dQ) go out after its compute and are waited after the next
//             step's, sharing that step's window; the last shares are exposed.
#include "launch/cost_model.hpp"
#include "launch/model_parts.hpp"

namespace seqpar {

struct LightSeqCost {
  PhaseTime forward;
  PhaseTime backward;
  std::vector<int64_t> forward_bytes;   // (P): what each rank sends, as the model counts it
  std::vector<int64_t> backward_bytes;  // (P)
};

StatusOr<LightSeqCost> lightseq_cost(const ModelInputs& inputs, const KernelTiles& tiles);

}  // namespace seqpar
