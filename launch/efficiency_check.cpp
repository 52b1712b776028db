// Measured vs predicted efficiency of the ring family (see efficiency_check.hpp).
#include "launch/efficiency_check.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "attention/dispatch.hpp"
#include "core/random.hpp"
#include "launch/link_cost.hpp"
#include "launch/mini_json.hpp"
#include "launch/model_parts.hpp"

namespace seqpar {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Buffers for blocks of up to `rows` query and key tokens, filled with values in [-1, 1).
struct BlockBuffers {
  std::vector<float> q, k, v, out, lse, dout, delta, dq, dk, dv;
  BlockBuffers(const AttentionProblem& p, int64_t rows) {
    const size_t qn = static_cast<size_t>(p.batch * rows * p.heads_q * p.head_dim);
    const size_t kn = static_cast<size_t>(p.batch * rows * p.heads_kv * p.head_dim);
    const size_t ln = static_cast<size_t>(p.batch * rows * p.heads_q);
    q.resize(qn);
    dout.resize(qn);
    k.resize(kn);
    v.resize(kn);
    for (size_t i = 0; i < qn; ++i) q[i] = uniform_pm1(1, 1, i), dout[i] = uniform_pm1(1, 4, i);
    for (size_t i = 0; i < kn; ++i) k[i] = uniform_pm1(1, 2, i), v[i] = uniform_pm1(1, 3, i);
    out.assign(qn, 0.0f);
    dq.assign(qn, 0.0f);
    dk.assign(kn, 0.0f);
    dv.assign(kn, 0.0f);
    lse.assign(ln, 8.0f);  // finite for backward: its timing does not depend on the values
    delta.assign(ln, 0.0f);
  }
};

// Best of `repeats` of one block's forward (and backward) kernel.
struct BlockTime {
  double forward = 0, backward = 0;
};

StatusOr<BlockTime> time_block(const AttentionProblem& p, BlockBuffers& b, int64_t sq, int64_t sk,
                               const PositionMap& q_pos, const PositionMap& k_pos, bool backward,
                               int repeats) {
  const KernelTarget host{Device::kHost, nullptr};
  const BlockShape shape{p.batch, sq, sk, p.heads_q, p.heads_kv, p.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  BlockForwardParams f;
  f.shape = shape;
  f.dtype = DType::kF32;
  f.q = b.q.data();
  f.k = b.k.data();
  f.v = b.v.data();
  f.out = b.out.data();
  f.lse = b.lse.data();
  f.q_pos = q_pos;
  f.k_pos = k_pos;
  f.mask = p.mask;
  f.softmax_scale = scale;
  BlockBackwardParams g;
  g.shape = shape;
  g.dtype = DType::kF32;
  g.q = b.q.data();
  g.k = b.k.data();
  g.v = b.v.data();
  g.dout = b.dout.data();
  g.lse = b.lse.data();
  g.delta = b.delta.data();
  g.dq = b.dq.data();
  g.dk = b.dk.data();
  g.dv = b.dv.data();
  g.q_pos = q_pos;
  g.k_pos = k_pos;
  g.mask = p.mask;
  g.softmax_scale = scale;
  BlockTime best{std::numeric_limits<double>::max(), std::numeric_limits<double>::max()};
  for (int rep = 0; rep < repeats; ++rep) {
    const double t0 = now_seconds();
    SEQPAR_RETURN_IF_ERROR(run_block_forward(f, host));
    best.forward = std::min(best.forward, now_seconds() - t0);
    if (backward) {
      std::fill(b.lse.begin(), b.lse.end(), 8.0f);  // the forward overwrote it
      const double t1 = now_seconds();
      SEQPAR_RETURN_IF_ERROR(run_block_backward(g, host));
      best.backward = std::min(best.backward, now_seconds() - t1);
    }
  }
  if (!backward) best.backward = 0;
  return best;
}

std::string number(double x) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.9g", x);
  return buf;
}

std::string matrix_json(const std::vector<std::vector<double>>& m) {
  std::string s = "[";
  for (size_t i = 0; i < m.size(); ++i) {
    s += i ? ", [" : "[";
    for (size_t j = 0; j < m[i].size(); ++j) s += (j ? ", " : "") + number(m[i][j] * 1e3);
    s += "]";
  }
  return s + "]";
}

// Sum over steps of the slowest rank's time.
double lock_step(const std::vector<std::vector<double>>& steps) {
  double total = 0;
  for (const std::vector<double>& step : steps) {
    total += step.empty() ? 0 : *std::max_element(step.begin(), step.end());
  }
  return total;
}

double number_of(const JsonValue* v, double fallback = 0) {
  return v != nullptr && v->kind == JsonValue::Kind::kNumber ? v->number : fallback;
}

StatusOr<std::vector<std::vector<double>>> matrix_of(const JsonValue* v, int ranks) {
  std::vector<std::vector<double>> m;
  if (v == nullptr) return m;
  SEQPAR_REQUIRE(v->kind == JsonValue::Kind::kArray, StatusCode::kInvalidArgument,
                 "per-step times must be an array of steps");
  for (const JsonValue& step : v->items) {
    SEQPAR_REQUIRE(
        step.kind == JsonValue::Kind::kArray && static_cast<int>(step.items.size()) == ranks,
        StatusCode::kInvalidArgument, "each step must list ", ranks, " ranks' times");
    std::vector<double> row;
    for (const JsonValue& t : step.items) row.push_back(number_of(&t) / 1e3);  // ms -> s
    m.push_back(std::move(row));
  }
  return m;
}

}  // namespace

