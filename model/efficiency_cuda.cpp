// The GPU virtual-rank benchmark (see efficiency_cuda.hpp). Compiled only in CUDA builds.
#include "model/efficiency_cuda.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "attention/cuda/cuda_launchers.hpp"
#include "attention/dispatch.hpp"
#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"
#include "core/random.hpp"
#include "partition/layout.hpp"
#include "runtime/plan.hpp"

namespace seqpar {
namespace {

constexpr uint64_t kSeed = 2025;
constexpr float kBackwardLse = 8.0f;  // finite, so no row is skipped as fully masked

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Status upload(DeviceBuffer& buf, const void* host, size_t bytes) {
  SEQPAR_RETURN_IF_ERROR(buf.allocate(bytes));
  SEQPAR_CUDA_CHECK(cudaMemcpy(buf.data(), host, bytes, cudaMemcpyHostToDevice));
  return Status::ok();
}

// n storage-dtype values in [-1, 1), counter-based (the same every run).
Status random_tensor(DeviceBuffer& buf, uint64_t stream, size_t n, DType dtype) {
  std::vector<unsigned char> host(n * dtype_size(dtype));
  for (size_t i = 0; i < n; ++i) store_float(host.data(), dtype, i, uniform_pm1(kSeed, stream, i));
  return upload(buf, host.data(), host.size());
}

Status zero_floats(DeviceBuffer& buf, size_t n) {
  SEQPAR_RETURN_IF_ERROR(buf.allocate(n * sizeof(float)));
  SEQPAR_CUDA_CHECK(cudaMemset(buf.data(), 0, n * sizeof(float)));
  return Status::ok();
}

// The whole sequence's tensors; a block reads the slice starting at its shard's first token.
//   q, dout          (B, S, Hq, D) storage dtype     k, v     (B, S, Hkv, D) storage dtype
//   out, dq          (B, S, Hq, D) fp32 scratch      dk, dv   (B, S, Hkv, D) fp32 scratch
//   lse, delta       (B, Hq, S) fp32 scratch         lse_bwd  (B, Hq, S) fp32, all kBackwardLse
// A slice of Sq tokens from token `start` is read as a (B, Sq, ...) tensor: it ends before
// start + B * Sq <= B * S tokens' worth, inside the buffer (start <= S - Sq).
struct Tensors {
  DeviceBuffer q, dout, k, v, out, dq, dk, dv, lse, delta, lse_bwd;
};

Status allocate_tensors(const AttentionProblem& p, bool backward, Tensors& t) {
  const auto q_elems = static_cast<size_t>(p.batch * p.seq * p.heads_q * p.head_dim);
  const auto kv_elems = static_cast<size_t>(p.batch * p.seq * p.heads_kv * p.head_dim);
  const auto row_elems = static_cast<size_t>(p.batch * p.heads_q * p.seq);
  const size_t e = dtype_size(p.dtype);
  const size_t need = (backward ? 2 : 1) * q_elems * e + 2 * kv_elems * e + q_elems * 4 +
                      (backward ? q_elems * 4 + 2 * kv_elems * 4 + 2 * row_elems * 4 : 0) +
                      row_elems * 4;
  size_t free_bytes = 0, total_bytes = 0;
  SEQPAR_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  SEQPAR_REQUIRE(need < free_bytes, StatusCode::kOutOfMemory, "the whole-sequence tensors need ",
                 need >> 20, " MiB; the GPU has ", free_bytes >> 20, " MiB free");
  SEQPAR_RETURN_IF_ERROR(random_tensor(t.q, 1, q_elems, p.dtype));
  SEQPAR_RETURN_IF_ERROR(random_tensor(t.k, 2, kv_elems, p.dtype));
  SEQPAR_RETURN_IF_ERROR(random_tensor(t.v, 3, kv_elems, p.dtype));
  SEQPAR_RETURN_IF_ERROR(zero_floats(t.out, q_elems));
  SEQPAR_RETURN_IF_ERROR(zero_floats(t.lse, row_elems));
  if (backward) {
    SEQPAR_RETURN_IF_ERROR(random_tensor(t.dout, 4, q_elems, p.dtype));
    SEQPAR_RETURN_IF_ERROR(zero_floats(t.dq, q_elems));
    SEQPAR_RETURN_IF_ERROR(zero_floats(t.dk, kv_elems));
    SEQPAR_RETURN_IF_ERROR(zero_floats(t.dv, kv_elems));
    SEQPAR_RETURN_IF_ERROR(zero_floats(t.delta, row_elems));
    const std::vector<float> lse(row_elems, kBackwardLse);
    SEQPAR_RETURN_IF_ERROR(upload(t.lse_bwd, lse.data(), row_elems * sizeof(float)));
  }
  return Status::ok();
}

// One block to time: queries = tokens [q_start, q_start + sq) of the whole tensors, keys and
// values = [k_start, k_start + sk), with the positions of the shards they stand for.
struct Job {
  int64_t sq = 0, sk = 0;
  int64_t q_start = 0, k_start = 0;
  PositionMap q_pos, k_pos;
  bool accumulate = false;
  std::vector<double> forward_ms, backward_ms;  // one per timed round
};

// The address `elems` elements of `elem_bytes` into `buf`.
template <class T>
T* offset_by(DeviceBuffer& buf, int64_t elems, size_t elem_bytes) {
  void* at = static_cast<char*>(buf.data()) + static_cast<size_t>(elems) * elem_bytes;
  return static_cast<T*>(at);
}

struct Timer {
  CudaEvent start, mid, stop;
  Status create() {
    SEQPAR_RETURN_IF_ERROR(start.create(true));
    SEQPAR_RETURN_IF_ERROR(mid.create(true));
    return stop.create(true);
  }
};

// Runs one job's forward (and backward) once between CUDA events; records the times if `keep`.
Status run_job(const AttentionProblem& p, bool backward, Tensors& t, Job& job, cudaStream_t stream,
               Timer& timer, bool keep) {
  const KernelTarget target{Device::kCuda, stream};
  const size_t e = dtype_size(p.dtype);
  const int64_t q_row = p.heads_q * p.head_dim, kv_row = p.heads_kv * p.head_dim;
  const BlockShape shape{p.batch, job.sq, job.sk, p.heads_q, p.heads_kv, p.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  BlockForwardParams f;
  f.shape = shape;
  f.dtype = p.dtype;
  f.q = offset_by<const void>(t.q, job.q_start * q_row, e);
  f.k = offset_by<const void>(t.k, job.k_start * kv_row, e);
  f.v = offset_by<const void>(t.v, job.k_start * kv_row, e);
  f.out = offset_by<float>(t.out, job.q_start * q_row, sizeof(float));
  f.lse = offset_by<float>(t.lse, job.q_start * p.heads_q, sizeof(float));
  f.q_pos = job.q_pos;
  f.k_pos = job.k_pos;
  f.mask = p.mask;
  f.softmax_scale = scale;
  f.accumulate = job.accumulate;
  SEQPAR_CUDA_CHECK(cudaEventRecord(timer.start.get(), stream));
  SEQPAR_RETURN_IF_ERROR(run_block_forward(f, target));
  SEQPAR_CUDA_CHECK(cudaEventRecord(timer.mid.get(), stream));
  if (backward) {
    BlockBackwardParams g;
    g.shape = shape;
    g.dtype = p.dtype;
    g.q = f.q;
    g.k = f.k;
    g.v = f.v;
    g.dout = offset_by<const void>(t.dout, job.q_start * q_row, e);
    g.lse = offset_by<const float>(t.lse_bwd, job.q_start * p.heads_q, sizeof(float));
    g.delta = offset_by<const float>(t.delta, job.q_start * p.heads_q, sizeof(float));
    g.dq = offset_by<float>(t.dq, job.q_start * q_row, sizeof(float));
    g.dk = offset_by<float>(t.dk, job.k_start * kv_row, sizeof(float));
    g.dv = offset_by<float>(t.dv, job.k_start * kv_row, sizeof(float));
    g.q_pos = job.q_pos;
    g.k_pos = job.k_pos;
    g.mask = p.mask;
    g.softmax_scale = scale;
    SEQPAR_RETURN_IF_ERROR(run_block_backward(g, target));
  }
  SEQPAR_CUDA_CHECK(cudaEventRecord(timer.stop.get(), stream));
  SEQPAR_CUDA_CHECK(cudaEventSynchronize(timer.stop.get()));  // reports a kernel's fault too
  if (!keep) return Status::ok();
  float fwd_ms = 0.0f, bwd_ms = 0.0f;
  SEQPAR_CUDA_CHECK(cudaEventElapsedTime(&fwd_ms, timer.start.get(), timer.mid.get()));
  SEQPAR_CUDA_CHECK(cudaEventElapsedTime(&bwd_ms, timer.mid.get(), timer.stop.get()));
  job.forward_ms.push_back(fwd_ms);
  job.backward_ms.push_back(backward ? bwd_ms : 0.0);
  return Status::ok();
}

double median_seconds(std::vector<double> ms) {
  if (ms.empty()) return 0;
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] / 1e3;
}

// A scheme's shards: first token of each rank's slice in the whole tensors, and its positions
// (affine where the shard is one affine segment, else an index array in `index`, on the device).
struct Shards {
  Layout layout;
  std::vector<int64_t> start;
  std::vector<PositionMap> pos;
  DeviceBuffer index;
};

StatusOr<Shards> make_shards(const Layout& layout) {
  const int64_t seq = layout.seq();
  const int ranks = layout.ranks();
  Shards s{layout, {}, {}, {}};
  std::vector<int64_t> positions(static_cast<size_t>(seq));
  int64_t next = 0;
  for (int r = 0; r < ranks; ++r) {
    s.start.push_back(next);
    layout.positions(r, positions.data() + next);
    next += layout.local_seq(r);
  }
  SEQPAR_RETURN_IF_ERROR(upload(s.index, positions.data(), positions.size() * sizeof(int64_t)));
  for (int r = 0; r < ranks; ++r) {
    const std::vector<Segment> segments = layout.segments(r);
    if (segments.size() == 1) {
      s.pos.push_back(PositionMap::affine(segments[0].global_offset, segments[0].global_stride));
    } else {
      s.pos.push_back(PositionMap::indexed(
          offset_by<const int64_t>(s.index, s.start[static_cast<size_t>(r)], sizeof(int64_t))));
    }
  }
  return s;
}

}  // namespace

StatusOr<EfficiencyInput> measure_cuda_steps(const AttentionProblem& p, int ranks, bool backward,
                                             const std::vector<SchemeKind>& schemes,
                                             const CudaStepOptions& options) {
  SEQPAR_REQUIRE(cuda_device_count() > 0, StatusCode::kUnsupported,
                 "no CUDA device is visible (cudaGetDeviceCount reports none)");
  SEQPAR_RETURN_IF_ERROR(cuda_kernels_support(p.dtype, p.head_dim));
  SEQPAR_REQUIRE(p.batch >= 1 && p.heads_kv >= 1 && p.heads_q % p.heads_kv == 0,
                 StatusCode::kInvalidArgument, "batch >= 1 and heads (", p.heads_q,
                 ") a multiple of kv heads (", p.heads_kv, ") needed");
  SEQPAR_REQUIRE(options.warmup >= 0 && options.repeats >= 1, StatusCode::kInvalidArgument,
                 "warm-up rounds >= 0 and repeats >= 1 needed");
  int device = 0;
  SEQPAR_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  SEQPAR_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  const std::string gpu = prop.name;

  EfficiencyInput in;
  in.device = str_cat(gpu, " (CUDA; ", ranks, " virtual ranks in turn on one stream)");
  in.problem = p;
  in.backward = backward;
  in.ranks = ranks;

  // Jobs: the whole sequence, the rate's shard-sized block, then each scheme's busy blocks.
  std::vector<Job> jobs;
  Job whole;
  whole.sq = whole.sk = p.seq;
  whole.q_pos = whole.k_pos = PositionMap::affine(0);
  jobs.push_back(whole);
  SEQPAR_ASSIGN_OR_RETURN(const Layout contiguous,
                          Layout::make(LayoutKind::kContiguous, p.seq, ranks));
  const int64_t shard = contiguous.max_local_seq();
  const bool rate_block = shard < p.seq;
  if (rate_block) {
    Job small = whole;
    small.sq = small.sk = shard;
    jobs.push_back(small);
  }
  std::vector<Shards> shards;
  std::vector<std::vector<std::vector<StepBlock>>> blocks;  // (schemes, steps, P)
  for (SchemeKind scheme : schemes) {
    SEQPAR_ASSIGN_OR_RETURN(std::vector<std::vector<StepBlock>> steps,
                            scheme_step_blocks(scheme, p, ranks));
    PlanConfig config;
    config.problem = p;
    config.scheme = scheme;
    SEQPAR_ASSIGN_OR_RETURN(const Layout layout, plan_layout(config, ranks));
    SEQPAR_ASSIGN_OR_RETURN(Shards s, make_shards(layout));
    shards.push_back(std::move(s));
    blocks.push_back(std::move(steps));
  }
  for (size_t i = 0; i < schemes.size(); ++i) {
    const Shards& s = shards[i];
    for (const std::vector<StepBlock>& step : blocks[i]) {
      for (const StepBlock& b : step) {
        if (b.idle()) continue;
        const auto qb = static_cast<size_t>(b.q_block), kb = static_cast<size_t>(b.kv_block);
        Job job;
        job.sq = s.layout.local_seq(b.q_block);
        job.sk = s.layout.local_seq(b.kv_block);
        job.q_start = s.start[qb];
        job.k_start = s.start[kb];
        job.q_pos = s.pos[qb];
        job.k_pos = s.pos[kb];
        job.accumulate = b.accumulate;
        jobs.push_back(job);
      }
    }
  }

  Tensors tensors;
  SEQPAR_RETURN_IF_ERROR(allocate_tensors(p, backward, tensors));
  CudaStream stream;
  SEQPAR_RETURN_IF_ERROR(stream.create());
  Timer timer;
  SEQPAR_RETURN_IF_ERROR(timer.create());
  SEQPAR_CUDA_CHECK(cudaDeviceSynchronize());  // uploads done before the first timing
  const int rounds = options.warmup + options.repeats;
  for (int round = 0; round < rounds; ++round) {
    const double t0 = now_seconds();
    const bool keep = round >= options.warmup;
    for (Job& job : jobs) {
      SEQPAR_RETURN_IF_ERROR(run_job(p, backward, tensors, job, stream.get(), timer, keep));
    }
    if (options.progress) {
      std::fprintf(stderr, "[virtual ranks] round %d/%d (%s): %zu blocks, %.2f s\n", round + 1,
                   rounds, keep ? "timed" : "warm-up", jobs.size(), now_seconds() - t0);
    }
  }
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  SEQPAR_CUDA_CHECK(cudaGetLastError());

  in.whole_forward_seconds = median_seconds(jobs[0].forward_ms);
  in.whole_backward_seconds = backward ? median_seconds(jobs[0].backward_ms) : 0;
  std::vector<int64_t> tokens;
  std::vector<double> rate_fwd, rate_bwd;
  if (rate_block) {
    tokens.push_back(shard);
    rate_fwd.push_back(median_seconds(jobs[1].forward_ms));
    rate_bwd.push_back(backward ? median_seconds(jobs[1].backward_ms) : 0);
  }
  tokens.push_back(p.seq);
  rate_fwd.push_back(in.whole_forward_seconds);
  rate_bwd.push_back(in.whole_backward_seconds);
  const std::string source =
      str_cat("measured in this run: ", mask_name(p.mask), " t x t blocks at positions 0..t-1",
              rate_block ? str_cat(" (t = ", shard, " and ", p.seq, ")") : std::string(),
              ", kept-tile FLOPs over the median CUDA-event time");
  SEQPAR_ASSIGN_OR_RETURN(
      in.rate, rate_from_blocks(p, kernel_tiles_for(gpu), tokens, rate_fwd, rate_bwd, gpu, source));

  size_t next = rate_block ? 2 : 1;
  for (size_t i = 0; i < schemes.size(); ++i) {
    StepTimings timings;
    timings.scheme = schemes[i];
    for (const std::vector<StepBlock>& step : blocks[i]) {
      std::vector<double> fwd, bwd;
      for (const StepBlock& b : step) {
        const bool busy = !b.idle();
        fwd.push_back(busy ? median_seconds(jobs[next].forward_ms) : 0);
        bwd.push_back(busy && backward ? median_seconds(jobs[next].backward_ms) : 0);
        if (busy) ++next;
      }
      timings.forward_seconds.push_back(fwd);
      if (backward) timings.backward_seconds.push_back(bwd);
    }
    in.schemes.push_back(std::move(timings));
  }
  return in;
}

}  // namespace seqpar
