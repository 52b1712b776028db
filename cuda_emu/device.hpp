#pragma once
// The emulated GPU behind cuda_emu/runtime_api.cpp's CUDA runtime functions: device memory
// (host memory in a table of allocations, poisoned when allocated), streams (in-order queues)
// and events, served by one device thread that runs every queued copy, fill and kernel.
//
// The device thread picks, among the streams whose next operation may start, one at random,
// and now and then waits a little before picking: work on different streams interleaves in a
// different order on every run, so a consumer that does not wait on its producer's event reads
// what is not there yet (poison, or stale data) instead of passing by luck. The legacy default
// stream (nullptr) is ordered with every blocking stream, as CUDA's is. A kernel the CTA runner
// (cuda_emu/cta.hpp) finds at fault sets a sticky cudaErrorLaunchFailure, which every later
// synchronising call returns, and its report goes to stderr.
//
// Environment: SEQPAR_CUDA_EMU_SEED (the random choices; default: a fresh seed, printed with
// any failure so the run can be repeated).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace seqpar::cuda_emu {

// Whether [p, p + bytes) lies inside one live device allocation.
bool device_contains(const void* p, size_t bytes);

// While one lives, the calling thread is inside the emulated runtime: what it allocates is the
// runtime's (a stream queue's node, a launch's closure), which a real CUDA runtime keeps to
// itself, so the tests that count a warm step's allocations leave it out (in_emulated_runtime).
// Enqueueing calls hold one; creating events and streams does not (a pool that grows once warm
// still counts).
class EmulatedRuntimeCall {
 public:
  EmulatedRuntimeCall();
  ~EmulatedRuntimeCall();
  EmulatedRuntimeCall(const EmulatedRuntimeCall&) = delete;
  EmulatedRuntimeCall& operator=(const EmulatedRuntimeCall&) = delete;
};
bool in_emulated_runtime();

// Calls the calling host thread has made that wait on the host for the device (stream, event
// and device synchronisation, synchronous copies and fills, cudaFree): what a step loop must
// never do, for tests to count.
uint64_t host_waits_on_this_thread();

// The operations behind the runtime API (each returns what the CUDA function returns).
namespace device {

cudaError_t malloc(void** p, size_t bytes);
cudaError_t free(void* p);
cudaError_t memory_info(size_t* free_bytes, size_t* total_bytes);
bool is_device_pointer(const void* p);

cudaError_t stream_create(cudaStream_t* stream, unsigned flags);
cudaError_t stream_destroy(cudaStream_t stream);
cudaError_t stream_synchronize(cudaStream_t stream);
cudaError_t stream_wait_event(cudaStream_t stream, cudaEvent_t event);
cudaError_t device_synchronize();

cudaError_t event_create(cudaEvent_t* event, unsigned flags);
cudaError_t event_destroy(cudaEvent_t event);
cudaError_t event_record(cudaEvent_t event, cudaStream_t stream);
cudaError_t event_synchronize(cudaEvent_t event);
cudaError_t event_query(cudaEvent_t event);
cudaError_t event_elapsed_ms(float* ms, cudaEvent_t start, cudaEvent_t end);

cudaError_t memcpy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                         cudaStream_t stream);
cudaError_t memset_async(void* dst, int value, size_t bytes, cudaStream_t stream);
cudaError_t launch(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, std::function<void()> thread_body);
cudaError_t set_max_dynamic_smem(const void* kernel, int bytes);

// The calling host thread's last error (cleared by take_last_error), or the sticky one.
cudaError_t take_last_error();
cudaError_t peek_last_error();

}  // namespace device
}  // namespace seqpar::cuda_emu
