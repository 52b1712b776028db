// Measured vs predicted efficiency of the schemes' steps (see efficiency_check.hpp).
#include "model/efficiency_check.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "attention/dispatch.hpp"
#include "core/random.hpp"
#include "model/link_cost.hpp"
#include "model/mini_json.hpp"
#include "model/schedule_cost.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

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

// A JSON string literal of `text` (quotes and backslashes escaped; control characters dropped).
std::string quoted(const std::string& text) {
  std::string s = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') s += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) s += c;
  }
  return s + "\"";
}

template <class T>
std::string list_json(const std::vector<T>& v, double factor) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    s += (i ? ", " : "") + number(static_cast<double>(v[i]) * factor);
  }
  return s + "]";
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

StatusOr<std::vector<double>> list_of(const JsonValue* v, const char* name, double factor) {
  SEQPAR_REQUIRE(v != nullptr && v->kind == JsonValue::Kind::kArray, StatusCode::kInvalidArgument,
                 "\"rate\" needs an array \"", name, "\"");
  std::vector<double> out;
  for (const JsonValue& x : v->items) out.push_back(number_of(&x) * factor);
  return out;
}

// The optional "rate" object: what efficiency_input_json writes for EfficiencyInput::rate.
StatusOr<ComputeRate> rate_of(const JsonValue& r) {
  ComputeRate rate;
  const JsonValue* device = r.find("device");
  const JsonValue* source = r.find("source");
  rate.device = device != nullptr ? device->text : "?";
  rate.source = source != nullptr ? source->text : "?";
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<double> tokens,
                          list_of(r.find("block_tokens"), "block_tokens", 1));
  for (double t : tokens) rate.block_tokens.push_back(static_cast<int64_t>(std::llround(t)));
  SEQPAR_ASSIGN_OR_RETURN(rate.forward_flops_per_s,
                          list_of(r.find("forward_tflops"), "forward_tflops", 1e12));
  SEQPAR_ASSIGN_OR_RETURN(rate.backward_flops_per_s,
                          list_of(r.find("backward_tflops"), "backward_tflops", 1e12));
  SEQPAR_RETURN_IF_ERROR(validate_compute_rate(rate));
  return rate;
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

namespace {

// Collects a schedule's compute: per step with any compute, each rank's blocks.
class BlockCollector final : public ScheduleSink {
 public:
  struct Block {
    BlockWork work;
    int rank = 0;
  };
  std::vector<std::vector<Block>> steps;  // steps with compute only

  int add_layout(const Layout&) override { return layouts_++; }
  void step(StepOverlap) override { fresh_ = true; }
  void compute(int rank, const BlockWork& block) override {
    if (fresh_) steps.emplace_back();
    fresh_ = false;
    steps.back().push_back({block, rank});
  }
  void exchange(int, std::span<const Send>) override {}
  void all_to_all(int, RankGroup, std::span<const Send>) override {}
  void collective(int, Collective, RankGroup, int64_t) override {}

 private:
  int layouts_ = 0;
  bool fresh_ = true;
};

// The scheme's context for the model check: the problem as a plan of `ranks` (training when
// `backward`, else forward-only).
StatusOr<SchemeContext> check_context(SchemeKind scheme, const AttentionProblem& p, int ranks,
                                      bool backward) {
  PlanConfig config;
  config.problem = p;
  config.scheme = scheme;
  config.backward = backward;
  SEQPAR_RETURN_IF_ERROR(validate_problem(config, ranks));
  SEQPAR_ASSIGN_OR_RETURN(const Layout layout, plan_layout(config, ranks));
  return SchemeContext{p, scheme, layout, nullptr, Device::kHost, nullptr, 0, backward};
}

// No links: the check's virtual ranks share one device and time compute alone.
Topology no_links(int ranks) {
  Topology t;
  t.ranks_per_node = ranks;
  t.intra.bandwidth_bytes_per_s = std::numeric_limits<double>::infinity();
  t.intra.latency_s = 0;
  t.inter = t.intra;
  return t;
}

}  // namespace

