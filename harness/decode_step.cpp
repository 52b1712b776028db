// One rank's timed decoding steps, communication accounting and reference check.
#include "harness/decode_step.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <vector>

#include "attention/reference.hpp"
#include "comm/comm_staging.hpp"
#include "core/log.hpp"
#include "harness/device_shards.hpp"
#include "harness/test_data.hpp"
#include "runtime/agreement.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar {
namespace {

// The new tokens of one step: q (B, n, Hq, D), k, v (B, n, Hkv, D) in the storage dtype, for
// positions first..first+n-1 of the whole (data-problem) tensors.
struct NewTokens {
  HostBuffer q, k, v;
  void fill(const AttentionProblem& data, uint64_t seed, int64_t first, int64_t n) {
    const size_t e = dtype_size(data.dtype);
    const size_t q_row = static_cast<size_t>(data.heads_q * data.head_dim) * e;
    const size_t kv_row = static_cast<size_t>(data.heads_kv * data.head_dim) * e;
    for (int64_t b = 0; b < data.batch; ++b) {
      for (int64_t j = 0; j < n; ++j) {
        const size_t at = static_cast<size_t>(b * n + j);
        fill_input_token(data, seed, InputTensor::kQ, b, first + j, q.as<char>() + at * q_row);
        fill_input_token(data, seed, InputTensor::kK, b, first + j, k.as<char>() + at * kv_row);
        fill_input_token(data, seed, InputTensor::kV, b, first + j, v.as<char>() + at * kv_row);
      }
    }
  }
};

// One step's tensors where the plan works: the new tokens (B, n, ...) and the step's out
// (B, n, Hq, D) and lse (B, Hq, n). A host plan works on `host` itself; a device plan on device
// copies: the new tokens uploaded before each timed step, the outputs downloaded after the last.
struct StepTensors {
  NewTokens host;
  HostBuffer out, lse;
  WorkspaceBuffer device_storage;  // a device plan's copies of the five tensors
  char* device_q = nullptr;
  char* device_k = nullptr;
  char* device_v = nullptr;
  char* device_out = nullptr;
  float* device_lse = nullptr;
  KernelTarget target;

  Status allocate(const AttentionProblem& p, int64_t n, const KernelTarget& where) {
    target = where;
    const size_t q_bytes =
        static_cast<size_t>(p.batch * n * p.heads_q * p.head_dim) * dtype_size(p.dtype);
    const size_t kv_bytes =
        static_cast<size_t>(p.batch * n * p.heads_kv * p.head_dim) * dtype_size(p.dtype);
    const size_t lse_bytes = static_cast<size_t>(p.batch * p.heads_q * n) * sizeof(float);
    SEQPAR_RETURN_IF_ERROR(host.q.allocate(q_bytes));
    SEQPAR_RETURN_IF_ERROR(host.k.allocate(kv_bytes));
    SEQPAR_RETURN_IF_ERROR(host.v.allocate(kv_bytes));
    SEQPAR_RETURN_IF_ERROR(out.allocate(q_bytes));
    SEQPAR_RETURN_IF_ERROR(lse.allocate(lse_bytes));
    if (where.device == Device::kHost) return Status::ok();
    WorkspaceArena arena;
    arena.add(device_q, q_bytes);
    arena.add(device_k, kv_bytes);
    arena.add(device_v, kv_bytes);
    arena.add(device_out, q_bytes);
    arena.add(device_lse, lse_bytes);
    return arena.allocate(device_storage, where.device);
  }
  bool on_device() const { return target.device != Device::kHost; }
  void* q() { return on_device() ? device_q : host.q.data(); }
  void* k() { return on_device() ? device_k : host.k.data(); }
  void* v() { return on_device() ? device_v : host.v.data(); }
  void* step_out() { return on_device() ? device_out : out.data(); }
  float* step_lse() { return on_device() ? device_lse : lse.as<float>(); }
  // The new tokens to the device (asynchronous on the target's stream; the host copies stay
  // untouched until the next sync).
  Status upload_tokens() {
    if (!on_device()) return Status::ok();
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(device_q, host.q.data(), host.q.bytes(), target));
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(device_k, host.k.data(), host.k.bytes(), target));
    return buffer_ops::copy(device_v, host.v.data(), host.v.bytes(), target);
  }
  // The last step's outputs to the host (enqueued; the caller syncs).
  Status download_outputs() {
    if (!on_device()) return Status::ok();
    SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(out.data(), device_out, out.bytes(), target));
    return buffer_ops::copy(lse.data(), device_lse, lse.bytes(), target);
  }
};

