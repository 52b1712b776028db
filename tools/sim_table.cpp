// seqpar-sim's rows and their writers (tools/sim_table.hpp).
#include "tools/sim_table.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include "model/scheme_choice.hpp"

namespace seqpar {

namespace {

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

// JSON number: finite values as %.6g, others as null.
std::string json_number(double value) {
  return std::isfinite(value) ? fmt("%.6g", value) : std::string("null");
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string pad(const std::string& text, size_t width) {
  return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

std::string lpad(const std::string& text, size_t width) {
  return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

}  // namespace

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string problem_label(const ModelInputs& in) {
  const AttentionProblem& p = in.problem;
  std::string direction;
  if (in.phase == Phase::kDecode) {
    direction = str_cat("decode q_len=", in.q_len);
  } else if (in.phase == Phase::kPrefill) {
    direction = "prefill";
  } else {
    direction = in.backward ? "fwd+bwd" : "fwd";
  }
  return str_cat(p.batch > 1 ? str_cat("B=", p.batch, " ") : std::string(), "S=", p.seq,
                 " Hq=", p.heads_q, " Hkv=", p.heads_kv, " D=", p.head_dim, " ", mask_name(p.mask),
                 " ", direction);
}

double single_gpu_seconds(const ModelInputs& inputs) {
  ModelInputs one = inputs;
  one.topology.nodes = 1;
  one.topology.ranks_per_node = 1;
  one.topology.device_memory_bytes = 0;  // the ideal ignores memory
  double best = std::numeric_limits<double>::infinity();
  for (const CandidateCost& c : evaluate_candidates(one)) {
    if (c.seconds() > 0) best = std::min(best, c.seconds());
  }
  return best;
}

std::vector<SimRow> rows_per_scheme(const ModelInputs& inputs,
                                    const std::vector<CandidateCost>& costs, double single_gpu_s) {
  const int chosen = cheapest_feasible(costs);
  std::vector<SimRow> rows;
  std::map<std::string, size_t> index;       // scheme (or decoder) name -> row
  std::map<std::string, size_t> best_costs;  // scheme name -> cost index in the row
  for (size_t i = 0; i < costs.size(); ++i) {
    const CandidateCost& c = costs[i];
    const std::string scheme = c.candidate.scheme_label();
    auto it = best_costs.find(scheme);
    if (it == best_costs.end()) {
      best_costs[scheme] = i;
      index[scheme] = rows.size();
      rows.emplace_back();
      continue;
    }
    const CandidateCost& held = costs[it->second];
    const bool better = (c.feasible && !held.feasible) ||
                        (c.feasible == held.feasible && c.feasible && c.seconds() < held.seconds());
    if (better) it->second = i;
  }
  const Topology& t = inputs.topology;
  const int gpus = t.ranks();
  for (const auto& [scheme, cost_index] : best_costs) {
    const CandidateCost& c = costs[cost_index];
    SimRow& r = rows[index[scheme]];
    r.problem = problem_label(inputs);
    r.seq = inputs.problem.seq;
    r.batch = inputs.problem.batch;
    r.heads_q = inputs.problem.heads_q;
    r.heads_kv = inputs.problem.heads_kv;
    r.head_dim = inputs.problem.head_dim;
    r.gpus = gpus;
    r.nodes = t.nodes;
    r.gpus_per_node = t.ranks_per_node;
    r.scheme = scheme;
    r.candidate = c.candidate.name();
    r.ulysses_degree = c.candidate.ulysses_degree;
    r.ring_degree = c.candidate.ring_degree;
    r.feasible = c.feasible;
    r.excluded_reason = c.excluded_reason;
    r.chosen = chosen >= 0 && static_cast<size_t>(chosen) == cost_index;
    const PhaseTime& time = c.forward_backward;
    r.seconds = c.seconds();
    r.compute_seconds = time.compute_seconds;
    r.comm_seconds = time.comm_seconds;
    r.bytes_sent_per_rank = c.bytes_sent_per_rank;
    r.memory_bytes_per_rank = c.memory_bytes_per_rank;
    if (r.seconds > 0 && gpus > 0) {
      r.tflops_per_gpu = c.useful_flops / r.seconds / gpus / 1e12;
      r.efficiency = std::isfinite(single_gpu_s) ? single_gpu_s / gpus / r.seconds : 0.0;
    }
  }
  return rows;
}

std::string sim_text_table(const std::vector<SimRow>& rows) {
  std::string out = str_cat(lpad("GPUs", 5), "  ", lpad("nodes", 5), "  ", pad("scheme", 16),
                            lpad("time ms", 11), lpad("TFLOP/s/GPU", 13), lpad("effic.", 8),
                            lpad("MB sent/rank", 14), lpad("GB mem/rank", 13), "  note\n");
  for (const SimRow& r : rows) {
    const bool timed = r.seconds > 0;
    std::string note = r.chosen ? "<- auto" : "";
    if (!r.feasible) note = "excluded: " + r.excluded_reason;
    out += str_cat(
        lpad(std::to_string(r.gpus), 5), "  ", lpad(std::to_string(r.nodes), 5), "  ",
        pad(r.candidate, 16), lpad(timed ? fmt("%.3f", r.seconds * 1e3) : "-", 11),
        lpad(timed ? fmt(r.tflops_per_gpu >= 10 ? "%.1f" : "%.3g", r.tflops_per_gpu) : "-", 13),
        lpad(timed ? fmt("%.3f", r.efficiency) : "-", 8),
        lpad(timed ? fmt("%.1f", static_cast<double>(r.bytes_sent_per_rank) / 1e6) : "-", 14),
        lpad(timed ? fmt("%.2f", static_cast<double>(r.memory_bytes_per_rank) / 1e9) : "-", 13),
        "  ", note, "\n");
  }
  return out;
}

std::string sim_csv(const std::vector<SimRow>& rows) {
  std::string out =
      "problem,batch,seq,heads_q,heads_kv,head_dim,gpus,nodes,gpus_per_node,scheme,candidate,"
      "ulysses_degree,ring_degree,feasible,excluded_reason,chosen,predicted_seconds,"
      "compute_seconds,comm_seconds,tflops_per_gpu,efficiency,bytes_sent_per_rank,"
      "memory_bytes_per_rank\n";
  for (const SimRow& r : rows) {
    out += str_cat(csv_field(r.problem), ",", r.batch, ",", r.seq, ",", r.heads_q, ",", r.heads_kv,
                   ",", r.head_dim, ",", r.gpus, ",", r.nodes, ",", r.gpus_per_node, ",", r.scheme,
                   ",", csv_field(r.candidate), ",", r.ulysses_degree, ",", r.ring_degree, ",",
                   r.feasible ? 1 : 0, ",", csv_field(r.excluded_reason), ",", r.chosen ? 1 : 0,
                   ",", fmt("%.6g", r.seconds), ",", fmt("%.6g", r.compute_seconds), ",",
                   fmt("%.6g", r.comm_seconds), ",", fmt("%.6g", r.tflops_per_gpu), ",",
                   fmt("%.6g", r.efficiency), ",", r.bytes_sent_per_rank, ",",
                   r.memory_bytes_per_rank, "\n");
  }
  return out;
}

std::string sim_json(const std::vector<SimRow>& rows, const Topology& t, const ComputeRate& rate,
                     const std::string& note) {
  std::string out = "{\n  \"note\": " + json_string(note) + ",\n";
  out += str_cat("  \"topology\": {\"gpus_per_node\": ", t.ranks_per_node,
                 ", \"device\": ", json_string(t.device_name),
                 ", \"device_memory_bytes\": ", t.device_memory_bytes,
                 ", \"intra\": {\"kind\": ", json_string(link_kind_name(t.intra.kind)),
                 ", \"bandwidth_bytes_per_s\": ", json_number(t.intra.bandwidth_bytes_per_s),
                 ", \"latency_s\": ", json_number(t.intra.latency_s), "}",
                 ", \"inter\": {\"kind\": ", json_string(link_kind_name(t.inter.kind)),
                 ", \"bandwidth_bytes_per_s\": ", json_number(t.inter.bandwidth_bytes_per_s),
                 ", \"latency_s\": ", json_number(t.inter.latency_s), "}",
                 ", \"source\": ", json_string(t.source), "},\n");
  out += "  \"rate\": {\"device\": " + json_string(rate.device) +
         ", \"source\": " + json_string(rate.source) + ", \"points\": [";
  for (size_t i = 0; i < rate.block_tokens.size(); ++i) {
    out += str_cat(i == 0 ? "" : ", ", "{\"block_tokens\": ", rate.block_tokens[i],
                   ", \"forward_flops_per_s\": ", json_number(rate.forward_flops_per_s[i]),
                   ", \"backward_flops_per_s\": ", json_number(rate.backward_flops_per_s[i]), "}");
  }
  out += "]},\n  \"rows\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const SimRow& r = rows[i];
    out += str_cat(
        "    {\"problem\": ", json_string(r.problem), ", \"batch\": ", r.batch,
        ", \"seq\": ", r.seq, ", \"heads_q\": ", r.heads_q, ", \"heads_kv\": ", r.heads_kv,
        ", \"head_dim\": ", r.head_dim, ", \"gpus\": ", r.gpus, ", \"nodes\": ", r.nodes,
        ", \"scheme\": ", json_string(r.scheme), ", \"candidate\": ", json_string(r.candidate),
        ", \"ulysses_degree\": ", r.ulysses_degree, ", \"ring_degree\": ", r.ring_degree,
        ", \"feasible\": ", r.feasible ? "true" : "false",
        ", \"excluded_reason\": ", json_string(r.excluded_reason),
        ", \"chosen\": ", r.chosen ? "true" : "false",
        ", \"predicted_seconds\": ", json_number(r.seconds),
        ", \"compute_seconds\": ", json_number(r.compute_seconds),
        ", \"comm_seconds\": ", json_number(r.comm_seconds),
        ", \"tflops_per_gpu\": ", json_number(r.tflops_per_gpu),
        ", \"efficiency\": ", json_number(r.efficiency),
        ", \"bytes_sent_per_rank\": ", r.bytes_sent_per_rank,
        ", \"memory_bytes_per_rank\": ", r.memory_bytes_per_rank, "}",
        i + 1 < rows.size() ? "," : "", "\n");
  }
  out += "  ]\n}\n";
  return out;
}

}  // namespace seqpar
