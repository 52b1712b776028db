// The threads backend's CUDA calls (threads_device.hpp): streams, events, copies and the
// reduction launch; kUnsupported in builds without CUDA.
#include "comm/threads/threads_device.hpp"

#include <utility>

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "comm/threads/threads_reduce_launch.hpp"
#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"
#endif

namespace seqpar::threads_device {

static_assert(kMaxReduceRanks > 0);

#ifdef SEQPAR_HAVE_CUDA
static_assert(kMaxReduceRanks == kReduceInputCapacity);

namespace {

cudaStream_t cuda_stream(Stream stream) { return static_cast<cudaStream_t>(stream); }
cudaEvent_t cuda_event(Event event) { return static_cast<cudaEvent_t>(event); }

}  // namespace

bool built_with_cuda() { return true; }
int visible_devices() { return cuda_device_count(); }

int current_device() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  return device;
}

Status use_device(int device) {
  SEQPAR_CUDA_CHECK(cudaSetDevice(device));
  return Status::ok();
}

StatusOr<Stream> create_stream() {
  cudaStream_t stream = nullptr;
  SEQPAR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return Stream{stream};
}

void destroy_stream(Stream stream) {
  if (stream != nullptr) cudaStreamDestroy(cuda_stream(stream));
}

Status EventList::reserve(size_t count) {
  while (events_.size() < count) {
    cudaEvent_t event = nullptr;
    SEQPAR_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    events_.push_back(event);
  }
  return Status::ok();
}

void EventList::destroy() {
  for (Event event : events_) cudaEventDestroy(cuda_event(event));
  events_.clear();
}

Status record(Event event, Stream stream) {
  SEQPAR_CUDA_CHECK(cudaEventRecord(cuda_event(event), cuda_stream(stream)));
  return Status::ok();
}

Status stream_wait(Stream stream, Event event) {
  SEQPAR_CUDA_CHECK(cudaStreamWaitEvent(cuda_stream(stream), cuda_event(event), 0));
  return Status::ok();
}

Status copy(void* dst, const void* src, size_t bytes, Stream stream) {
  if (bytes == 0) return Status::ok();
  SEQPAR_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream(stream)));
  return Status::ok();
}

Status reduce_in_order(std::span<const void* const> inputs, size_t first, size_t count, DType dtype,
                       ReduceOp op, void* dst, Stream stream) {
  SEQPAR_REQUIRE(!inputs.empty() && inputs.size() <= static_cast<size_t>(kMaxReduceRanks),
                 StatusCode::kUnsupported, "device reduction over ", inputs.size(),
                 " ranks: it combines 1 to ", kMaxReduceRanks);
  ReduceInOrder params;
  for (size_t k = 0; k < inputs.size(); ++k) params.inputs[k] = inputs[k];
  params.input_count = static_cast<int>(inputs.size());
  params.first = static_cast<int64_t>(first);
  params.count = static_cast<int64_t>(count);
  params.dst = dst;
  params.dtype = dtype;
  params.take_max = op == ReduceOp::kMax;
  SEQPAR_CUDA_CHECK(launch_reduce_in_order(params, cuda_stream(stream)));
  return Status::ok();
}

#else  // no CUDA in this build

namespace {

Status no_cuda() {
  return SEQPAR_FAIL(StatusCode::kUnsupported,
                     "the threads backend on device memory needs a build with CUDA "
                     "(SEQPAR_HAVE_CUDA); this one has none");
}

}  // namespace

bool built_with_cuda() { return false; }
int visible_devices() { return 0; }
int current_device() { return 0; }
Status use_device(int) { return no_cuda(); }
StatusOr<Stream> create_stream() { return no_cuda(); }
void destroy_stream(Stream) {}
Status EventList::reserve(size_t count) {
  return count <= events_.size() ? Status::ok() : no_cuda();
}
void EventList::destroy() { events_.clear(); }
Status record(Event, Stream) { return no_cuda(); }
Status stream_wait(Stream, Event) { return no_cuda(); }
Status copy(void*, const void*, size_t, Stream) { return no_cuda(); }
Status reduce_in_order(std::span<const void* const>, size_t, size_t, DType, ReduceOp, void*,
                       Stream) {
  return no_cuda();
}

#endif

EventList::~EventList() { destroy(); }

EventList::EventList(EventList&& other) noexcept : events_(std::move(other.events_)) {
  other.events_.clear();
}

EventList& EventList::operator=(EventList&& other) noexcept {
  if (this != &other) {
    destroy();
    events_ = std::move(other.events_);
    other.events_.clear();
  }
  return *this;
}

}  // namespace seqpar::threads_device
