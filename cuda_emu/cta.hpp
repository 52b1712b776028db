#pragma once
// Runs a kernel's grid on the CPU: one CTA at a time, each CUDA thread of the CTA a fiber
// (Boost.Context), switched only where the hardware would make threads wait for one another:
// __syncthreads, __syncwarp and the warp-wide instructions (shuffles, ldmatrix, mma.sync). The
// scheduler picks the next ready thread at random, so a kernel that is only right for one
// interleaving fails here. What it checks, beside the emulated instructions' results:
//   - shared memory starts poisoned (0xff bytes: a NaN in bf16, fp16 and fp32) and a cp.async
//     destination reads as poison until its group is waited on; ldmatrix reports poison it reads;
//   - every emulated shared access lies in the launch's dynamic shared memory, every cp.async
//     source in a device allocation, every atomic in one or the other, with the instruction's
//     alignment;
//   - __syncthreads from different call sites, a warp-wide instruction that some lanes never
//     reach (exited, or waiting elsewhere), a CTA where no thread can go on, and cp.async groups
//     a thread never waited on.
// Each failure is reported once per kind and launch on stderr and fails the launch.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>
#include <string>

namespace seqpar::cuda_emu {

// Largest dynamic shared memory of one CTA: sm_90's opt-in limit (227 KiB).
inline constexpr size_t kMaxDynamicSmem = 232448;
// Default dynamic shared memory limit without cudaFuncSetAttribute.
inline constexpr size_t kDefaultDynamicSmem = 48 * 1024;
inline constexpr int kMaxThreadsPerBlock = 1024;

struct GridLaunch {
  dim3 grid;
  dim3 block;
  size_t smem_bytes = 0;
  std::function<void()> thread_body;  // one CUDA thread's kernel call
  uint64_t seed = 0;                  // the scheduler's random choices
};

// Runs every CTA of `launch`; empty on success, else the first failures' description.
std::string run_grid(const GridLaunch& launch);

}  // namespace seqpar::cuda_emu