StatusOr<std::vector<std::vector<StepBlock>>> scheme_step_blocks(SchemeKind scheme,
                                                                 const AttentionProblem& p,
                                                                 int ranks) {
  SEQPAR_REQUIRE(ranks >= 1, StatusCode::kInvalidArgument, "ranks must be >= 1 (got ", ranks, ")");
  SEQPAR_ASSIGN_OR_RETURN(const SchemeContext context, check_context(scheme, p, ranks, false));
  BlockCollector collected;
  SEQPAR_RETURN_IF_ERROR(scheme_descriptor(scheme).schedule(context, Pass::kForward, collected));
  std::vector<std::vector<StepBlock>> steps;
  for (const std::vector<BlockCollector::Block>& step : collected.steps) {
    std::vector<StepBlock> row(static_cast<size_t>(ranks));
    for (const BlockCollector::Block& b : step) {
      StepBlock& slot = row[static_cast<size_t>(b.rank)];
      const bool own_shards =
          b.work.layout == 0 && b.work.heads_q == p.heads_q && b.work.heads_kv == p.heads_kv;
      SEQPAR_REQUIRE(own_shards && slot.idle(), StatusCode::kInvalidArgument,
                     "the efficiency check times schemes whose steps give each rank at most one "
                     "block of the scheme's own shards on all heads (ring, striped, zigzag, "
                     "lightseq); ",
                     scheme_name(scheme), "'s schedule does not");
      slot.q_block = b.work.q_shard;
      slot.kv_block = b.work.k_shard;
    }
    steps.push_back(std::move(row));
  }
  // A block merges into the running output when its rank already computed that query shard.
  std::vector<std::vector<char>> seen(static_cast<size_t>(ranks),
                                      std::vector<char>(static_cast<size_t>(ranks), 0));
  for (std::vector<StepBlock>& row : steps) {
    for (size_t r = 0; r < row.size(); ++r) {
      if (row[r].idle()) continue;
      char& before = seen[r][static_cast<size_t>(row[r].q_block)];
      row[r].accumulate = before != 0;
      before = 1;
    }
  }
  return steps;
}