StatusOr<EfficiencyInput> measure_host_steps(const AttentionProblem& p, int ranks, bool backward,
                                             const std::vector<SchemeKind>& schemes, int repeats) {
  EfficiencyInput in;
  in.device = "cpu (one core, sequential virtual ranks)";
  in.problem = p;
  in.problem.dtype = DType::kF32;
  in.backward = backward;
  in.ranks = ranks;
  // Every block to time: the whole sequence, then each scheme's (step, rank) blocks. The
  // repeats go round all of them, so a busy spell on a shared machine touches every block alike.
  struct Job {
    int64_t sq = 0, sk = 0;
    PositionMap q_pos, k_pos;
    BlockTime best{std::numeric_limits<double>::max(), std::numeric_limits<double>::max()};
  };
  std::vector<Job> jobs;
  jobs.push_back({p.seq, p.seq, PositionMap::affine(0), PositionMap::affine(0), {}});
  jobs.back().best = {std::numeric_limits<double>::max(), std::numeric_limits<double>::max()};
  std::vector<Layout> layouts;
  std::vector<std::vector<std::vector<int64_t>>> positions;  // (schemes, P, S_local)
  for (SchemeKind scheme : schemes) {
    SEQPAR_ASSIGN_OR_RETURN(Layout layout, Layout::make(scheme_layout(scheme), p.seq, ranks));
    std::vector<std::vector<int64_t>> pos(static_cast<size_t>(ranks));
    for (int r = 0; r < ranks; ++r) {
      pos[static_cast<size_t>(r)].resize(static_cast<size_t>(layout.local_seq(r)));
      layout.positions(r, pos[static_cast<size_t>(r)].data());
    }
    layouts.push_back(layout);
    positions.push_back(std::move(pos));
  }
  for (size_t i = 0; i < schemes.size(); ++i) {
    for (int step = 0; step < ranks; ++step) {
      for (int r = 0; r < ranks; ++r) {
        const int source = (r - step + ranks) % ranks;
        Job job;
        job.sq = layouts[i].local_seq(r);
        job.sk = layouts[i].local_seq(source);
        job.q_pos = PositionMap::indexed(positions[i][static_cast<size_t>(r)].data());
        job.k_pos = PositionMap::indexed(positions[i][static_cast<size_t>(source)].data());
        jobs.push_back(job);
      }
    }
  }
  BlockBuffers buffers(in.problem, p.seq);
  for (int rep = 0; rep < repeats; ++rep) {
    for (Job& job : jobs) {
      SEQPAR_ASSIGN_OR_RETURN(const BlockTime t, time_block(in.problem, buffers, job.sq, job.sk,
                                                            job.q_pos, job.k_pos, backward, 1));
      job.best.forward = std::min(job.best.forward, t.forward);
      job.best.backward = std::min(job.best.backward, t.backward);
    }
  }
  in.whole_forward_seconds = jobs[0].best.forward;
  in.whole_backward_seconds = backward ? jobs[0].best.backward : 0;
  size_t next = 1;
  for (SchemeKind scheme : schemes) {
    StepTimings timings;
    timings.scheme = scheme;
    for (int step = 0; step < ranks; ++step) {
      std::vector<double> fwd, bwd;
      for (int r = 0; r < ranks; ++r, ++next) {
        fwd.push_back(jobs[next].best.forward);
        bwd.push_back(backward ? jobs[next].best.backward : 0);
      }
      timings.forward_seconds.push_back(fwd);
      if (backward) timings.backward_seconds.push_back(bwd);
    }
    in.schemes.push_back(std::move(timings));
  }
  return in;
}