// Fills this rank's prompt shard of the cache from (seed, global index): directly for a host
// cache; for a device cache through a host copy of the shard, uploaded and waited for by `sync`.
Status fill_prompt(const AttentionProblem& data, uint64_t seed, int rank, KvCache& cache,
                   DeviceShards* device) {
  const size_t kv_row = static_cast<size_t>(data.heads_kv * data.head_dim) * dtype_size(data.dtype);
  const size_t shard_bytes = static_cast<size_t>(data.batch * cache.local_capacity()) * kv_row;
  HostBuffer staged_k, staged_v;  // (B, local_capacity, Hkv, D): a device cache's host copies
  if (device) {
    SEQPAR_RETURN_IF_ERROR(staged_k.allocate(shard_bytes));
    SEQPAR_RETURN_IF_ERROR(staged_v.allocate(shard_bytes));
  }
  char* k = device ? staged_k.as<char>() : static_cast<char*>(cache.k());
  char* v = device ? staged_v.as<char>() : static_cast<char*>(cache.v());
  for (int64_t b = 0; b < data.batch; ++b) {
    for (int64_t i = 0; i < cache.local_length(); ++i) {
      const size_t at = static_cast<size_t>(b * cache.local_capacity() + i) * kv_row;
      const int64_t t = cache.positions_of(rank)[i];
      fill_input_token(data, seed, InputTensor::kK, b, t, k + at);
      fill_input_token(data, seed, InputTensor::kV, b, t, v + at);
    }
  }
  if (!device) return Status::ok();
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(cache.k(), k, shard_bytes, cache.target()));
  SEQPAR_RETURN_IF_ERROR(buffer_ops::copy(cache.v(), v, shard_bytes, cache.target()));
  return device->sync();  // the staged copies are freed on return
}

// Relative L2 errors of out (B, n, Hq, D) and lse (B, Hq, n), the same rows on every rank, against
// the fp64 reference of the last n tokens' queries against all cache.length() tokens. Rank 0
// computes the reference and broadcasts it; the result is the largest error over ranks.
StatusOr<CheckErrors> check_decode(const AttentionProblem& data, const KvCache& cache, int64_t n,
                                   uint64_t seed, const void* out, const float* lse,
                                   Communicator& comm) {
  const int64_t B = data.batch, Hq = data.heads_q, Hkv = data.heads_kv, D = data.head_dim;
  const int64_t T = cache.length();
  std::vector<double> out_ref(static_cast<size_t>(B * n * Hq * D)),
      lse_ref(static_cast<size_t>(B * Hq * n));
  if (comm.rank() == 0) {
    std::vector<double> q(out_ref.size()), k(static_cast<size_t>(B * T * Hkv * D)), v(k.size());
    std::vector<unsigned char> row(static_cast<size_t>(Hq * D) * sizeof(float));  // (H, D)
    auto load = [&](InputTensor tensor, int64_t b, int64_t t, double* to) {
      fill_input_token(data, seed, tensor, b, t, row.data());
      for (int64_t x = 0; x < input_heads(data, tensor) * D; ++x) {
        to[x] = load_float(row.data(), data.dtype, static_cast<size_t>(x));
      }
    };
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        load(InputTensor::kK, b, t, k.data() + (b * T + t) * Hkv * D);
        load(InputTensor::kV, b, t, v.data() + (b * T + t) * Hkv * D);
      }
      for (int64_t j = 0; j < n; ++j)
        load(InputTensor::kQ, b, T - n + j, q.data() + (b * n + j) * Hq * D);
    }
    std::vector<int64_t> k_pos(static_cast<size_t>(T)), q_pos(static_cast<size_t>(n));
    for (int64_t t = 0; t < T; ++t) k_pos[static_cast<size_t>(t)] = t;
    for (int64_t j = 0; j < n; ++j) q_pos[static_cast<size_t>(j)] = T - n + j;
    const ReferenceBlock block{B,
                               n,
                               T,
                               Hq,
                               Hkv,
                               D,
                               q.data(),
                               k.data(),
                               v.data(),
                               q_pos.data(),
                               k_pos.data(),
                               MaskKind::kCausal,
                               data.softmax_scale};
    reference_forward(block, out_ref.data(), lse_ref.data());
  }
  SEQPAR_RETURN_IF_ERROR(broadcast_host(comm, out_ref.data(), out_ref.size() * sizeof(double), 0));
  SEQPAR_RETURN_IF_ERROR(broadcast_host(comm, lse_ref.data(), lse_ref.size() * sizeof(double), 0));
  double sums[4] = {};  // out diff^2, out ref^2, lse diff^2, lse ref^2
  for (size_t i = 0; i < out_ref.size(); ++i) {
    const double d = load_float(out, data.dtype, i) - out_ref[i];
    sums[0] += d * d;
    sums[1] += out_ref[i] * out_ref[i];
  }
  for (size_t i = 0; i < lse_ref.size(); ++i) {
    const double d = lse[i] - lse_ref[i];
    sums[2] += d * d;
    sums[3] += lse_ref[i] * lse_ref[i];
  }
  double errors[2] = {std::sqrt(sums[0] / sums[1]), std::sqrt(sums[2] / sums[3])};
  SEQPAR_RETURN_IF_ERROR(all_reduce_host(comm, errors, 2, DType::kF64, ReduceOp::kMax));
  CheckErrors e;
  e.tolerance = check_tolerance(data.dtype);
  e.out = errors[0];
  e.lse = errors[1];
  e.passed =
      std::isfinite(e.out) && std::isfinite(e.lse) && e.out <= e.tolerance && e.lse <= e.tolerance;
  return e;
}

}  // namespace