StatusOr<ComputeRate> rate_from_blocks(const AttentionProblem& p, const KernelTiles& tiles,
                                       const std::vector<int64_t>& tokens,
                                       const std::vector<double>& forward_seconds,
                                       const std::vector<double>& backward_seconds,
                                       const std::string& device, const std::string& source) {
  SEQPAR_REQUIRE(!tokens.empty() && forward_seconds.size() == tokens.size() &&
                     (backward_seconds.empty() || backward_seconds.size() == tokens.size()),
                 StatusCode::kInvalidArgument,
                 "rate_from_blocks: one forward (and backward) time per block size");
  ComputeRate rate;
  rate.device = device;
  rate.source = source;
  const int64_t group = p.heads_q / p.heads_kv;
  for (size_t i = 0; i < tokens.size(); ++i) {
    SEQPAR_REQUIRE(forward_seconds[i] > 0, StatusCode::kInvalidArgument, "rate_from_blocks: the ",
                   tokens[i], "-token block's forward time is not > 0");
    SEQPAR_ASSIGN_OR_RETURN(const Layout one, Layout::make(LayoutKind::kContiguous, tokens[i], 1));
    const double work = TiledLayout::of(one, tiles, group).work(p.mask, 0, 0);
    const double flops = 4.0 * static_cast<double>(p.batch * p.heads_q * p.head_dim) * work;
    const double bwd = i < backward_seconds.size() ? backward_seconds[i] : 0;
    rate.block_tokens.push_back(tokens[i]);
    rate.forward_flops_per_s.push_back(flops / forward_seconds[i]);
    rate.backward_flops_per_s.push_back(bwd > 0 ? 2.5 * flops / bwd : flops / forward_seconds[i]);
  }
  SEQPAR_RETURN_IF_ERROR(validate_compute_rate(rate));
  return rate;
}

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
  std::vector<std::vector<std::vector<StepBlock>>> blocks;   // (schemes, steps, P)
  for (SchemeKind scheme : schemes) {
    SEQPAR_ASSIGN_OR_RETURN(const SchemeContext context, check_context(scheme, p, ranks, false));
    const Layout& layout = context.layout;
    SEQPAR_ASSIGN_OR_RETURN(std::vector<std::vector<StepBlock>> steps,
                            scheme_step_blocks(scheme, p, ranks));
    std::vector<std::vector<int64_t>> pos(static_cast<size_t>(ranks));
    for (int r = 0; r < ranks; ++r) {
      pos[static_cast<size_t>(r)].resize(static_cast<size_t>(layout.local_seq(r)));
      layout.positions(r, pos[static_cast<size_t>(r)].data());
    }
    layouts.push_back(layout);
    positions.push_back(std::move(pos));
    blocks.push_back(std::move(steps));
  }
  // One job per busy (step, rank); idle ranks (LightSeq) have none and time 0.
  for (size_t i = 0; i < schemes.size(); ++i) {
    for (const std::vector<StepBlock>& step : blocks[i]) {
      for (const StepBlock& b : step) {
        if (b.idle()) continue;
        Job job;
        job.sq = layouts[i].local_seq(b.q_block);
        job.sk = layouts[i].local_seq(b.kv_block);
        job.q_pos = PositionMap::indexed(positions[i][static_cast<size_t>(b.q_block)].data());
        job.k_pos = PositionMap::indexed(positions[i][static_cast<size_t>(b.kv_block)].data());
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
  for (size_t i = 0; i < schemes.size(); ++i) {
    StepTimings timings;
    timings.scheme = schemes[i];
    for (const std::vector<StepBlock>& step : blocks[i]) {
      std::vector<double> fwd, bwd;
      for (const StepBlock& b : step) {
        const bool busy = !b.idle();
        fwd.push_back(busy ? jobs[next].best.forward : 0);
        bwd.push_back(busy && backward ? jobs[next].best.backward : 0);
        if (busy) ++next;
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
  std::string s = str_cat("{\"device\": ", quoted(in.device), ", \"ranks\": ", in.ranks,
                          ", \"problem\": {\"batch\": ", p.batch, ", \"seq\": ", p.seq,
                          ", \"heads\": ", p.heads_q, ", \"kv_heads\": ", p.heads_kv,
                          ", \"head_dim\": ", p.head_dim, ", \"mask\": \"", mask_name(p.mask),
                          "\", \"dtype\": \"", dtype_name(p.dtype),
                          "\"}, \"backward\": ", in.backward ? "true" : "false",
                          ", \"whole_forward_ms\": ", number(in.whole_forward_seconds * 1e3),
                          ", \"whole_backward_ms\": ", number(in.whole_backward_seconds * 1e3));
  if (!in.rate.block_tokens.empty()) {
    s += str_cat(", \"rate\": {\"device\": ", quoted(in.rate.device),
                 ", \"source\": ", quoted(in.rate.source),
                 ", \"block_tokens\": ", list_json(in.rate.block_tokens, 1),
                 ", \"forward_tflops\": ", list_json(in.rate.forward_flops_per_s, 1e-12),
                 ", \"backward_tflops\": ", list_json(in.rate.backward_flops_per_s, 1e-12), "}");
  }
  s += ", \"schemes\": [";
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
  if (mask != nullptr) {
    SEQPAR_ASSIGN_OR_RETURN(in.problem.mask, parse_mask(mask->text));
  }
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
  const JsonValue* rate = json.find("rate");
  if (rate != nullptr) {
    SEQPAR_ASSIGN_OR_RETURN(in.rate, rate_of(*rate));
  }
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
    SEQPAR_ASSIGN_OR_RETURN(const std::vector<std::vector<StepBlock>> blocks,
                            scheme_step_blocks(t.scheme, in.problem, in.ranks));
    SEQPAR_REQUIRE(t.forward_seconds.size() == blocks.size(), StatusCode::kInvalidArgument,
                   scheme_name(t.scheme), ": ", blocks.size(), " forward steps expected (got ",
                   t.forward_seconds.size(), ")");
    SEQPAR_REQUIRE(t.backward_seconds.empty() || t.backward_seconds.size() == blocks.size(),
                   StatusCode::kInvalidArgument, scheme_name(t.scheme), ": ", blocks.size(),
                   " backward steps expected (got ", t.backward_seconds.size(), ")");
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
  const Topology links = topology != nullptr ? *topology : no_links(ranks);
  for (const StepTimings& t : in.schemes) {
    SEQPAR_ASSIGN_OR_RETURN(const SchemeContext context,
                            check_context(t.scheme, p, ranks, backward));
    SEQPAR_ASSIGN_OR_RETURN(const std::vector<std::vector<StepBlock>> blocks,
                            scheme_step_blocks(t.scheme, p, ranks));
    SEQPAR_REQUIRE(t.forward_seconds.size() == blocks.size() &&
                       (!backward || t.backward_seconds.size() == blocks.size()),
                   StatusCode::kInvalidArgument, scheme_name(t.scheme), ": ", blocks.size(),
                   " steps of forward", backward ? " and backward" : "", " times expected");
    // The scheme's own schedule, costed with the model's rate (predicted) and with the measured
    // compute of each step that computes (fed); its transfers on `links` in both.
    double predicted = 0, fed = 0;
    TileWork work(tiles, p.mask);
    for (const Pass pass : {Pass::kForward, Pass::kBackward}) {
      const bool is_backward = pass == Pass::kBackward;
      if (is_backward && !backward) continue;
      ScheduleCost cost(links, compute, work, is_backward, ranks);
      SEQPAR_RETURN_IF_ERROR(scheme_descriptor(t.scheme).schedule(context, pass, cost));
      predicted += cost.time().seconds;
      const std::vector<std::vector<double>>& measured =
          is_backward ? t.backward_seconds : t.forward_seconds;
      size_t next = 0;
      for (const ScheduleCost::Step& step : cost.steps()) {
        double busy = 0;
        if (step.computes && next < measured.size()) {
          const std::vector<double>& m = measured[next++];
          busy = m.empty() ? 0 : *std::max_element(m.begin(), m.end());
        }
        fed += step.overlapped ? std::max(busy, step.comm) : busy + step.comm;
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
  for (size_t i = 0; i < rate.block_tokens.size(); ++i) {
    char line[160];
    std::snprintf(line, sizeof(line),
                  "             %lld-token blocks: %.4g / %.4g TFLOP/s (fwd / bwd)\n",
                  static_cast<long long>(rate.block_tokens[i]), rate.forward_flops_per_s[i] * 1e-12,
                  rate.backward_flops_per_s[i] * 1e-12);
    s += line;
  }
  s += str_cat("  whole      one rank, S x S: ", number(in.whole_forward_seconds * 1e3),
               " ms forward",
               in.backward ? str_cat(", ", number(in.whole_backward_seconds * 1e3), " ms backward")
                           : std::string(),
               "\n");
  s += "  scheme     measured eff  predicted eff  model error  fed eff  lock-step ms\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const EfficiencyRow& r = rows[i];
    double steps_ms = 0;  // the slowest rank per step, summed (forward, + backward)
    if (i < in.schemes.size()) {
      steps_ms = 1e3 * (lock_step(in.schemes[i].forward_seconds) +
                        (in.backward ? lock_step(in.schemes[i].backward_seconds) : 0));
    }
    char line[160];
    std::snprintf(line, sizeof(line), "  %-10s %12.3f %14.3f %11.1f%% %8.3f %13.3f\n",
                  scheme_name(r.scheme), r.measured, r.predicted, 100 * r.error(), r.fed, steps_ms);
    s += line;
  }
  for (size_t i = 1; i < rows.size(); ++i) {  // each scheme against the first (ring)
    char line[200];
    const double measured = rows[i].measured / rows[0].measured;
    const double predicted = rows[i].predicted / rows[0].predicted;
    std::snprintf(line, sizeof(line),
                  "  %s / %s efficiency: measured %.3f, predicted %.3f (%.1f%%)\n",
                  scheme_name(rows[i].scheme), scheme_name(rows[0].scheme), measured, predicted,
                  100 * (predicted / measured - 1));
    s += line;
  }
  return s;
}

}  // namespace seqpar
