// The emulator itself (cuda_emu/), through small kernels written for it: the emulated
// instructions against their PTX ISA definitions written out as plain loops (ldmatrix with and
// without .trans, mma.sync m16n8k16 bf16 and fp16, shuffles, atomicAdd and atomicMin), and each
// fault the emulator promises to catch, planted on purpose: a read of shared memory before its
// cp.async is waited on, a cp.async or an atomic on host memory, __syncthreads from two call
// sites, a shuffle some lanes never reach, too much dynamic shared memory without
// cudaFuncSetAttribute. A fault fails the launch with a sticky cudaErrorLaunchFailure, so each of
// those runs in a test of its own (ctest runs every test in its own process). Built in
// SEQPAR_CUDA_EMULATOR builds only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cuda_device.cuh"

namespace seqpar::emulator_test {
namespace {

using cuda_device::launch_kernel;

// ---- device memory helpers ----

template <class T>
T* to_device(const std::vector<T>& host) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, host.size() * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> to_host(const T* device, size_t count) {
  std::vector<T> host(count);
  EXPECT_EQ(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost),
            cudaSuccess);
  return host;
}

uint16_t bf16_bits(float x) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
float bf16_value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- ldmatrix: 4 matrices of 8 x 8 b16 in shared memory, read by one warp ----

struct LdmatrixParams {
  const uint16_t* in;  // (4, 8, 8) matrices, row-major
  uint32_t* out;       // (32 lanes, 4 registers)
  bool trans;
};

void ldmatrix_kernel(const LdmatrixParams p) {
  SEQPAR_DYNAMIC_SMEM(uint16_t, tile);
  const int lane = static_cast<int>(threadIdx.x);
  // Lane l copies row l of the 32 rows (matrix l / 8, row l % 8), 16 bytes.
  cuda_device::cp_async_16(tile + lane * 8, p.in + lane * 8, true);
  cuda_device::cp_async_commit();
  cuda_device::cp_async_wait<0>();
  __syncthreads();
  uint32_t r[4];
  if (p.trans) {
    cuda_device::ldmatrix_x4_trans(r, tile + lane * 8);
  } else {
    cuda_device::ldmatrix_x4(r, tile + lane * 8);
  }
  for (int i = 0; i < 4; ++i) p.out[lane * 4 + i] = r[i];
}

void expect_ldmatrix(bool trans) {
  std::vector<uint16_t> in(4 * 64);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint16_t>(i + 1);
  uint16_t* d_in = to_device(in);
  uint32_t* d_out = to_device(std::vector<uint32_t>(32 * 4));
  ASSERT_EQ(
      launch_kernel(ldmatrix_kernel, dim3(1), 32, 512, nullptr, LdmatrixParams{d_in, d_out, trans}),
      cudaSuccess);
  const std::vector<uint32_t> out = to_host(d_out, 32 * 4);
  // PTX ISA, ldmatrix: lane l holds row l / 4, columns 2 (l % 4) and +1 of each matrix (.trans:
  // of the transposed matrix), the lower column in the low half.
  for (int l = 0; l < 32; ++l) {
    for (int i = 0; i < 4; ++i) {
      const int row = l / 4, col = 2 * (l % 4);
      auto at = [&](int r, int c) { return in[static_cast<size_t>(i * 64 + r * 8 + c)]; };
      const uint16_t lo = trans ? at(col, row) : at(row, col);
      const uint16_t hi = trans ? at(col + 1, row) : at(row, col + 1);
      EXPECT_EQ(out[static_cast<size_t>(l * 4 + i)], lo | (static_cast<uint32_t>(hi) << 16))
          << "lane " << l << " matrix " << i;
    }
  }
  cudaFree(d_in);
  cudaFree(d_out);
}

TEST(EmulatedInstructions, LdmatrixHandsEachLaneItsRowPair) { expect_ldmatrix(false); }
TEST(EmulatedInstructions, LdmatrixTransHandsEachLaneItsColumnPair) { expect_ldmatrix(true); }

// ---- mma.sync m16n8k16: fragments built per the PTX ISA tables from full matrices ----

struct MmaParams {
  const uint16_t* a;  // (16, 16) row-major, 16-bit
  const uint16_t* b;  // (16, 8) row-major (k, n)
  float* c;           // (16, 8) row-major, in and out
  bool bf16;
};

void mma_kernel(const MmaParams p) {
  const int lane = static_cast<int>(threadIdx.x), g = lane / 4, t = lane % 4;
  auto pair = [](uint16_t lo, uint16_t hi) {
    return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  };
  auto A = [&](int r, int k) { return p.a[r * 16 + k]; };
  auto B = [&](int k, int n) { return p.b[k * 8 + n]; };
  const uint32_t a[4] = {
      pair(A(g, 2 * t), A(g, 2 * t + 1)), pair(A(g + 8, 2 * t), A(g + 8, 2 * t + 1)),
      pair(A(g, 2 * t + 8), A(g, 2 * t + 9)), pair(A(g + 8, 2 * t + 8), A(g + 8, 2 * t + 9))};
  const uint32_t b0 = pair(B(2 * t, g), B(2 * t + 1, g));
  const uint32_t b1 = pair(B(2 * t + 8, g), B(2 * t + 9, g));
  float c[4] = {p.c[g * 8 + 2 * t], p.c[g * 8 + 2 * t + 1], p.c[(g + 8) * 8 + 2 * t],
                p.c[(g + 8) * 8 + 2 * t + 1]};
  if (p.bf16) {
    cuda_device::mma_16816_bf16(c, a, b0, b1);
  } else {
    cuda_device::mma_16816_f16(c, a, b0, b1);
  }
  __syncwarp();  // every lane has read its c before any writes its d
  p.c[g * 8 + 2 * t] = c[0];
  p.c[g * 8 + 2 * t + 1] = c[1];
  p.c[(g + 8) * 8 + 2 * t] = c[2];
  p.c[(g + 8) * 8 + 2 * t + 1] = c[3];
}

float half_value(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1f;
  const float magnitude =
      exponent == 0 ? std::ldexp(static_cast<float>(bits & 0x3ff), -24)
                    : std::ldexp(static_cast<float>((bits & 0x3ff) | 0x400), exponent - 25);
  return bits & 0x8000 ? -magnitude : magnitude;
}
uint16_t half_bits_of_small_int(int v) {  // exact for |v| < 2048
  if (v == 0) return 0;
  const int sign = v < 0 ? 0x8000 : 0;
  int m = v < 0 ? -v : v, e = 25;
  while (m < 0x400) {
    m <<= 1;
    --e;
  }
  return static_cast<uint16_t>(sign | (e << 10) | (m & 0x3ff));
}

void expect_mma(bool bf16) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(-8, 8);
  std::vector<uint16_t> a(256), b(128);
  std::vector<float> c(128);
  std::vector<double> want(128);
  auto value = [&](uint16_t bits) { return bf16 ? bf16_value(bits) : half_value(bits); };
  for (auto& x : a) {
    const int v = small(rng);
    x = bf16 ? bf16_bits(static_cast<float>(v)) : half_bits_of_small_int(v);
  }
  for (auto& x : b) {
    const int v = small(rng);
    x = bf16 ? bf16_bits(static_cast<float>(v) * 0.5f) : half_bits_of_small_int(v);
  }
  for (size_t i = 0; i < c.size(); ++i) c[i] = static_cast<float>(small(rng));
  for (int r = 0; r < 16; ++r) {
    for (int n = 0; n < 8; ++n) {
      double sum = c[static_cast<size_t>(r * 8 + n)];
      for (int k = 0; k < 16; ++k) {
        sum += static_cast<double>(value(a[static_cast<size_t>(r * 16 + k)])) *
               value(b[static_cast<size_t>(k * 8 + n)]);
      }
      want[static_cast<size_t>(r * 8 + n)] = sum;
    }
  }
  uint16_t* d_a = to_device(a);
  uint16_t* d_b = to_device(b);
  float* d_c = to_device(c);
  ASSERT_EQ(launch_kernel(mma_kernel, dim3(1), 32, 0, nullptr, MmaParams{d_a, d_b, d_c, bf16}),
            cudaSuccess);
  const std::vector<float> got = to_host(d_c, 128);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], static_cast<float>(want[i])) << "row " << i / 8 << " col " << i % 8;
  }
  cudaFree(d_a);
  cudaFree(d_b);
  cudaFree(d_c);
}