DecodeConfig decode_config_of(const StepConfig& config) {
  DecodeConfig decode;
  decode.problem = config.plan.problem;
  decode.q_len = config.q_len;
  decode.capacity = config.plan.problem.seq + (config.warmup + config.iters) * config.q_len;
  decode.decoder = config.decoder;
  decode.device = config.plan.device;
  decode.stream = config.plan.stream;
  decode.ranks_per_node = config.plan.ranks_per_node;
  return decode;
}

StatusOr<StepReport> run_decode_step(const StepConfig& options, Communicator& comm) {
  if (options.timeout_s > 0) {
    comm.set_timeout(std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0)));
  }
  DecodeConfig config = decode_config_of(options);
  // A device plan: the cache, the new tokens and the outputs on the device, the plan on this
  // rank's own stream.
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceShards> device,
                          device_shards_for(config.device, comm));
  if (device) config.stream = device->stream();
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodePlan> plan, DecodePlan::create(config, comm));
  const AttentionProblem& p = plan->config().problem;  // softmax scale resolved
  const int64_t n = options.q_len;
  const int rank = comm.rank();
  // Inputs of every token the run will see, from (seed, global index) of a problem that long.
  AttentionProblem data = p;
  data.seq = plan->config().capacity;
  KvCache& cache = plan->cache();

  StepTensors tensors;
  Status allocated = fill_prompt(data, options.seed, rank, cache, device.get());
  if (allocated.is_ok()) allocated = tensors.allocate(p, n, {config.device, config.stream});
  SEQPAR_RETURN_IF_ERROR(agree_across_ranks(allocated, comm, "allocate their decode tensors"));

  std::vector<double> step_ms(static_cast<size_t>(options.iters));
  CommVolume expected;  // over the timed steps: the ring's grows with the cache
  for (int it = 0; it < options.warmup + options.iters; ++it) {
    // The model's new tokens, on the plan's memory: untimed.
    tensors.host.fill(data, options.seed, cache.length(), n);
    SEQPAR_RETURN_IF_ERROR(tensors.upload_tokens());
    if (device) SEQPAR_RETURN_IF_ERROR(device->sync());
    SEQPAR_RETURN_IF_ERROR(comm.barrier());
    if (it == options.warmup) plan->reset_comm_stats();
    const auto start = std::chrono::steady_clock::now();
    SEQPAR_RETURN_IF_ERROR(plan->append(tensors.k(), tensors.v(), n));
    SEQPAR_RETURN_IF_ERROR(plan->step(tensors.q(), tensors.step_out(), tensors.step_lse()));
    if (device) SEQPAR_RETURN_IF_ERROR(device->sync());  // a device step ends when its work does
    const auto stop = std::chrono::steady_clock::now();
    if (it >= options.warmup) {
      step_ms[static_cast<size_t>(it - options.warmup)] =
          std::chrono::duration<double, std::milli>(stop - start).count();
      SEQPAR_ASSIGN_OR_RETURN(const CommVolume step, plan->expected_step_comm());
      expected += step;
    }
    SEQPAR_LOG_INFO("decode step ", it + 1, "/", options.warmup + options.iters, " done");
  }
  SEQPAR_RETURN_IF_ERROR(tensors.download_outputs());
  if (device) SEQPAR_RETURN_IF_ERROR(device->sync());
  // This rank's counters (barriers left out), its decoder's subgroups' included, against its
  // own schedule's; maxima over ranks.
  constexpr size_t kOps = static_cast<size_t>(CommOp::kCount);
  const CommStats stats = plan->comm_stats();
  CommVolume sent;
  for (size_t op = 0; op < kOps; ++op) {
    if (op != static_cast<size_t>(CommOp::kBarrier)) sent.calls[op] = stats.ops[op].calls;
  }
  sent.bytes_sent = stats.total_bytes_sent();
  // measured (calls..., bytes), expected (calls..., bytes), mismatch flag, -bytes
  std::array<int64_t, 2 * (kOps + 1) + 2> extremes{};
  for (size_t op = 0; op <= kOps; ++op) {
    extremes[op] = op == kOps ? sent.bytes_sent : sent.calls[op];
    extremes[kOps + 1 + op] = op == kOps ? expected.bytes_sent : expected.calls[op];
    if (extremes[op] != extremes[kOps + 1 + op]) extremes[2 * (kOps + 1)] = 1;
  }
  extremes[2 * (kOps + 1) + 1] = -sent.bytes_sent;
  SEQPAR_RETURN_IF_ERROR(
      all_reduce_host(comm, extremes.data(), extremes.size(), DType::kI64, ReduceOp::kMax));
  SEQPAR_RETURN_IF_ERROR(
      all_reduce_host(comm, step_ms.data(), step_ms.size(), DType::kF64, ReduceOp::kMax));
  std::sort(step_ms.begin(), step_ms.end());

  StepReport report;
  report.problem = p;
  report.ranks = comm.size();
  report.ring_size = report.ranks;  // decode has no hybrid grid: 1 x P
  report.local_seq = cache.local_length();
  report.workspace_bytes = plan->workspace_bytes();
  report.time_ms = step_ms[step_ms.size() / 2];
  report.time_ms_min = step_ms.front();
  const double flops = 4.0 * static_cast<double>(p.batch * p.heads_q * n * p.head_dim) *
                       static_cast<double>(cache.length());
  report.tflops = flops / (report.time_ms * 1e-3) / 1e12;
  const int64_t steps = options.iters;
  for (size_t op = 0; op < kOps; ++op) {
    report.measured_comm.calls[op] = extremes[op] / steps;
    report.expected_comm.calls[op] = extremes[kOps + 1 + op] / steps;
  }
  report.measured_comm.bytes_sent = extremes[kOps] / steps;  // per step, largest rank
  report.expected_comm.bytes_sent = extremes[2 * kOps + 1] / steps;
  report.bytes_sent_min_rank = -extremes[2 * (kOps + 1) + 1] / steps;
  report.comm_matches_formula = extremes[2 * (kOps + 1)] == 0;
  if (options.check) {
    SEQPAR_ASSIGN_OR_RETURN(report.errors,
                            check_decode(data, cache, n, options.seed, tensors.out.data(),
                                         tensors.lse.as<float>(), comm));
  }
  return report;
}

StatusOr<StepReport> run_phase_step(const StepConfig& config, Communicator& comm) {
  return config.phase == Phase::kDecode ? run_decode_step(config, comm)
                                        : run_training_step(config, comm);
}

}  // namespace seqpar
