// Candidate enumeration from the registry, and the runtime's verdict on each candidate.
#include "model/candidates.hpp"

#include "runtime/decode_plan.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

// A Status message without the " [rank R on HOST at FILE:LINE]" make_status appends.
std::string reason_of(const Status& status) {
  const std::string& message = status.message();
  const size_t at = message.rfind(" [rank ");
  return at != std::string::npos && message.back() == ']' ? message.substr(0, at) : message;
}

// ranks_per_node as the runtime gets it: the topology's when it spans several nodes.
int plan_ranks_per_node(const Topology& topology) {
  return topology.nodes > 1 ? topology.ranks_per_node : 0;
}

}  // namespace

std::vector<Candidate> enumerate_candidates(const ModelInputs& inputs) {
  const int ranks = inputs.topology.ranks();
  std::vector<Candidate> out;
  if (inputs.phase == Phase::kDecode) {
    for (DecoderKind decoder : all_decoders()) {
      Candidate c;
      c.decode = true;
      c.decoder = decoder;
      c.ring_degree = ranks;
      out.push_back(c);
    }
    return out;
  }
  for (SchemeKind scheme : all_schemes()) {
    for (int u : scheme_descriptor(scheme).candidate_degrees(ranks)) {
      out.push_back({scheme, u, ranks / u, Placement::kConsecutive});
    }
  }
  return out;
}

PlanConfig plan_config_for(const ModelInputs& inputs, const Candidate& candidate) {
  PlanConfig config;
  config.problem = inputs.problem;
  config.scheme = candidate.scheme;
  config.device = Device::kHost;  // the model plans for either; the rules are the same
  config.ranks_per_node = plan_ranks_per_node(inputs.topology);
  config.ulysses_degree =
      scheme_descriptor(candidate.scheme).takes_ulysses_degree ? candidate.ulysses_degree : 0;
  // Forward-only phases plan without the backward buffers (harness/training_step.cpp does too).
  config.backward = inputs.phase == Phase::kTrain && inputs.backward;
  return config;
}

DecodeConfig decode_config_for(const ModelInputs& inputs, const Candidate& candidate) {
  DecodeConfig config;
  config.problem = inputs.problem;
  config.q_len = inputs.q_len;
  config.decoder = candidate.decoder;
  config.ranks_per_node = plan_ranks_per_node(inputs.topology);
  return config;
}

std::string runtime_exclusion(const ModelInputs& inputs, const Candidate& candidate) {
  const int ranks = inputs.topology.ranks();
  const Status valid = candidate.decode
                           ? DecodePlan::validate(decode_config_for(inputs, candidate), ranks)
                           : validate_problem(plan_config_for(inputs, candidate), ranks);
  return valid.is_ok() ? "" : reason_of(valid);
}

}  // namespace seqpar