TEST(EmulatedInstructions, MmaBf16IsTheMatrixProduct) { expect_mma(true); }
TEST(EmulatedInstructions, MmaF16IsTheMatrixProduct) { expect_mma(false); }

// ---- shuffles: a butterfly sum over the warp, in every one of several warps ----

struct ShuffleParams {
  float* out;  // one per thread
};

void shuffle_kernel(const ShuffleParams p) {
  const int tid = static_cast<int>(threadIdx.x);
  float x = static_cast<float>(tid);
  for (int m = 16; m > 0; m /= 2) x += __shfl_xor_sync(0xffffffffu, x, m);
  p.out[tid] = x;
}

TEST(EmulatedInstructions, ShuffleXorSumsEachWarp) {
  float* d_out = to_device(std::vector<float>(128));
  ASSERT_EQ(launch_kernel(shuffle_kernel, dim3(1), 128, 0, nullptr, ShuffleParams{d_out}),
            cudaSuccess);
  const std::vector<float> out = to_host(d_out, 128);
  for (int t = 0; t < 128; ++t) {
    const int first = t / 32 * 32;
    EXPECT_EQ(out[static_cast<size_t>(t)], static_cast<float>(32 * first + 31 * 32 / 2)) << t;
  }
  cudaFree(d_out);
}

