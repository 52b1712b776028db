// The emulated GPU's memory, streams, events and device thread (cuda_emu/device.hpp).
#include "cuda_emu/device.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

#include "cuda_emu/cta.hpp"

namespace seqpar::cuda_emu {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kTotalMemory = size_t{16} << 30;  // what cudaMemGetInfo reports as the total
constexpr size_t kAllocationAlignment = 256;       // cudaMalloc's guarantee
constexpr unsigned char kPoisonByte = 0xff;        // a NaN in bf16, fp16 and fp32

thread_local uint64_t t_host_waits = 0;  // host_waits_on_this_thread()
thread_local int t_runtime_calls = 0;    // EmulatedRuntimeCall depth

// ---- operations queued on a stream ----

struct Copy {
  void* dst;
  const void* src;
  size_t bytes;
};
struct Fill {
  void* dst;
  int value;
  size_t bytes;
};
struct Kernel {
  GridLaunch launch;
};
struct Record {
  struct EventState* event;
  uint64_t number;  // the event's record count when this record was queued
};
struct Wait {
  struct EventState* event;
  uint64_t number;  // the record it waits for
};
using Work = std::variant<Copy, Fill, Kernel, Record, Wait>;

struct Queued {
  uint64_t ticket;  // global enqueue order (the legacy stream's ordering)
  Work work;
};

struct EventState {
  bool timing = true;
  uint64_t recorded = 0;   // cudaEventRecord calls so far
  uint64_t completed = 0;  // the last record the device has reached
  Clock::time_point at;    // when it reached it
};

struct StreamState {
  bool blocking = true;  // ordered with the legacy stream (not cudaStreamNonBlocking)
  std::deque<Queued> queue;
  bool busy = false;  // its head is running on the device thread
  uint64_t busy_ticket = 0;
};

class Device {
 public:
  Device() {
    if (const char* env = std::getenv("SEQPAR_CUDA_EMU_SEED")) {
      seed_ = std::strtoull(env, nullptr, 10);
    } else {
      seed_ = std::random_device{}();
    }
    rng_.seed(static_cast<unsigned>(seed_));
    streams_[nullptr] = std::make_unique<StreamState>();  // the legacy default stream
    worker_ = std::thread([this] { serve(); });
  }
  ~Device() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    worker_.join();
    for (auto& [at, bytes] : allocations_) std::free(reinterpret_cast<void*>(at));
  }

  // ---- memory ----

  cudaError_t malloc(void** p, size_t bytes) {
    if (p == nullptr) return set_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(mutex_);
    if (sticky_ != cudaSuccess) return sticky_;
    if (bytes == 0) {
      *p = nullptr;
      return cudaSuccess;
    }
    if (allocated_ + bytes > kTotalMemory) return set_error_locked(cudaErrorMemoryAllocation);
    const size_t rounded =
        (bytes + kAllocationAlignment - 1) / kAllocationAlignment * kAllocationAlignment;
    void* at = std::aligned_alloc(kAllocationAlignment, rounded);
    if (at == nullptr) return set_error_locked(cudaErrorMemoryAllocation);
    std::memset(at, kPoisonByte, rounded);  // never-written device memory reads as NaN
    allocations_[reinterpret_cast<uintptr_t>(at)] = bytes;
    allocated_ += bytes;
    *p = at;
    return cudaSuccess;
  }

  cudaError_t free(void* p) {
    if (p == nullptr) return cudaSuccess;
    std::unique_lock<std::mutex> lock(mutex_);
    // cudaFree synchronises the device: no queued work may still use the memory.
    wait_locked(lock, [&] { return all_idle_locked(); });
    const auto found = allocations_.find(reinterpret_cast<uintptr_t>(p));
    if (found == allocations_.end()) return set_error_locked(cudaErrorInvalidValue);
    allocated_ -= found->second;
    allocations_.erase(found);
    lock.unlock();
    std::free(p);
    return cudaSuccess;
  }