std::string efficiency_input_json(const EfficiencyInput& in) {
  const AttentionProblem& p = in.problem;
  std::string s = str_cat(
      "{\"device\": \"", in.device, "\", \"ranks\": ", in.ranks,
      ", \"problem\": {\"batch\": ", p.batch, ", \"seq\": ", p.seq, ", \"heads\": ", p.heads_q,
      ", \"kv_heads\": ", p.heads_kv, ", \"head_dim\": ", p.head_dim, ", \"mask\": \"",
      mask_name(p.mask), "\", \"dtype\": \"", dtype_name(p.dtype),
      "\"}, \"backward\": ", in.backward ? "true" : "false",
      ", \"whole_forward_ms\": ", number(in.whole_forward_seconds * 1e3),
      ", \"whole_backward_ms\": ", number(in.whole_backward_seconds * 1e3), ", \"schemes\": [");
  for (size_t i = 0; i < in.schemes.size(); ++i) {
    const StepTimings& t = in.schemes[i];
    s += str_cat(i ? ", " : "", "{\"scheme\": \"", scheme_name(t.scheme),
                 "\", \"measured_ms\": ", number(t.measured_seconds * 1e3),
                 ", \"forward_step_ms\": ", matrix_json(t.forward_seconds));
    if (!t.backward_seconds.empty()) {
      s += ", \"backward_step_ms\": " + matrix_json(t.backward_seconds);
    }
    s += "}";
  }
  return s + "]}\n";
}

StatusOr<EfficiencyInput> parse_efficiency_input(std::string_view text) {
  SEQPAR_ASSIGN_OR_RETURN(const JsonValue json, parse_json(text));
  EfficiencyInput in;
  const JsonValue* device = json.find("device");
  in.device = device != nullptr ? device->text : "?";
  in.ranks = static_cast<int>(number_of(json.find("ranks")));
  SEQPAR_REQUIRE(in.ranks >= 1, StatusCode::kInvalidArgument, "\"ranks\" must be >= 1");
  const JsonValue* p = json.find("problem");
  SEQPAR_REQUIRE(p != nullptr, StatusCode::kInvalidArgument, "no \"problem\" object");
  in.problem.batch = static_cast<int64_t>(number_of(p->find("batch"), 1));
  in.problem.seq = static_cast<int64_t>(number_of(p->find("seq")));
  in.problem.heads_q = static_cast<int64_t>(number_of(p->find("heads")));
  in.problem.heads_kv = static_cast<int64_t>(number_of(p->find("kv_heads")));
  in.problem.head_dim = static_cast<int64_t>(number_of(p->find("head_dim")));
  const JsonValue* mask = p->find("mask");
  in.problem.mask = mask != nullptr && mask->text == "full" ? MaskKind::kFull : MaskKind::kCausal;
  const JsonValue* dtype = p->find("dtype");
  if (dtype != nullptr) {
    SEQPAR_ASSIGN_OR_RETURN(in.problem.dtype, parse_dtype(dtype->text));
  }
  const JsonValue* backward = json.find("backward");
  in.backward = backward != nullptr && backward->boolean;
  in.whole_forward_seconds = number_of(json.find("whole_forward_ms")) / 1e3;
  in.whole_backward_seconds = number_of(json.find("whole_backward_ms")) / 1e3;
  SEQPAR_REQUIRE(in.whole_forward_seconds > 0, StatusCode::kInvalidArgument,
                 "\"whole_forward_ms\" must be > 0");
  const JsonValue* schemes = json.find("schemes");
  SEQPAR_REQUIRE(schemes != nullptr && schemes->kind == JsonValue::Kind::kArray,
                 StatusCode::kInvalidArgument, "no \"schemes\" array");
  for (const JsonValue& s : schemes->items) {
    StepTimings t;
    const JsonValue* name = s.find("scheme");
    SEQPAR_REQUIRE(name != nullptr, StatusCode::kInvalidArgument, "a scheme without \"scheme\"");
    SEQPAR_ASSIGN_OR_RETURN(t.scheme, parse_scheme(name->text));
    t.measured_seconds = number_of(s.find("measured_ms")) / 1e3;
    SEQPAR_ASSIGN_OR_RETURN(t.forward_seconds, matrix_of(s.find("forward_step_ms"), in.ranks));
    SEQPAR_ASSIGN_OR_RETURN(t.backward_seconds, matrix_of(s.find("backward_step_ms"), in.ranks));
    SEQPAR_REQUIRE(static_cast<int>(t.forward_seconds.size()) == in.ranks,
                   StatusCode::kInvalidArgument, scheme_name(t.scheme), ": ", in.ranks,
                   " forward steps expected");
    in.schemes.push_back(std::move(t));
  }
  return in;
}

