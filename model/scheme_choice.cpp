// The choice of --scheme auto and its --explain / JSON renderings (see scheme_choice.hpp).
#include "model/scheme_choice.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

std::string fixed(double x, int digits) {
  if (!std::isfinite(x)) return "null";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
  return buf;
}

std::string general(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.6g", x);
  return buf;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

// 1.5 GiB, 12.0 MiB, 512 B.
std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return fixed(bytes, u == 0 ? 0 : 1) + " " + units[u];
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string pad_left(const std::string& s, size_t width) {
  return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
}

}  // namespace

int cheapest_feasible(const std::vector<CandidateCost>& candidates) {
  int best = -1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!candidates[i].feasible) continue;
    if (best < 0 || candidates[i].seconds() < candidates[static_cast<size_t>(best)].seconds()) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

StatusOr<SchemeChoice> choose_scheme(const ModelInputs& inputs) {
  SchemeChoice choice;
  choice.candidates = evaluate_candidates(inputs);
  choice.chosen = cheapest_feasible(choice.candidates);
  if (choice.chosen < 0) {
    std::string reasons;
    for (const CandidateCost& c : choice.candidates) {
      reasons += str_cat("\n  ", c.candidate.name(), ": ", c.excluded_reason);
    }
    return SEQPAR_FAIL(StatusCode::kInvalidArgument,
                       "--scheme auto: no candidate can run this "
                       "problem on ",
                       inputs.topology.ranks(), " ranks:", reasons);
  }
  return choice;
}

void apply_choice(const CandidateCost& chosen, PlanConfig& config) {
  if (chosen.candidate.decode) {  // a caller's bug: a decoder belongs in a DecodeConfig
    std::fprintf(stderr, "seqpar: apply_choice: %s is a decoding candidate, not a scheme\n",
                 chosen.candidate.scheme_label());
    std::abort();
  }
  config.scheme = chosen.candidate.scheme;
  config.ulysses_degree = scheme_descriptor(chosen.candidate.scheme).takes_ulysses_degree
                              ? chosen.candidate.ulysses_degree
                              : 0;
}

std::string explain_table(const ModelInputs& in, const SchemeChoice& choice) {
  const Topology& t = in.topology;
  const AttentionProblem& p = in.problem;
  const bool backward = in.phase == Phase::kTrain && in.backward;
  std::string s;
  s += str_cat("seqpar cost model: ", t.ranks(), " ranks = ", t.nodes, " node(s) x ",
               t.ranks_per_node, " (", t.source, "), device ", t.device_name,
               t.device_memory_bytes > 0
                   ? str_cat(" (", bytes_text(static_cast<double>(t.device_memory_bytes)), ")")
                   : std::string(" (memory not limited)"),
               "\n");
  s += str_cat("  links      intra ", link_kind_name(t.intra.kind), " ",
               general(t.intra.bandwidth_bytes_per_s / 1e9), " GB/s ",
               general(t.intra.latency_s * 1e6), " us; inter ", link_kind_name(t.inter.kind), " ",
               general(t.inter.bandwidth_bytes_per_s / 1e9), " GB/s ",
               general(t.inter.latency_s * 1e6), " us\n");
  s += str_cat(
      "  compute    ", in.rate.device, ", ", in.rate.source, ": forward ",
      general(in.rate.forward_flops_per_s.empty() ? 0 : in.rate.forward_flops_per_s.back() / 1e12),
      " TFLOP/s, backward ",
      general(in.rate.backward_flops_per_s.empty() ? 0
                                                   : in.rate.backward_flops_per_s.back() / 1e12),
      " TFLOP/s at ", in.rate.block_tokens.empty() ? 0 : in.rate.block_tokens.back(),
      "-token blocks\n");
  s += str_cat("  problem    ", phase_name(in.phase),
               in.phase == Phase::kDecode ? str_cat(" (", in.q_len, " new tokens)") : std::string(),
               " B=", p.batch, " S=", p.seq, " Hq=", p.heads_q, " Hkv=", p.heads_kv,
               " D=", p.head_dim, " ", mask_name(p.mask), " ", dtype_name(p.dtype),
               backward ? " forward+backward" : " forward", "\n");
  s += str_cat("  ", pad("candidate", 15), pad_left(backward ? "fwd+bwd ms" : "time ms", 12),
               pad_left("fwd ms", 11), pad_left("compute ms", 12), pad_left("comm ms", 11),
               pad_left("bytes/rank", 12), pad_left("memory/rank", 13), "  note\n");
  for (size_t i = 0; i < choice.candidates.size(); ++i) {
    const CandidateCost& c = choice.candidates[i];
    const bool chosen = static_cast<int>(i) == choice.chosen;
    const PhaseTime& total = c.forward_backward;
    const bool timed = total.steps > 0;
    s += str_cat(
        chosen ? "* " : "  ", pad(c.candidate.name(), 15),
        pad_left(timed ? fixed(total.seconds * 1e3, 3) : "-", 12),
        pad_left(timed ? fixed(c.forward.seconds * 1e3, 3) : "-", 11),
        pad_left(timed ? fixed(total.compute_seconds * 1e3, 3) : "-", 12),
        pad_left(timed ? fixed(total.comm_seconds * 1e3, 3) : "-", 11),
        pad_left(timed ? bytes_text(static_cast<double>(c.bytes_sent_per_rank)) : "-", 12),
        pad_left(timed ? bytes_text(static_cast<double>(c.memory_bytes_per_rank)) : "-", 13), "  ",
        c.feasible ? (chosen ? "chosen" : "") : "excluded: " + c.excluded_reason, "\n");
  }
  if (choice.chosen >= 0) {
    const CandidateCost& b = choice.best();
    s += str_cat("  choice     ", b.candidate.name(), " (U=", b.candidate.ulysses_degree,
                 " x R=", b.candidate.ring_degree, ", ", placement_name(b.candidate.placement),
                 " placement): ", fixed(b.seconds() * 1e3, 3), " ms predicted per layer, ",
                 general(b.useful_flops / b.seconds() / t.ranks() / 1e12), " TFLOP/s per rank\n");
  } else {
    s += "  choice     none: every candidate is excluded\n";
  }
  return s;
}