  cudaError_t memory_info(size_t* free_bytes, size_t* total_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_bytes != nullptr) *free_bytes = kTotalMemory - allocated_;
    if (total_bytes != nullptr) *total_bytes = kTotalMemory;
    return cudaSuccess;
  }

  bool contains(const void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    return contains_locked(p, bytes);
  }

  // ---- streams ----

  cudaError_t stream_create(cudaStream_t* stream, unsigned flags) {
    if (stream == nullptr) return set_error(cudaErrorInvalidValue);
    auto state = std::make_unique<StreamState>();
    state->blocking = (flags & cudaStreamNonBlocking) == 0;
    *stream = reinterpret_cast<cudaStream_t>(state.get());
    std::lock_guard<std::mutex> lock(mutex_);
    streams_[*stream] = std::move(state);
    return cudaSuccess;
  }

  cudaError_t stream_destroy(cudaStream_t stream) {
    std::unique_lock<std::mutex> lock(mutex_);
    StreamState* s = stream_locked(stream);
    if (s == nullptr || stream == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    wait_locked(lock, [&] { return idle(*s); });  // its queued work still runs
    streams_.erase(stream);
    return cudaSuccess;
  }

  cudaError_t stream_synchronize(cudaStream_t stream) {
    std::unique_lock<std::mutex> lock(mutex_);
    StreamState* s = stream_locked(stream);
    if (s == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    wait_locked(lock, [&] { return idle(*s); });
    return sticky_;
  }

  cudaError_t device_synchronize() {
    std::unique_lock<std::mutex> lock(mutex_);
    wait_locked(lock, [&] { return all_idle_locked(); });
    return sticky_;
  }

  // ---- events ----

  cudaError_t event_create(cudaEvent_t* event, unsigned flags) {
    if (event == nullptr) return set_error(cudaErrorInvalidValue);
    auto state = std::make_unique<EventState>();
    state->timing = (flags & cudaEventDisableTiming) == 0;
    *event = reinterpret_cast<cudaEvent_t>(state.get());
    std::lock_guard<std::mutex> lock(mutex_);
    events_[*event] = std::move(state);
    return cudaSuccess;
  }

  cudaError_t event_destroy(cudaEvent_t event) {
    std::unique_lock<std::mutex> lock(mutex_);
    EventState* e = event_locked(event);
    if (e == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    // Queued records and waits still point at it: it goes once they have run.
    wait_locked(lock, [&] { return e->completed == e->recorded && !waited_on_locked(e); });
    events_.erase(event);
    return cudaSuccess;
  }

  cudaError_t event_record(cudaEvent_t event, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    EventState* e = event_locked(event);
    if (e == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    return enqueue_locked(stream, Record{e, ++e->recorded});
  }

  cudaError_t stream_wait_event(cudaStream_t stream, cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(mutex_);
    EventState* e = event_locked(event);
    if (e == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    if (e->recorded == 0) return cudaSuccess;  // never recorded: nothing to wait for
    return enqueue_locked(stream, Wait{e, e->recorded});
  }

  cudaError_t event_synchronize(cudaEvent_t event) {
    std::unique_lock<std::mutex> lock(mutex_);
    EventState* e = event_locked(event);
    if (e == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    const uint64_t target = e->recorded;
    wait_locked(lock, [&] { return e->completed >= target; });
    return sticky_;
  }

  cudaError_t event_query(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(mutex_);
    EventState* e = event_locked(event);
    if (e == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    if (sticky_ != cudaSuccess) return sticky_;
    return e->completed >= e->recorded ? cudaSuccess : cudaErrorNotReady;
  }

  cudaError_t event_elapsed_ms(float* ms, cudaEvent_t start, cudaEvent_t end) {
    std::lock_guard<std::mutex> lock(mutex_);
    EventState* a = event_locked(start);
    EventState* b = event_locked(end);
    if (ms == nullptr || a == nullptr || b == nullptr) {
      return set_error_locked(cudaErrorInvalidValue);
    }
    if (!a->timing || !b->timing) return set_error_locked(cudaErrorInvalidResourceHandle);
    if (a->recorded == 0 || b->recorded == 0 || a->completed < a->recorded ||
        b->completed < b->recorded) {
      return cudaErrorNotReady;
    }
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return cudaSuccess;
  }

  // ---- work ----

  cudaError_t memcpy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                           cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes == 0) return sticky_;
    if (dst == nullptr || src == nullptr) return set_error_locked(cudaErrorInvalidValue);
    const bool dst_device = contains_locked(dst, 1);
    const bool src_device = contains_locked(src, 1);
    bool want_dst_device = dst_device, want_src_device = src_device;
    switch (kind) {
      case cudaMemcpyHostToDevice:
        want_dst_device = true;
        want_src_device = false;
        break;
      case cudaMemcpyDeviceToHost:
        want_dst_device = false;
        want_src_device = true;
        break;
      case cudaMemcpyDeviceToDevice:
        want_dst_device = want_src_device = true;
        break;
      case cudaMemcpyHostToHost:
        want_dst_device = want_src_device = false;
        break;
      case cudaMemcpyDefault:
        break;
      default:
        return set_error_locked(cudaErrorInvalidMemcpyDirection);
    }
    // Device sides must be device memory, whole; host sides must not be.
    if ((want_dst_device && !contains_locked(dst, bytes)) ||
        (want_src_device && !contains_locked(src, bytes)) || (!want_dst_device && dst_device) ||
        (!want_src_device && src_device)) {
      report_locked("cudaMemcpy",
                    "a pointer is not the kind of memory the copy's direction says, "
                    "or its range leaves its device allocation");
      return set_error_locked(cudaErrorInvalidValue);
    }
    return enqueue_locked(stream, Copy{dst, src, bytes});
  }

  cudaError_t memset_async(void* dst, int value, size_t bytes, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes == 0) return sticky_;
    if (!contains_locked(dst, bytes)) {
      report_locked("cudaMemset", "the range is not inside one device allocation");
      return set_error_locked(cudaErrorInvalidValue);
    }
    return enqueue_locked(stream, Fill{dst, value, bytes});
  }

  cudaError_t launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
                     cudaStream_t stream, std::function<void()> thread_body) {
    std::lock_guard<std::mutex> lock(mutex_);
    const uint64_t threads = uint64_t{block.x} * block.y * block.z;
    const auto limit = smem_limits_.find(kernel);
    const size_t smem_limit = limit != smem_limits_.end() ? limit->second : kDefaultDynamicSmem;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 ||
        threads > static_cast<uint64_t>(kMaxThreadsPerBlock) || grid.y > 65535 || grid.z > 65535 ||
        block.z > 64) {
      return set_error_locked(cudaErrorInvalidConfiguration);
    }
    if (smem_bytes > smem_limit) return set_error_locked(cudaErrorInvalidValue);
    GridLaunch launch{grid, block, smem_bytes, std::move(thread_body), rng_()};
    return enqueue_locked(stream, Kernel{std::move(launch)});
  }

  cudaError_t set_max_dynamic_smem(const void* kernel, int bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (kernel == nullptr || bytes < 0 || static_cast<size_t>(bytes) > kMaxDynamicSmem) {
      return set_error_locked(cudaErrorInvalidValue);
    }
    smem_limits_[kernel] = static_cast<size_t>(bytes);
    return cudaSuccess;
  }

  cudaError_t take_last_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    cudaError_t& mine = last_error_[std::this_thread::get_id()];
    const cudaError_t err = sticky_ != cudaSuccess ? sticky_ : mine;
    mine = cudaSuccess;
    return err;
  }

  cudaError_t peek_last_error() {
    std::lock_guard<std::mutex> lock(mutex_);
    const cudaError_t mine = last_error_[std::this_thread::get_id()];
    return sticky_ != cudaSuccess ? sticky_ : mine;
  }

 private:
  cudaError_t set_error(cudaError_t err) {
    std::lock_guard<std::mutex> lock(mutex_);
    return set_error_locked(err);
  }
  cudaError_t set_error_locked(cudaError_t err) {
    last_error_[std::this_thread::get_id()] = err;
    return err;
  }

  void report_locked(const char* what, const char* why) {
    std::fprintf(stderr, "seqpar CUDA emulator (seed %llu): %s: %s\n",
                 static_cast<unsigned long long>(seed_), what, why);
  }

  bool contains_locked(const void* p, size_t bytes) const {
    const auto at = reinterpret_cast<uintptr_t>(p);
    auto found = allocations_.upper_bound(at);
    if (found == allocations_.begin()) return false;
    --found;
    return at >= found->first && at + bytes <= found->first + found->second;
  }

  StreamState* stream_locked(cudaStream_t stream) {
    const auto found = streams_.find(stream);
    return found == streams_.end() ? nullptr : found->second.get();
  }
  EventState* event_locked(cudaEvent_t event) {
    const auto found = events_.find(event);
    return found == events_.end() ? nullptr : found->second.get();
  }

  static bool idle(const StreamState& s) { return s.queue.empty() && !s.busy; }
  bool all_idle_locked() const {
    for (const auto& [handle, s] : streams_) {
      if (!idle(*s)) return false;
    }
    return true;
  }
  bool waited_on_locked(const EventState* e) const {
    for (const auto& [handle, s] : streams_) {
      for (const Queued& q : s->queue) {
        if (const Wait* w = std::get_if<Wait>(&q.work); w != nullptr && w->event == e) return true;
        if (const Record* r = std::get_if<Record>(&q.work); r != nullptr && r->event == e) {
          return true;
        }
      }
    }
    return false;
  }

  template <class Done>
  void wait_locked(std::unique_lock<std::mutex>& lock, Done done) {
    ++t_host_waits;
    done_cv_.wait(lock, done);
  }

  cudaError_t enqueue_locked(cudaStream_t stream, Work work) {
    if (sticky_ != cudaSuccess) return sticky_;
    StreamState* s = stream_locked(stream);
    if (s == nullptr) return set_error_locked(cudaErrorInvalidResourceHandle);
    s->queue.push_back({++tickets_, std::move(work)});
    work_cv_.notify_one();
    return cudaSuccess;
  }

  // The oldest ticket still pending (queued or running) on `s`, or none.
  static uint64_t oldest(const StreamState& s) {
    if (s.busy) return s.busy_ticket;
    return s.queue.empty() ? UINT64_MAX : s.queue.front().ticket;
  }

  // Whether the head of `s` may start now.
  bool may_start_locked(cudaStream_t handle, const StreamState& s) const {
    if (s.busy || s.queue.empty()) return false;
    const Queued& head = s.queue.front();
    if (const Wait* w = std::get_if<Wait>(&head.work); w != nullptr) {
      if (w->event->completed < w->number) return false;
    }
    if (handle == nullptr) {  // the legacy stream waits for earlier work on blocking streams
      for (const auto& [other, state] : streams_) {
        if (other != nullptr && state->blocking && oldest(*state) < head.ticket) return false;
      }
    } else if (s.blocking) {  // and blocking streams wait for earlier legacy-stream work
      if (oldest(*streams_.at(nullptr)) < head.ticket) return false;
    }
    return true;
  }

  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      std::vector<StreamState*> startable;
      for (const auto& [handle, s] : streams_) {
        if (may_start_locked(handle, *s)) startable.push_back(s.get());
      }
      if (startable.empty()) {
        if (stop_) return;
        work_cv_.wait(lock);
        continue;
      }
      // Now and then let other streams' work arrive first.
      if (startable.size() == 1 && rng_() % 4 == 0) {
        const auto pause = std::chrono::microseconds(rng_() % 200);
        lock.unlock();
        std::this_thread::sleep_for(pause);
        lock.lock();
        continue;
      }
      StreamState* s = startable[rng_() % startable.size()];
      Queued item = std::move(s->queue.front());
      s->queue.pop_front();
      s->busy = true;
      s->busy_ticket = item.ticket;
      lock.unlock();
      const std::string failure = run(item.work);
      lock.lock();
      if (const Record* r = std::get_if<Record>(&item.work); r != nullptr) {
        r->event->completed = r->number;
        r->event->at = Clock::now();
      }
      if (!failure.empty()) {
        std::fprintf(stderr, "seqpar CUDA emulator (seed %llu): kernel failed:\n%s\n",
                     static_cast<unsigned long long>(seed_), failure.c_str());
        sticky_ = cudaErrorLaunchFailure;
      }
      s->busy = false;
      done_cv_.notify_all();
    }
  }

  // Runs one operation on the device thread (without the lock); a kernel's failures.
  std::string run(Work& work) {
    if (Copy* c = std::get_if<Copy>(&work); c != nullptr) {
      std::memmove(c->dst, c->src, c->bytes);
    } else if (Fill* f = std::get_if<Fill>(&work); f != nullptr) {
      std::memset(f->dst, f->value, f->bytes);
    } else if (Kernel* k = std::get_if<Kernel>(&work); k != nullptr) {
      if (sticky_ == cudaSuccess) return run_grid(k->launch);
    }
    return {};
  }

  std::mutex mutex_;
  std::condition_variable work_cv_;  // the device thread waits for work
  std::condition_variable done_cv_;  // host threads wait for work to finish
  std::map<uintptr_t, size_t> allocations_;
  size_t allocated_ = 0;
  std::unordered_map<cudaStream_t, std::unique_ptr<StreamState>> streams_;
  std::unordered_map<cudaEvent_t, std::unique_ptr<EventState>> events_;
  std::unordered_map<const void*, size_t> smem_limits_;
  std::unordered_map<std::thread::id, cudaError_t> last_error_;
  cudaError_t sticky_ = cudaSuccess;
  uint64_t tickets_ = 0;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  bool stop_ = false;
  std::thread worker_;
};

