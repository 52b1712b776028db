// Candidate enumeration and the runtime's verdict on each candidate.
#include "launch/candidates.hpp"

#include "partition/head_split.hpp"
#include "runtime/plan.hpp"

namespace seqpar {
namespace {

// A Status message without the " [rank R on HOST at FILE:LINE]" make_status appends.
std::string reason_of(const Status& status) {
  const std::string& message = status.message();
  const size_t at = message.rfind(" [rank ");
  return at != std::string::npos && message.back() == ']' ? message.substr(0, at) : message;
}

}  // namespace

std::vector<Candidate> enumerate_candidates(const ModelInputs& inputs) {
  const int ranks = inputs.topology.ranks();
  std::vector<Candidate> out;
  auto add = [&](SchemeKind scheme, int ulysses) {
    out.push_back({scheme, ulysses, ranks / ulysses, Placement::kConsecutive});
  };
  if (inputs.phase == Phase::kDecode) {
    add(SchemeKind::kTree, 1);
    add(SchemeKind::kRing, 1);
    return out;
  }
  add(SchemeKind::kRing, 1);
  add(SchemeKind::kStriped, 1);
  add(SchemeKind::kZigzag, 1);
  add(SchemeKind::kLightSeq, 1);
  add(SchemeKind::kUlysses, ranks);
  for (int u = 1; u <= ranks; ++u) {
    if (ranks % u == 0) add(SchemeKind::kHybrid, u);
  }
  add(SchemeKind::kTree, 1);
  return out;
}

PlanConfig plan_config_for(const ModelInputs& inputs, const Candidate& candidate) {
  PlanConfig config;
  config.problem = inputs.problem;
  config.scheme = candidate.scheme;
  config.device = Device::kHost;  // the model plans for either; the rules are the same
  config.ranks_per_node = inputs.topology.nodes > 1 ? inputs.topology.ranks_per_node : 0;
  config.ulysses_degree = candidate.scheme == SchemeKind::kHybrid ? candidate.ulysses_degree : 0;
  // Forward-only phases plan without the backward buffers (launch/training_step.cpp does too).
  config.backward = inputs.phase == Phase::kTrain && inputs.backward;
  return config;
}

std::string runtime_exclusion(const ModelInputs& inputs, const Candidate& candidate) {
  const AttentionProblem& p = inputs.problem;
  const int ranks = inputs.topology.ranks();
  if (inputs.phase == Phase::kDecode) {
    // runtime/kv_cache.cpp's rule for the prompt, then the problem's own rules.
    if (p.seq < ranks) {
      return str_cat("the KV cache's prompt of ", p.seq, " tokens is shorter than the ", ranks,
                     " ranks (every shard needs at least one token)");
    }
    PlanConfig config = plan_config_for(inputs, candidate);
    config.scheme = SchemeKind::kTree;  // contiguous shards, as the cache holds them
    const Status valid = validate_problem(config, ranks);
    return valid.is_ok() ? "" : reason_of(valid);
  }
  const Status valid = validate_problem(plan_config_for(inputs, candidate), ranks);
  if (!valid.is_ok()) return reason_of(valid);
  if (candidate.scheme == SchemeKind::kUlysses) {
    const StatusOr<std::vector<HeadSlice>> split = split_heads(p.heads_q, p.heads_kv, ranks);
    if (!split.is_ok()) return reason_of(split.status());
  }
  if (candidate.scheme == SchemeKind::kLightSeq && p.mask != MaskKind::kCausal) {
    // runtime/lightseq_attention.cpp refuses it at plan creation with this rule.
    return str_cat(
        "lightseq needs the causal mask: its balancing moves the causal work of late "
        "ranks to idle early ranks, and a ",
        mask_name(p.mask),
        " mask has no imbalance to fix (use ring, which does the same work with less "
        "communication)");
  }
  return "";
}

}  // namespace seqpar