// ---- atomics: every thread of several CTAs adds and takes the min into shared words ----

struct AtomicParams {
  unsigned long long* sum64;  // [0]: += 1 per thread, [1]: += the thread's value
  unsigned long long* min64;
  unsigned int* sum32;  // starts at 2^32 - 5: wraps modulo 2^32
  unsigned int* min32;
  unsigned long long* old;  // per thread: what its first atomicAdd returned
};

void atomic_kernel(const AtomicParams p) {
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  // Distinct values in a scrambled order, so the min is not the first thread's.
  const unsigned long long value = (t * 2654435761u) % 1000003u + (1ull << 40);
  p.old[t] = atomicAdd(&p.sum64[0], 1ull);
  atomicAdd(&p.sum64[1], value);
  atomicMin(p.min64, value);
  atomicAdd(p.sum32, 1u);
  atomicMin(p.min32, static_cast<unsigned int>(value % 1000003u) + 7u);
  __syncthreads();  // switch fibers here, mid-kernel, so the CTAs' threads interleave
  atomicAdd(p.sum32, 1u);
}

TEST(EmulatedInstructions, AtomicAddAndMinAreReadModifyWritesReturningTheOldValue) {
  constexpr int kBlocks = 5, kThreads = 96, kTotal = kBlocks * kThreads;
  auto* sum64 = to_device(std::vector<unsigned long long>{0, 0});
  auto* min64 = to_device(std::vector<unsigned long long>{~0ull});
  auto* sum32 = to_device(std::vector<unsigned int>{0xfffffffbu});
  auto* min32 = to_device(std::vector<unsigned int>{0xffffffffu});
  auto* old = to_device(std::vector<unsigned long long>(kTotal, 0));
  ASSERT_EQ(launch_kernel(atomic_kernel, dim3(kBlocks), kThreads, 0, nullptr,
                          AtomicParams{sum64, min64, sum32, min32, old}),
            cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  unsigned long long value_sum = 0, value_min = ~0ull;
  unsigned int min_low = 0xffffffffu;
  for (unsigned t = 0; t < kTotal; ++t) {
    const unsigned long long value = (t * 2654435761u) % 1000003u + (1ull << 40);
    value_sum += value;
    value_min = std::min(value_min, value);
    min_low = std::min(min_low, static_cast<unsigned int>(value % 1000003u) + 7u);
  }
  const std::vector<unsigned long long> sums = to_host(sum64, 2);
  EXPECT_EQ(sums[0], static_cast<unsigned long long>(kTotal));
  EXPECT_EQ(sums[1], value_sum);
  EXPECT_EQ(to_host(min64, 1)[0], value_min);
  EXPECT_EQ(to_host(sum32, 1)[0], 0xfffffffbu + 2u * kTotal);  // wrapped modulo 2^32
  EXPECT_EQ(to_host(min32, 1)[0], min_low);
  // Each increment saw the count before it: the old values are 0 .. kTotal - 1, once each.
  std::vector<unsigned long long> olds = to_host(old, kTotal);
  std::sort(olds.begin(), olds.end());
  for (int i = 0; i < kTotal; ++i) {
    EXPECT_EQ(olds[static_cast<size_t>(i)], static_cast<unsigned long long>(i)) << i;
  }
  for (void* p : {static_cast<void*>(sum64), static_cast<void*>(min64), static_cast<void*>(sum32),
                  static_cast<void*>(min32), static_cast<void*>(old)}) {
    cudaFree(p);
  }
}

// ---- faults the emulator must catch ----

struct FaultParams {
  const uint16_t* in;
  uint32_t* out;
  int fault;
};

enum Fault : int {
  kReadBeforeWait = 0,
  kHostSource = 1,
  kTwoBarrierSites = 2,
  kShuffleAfterExit = 3,
};

void fault_kernel(const FaultParams p) {
  SEQPAR_DYNAMIC_SMEM(uint16_t, tile);
  const int lane = static_cast<int>(threadIdx.x);
  if (p.fault == kTwoBarrierSites) {
    if (lane < 16) {
      __syncthreads();
    } else {
      __syncthreads();
    }
    return;
  }
  if (p.fault == kShuffleAfterExit) {
    if (lane == 5) return;
    p.out[lane] = __shfl_xor_sync(0xffffffffu, static_cast<uint32_t>(lane), 1);
    return;
  }
  cuda_device::cp_async_16(tile + lane * 8, p.in + lane * 8, true);
  cuda_device::cp_async_commit();
  if (p.fault != kReadBeforeWait) cuda_device::cp_async_wait<0>();
  __syncthreads();
  uint32_t r[4];
  cuda_device::ldmatrix_x4(r, tile + lane * 8);
  cuda_device::cp_async_wait<0>();
  p.out[lane] = r[0];
}

// Launches fault_kernel with `fault` and expects the launch to fail when synchronised.
void expect_caught(int fault, const uint16_t* in) {
  uint32_t* d_out = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d_out), 32 * sizeof(uint32_t)), cudaSuccess);
  ASSERT_EQ(launch_kernel(fault_kernel, dim3(1), 32, 512, nullptr, FaultParams{in, d_out, fault}),
            cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);  // sticky
}

