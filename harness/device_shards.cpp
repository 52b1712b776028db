// DeviceShards (harness/device_shards.hpp).
#include "harness/device_shards.hpp"

#include "runtime/agreement.hpp"
#ifdef SEQPAR_HAVE_CUDA
#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"
#endif

namespace seqpar {

#ifdef SEQPAR_HAVE_CUDA

struct DeviceShards::Impl {
  CudaStream stream;
  DeviceBuffer q, k, v, dout;  // (B, S_local, H, D) storage dtype
  DeviceBuffer out, dq, dk, dv;
  DeviceBuffer lse;  // (B, Hq, S_local) fp32

  // fn(device buffer, host buffer) for each tensor.
  template <class Fn>
  Status each_pair(const RankTensors& h, Fn fn) {
    const std::pair<DeviceBuffer*, const HostBuffer*> pairs[] = {
        {&q, &h.q},   {&k, &h.k},   {&v, &h.v},   {&dout, &h.dout}, {&out, &h.out},
        {&dq, &h.dq}, {&dk, &h.dk}, {&dv, &h.dv}, {&lse, &h.lse}};
    for (const auto& [device, host] : pairs) SEQPAR_RETURN_IF_ERROR(fn(*device, *host));
    return Status::ok();
  }
};

namespace {

Status copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (bytes > 0) SEQPAR_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
  return Status::ok();
}

}  // namespace

StatusOr<std::unique_ptr<DeviceShards>> DeviceShards::create() {
  std::unique_ptr<DeviceShards> shards(new DeviceShards());
  shards->impl_ = std::make_unique<Impl>();
  SEQPAR_RETURN_IF_ERROR(shards->impl_->stream.create());
  return shards;
}

Status DeviceShards::allocate(const RankTensors& host) {
  return impl_->each_pair(
      host, [](DeviceBuffer& d, const HostBuffer& h) { return d.allocate(h.bytes()); });
}

DeviceShards::~DeviceShards() = default;

void* DeviceShards::stream() const { return impl_->stream.get(); }

Status DeviceShards::upload_inputs(const RankTensors& host) {
  Impl& d = *impl_;
  const cudaStream_t s = d.stream.get();
  SEQPAR_RETURN_IF_ERROR(
      copy(d.q.data(), host.q.data(), host.q.bytes(), cudaMemcpyHostToDevice, s));
  SEQPAR_RETURN_IF_ERROR(
      copy(d.k.data(), host.k.data(), host.k.bytes(), cudaMemcpyHostToDevice, s));
  SEQPAR_RETURN_IF_ERROR(
      copy(d.v.data(), host.v.data(), host.v.bytes(), cudaMemcpyHostToDevice, s));
  return copy(d.dout.data(), host.dout.data(), host.dout.bytes(), cudaMemcpyHostToDevice, s);
}

Status DeviceShards::download_outputs(RankTensors& host, bool backward) {
  Impl& d = *impl_;
  const cudaStream_t s = d.stream.get();
  SEQPAR_RETURN_IF_ERROR(
      copy(host.out.data(), d.out.data(), host.out.bytes(), cudaMemcpyDeviceToHost, s));
  SEQPAR_RETURN_IF_ERROR(
      copy(host.lse.data(), d.lse.data(), host.lse.bytes(), cudaMemcpyDeviceToHost, s));
  if (backward) {
    for (auto [from, to] : {std::pair{&d.dq, &host.dq}, {&d.dk, &host.dk}, {&d.dv, &host.dv}}) {
      SEQPAR_RETURN_IF_ERROR(
          copy(to->data(), from->data(), to->bytes(), cudaMemcpyDeviceToHost, s));
    }
  }
  return sync();
}

Status DeviceShards::sync() {
  SEQPAR_CUDA_CHECK(cudaStreamSynchronize(impl_->stream.get()));
  return Status::ok();
}

ForwardArgs DeviceShards::forward_args() {
  Impl& d = *impl_;
  return {d.q.data(), d.k.data(), d.v.data(), d.out.data(), static_cast<float*>(d.lse.data())};
}

BackwardArgs DeviceShards::backward_args() {
  Impl& d = *impl_;
  return {d.q.data(),    d.k.data(),  d.v.data(),  d.out.data(), static_cast<float*>(d.lse.data()),
          d.dout.data(), d.dq.data(), d.dk.data(), d.dv.data()};
}

#else  // no CUDA toolkit

struct DeviceShards::Impl {};

StatusOr<std::unique_ptr<DeviceShards>> DeviceShards::create() {
  return SEQPAR_FAIL(StatusCode::kUnsupported,
                     "device tensors: this build has no CUDA toolkit (use host memory)");
}
Status DeviceShards::allocate(const RankTensors&) { return Status::ok(); }
DeviceShards::~DeviceShards() = default;
void* DeviceShards::stream() const { return nullptr; }
Status DeviceShards::upload_inputs(const RankTensors&) { return Status::ok(); }
Status DeviceShards::download_outputs(RankTensors&, bool) { return Status::ok(); }
Status DeviceShards::sync() { return Status::ok(); }
ForwardArgs DeviceShards::forward_args() { return {}; }
BackwardArgs DeviceShards::backward_args() { return {}; }

#endif

StatusOr<std::unique_ptr<DeviceShards>> device_shards_for(Device device, Communicator& comm) {
  if (device == Device::kHost) return std::unique_ptr<DeviceShards>();
  StatusOr<std::unique_ptr<DeviceShards>> made = DeviceShards::create();
  SEQPAR_RETURN_IF_ERROR(agree_across_ranks(made.status(), comm, "create their CUDA stream"));
  return made;
}

}  // namespace seqpar
