#pragma once
// The CUDA side of the threads backend on device memory, behind plain C++ (streams and events are
// opaque handles), so the rest of comm/threads/ builds with or without the CUDA toolkit: streams,
// pooled events, event record and wait, the device-to-device copy, and the rank-order reduction
// kernel (threads_reduce.cu). Nothing here waits for the device on the host. In builds without
// SEQPAR_HAVE_CUDA every call fails with kUnsupported (make_threads_communicators refuses
// Device::kCuda before any is made).
#include <cstddef>
#include <span>
#include <vector>

#include "comm/communicator.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"

namespace seqpar::threads_device {

using Stream = void*;  // a cudaStream_t; nullptr is the legacy default stream
using Event = void*;   // a cudaEvent_t

// The most ranks a device reduction combines (the kernel takes their buffers as launch
// arguments): the largest group a device-memory threads communicator may have.
inline constexpr int kMaxReduceRanks = 64;

// Whether this build has CUDA, and the CUDA devices visible (0 without a driver or a device).
bool built_with_cuda();
int visible_devices();
// The calling thread's current CUDA device, and making `device` current on the calling thread
// (the threads a device-memory group runs on all use the device of the thread that made it).
int current_device();
Status use_device(int device);

// A non-blocking stream (not ordered with the legacy stream), and its destruction (the work
// queued on it still runs).
StatusOr<Stream> create_stream();
void destroy_stream(Stream stream);

// Events without timing, owned and destroyed together. The list only grows, and only when asked
// for more events than ever before, so a warm user creates none.
class EventList {
 public:
  EventList() = default;
  ~EventList();
  EventList(EventList&& other) noexcept;
  EventList& operator=(EventList&& other) noexcept;
  EventList(const EventList&) = delete;
  EventList& operator=(const EventList&) = delete;

  Status reserve(size_t count);  // at least `count` events
  Event operator[](size_t i) const { return events_[i]; }

 private:
  void destroy();
  std::vector<Event> events_;
};

// Enqueues on `stream`: the event's record; a wait for the event's latest record (made before
// this call; none: no wait); a device-to-device copy (nothing for 0 bytes).
Status record(Event event, Stream stream);
Status stream_wait(Stream stream, Event event);
Status copy(void* dst, const void* src, size_t bytes, Stream stream);

// Enqueues on `stream`: dst[i] = op(inputs[0][first + i], inputs[1][first + i], ...) for i in
// [0, count), combined in the order of `inputs` (rank order), with comm/host_reduce.hpp's rule
// (fp32/fp64/i32/i64 in their own type; bf16/fp16 accumulated in fp32, rounded once), so every
// rank, and the host backend, get the same bits. dst may be inputs[k] + first for one k. At most
// kMaxReduceRanks inputs.
Status reduce_in_order(std::span<const void* const> inputs, size_t first, size_t count, DType dtype,
                       ReduceOp op, void* dst, Stream stream);

}  // namespace seqpar::threads_device