TEST(EmulatorCatches, ReadingSharedMemoryBeforeTheCpAsyncWait) {
  std::vector<uint16_t> in(256, 1);
  expect_caught(kReadBeforeWait, to_device(in));
}

TEST(EmulatorCatches, CpAsyncFromHostMemory) {
  static std::vector<uint16_t> host(256, 1);
  expect_caught(kHostSource, host.data());
}

TEST(EmulatorCatches, SyncthreadsFromTwoCallSites) { expect_caught(kTwoBarrierSites, nullptr); }

TEST(EmulatorCatches, AShuffleSomeLanesNeverReach) { expect_caught(kShuffleAfterExit, nullptr); }

void host_atomic_kernel(unsigned long long* host_word) { atomicAdd(host_word, 1ull); }

TEST(EmulatorCatches, AnAtomicOnHostMemory) {
  static unsigned long long host_word = 0;
  ASSERT_EQ(launch_kernel(host_atomic_kernel, dim3(1), 32, 0, nullptr, &host_word), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
  EXPECT_EQ(host_word, 0u);  // refused, not performed
}

TEST(EmulatorCatches, DynamicSharedMemoryBeyondTheLimitIsRefused) {
  // Above 48 KiB needs cudaFuncSetAttribute (launch_kernel calls it); above 227 KiB no kernel
  // may have it.
  EXPECT_EQ(cudaFuncSetAttribute(reinterpret_cast<const void*>(&shuffle_kernel),
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024),
            cudaErrorInvalidValue);
  void (*kernel)(ShuffleParams) = shuffle_kernel;
  EXPECT_EQ(cuda_emu::launch_closure(reinterpret_cast<const void*>(kernel), dim3(1), dim3(32),
                                     64 * 1024, nullptr, [] {}),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // not sticky: the launch never ran
}

// ---- streams: a consumer that does not wait for its producer's event ----

struct FillParams {
  float* data;
  int count;
  float value;
};

void fill_kernel(const FillParams p) {
  for (int i = static_cast<int>(threadIdx.x); i < p.count; i += 64) p.data[i] = p.value;
}

// Trial: the producer stream fills `count` floats with `trial`; the consumer stream copies them
// out, after cudaStreamWaitEvent on the producer's event or not. Whether the copy saw the fill.
bool consumer_saw_the_fill(bool wait, int trial, cudaStream_t producer, cudaStream_t consumer,
                           cudaEvent_t filled, float* d_data, float* d_copy) {
  const int count = 4096;
  const float value = static_cast<float>(trial + 1);
  EXPECT_EQ(launch_kernel(fill_kernel, dim3(1), 64, 0, producer, FillParams{d_data, count, value}),
            cudaSuccess);
  EXPECT_EQ(cudaEventRecord(filled, producer), cudaSuccess);
  if (wait) {
    EXPECT_EQ(cudaStreamWaitEvent(consumer, filled, 0), cudaSuccess);
  }
  EXPECT_EQ(
      cudaMemcpyAsync(d_copy, d_data, count * sizeof(float), cudaMemcpyDeviceToDevice, consumer),
      cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> copy = to_host(d_copy, count);
  for (float x : copy) {
    if (x != value) return false;
  }
  return true;
}

void run_trials(bool wait, int* saw, int* missed) {
  cudaStream_t producer, consumer;
  cudaEvent_t filled;
  ASSERT_EQ(cudaStreamCreateWithFlags(&producer, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreateWithFlags(&consumer, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&filled, cudaEventDisableTiming), cudaSuccess);
  float *d_data = nullptr, *d_copy = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d_data), 4096 * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d_copy), 4096 * sizeof(float)), cudaSuccess);
  for (int trial = 0; trial < 40; ++trial) {
    (consumer_saw_the_fill(wait, trial, producer, consumer, filled, d_data, d_copy) ? *saw
                                                                                    : *missed)++;
  }
  cudaFree(d_data);
  cudaFree(d_copy);
  cudaEventDestroy(filled);
  cudaStreamDestroy(producer);
  cudaStreamDestroy(consumer);
}