Device& the_device() {
  static Device device;
  return device;
}

}  // namespace

uint64_t host_waits_on_this_thread() { return t_host_waits; }

EmulatedRuntimeCall::EmulatedRuntimeCall() { ++t_runtime_calls; }
EmulatedRuntimeCall::~EmulatedRuntimeCall() { --t_runtime_calls; }
bool in_emulated_runtime() { return t_runtime_calls > 0; }

bool device_contains(const void* p, size_t bytes) { return the_device().contains(p, bytes); }

namespace device {

cudaError_t malloc(void** p, size_t bytes) { return the_device().malloc(p, bytes); }
cudaError_t free(void* p) { return the_device().free(p); }
cudaError_t memory_info(size_t* free_bytes, size_t* total_bytes) {
  return the_device().memory_info(free_bytes, total_bytes);
}
bool is_device_pointer(const void* p) { return the_device().contains(p, 1); }
cudaError_t stream_create(cudaStream_t* stream, unsigned flags) {
  return the_device().stream_create(stream, flags);
}
cudaError_t stream_destroy(cudaStream_t stream) { return the_device().stream_destroy(stream); }
cudaError_t stream_synchronize(cudaStream_t stream) {
  return the_device().stream_synchronize(stream);
}
cudaError_t stream_wait_event(cudaStream_t stream, cudaEvent_t event) {
  return the_device().stream_wait_event(stream, event);
}
cudaError_t device_synchronize() { return the_device().device_synchronize(); }
cudaError_t event_create(cudaEvent_t* event, unsigned flags) {
  return the_device().event_create(event, flags);
}
cudaError_t event_destroy(cudaEvent_t event) { return the_device().event_destroy(event); }
cudaError_t event_record(cudaEvent_t event, cudaStream_t stream) {
  return the_device().event_record(event, stream);
}
cudaError_t event_synchronize(cudaEvent_t event) { return the_device().event_synchronize(event); }
cudaError_t event_query(cudaEvent_t event) { return the_device().event_query(event); }
cudaError_t event_elapsed_ms(float* ms, cudaEvent_t start, cudaEvent_t end) {
  return the_device().event_elapsed_ms(ms, start, end);
}
cudaError_t memcpy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                         cudaStream_t stream) {
  return the_device().memcpy_async(dst, src, bytes, kind, stream);
}
cudaError_t memset_async(void* dst, int value, size_t bytes, cudaStream_t stream) {
  return the_device().memset_async(dst, value, bytes, stream);
}
cudaError_t launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, std::function<void()> thread_body) {
  return the_device().launch(kernel, grid, block, smem_bytes, stream, std::move(thread_body));
}
cudaError_t set_max_dynamic_smem(const void* kernel, int bytes) {
  return the_device().set_max_dynamic_smem(kernel, bytes);
}
cudaError_t take_last_error() { return the_device().take_last_error(); }
cudaError_t peek_last_error() { return the_device().peek_last_error(); }

}  // namespace device

cudaError_t launch_closure(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
                           cudaStream_t stream, std::function<void()> thread_body) {
  return device::launch(kernel, grid, block, smem_bytes, stream, std::move(thread_body));
}

}  // namespace seqpar::cuda_emu