std::string candidate_json(const CandidateCost& c) {
  const bool timed = c.forward_backward.steps > 0;
  std::string s = str_cat("{\"candidate\": ", json_string(c.candidate.name()),
                          ", \"scheme\": ", json_string(c.candidate.scheme_label()),
                          ", \"ulysses\": ", c.candidate.ulysses_degree,
                          ", \"ring\": ", c.candidate.ring_degree,
                          ", \"placement\": ", json_string(placement_name(c.candidate.placement)),
                          ", \"feasible\": ", c.feasible ? "true" : "false");
  if (!c.excluded_reason.empty()) s += str_cat(", \"excluded\": ", json_string(c.excluded_reason));
  if (timed) {
    s += str_cat(", \"predicted_ms\": ", general(c.seconds() * 1e3),
                 ", \"predicted_forward_ms\": ", general(c.forward.seconds * 1e3),
                 ", \"predicted_compute_ms\": ", general(c.forward_backward.compute_seconds * 1e3),
                 ", \"predicted_comm_ms\": ", general(c.forward_backward.comm_seconds * 1e3),
                 ", \"bytes_sent_per_rank\": ", c.bytes_sent_per_rank,
                 ", \"memory_bytes_per_rank\": ", c.memory_bytes_per_rank,
                 ", \"workspace_bytes_per_rank\": ", c.workspace_bytes_per_rank);
  }
  return s + "}";
}

std::string choice_json(const ModelInputs& in, const SchemeChoice& choice) {
  std::string s = "{\"chosen\": ";
  s += choice.chosen >= 0 ? candidate_json(choice.best()) : "null";
  s += str_cat(", \"rate_source\": ", json_string(in.rate.source),
               ", \"rate_device\": ", json_string(in.rate.device),
               ", \"topology_source\": ", json_string(in.topology.source),
               ", \"nodes\": ", in.topology.nodes,
               ", \"ranks_per_node\": ", in.topology.ranks_per_node,
               ", \"intra\": ", json_string(link_kind_name(in.topology.intra.kind)),
               ", \"inter\": ", json_string(link_kind_name(in.topology.inter.kind)),
               ", \"phase\": ", json_string(phase_name(in.phase)), ", \"candidates\": [");
  for (size_t i = 0; i < choice.candidates.size(); ++i) {
    s += (i > 0 ? ", " : "") + candidate_json(choice.candidates[i]);
  }
  return s + "]}";
}

}  // namespace seqpar
