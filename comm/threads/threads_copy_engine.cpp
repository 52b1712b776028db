// The threads backend's copy engine: one background thread per domain that copies posted sends
// into posted receives while the ranks' threads compute (on device memory: enqueues the copies,
// on the domain's device); see ThreadsDomain.
#include <cstdlib>
#include <cstring>

#include "comm/threads/threads_group.hpp"
#include "comm/threads/threads_ops.hpp"

namespace seqpar {

ThreadsDomain::ThreadsDomain(int ranks, bool copy_engine, int cuda_device_in)
    : cuda_device(cuda_device_in),
      device_memory(cuda_device_in != kHostMemory),
      pending(static_cast<size_t>(ranks)) {
  if (copy_engine) engine_ = std::thread([this] { run_copy_engine(); });
}

ThreadsDomain::~ThreadsDomain() {
  if (!engine_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex);
    engine_stopping_ = true;
  }
  changed.notify_all();
  engine_.join();
}

void ThreadsDomain::run_copy_engine() {
  // A failure shows up in the copies' own CUDA calls, which fail the ops.
  if (device_memory) static_cast<void>(threads_device::use_device(cuda_device));
  std::unique_lock<std::mutex> lock(mutex);
  while (!engine_stopping_) {
    if (!aborted && engine_copy_one(lock)) continue;
    // Every post notifies `changed` under the lock, so no post is missed between scan and wait.
    changed.wait(lock);
  }
}

bool ThreadsDomain::engine_copy_one(std::unique_lock<std::mutex>& lock) {
  const size_t ranks = pending.size();
  for (size_t k = 0; k < ranks; ++k) {
    const size_t rank = (engine_next_rank_ + k) % ranks;
    for (ThreadsOp* op : pending[rank]) {
      if (op->finished()) continue;
      // engine_copy releases the lock: the lists may change, so stop scanning after it.
      if (op->engine_copy(lock)) {
        engine_next_rank_ = (rank + 1) % ranks;
        return true;
      }
    }
  }
  return false;
}

bool threads_copy_engine_enabled() {
  const char* value = std::getenv("SEQPAR_THREADS_COPY_ENGINE");
  return value == nullptr || std::strcmp(value, "0") != 0;
}

}  // namespace seqpar