TEST(EmulatedStreams, AConsumerThatWaitsOnTheEventAlwaysSeesTheProducersWork) {
  int saw = 0, missed = 0;
  run_trials(true, &saw, &missed);
  EXPECT_EQ(missed, 0);
  EXPECT_EQ(saw, 40);
}

TEST(EmulatedStreams, AConsumerThatDoesNotWaitReadsTooEarlySomeOfTheTime) {
  int saw = 0, missed = 0;
  run_trials(false, &saw, &missed);
  EXPECT_GT(missed, 0) << "40 trials without cudaStreamWaitEvent all happened to be ordered";
}

TEST(EmulatedStreams, TheLegacyStreamOrdersBlockingStreams) {
  // A blocking stream's work enqueued after a legacy-stream copy runs after it.
  cudaStream_t blocking;
  ASSERT_EQ(cudaStreamCreate(&blocking), cudaSuccess);
  float* d_data = to_device(std::vector<float>(4096, 0.0f));
  float* d_copy = to_device(std::vector<float>(4096, -1.0f));
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<float> ones(4096, static_cast<float>(trial));
    ASSERT_EQ(
        cudaMemcpyAsync(d_data, ones.data(), 4096 * sizeof(float), cudaMemcpyHostToDevice, nullptr),
        cudaSuccess);
    ASSERT_EQ(
        cudaMemcpyAsync(d_copy, d_data, 4096 * sizeof(float), cudaMemcpyDeviceToDevice, blocking),
        cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(blocking), cudaSuccess);
    EXPECT_EQ(to_host(d_copy, 4096)[4095], static_cast<float>(trial));
  }
  cudaFree(d_data);
  cudaFree(d_copy);
  cudaStreamDestroy(blocking);
}

}  // namespace
}  // namespace seqpar::emulator_test
