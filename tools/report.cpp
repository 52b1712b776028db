// JSON and table rendering of a StepReport.
#include "tools/report.hpp"

#include <cmath>
#include <cstdio>

#include "core/log.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

std::string number(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", x);
  return buf;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// {"exchange": 3, "all_to_all": 2}: the op kinds a volume uses.
std::string op_counts(const CommVolume& v) {
  std::string s = "{";
  for (size_t op = 0; op < v.calls.size(); ++op) {
    if (v.calls[op] == 0) continue;
    s += str_cat(s.size() > 1 ? ", " : "", "\"", comm_op_name(static_cast<CommOp>(op)),
                 "\": ", v.calls[op]);
  }
  return s + "}";
}

const char* device_label(const RunOptions& o) {
#ifdef SEQPAR_CUDA_EMULATION
  // The CPU emulator of the GPU (cuda_emu/): results are checked, times are the CPU's.
  return o.plan.device == Device::kCuda ? "cuda emulated on the cpu" : "cpu";
#else
  return o.plan.device == Device::kCuda ? "cuda" : "cpu";
#endif
}

// The scheme the run ran: a decoder under --phase decode.
const char* run_scheme_name(const RunOptions& o) {
  return o.phase == Phase::kDecode ? decoder_name(o.decoder) : scheme_name(o.plan.scheme);
}

// Whether the run shows a U x R grid (the hybrid).
bool has_grid(const RunOptions& o) {
  return o.phase != Phase::kDecode && scheme_descriptor(o.plan.scheme).takes_ulysses_degree;
}

}  // namespace

std::string report_json(const RunOptions& o, const StepReport& r, const AutoScheme* planned) {
  const AttentionProblem& p = r.problem;
  std::string s = "{";
  auto field = [&s](const char* key, const std::string& value) {
    if (s.size() > 1) s += ", ";
    s += quoted(key) + ": " + value;
  };
  field("scheme", quoted(run_scheme_name(o)));
  field("scheme_auto", o.scheme_auto ? "true" : "false");
  field("phase", quoted(phase_name(o.phase)));
  if (o.phase == Phase::kDecode) field("q_len", std::to_string(o.q_len));
  field("backend", quoted(backend_name(o.backend)));
  field("device", quoted(device_label(o)));
  field("host", quoted(host_name()));
  field("ranks", std::to_string(r.ranks));
  if (has_grid(o)) {  // the U x R grid
    field("ulysses", std::to_string(r.ulysses_degree));
    field("ring", std::to_string(r.ring_size));
  }
  field("batch", std::to_string(p.batch));
  field("seq", std::to_string(p.seq));
  field("seq_per_rank", std::to_string(r.local_seq));
  field("heads", std::to_string(p.heads_q));
  field("kv_heads", std::to_string(p.heads_kv));
  field("head_dim", std::to_string(p.head_dim));
  field("mask", quoted(mask_name(p.mask)));
  field("dtype", quoted(dtype_name(p.dtype)));
  field("backward", o.backward ? "true" : "false");
  field("iters", std::to_string(o.iters));
  field("time_ms", number(r.time_ms));
  field("time_ms_min", number(r.time_ms_min));
  field("tflops", number(r.tflops));
  field("bytes_sent_per_rank", std::to_string(r.measured_comm.bytes_sent));
  field("bytes_expected_per_rank", std::to_string(r.expected_comm.bytes_sent));
  field("ops_per_rank", op_counts(r.measured_comm));
  field("ops_expected", op_counts(r.expected_comm));
  field("comm_check", quoted(r.comm_matches_formula ? "pass" : "fail"));
  field("workspace_bytes_per_rank", std::to_string(r.workspace_bytes));
  if (r.errors) {
    const CheckErrors& e = *r.errors;
    std::string err = "{\"out\": " + number(e.out) + ", \"lse\": " + number(e.lse);
    if (e.backward) {
      err +=
          ", \"dq\": " + number(e.dq) + ", \"dk\": " + number(e.dk) + ", \"dv\": " + number(e.dv);
    }
    field("err", err + "}");
    field("tolerance", number(e.tolerance));
    field("check", quoted(r.passed() ? "pass" : "fail"));
  }
  if (planned != nullptr) {
    const CandidateCost* ran = candidate_for(*planned, o);
    field("grid", str_cat("{\"ulysses\": ", r.ulysses_degree, ", \"ring\": ", r.ring_size, "}"));
    if (ran != nullptr && ran->feasible) {
      field("candidate", quoted(ran->candidate.name()));
      field("predicted_ms", number(ran->seconds() * 1e3));
      field("predicted_over_measured", number(ran->seconds() * 1e3 / r.time_ms));
    }
    field("model", choice_json(planned->inputs, planned->choice));
  }
  return s + "}\n";
}