StatusOr<std::vector<EfficiencyRow>> compare_efficiency(const EfficiencyInput& in,
                                                        const ComputeRate& rate,
                                                        const KernelTiles& tiles,
                                                        const Topology* topology) {
  const AttentionProblem& p = in.problem;
  const int ranks = in.ranks;
  const bool backward = in.backward && in.whole_backward_seconds > 0;
  const ComputeModel compute{&rate, p.batch, p.head_dim};
  const int64_t group = p.heads_q / p.heads_kv;
  SEQPAR_ASSIGN_OR_RETURN(const Layout one, Layout::make(LayoutKind::kContiguous, p.seq, 1));
  const double whole_work = TiledLayout::of(one, tiles, group).work(p.mask, 0, 0);
  const double whole_predicted =
      compute.forward_seconds(whole_work, p.heads_q, p.seq, p.seq) +
      (backward ? compute.backward_seconds(whole_work, p.heads_q, p.seq, p.seq) : 0);
  const double whole_measured =
      in.whole_forward_seconds + (backward ? in.whole_backward_seconds : 0);

  std::vector<EfficiencyRow> rows;
  for (const StepTimings& t : in.schemes) {
    SEQPAR_ASSIGN_OR_RETURN(const Layout layout,
                            Layout::make(scheme_layout(t.scheme), p.seq, ranks));
    const TiledLayout tiled = TiledLayout::of(layout, tiles, group);
    double predicted = 0, fed = 0;
    for (int step = 0; step < ranks; ++step) {
      double fwd = 0, bwd = 0, comm = 0;
      for (int r = 0; r < ranks; ++r) {
        const int source = (r - step + ranks) % ranks;
        const double work = tiled.work(p.mask, r, source);
        const int64_t sq = layout.local_seq(r), sk = layout.local_seq(source);
        fwd = std::max(fwd, compute.forward_seconds(work, p.heads_q, sq, sk));
        bwd = std::max(bwd, compute.backward_seconds(work, p.heads_q, sq, sk));
        if (topology != nullptr && step + 1 < ranks) {
          LinkLoad shift;
          shift.add(
              *topology, r, (r + 1) % ranks,
              2.0 * static_cast<double>(p.batch * layout.local_seq(source) * p.heads_kv *
                                        p.head_dim * static_cast<int64_t>(dtype_size(p.dtype))));
          comm = std::max(comm, shift.seconds(*topology));
        }
      }
      predicted += std::max(fwd, comm) + (backward ? std::max(bwd, comm) : 0);
      const size_t s = static_cast<size_t>(step);
      const std::vector<double>& mf = t.forward_seconds[s];
      fed += std::max(*std::max_element(mf.begin(), mf.end()), comm);
      if (backward && s < t.backward_seconds.size()) {
        const std::vector<double>& mb = t.backward_seconds[s];
        fed += std::max(*std::max_element(mb.begin(), mb.end()), comm);
      }
    }
    const double measured_time =
        t.measured_seconds > 0
            ? t.measured_seconds
            : lock_step(t.forward_seconds) + (backward ? lock_step(t.backward_seconds) : 0);
    EfficiencyRow row;
    row.scheme = t.scheme;
    row.measured = whole_measured / ranks / measured_time;
    row.predicted = whole_predicted / ranks / predicted;
    row.fed = whole_measured / ranks / fed;
    rows.push_back(row);
  }
  return rows;
}

std::string efficiency_table(const EfficiencyInput& in, const std::vector<EfficiencyRow>& rows,
                             const ComputeRate& rate) {
  const AttentionProblem& p = in.problem;
  std::string s =
      str_cat("seqpar-model-check: ", in.device, ", P=", in.ranks, " B=", p.batch, " S=", p.seq,
              " Hq=", p.heads_q, " Hkv=", p.heads_kv, " D=", p.head_dim, " ", mask_name(p.mask),
              " ", dtype_name(p.dtype), in.backward ? " forward+backward" : " forward", "\n");
  s += str_cat("  rate       ", rate.device, ", ", rate.source, "\n");
  s += str_cat("  whole      one rank, S x S: ", number(in.whole_forward_seconds * 1e3),
               " ms forward",
               in.backward ? str_cat(", ", number(in.whole_backward_seconds * 1e3), " ms backward")
                           : std::string(),
               "\n");
  s += "  scheme     measured eff  predicted eff  model error  fed eff\n";
  for (const EfficiencyRow& r : rows) {
    char line[160];
    std::snprintf(line, sizeof(line), "  %-10s %12.3f %14.3f %11.1f%% %8.3f\n",
                  scheme_name(r.scheme), r.measured, r.predicted, 100 * r.error(), r.fed);
    s += line;
  }
  if (rows.size() >= 2) {
    char line[160];
    std::snprintf(
        line, sizeof(line), "  %s / %s efficiency: measured %.3f, predicted %.3f (%.1f%%)\n",
        scheme_name(rows[1].scheme), scheme_name(rows[0].scheme),
        rows[1].measured / rows[0].measured, rows[1].predicted / rows[0].predicted,
        100 *
            ((rows[1].predicted / rows[0].predicted) / (rows[1].measured / rows[0].measured) - 1));
    s += line;
  }
  return s;
}

}  // namespace seqpar
