// bench_cuda_kernel: device buffers with random inputs, CUDA-event timing of run_block_forward
// and of the backward (run_attention_delta + run_block_backward) on one stream.
#include "tools/cuda_kernel_bench.hpp"

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/dispatch.hpp"
#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"
#include "core/random.hpp"
#endif

namespace seqpar {

#ifdef SEQPAR_HAVE_CUDA
namespace {

constexpr uint64_t kBenchSeed = 2024;

// A device tensor of n random storage-dtype values in [-1, 1).
Status random_device_tensor(DeviceBuffer& buf, uint64_t stream, int64_t n, DType dtype) {
  std::vector<unsigned char> host(static_cast<size_t>(n) * dtype_size(dtype));
  for (int64_t i = 0; i < n; ++i) {
    store_float(host.data(), dtype, static_cast<size_t>(i),
                uniform_pm1(kBenchSeed, stream, static_cast<uint64_t>(i)));
  }
  SEQPAR_RETURN_IF_ERROR(buf.allocate(host.size()));
  SEQPAR_CUDA_CHECK(cudaMemcpy(buf.data(), host.data(), host.size(), cudaMemcpyHostToDevice));
  return Status::ok();
}

Status zeroed(DeviceBuffer& buf, size_t bytes) {
  SEQPAR_RETURN_IF_ERROR(buf.allocate(bytes));
  SEQPAR_CUDA_CHECK(cudaMemset(buf.data(), 0, bytes));
  return Status::ok();
}

// Median milliseconds of `iters` runs of `run` on `stream`, after `warmup` runs, each run
// between two CUDA events.
template <class F>
StatusOr<double> median_event_ms(cudaStream_t stream, int iters, int warmup, F&& run) {
  CudaEvent start, stop;
  SEQPAR_RETURN_IF_ERROR(start.create(true));
  SEQPAR_RETURN_IF_ERROR(stop.create(true));
  for (int i = 0; i < warmup; ++i) SEQPAR_RETURN_IF_ERROR(run());
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    SEQPAR_CUDA_CHECK(cudaEventRecord(start.get(), stream));
    SEQPAR_RETURN_IF_ERROR(run());
    SEQPAR_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
    SEQPAR_CUDA_CHECK(cudaEventSynchronize(stop.get()));
    float elapsed = 0.0f;
    SEQPAR_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start.get(), stop.get()));
    ms.push_back(elapsed);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

StatusOr<CudaKernelBenchResult> bench_cuda_kernel(const CudaKernelBenchConfig& cfg) {
  SEQPAR_REQUIRE(cuda_device_count() > 0, StatusCode::kUnsupported,
                 "--device cuda: no CUDA device is visible");
  CudaKernelBenchResult r;
  int device = 0;
  SEQPAR_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  SEQPAR_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  r.gpu = prop.name;

  const int64_t q_elems = cfg.batch * cfg.seq * cfg.heads * cfg.head_dim;      // (B, S, Hq, D)
  const int64_t kv_elems = cfg.batch * cfg.seq * cfg.kv_heads * cfg.head_dim;  // (B, S, Hkv, D)
  const int64_t stat_elems = cfg.batch * cfg.heads * cfg.seq;                  // (B, Hq, S)
  DeviceBuffer q, k, v, dout, out_stored, out, lse, delta, dq, dk, dv;
  SEQPAR_RETURN_IF_ERROR(random_device_tensor(q, 1, q_elems, cfg.dtype));
  SEQPAR_RETURN_IF_ERROR(random_device_tensor(k, 2, kv_elems, cfg.dtype));
  SEQPAR_RETURN_IF_ERROR(random_device_tensor(v, 3, kv_elems, cfg.dtype));
  SEQPAR_RETURN_IF_ERROR(random_device_tensor(dout, 4, q_elems, cfg.dtype));
  // The output as the caller holds it for delta (storage dtype); random values time the same.
  SEQPAR_RETURN_IF_ERROR(random_device_tensor(out_stored, 5, q_elems, cfg.dtype));
  const auto q_bytes = static_cast<size_t>(q_elems) * sizeof(float);
  const auto kv_bytes = static_cast<size_t>(kv_elems) * sizeof(float);
  const auto stat_bytes = static_cast<size_t>(stat_elems) * sizeof(float);
  SEQPAR_RETURN_IF_ERROR(zeroed(out, q_bytes));
  SEQPAR_RETURN_IF_ERROR(zeroed(lse, stat_bytes));
  SEQPAR_RETURN_IF_ERROR(zeroed(delta, stat_bytes));
  SEQPAR_RETURN_IF_ERROR(zeroed(dq, q_bytes));
  SEQPAR_RETURN_IF_ERROR(zeroed(dk, kv_bytes));
  SEQPAR_RETURN_IF_ERROR(zeroed(dv, kv_bytes));

  CudaStream stream;
  SEQPAR_RETURN_IF_ERROR(stream.create());
  const KernelTarget target{Device::kCuda, stream.get()};

  BlockForwardParams fwd;
  fwd.shape = {cfg.batch, cfg.seq, cfg.seq, cfg.heads, cfg.kv_heads, cfg.head_dim};
  fwd.dtype = cfg.dtype;
  fwd.q = q.data();
  fwd.k = k.data();
  fwd.v = v.data();
  fwd.out = static_cast<float*>(out.data());
  fwd.lse = static_cast<float*>(lse.data());
  fwd.mask = cfg.mask;
  fwd.softmax_scale = 1.0f / std::sqrt(static_cast<float>(cfg.head_dim));

  SEQPAR_ASSIGN_OR_RETURN(r.fwd_ms, median_event_ms(stream.get(), cfg.iters, cfg.warmup, [&] {
                            return run_block_forward(fwd, target);
                          }));

  BlockBackwardParams bwd;
  bwd.shape = fwd.shape;
  bwd.dtype = cfg.dtype;
  bwd.q = q.data();
  bwd.k = k.data();
  bwd.v = v.data();
  bwd.dout = dout.data();
  bwd.lse = fwd.lse;  // the forward's final lse
  bwd.delta = static_cast<float*>(delta.data());
  bwd.dq = static_cast<float*>(dq.data());
  bwd.dk = static_cast<float*>(dk.data());
  bwd.dv = static_cast<float*>(dv.data());
  bwd.mask = cfg.mask;
  bwd.softmax_scale = fwd.softmax_scale;
  SEQPAR_ASSIGN_OR_RETURN(
      r.bwd_ms, median_event_ms(stream.get(), cfg.iters, cfg.warmup, [&]() -> Status {
        SEQPAR_RETURN_IF_ERROR(run_attention_delta(out_stored.data(), dout.data(), cfg.dtype,
                                                   cfg.batch, cfg.seq, cfg.heads, cfg.head_dim,
                                                   static_cast<float*>(delta.data()), target));
        return run_block_backward(bwd, target);
      }));
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
  return r;
}

#else

StatusOr<CudaKernelBenchResult> bench_cuda_kernel(const CudaKernelBenchConfig& /*cfg*/) {
  return SEQPAR_FAIL(StatusCode::kUnsupported,
                     "--device cuda: this build has no CUDA toolkit (SEQPAR_HAVE_CUDA off)");
}

#endif

}  // namespace seqpar
