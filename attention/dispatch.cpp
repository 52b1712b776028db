// run_block_forward / run_block_backward / run_attention_delta / run_merge_partials: host targets
// run the CPU kernels; CUDA targets run the CUDA kernels (attention/cuda/) in builds with the
// CUDA toolkit, and are refused with kUnsupported in builds without it.
#include "attention/dispatch.hpp"

#include "attention/cpu_block_attention.hpp"
#ifdef SEQPAR_HAVE_CUDA
#include "attention/cuda/cuda_launchers.hpp"
#endif

namespace seqpar {

namespace {

#ifndef SEQPAR_HAVE_CUDA
Status cuda_not_built(const char* op) {
  return SEQPAR_FAIL(StatusCode::kUnsupported, op,
                     ": the CUDA attention kernels are not built (this build has no CUDA "
                     "toolkit); use a host target");
}
#endif

}  // namespace

size_t block_kernel_scratch_bytes(const BlockShape& shape, const KernelTarget& target,
                                  bool backward) {
  if (target.device == Device::kHost)
    return cpu_block_scratch_floats(shape, backward) * sizeof(float);
#ifdef SEQPAR_HAVE_CUDA
  return cuda_block_scratch_bytes(shape);
#else
  return 0;
#endif
}

Status block_kernels_support(Device device, DType dtype, int64_t head_dim) {
  if (device == Device::kHost) return Status::ok();
#ifdef SEQPAR_HAVE_CUDA
  return cuda_kernels_support(dtype, head_dim);
#else
  (void)dtype;
  (void)head_dim;
  return cuda_not_built("device plans");
#endif
}

namespace {
thread_local BlockKernelCalls t_block_kernel_calls;
}  // namespace

BlockKernelCalls block_kernel_calls_on_this_thread() { return t_block_kernel_calls; }

Status run_block_forward(const BlockForwardParams& p, const KernelTarget& target) {
  ++t_block_kernel_calls.forward;
  if (target.device == Device::kHost) {
    cpu_block_forward(p);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  return cuda_block_forward(p, target.stream);
#else
  return cuda_not_built("block forward");
#endif
}

Status run_block_backward(const BlockBackwardParams& p, const KernelTarget& target) {
  ++t_block_kernel_calls.backward;
  if (target.device == Device::kHost) {
    cpu_block_backward(p);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  return cuda_block_backward(p, target.stream);
#else
  return cuda_not_built("block backward");
#endif
}

Status run_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch,
                           int64_t seq, int64_t heads, int64_t head_dim, float* delta,
                           const KernelTarget& target) {
  if (target.device == Device::kHost) {
    cpu_attention_delta(out, dout, dtype, batch, seq, heads, head_dim, delta);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  return cuda_attention_delta(out, dout, dtype, batch, seq, heads, head_dim, delta, target.stream);
#else
  return cuda_not_built("attention delta");
#endif
}

Status run_merge_partials(float* out, float* lse, const float* out2, const float* lse2,
                          int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          const KernelTarget& target) {
  if (target.device == Device::kHost) {
    cpu_merge_partials(out, lse, out2, lse2, batch, seq, heads, head_dim);
    return Status::ok();
  }
#ifdef SEQPAR_HAVE_CUDA
  return cuda_merge_partials(out, lse, out2, lse2, batch, seq, heads, head_dim, target.stream);
#else
  return cuda_not_built("merge partials");
#endif
}

}  // namespace seqpar
