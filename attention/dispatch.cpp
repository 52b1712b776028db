// run_block_forward / run_block_backward / run_attention_delta / run_merge_partials: host targets
// run the CPU kernels; CUDA targets are refused until the CUDA kernels land.
#include "attention/dispatch.hpp"

#include "attention/cpu_block_attention.hpp"

namespace seqpar {

namespace {

Status cuda_not_built(const char* op) {
  return SEQPAR_FAIL(StatusCode::kUnsupported, op,
                     ": the CUDA attention kernels are not built yet; use a host target");
}

}  // namespace

size_t block_kernel_scratch_bytes(const BlockShape& shape, const KernelTarget& target) {
  return target.device == Device::kHost ? cpu_block_scratch_floats(shape) * sizeof(float) : 0;
}

Status run_block_forward(const BlockForwardParams& p, const KernelTarget& target) {
  if (target.device != Device::kHost) return cuda_not_built("block forward");
  cpu_block_forward(p);
  return Status::ok();
}

Status run_block_backward(const BlockBackwardParams& p, const KernelTarget& target) {
  if (target.device != Device::kHost) return cuda_not_built("block backward");
  cpu_block_backward(p);
  return Status::ok();
}

Status run_attention_delta(const void* out, const void* dout, DType dtype, int64_t batch,
                           int64_t seq, int64_t heads, int64_t head_dim, float* delta,
                           const KernelTarget& target) {
  if (target.device != Device::kHost) return cuda_not_built("attention delta");
  cpu_attention_delta(out, dout, dtype, batch, seq, heads, head_dim, delta);
  return Status::ok();
}

Status run_merge_partials(float* out, float* lse, const float* out2, const float* lse2,
                          int64_t batch, int64_t seq, int64_t heads, int64_t head_dim,
                          const KernelTarget& target) {
  if (target.device != Device::kHost) return cuda_not_built("merge partials");
  cpu_merge_partials(out, lse, out2, lse2, batch, seq, heads, head_dim);
  return Status::ok();
}

}  // namespace seqpar