std::string report_table(const RunOptions& o, const StepReport& r, const AutoScheme* planned) {
  const AttentionProblem& p = r.problem;
  std::string s;
  s += str_cat("seqpar-run  ", run_scheme_name(o), " on ", r.ranks, " ranks (",
               backend_name(o.backend), ", ", device_label(o), ")\n");
  if (has_grid(o)) {
    s += str_cat("  grid       U=", r.ulysses_degree, " x R=", r.ring_size,
                 " (Ulysses groups of U ranks, zigzag ring over R groups)\n");
  }
  s += str_cat("  problem    B=", p.batch, " S=", p.seq, " (", r.local_seq,
               " per rank) Hq=", p.heads_q, " Hkv=", p.heads_kv, " D=", p.head_dim, " ",
               mask_name(p.mask), " ", dtype_name(p.dtype),
               o.backward ? " forward+backward\n" : " forward\n");
  s += str_cat("  step time  ", number(r.time_ms), " ms median, ", number(r.time_ms_min),
               " ms best of ", o.iters, "  (", number(r.tflops * 1e3), " GFLOP/s)\n");
  s += str_cat("  comm/rank  ", r.measured_comm.bytes_sent, " bytes, ops ",
               op_counts(r.measured_comm), "; formula ", r.expected_comm.bytes_sent, " bytes, ops ",
               op_counts(r.expected_comm), ": ", r.comm_matches_formula ? "match" : "MISMATCH",
               "\n");
  if (r.errors) {
    const CheckErrors& e = *r.errors;
    s += str_cat("  rel. L2    out ", number(e.out), "  lse ", number(e.lse));
    if (e.backward)
      s += str_cat("  dq ", number(e.dq), "  dk ", number(e.dk), "  dv ", number(e.dv));
    s += str_cat("  (tolerance ", number(e.tolerance), ")\n");
  }
  if (r.errors) s += str_cat("  check      ", r.passed() ? "pass" : "FAIL", "\n");
  if (planned != nullptr) {
    const CandidateCost* ran = candidate_for(*planned, o);
    if (ran != nullptr && ran->feasible) {
      s += str_cat("  model      ", o.scheme_auto ? "chose " : "ran ", ran->candidate.name(),
                   " (U=", ran->candidate.ulysses_degree, " x R=", ran->candidate.ring_degree,
                   "): predicted ", number(ran->seconds() * 1e3), " ms, measured ",
                   number(r.time_ms), " ms (", planned->inputs.rate.source, ")\n");
    }
  }
  return s;
}

std::string dry_run_report(const RunOptions& o, const AutoScheme& planned) {
  const SchemeChoice& choice = planned.choice;
  const AttentionProblem& p = o.plan.problem;
  if (o.json) {
    std::string s = "{\"dry_run\": true";
    if (choice.chosen >= 0) {
      const Candidate& c = choice.best().candidate;
      s += str_cat(", \"scheme\": ", quoted(scheme_name(c.scheme)),
                   ", \"candidate\": ", quoted(c.name()), ", \"ulysses\": ", c.ulysses_degree,
                   ", \"ring\": ", c.ring_degree,
                   ", \"predicted_ms\": ", number(choice.best().seconds() * 1e3),
                   ", \"predicted_forward_ms\": ", number(choice.best().forward.seconds * 1e3),
                   ", \"bytes_sent_per_rank\": ", choice.best().bytes_sent_per_rank,
                   ", \"memory_bytes_per_rank\": ", choice.best().memory_bytes_per_rank);
    } else {
      s += ", \"scheme\": null";
    }
    s += str_cat(", \"ranks\": ", planned.inputs.topology.ranks(), ", \"batch\": ", p.batch,
                 ", \"seq\": ", p.seq, ", \"heads\": ", p.heads_q, ", \"kv_heads\": ", p.heads_kv,
                 ", \"head_dim\": ", p.head_dim, ", \"mask\": ", quoted(mask_name(p.mask)),
                 ", \"dtype\": ", quoted(dtype_name(p.dtype)),
                 ", \"phase\": ", quoted(phase_name(o.phase)),
                 ", \"backward\": ", o.backward ? "true" : "false",
                 ", \"model\": ", choice_json(planned.inputs, choice));
    return s + "}\n";
  }
  std::string s;
  if (o.explain) {
    for (const std::string& note : planned.notes) s += "  note       " + note + "\n";
    s += explain_table(planned.inputs, choice);
  }
  if (!o.scheme_auto) {
    s += str_cat("seqpar-run --dry-run: --scheme ", run_scheme_name(o),
                 " given; the model's pick is ",
                 choice.chosen >= 0 ? choice.best().candidate.name() : std::string("none"), "\n");
  } else if (choice.chosen >= 0) {
    const CandidateCost& b = choice.best();
    s += str_cat("seqpar-run --dry-run: would run ", b.candidate.name(),
                 " (U=", b.candidate.ulysses_degree, " x R=", b.candidate.ring_degree, ") on ",
                 planned.inputs.topology.ranks(), " ranks, predicted ", number(b.seconds() * 1e3),
                 " ms per layer\n");
  }
  return s;
}

}  // namespace seqpar
