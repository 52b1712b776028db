// The CTA runner and the emulated instructions (cuda_emu/cta.hpp, cuda_emu/kernel_api.hpp).
#include "cuda_emu/cta.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/context/fiber.hpp>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "cuda_emu/device.hpp"
#include "cuda_emu/kernel_api.hpp"

namespace seqpar::cuda_emu {
namespace {

namespace ctx = boost::context;

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr unsigned char kPoisonByte = 0xff;
constexpr uint16_t kPoison16 = 0xffff;
// Fiber stacks: kernels keep their register arrays on them (a few KiB); the rest is headroom
// for unoptimised builds and sanitizers.
constexpr size_t kStackBytes = 256 * 1024;

// ---- fiber stacks: mmap'd once with a guard page below, reused by every CTA ----

class StackPool {
 public:
  ~StackPool() {
    for (void* base : all_) munmap(base, kStackBytes + page());
  }
  ctx::stack_context allocate() {
    void* base = nullptr;
    if (!free_.empty()) {
      base = free_.back();
      free_.pop_back();
    } else {
      base = mmap(nullptr, kStackBytes + page(), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED) throw std::bad_alloc();
      mprotect(base, page(), PROT_NONE);  // overflow faults instead of corrupting
      all_.push_back(base);
    }
    ctx::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = static_cast<char*>(base) + page() + kStackBytes;
    return sc;
  }
  void deallocate(ctx::stack_context& sc) {
    free_.push_back(static_cast<char*>(sc.sp) - kStackBytes - page());
  }

 private:
  static size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
  std::vector<void*> free_, all_;
};

// Boost.Context's StackAllocator over the pool (copied into each fiber).
struct PooledStack {
  StackPool* pool;
  ctx::stack_context allocate() { return pool->allocate(); }
  void deallocate(ctx::stack_context& sc) { pool->deallocate(sc); }
};

// ---- one CTA's state ----

enum class Op : uint8_t { kNone, kSyncWarp, kShuffle, kLdmatrix, kLdmatrixTrans, kMma16, kMmaBf16 };

const char* op_name(Op op) {
  switch (op) {
    case Op::kNone:
      return "nothing";
    case Op::kSyncWarp:
      return "__syncwarp";
    case Op::kShuffle:
      return "__shfl_xor_sync";
    case Op::kLdmatrix:
      return "ldmatrix.x4";
    case Op::kLdmatrixTrans:
      return "ldmatrix.x4.trans";
    case Op::kMma16:
      return "mma.sync.m16n8k16.f16";
    case Op::kMmaBf16:
      return "mma.sync.m16n8k16.bf16";
  }
  return "?";
}

struct CpAsync {
  unsigned char* dst;
  const unsigned char* src;  // null: zero fill
};

enum class State : uint8_t { kReady, kAtWarpOp, kAtBarrier, kDone };

struct EmuThread {
  ThreadIndex index;
  int warp = 0;
  int lane = 0;
  State state = State::kReady;
  ctx::fiber fiber;                          // while suspended: where it goes on
  ctx::fiber scheduler;                      // while running: the scheduler's continuation
  std::vector<CpAsync> open;                 // issued since the last commit
  std::vector<std::vector<CpAsync>> groups;  // committed, oldest first
};

// A warp-wide instruction: the lanes' inputs, and the outputs the last lane to arrive computes
// for all (so every lane sees the operands as they were at that one instant). Double-buffered
// by the parity of the warp's instruction count: a lane can be one instruction ahead of the
// slowest reader, never two.
struct WarpOp {
  Op op = Op::kNone;
  int arrived = 0;
  int exited = 0;
  uint64_t count = 0;  // completed warp-wide instructions
  int lane_mask = 0;   // shuffle arguments, which every lane must pass alike
  int width = 0;
  std::array<std::array<std::array<uint64_t, 5>, kWarp>, 2> in{};
  std::array<std::array<std::array<uint64_t, 2>, kWarp>, 2> out{};
};

struct Cta {
  const GridLaunch* launch = nullptr;
  uint3 block_idx{0, 0, 0};
  std::vector<EmuThread> threads;
  std::vector<WarpOp> warps;
  std::vector<int> ready;  // threads that can run
  int live = 0;            // threads that have not exited
  int at_barrier = 0;
  const char* barrier_file = nullptr;
  int barrier_line = 0;
  unsigned char* smem = nullptr;
  size_t smem_bytes = 0;
  std::minstd_rand rng;
};

// The device thread's state (kernels run on that one thread); the stacks and the shared memory
// are kept from launch to launch.
struct Runner {
  StackPool stacks;
  unsigned char* smem = static_cast<unsigned char*>(std::aligned_alloc(128, kMaxDynamicSmem));
  Cta* cta = nullptr;
  EmuThread* current = nullptr;
  std::string failures;  // this launch's
  int failure_count = 0;
  uint32_t reported_kinds = 0;  // one report per kind and launch
  ~Runner() { std::free(smem); }
};

Runner& runner() {
  thread_local Runner r;
  return r;
}
Cta& cta() { return *runner().cta; }
EmuThread& me() { return *runner().current; }

// Failure kinds, one bit each.
enum Kind : uint32_t {
  kSmemBounds = 1u << 0,
  kAlignment = 1u << 1,
  kGlobalBounds = 1u << 2,
  kPoisonRead = 1u << 3,
  kBarrierSite = 1u << 4,
  kDivergentWarpOp = 1u << 5,
  kDeadlock = 1u << 6,
  kUnwaitedCopies = 1u << 7,
  kPartialMask = 1u << 8,
  kShuffleArgs = 1u << 9,
  kAtomicAddress = 1u << 10,
};

void report(Kind kind, const char* format, ...) __attribute__((format(printf, 2, 3)));
void report(Kind kind, const char* format, ...) {
  Runner& r = runner();
  ++r.failure_count;
  if (r.reported_kinds & kind) return;
  r.reported_kinds |= kind;
  char text[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof(text), format, args);
  va_end(args);
  char where[128] = "";
  if (r.cta != nullptr && r.current != nullptr) {
    const uint3 b = r.cta->block_idx;
    std::snprintf(where, sizeof(where), "block (%u,%u,%u) thread %u: ", b.x, b.y, b.z,
                  r.current->index.thread_idx.x);
  }
  r.failures += std::string(where) + text + "\n";
}

// ---- switching ----

// Suspends the current thread until the scheduler resumes it.
void suspend() {
  EmuThread& t = me();
  t.scheduler = std::move(t.scheduler).resume();
}

void make_ready(int thread) {
  Cta& c = cta();
  c.threads[static_cast<size_t>(thread)].state = State::kReady;
  c.ready.push_back(thread);
}

// Releases the CTA barrier once every live thread is at it: the threads waiting there become
// ready. Whether it was released.
bool maybe_release_barrier() {
  Cta& c = cta();
  if (c.at_barrier == 0 || c.at_barrier < c.live) return false;
  c.at_barrier = 0;
  for (size_t i = 0; i < c.threads.size(); ++i) {
    if (c.threads[i].state == State::kAtBarrier) make_ready(static_cast<int>(i));
  }
  return true;
}

void flush_group(const std::vector<CpAsync>& group) {
  for (const CpAsync& copy : group) {
    if (copy.src != nullptr) {
      std::memcpy(copy.dst, copy.src, 16);
    } else {
      std::memset(copy.dst, 0, 16);
    }
  }
}

void thread_exits(EmuThread& t) {
  Cta& c = cta();
  if (!t.open.empty() || !t.groups.empty()) {
    report(kUnwaitedCopies, "exits with %zu cp.async copies never waited on",
           t.open.size() + t.groups.size());
  }
  t.state = State::kDone;
  --c.live;
  WarpOp& w = c.warps[static_cast<size_t>(t.warp)];
  ++w.exited;
  maybe_release_barrier();
}

// ---- warp-wide instructions ----

bool in_smem(const void* p, size_t bytes) {
  const auto* at = static_cast<const unsigned char*>(p);
  const Cta& c = cta();
  return at >= c.smem && at + bytes <= c.smem + c.smem_bytes;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The calling lane's inputs go in; once all 32 lanes are in, `compute(in, out)` fills every
// lane's outputs; returns the calling lane's.
template <class Compute>
const std::array<uint64_t, 2>& warp_op(Op op, const std::array<uint64_t, 5>& inputs,
                                       Compute&& compute) {
  EmuThread& t = me();
  WarpOp& w = cta().warps[static_cast<size_t>(t.warp)];
  const size_t buffer = w.count % 2;
  if (w.arrived == 0) {
    w.op = op;
  } else if (w.op != op) {
    report(kDivergentWarpOp, "warp %d: lane %d reaches %s while lanes wait at %s", t.warp, t.lane,
           op_name(op), op_name(w.op));
  }
  w.in[buffer][static_cast<size_t>(t.lane)] = inputs;
  if (++w.arrived + w.exited < kWarp || w.exited > 0) {
    t.state = State::kAtWarpOp;
    suspend();  // resumed when the last lane arrives (or abandoned: a deadlock)
  } else {
    compute(w.in[buffer], w.out[buffer]);
    w.arrived = 0;
    ++w.count;
    const int first = t.warp * kWarp;
    for (int lane = 0; lane < kWarp; ++lane) {
      if (lane != t.lane) make_ready(first + lane);
    }
  }
  return w.out[buffer][static_cast<size_t>(t.lane)];
}

uint16_t half_at(const unsigned char* row, int i) {
  uint16_t v;
  std::memcpy(&v, row + 2 * i, 2);
  return v;
}

float to_float(uint16_t bits, bool bf16) {
  if (bf16) {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  // IEEE binary16: sign, 5 exponent bits (bias 15), 10 fraction bits.
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const int exponent = (bits >> 10) & 0x1f;
  const uint32_t fraction = bits & 0x3ff;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(fraction), -24);  // zero or subnormal
  } else if (exponent == 31) {
    magnitude = fraction == 0 ? INFINITY : NAN;
  } else {
    magnitude = std::ldexp(static_cast<float>(fraction | 0x400), exponent - 25);
  }
  uint32_t u;
  std::memcpy(&u, &magnitude, 4);
  u |= sign;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t lo16(uint64_t w) { return static_cast<uint16_t>(w & 0xffff); }
uint16_t hi16(uint64_t w) { return static_cast<uint16_t>((w >> 16) & 0xffff); }

}  // namespace

// ---- kernel_api.hpp ----

const ThreadIndex& this_thread() { return me().index; }

unsigned char* dynamic_smem() { return cta().smem; }

void sync_threads(const char* file, int line) {
  Cta& c = cta();
  if (c.at_barrier == 0) {
    c.barrier_file = file;
    c.barrier_line = line;
  } else if (line != c.barrier_line || std::strcmp(file, c.barrier_file) != 0) {
    report(kBarrierSite, "__syncthreads at %s:%d while other threads wait at %s:%d", file, line,
           c.barrier_file, c.barrier_line);
  }
  ++c.at_barrier;
  if (maybe_release_barrier()) return;  // the last to arrive goes straight on
  me().state = State::kAtBarrier;
  suspend();
}

void sync_warp(unsigned mask, const char* file, int line) {
  if (mask != kFullMask) {
    report(kPartialMask, "__syncwarp(0x%x) at %s:%d: the emulator takes full-warp masks only", mask,
           file, line);
  }
  warp_op(Op::kSyncWarp, {}, [](auto&, auto&) {});
}

uint64_t shfl_xor_bits(unsigned mask, uint64_t bits, int lane_mask, int width) {
  if (mask != kFullMask) {
    report(kPartialMask, "__shfl_xor_sync(0x%x): the emulator takes full-warp masks only", mask);
  }
  WarpOp& w = cta().warps[static_cast<size_t>(me().warp)];
  if (w.arrived == 0) {
    w.lane_mask = lane_mask;
    w.width = width;
  } else if (w.lane_mask != lane_mask || w.width != width) {
    report(kShuffleArgs, "__shfl_xor_sync: lanes pass different lane masks or widths");
  }
  const auto& out = warp_op(Op::kShuffle, {bits}, [&](const auto& in, auto& result) {
    for (int lane = 0; lane < kWarp; ++lane) {
      const int segment = lane & ~(w.width - 1);
      const int source = lane ^ w.lane_mask;
      const bool inside = source >= segment && source < segment + w.width;
      result[static_cast<size_t>(lane)][0] = in[static_cast<size_t>(inside ? source : lane)][0];
    }
  });
  return out[0];
}

void cp_async_16(void* smem, const void* gmem, bool valid) {
  auto* dst = static_cast<unsigned char*>(smem);
  if (!in_smem(dst, 16)) {
    report(kSmemBounds, "cp.async destination %p is outside the %zu bytes of dynamic shared memory",
           smem, cta().smem_bytes);
    return;
  }
  if (!aligned16(dst) || (valid && !aligned16(gmem))) {
    report(kAlignment, "cp.async 16 with a misaligned address (shared %p, global %p)", smem, gmem);
    return;
  }
  if (valid && !device_contains(gmem, 16)) {
    report(kGlobalBounds, "cp.async source %p is not 16 bytes inside a device allocation", gmem);
    return;
  }
  std::memset(dst, kPoisonByte, 16);  // what the destination holds until the wait
  me().open.push_back({dst, valid ? static_cast<const unsigned char*>(gmem) : nullptr});
}

void cp_async_commit() {
  EmuThread& t = me();
  t.groups.push_back(std::move(t.open));
  t.open.clear();
}

void cp_async_wait(int pending) {
  EmuThread& t = me();
  while (static_cast<int>(t.groups.size()) > pending) {
    flush_group(t.groups.front());
    t.groups.erase(t.groups.begin());
  }
}

uint64_t atomic_rmw(void* address, size_t bytes, AtomicOp op, uint64_t value) {
  const bool where_allowed = in_smem(address, bytes) || device_contains(address, bytes);
  if (!where_allowed || reinterpret_cast<uintptr_t>(address) % bytes != 0) {
    report(kAtomicAddress,
           "atomic on %p (%zu bytes): not a naturally aligned word of device or shared memory",
           address, bytes);
    return 0;
  }
  // Sizes as CUDA's: the 32-bit forms wrap modulo 2^32.
  const uint64_t width_mask = bytes == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * bytes)) - 1;
  uint64_t old = 0;
  std::memcpy(&old, address, bytes);  // little-endian: the low `bytes` bytes
  value &= width_mask;
  const uint64_t updated = op == AtomicOp::kAdd ? (old + value) & width_mask : std::min(old, value);
  std::memcpy(address, &updated, bytes);
  return old;
}

// ldmatrix .x4: lanes 8i..8i+7 give the row addresses of matrix i (8 x 8 b16). Lane l receives
// in r[i] matrix i's (row l/4, cols 2(l%4), 2(l%4)+1); with .trans, (rows 2(l%4), 2(l%4)+1,
// col l/4).
void ldmatrix_x4(uint32_t (&r)[4], const void* smem, bool trans) {
  bool ok = in_smem(smem, 16);
  if (!ok) {
    report(kSmemBounds, "ldmatrix row address %p is outside the %zu bytes of dynamic shared memory",
           smem, cta().smem_bytes);
  } else if (!aligned16(smem)) {
    report(kAlignment, "ldmatrix row address %p is not 16-byte aligned", smem);
    ok = false;
  }
  const uint64_t address = ok ? reinterpret_cast<uintptr_t>(smem) : 0;
  const auto& out = warp_op(
      trans ? Op::kLdmatrixTrans : Op::kLdmatrix, {address}, [trans](const auto& in, auto& result) {
        bool poisoned = false;
        for (int l = 0; l < kWarp; ++l) {
          uint32_t regs[4];
          for (int i = 0; i < 4; ++i) {
            uint16_t e[2];
            for (int half = 0; half < 2; ++half) {
              const int row = trans ? 2 * (l % 4) + half : l / 4;
              const int col = trans ? l / 4 : 2 * (l % 4) + half;
              const auto* base = reinterpret_cast<const unsigned char*>(
                  static_cast<uintptr_t>(in[static_cast<size_t>(8 * i + row)][0]));
              e[half] = base != nullptr ? half_at(base, col) : 0;
              poisoned = poisoned || e[half] == kPoison16;
            }
            regs[i] = static_cast<uint32_t>(e[0]) | (static_cast<uint32_t>(e[1]) << 16);
          }
          result[static_cast<size_t>(l)][0] = regs[0] | (static_cast<uint64_t>(regs[1]) << 32);
          result[static_cast<size_t>(l)][1] = regs[2] | (static_cast<uint64_t>(regs[3]) << 32);
        }
        if (poisoned) {
          report(kPoisonRead,
                 "ldmatrix reads poison: shared memory never written, or a cp.async not yet waited "
                 "on");
        }
      });
  r[0] = static_cast<uint32_t>(out[0]);
  r[1] = static_cast<uint32_t>(out[0] >> 32);
  r[2] = static_cast<uint32_t>(out[1]);
  r[3] = static_cast<uint32_t>(out[1] >> 32);
}

// mma.m16n8k16 (PTX ISA fragment layouts; lane = 4 g + t):
//   A a0: (g, 2t..2t+1)  a1: (g+8, 2t..)  a2: (g, 2t+8..)  a3: (g+8, 2t+8..)
//   B b0: (k = 2t..2t+1, n = g)  b1: (k = 2t+8..2t+9, n = g)
//   C c0, c1: (g, 2t..2t+1)  c2, c3: (g+8, 2t..2t+1)
// Products of 16-bit values are exact in fp32; the 16 are summed, with c, in double and rounded
// once (the tensor core's summation order is not specified).
void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, bool bf16) {
  uint64_t c01, c23;
  std::memcpy(&c01, &c[0], 8);
  std::memcpy(&c23, &c[2], 8);
  const std::array<uint64_t, 5> inputs = {a[0] | (static_cast<uint64_t>(a[1]) << 32),
                                          a[2] | (static_cast<uint64_t>(a[3]) << 32),
                                          b0 | (static_cast<uint64_t>(b1) << 32), c01, c23};
  const auto& out =
      warp_op(bf16 ? Op::kMmaBf16 : Op::kMma16, inputs, [bf16](const auto& in, auto& result) {
        auto reg = [&](int lane, int index) {  // a0..a3 = 0..3, b0, b1 = 4, 5
          const uint64_t word = in[static_cast<size_t>(lane)][static_cast<size_t>(index / 2)];
          return static_cast<uint32_t>(index % 2 ? word >> 32 : word);
        };
        auto A = [&](int row, int k) {
          const int kk = k % 8;
          const uint32_t w = reg(4 * (row % 8) + kk / 2, row / 8 + 2 * (k / 8));
          return to_float(kk % 2 ? hi16(w) : lo16(w), bf16);
        };
        auto B = [&](int k, int n) {
          const int kk = k % 8;
          const uint32_t w = reg(4 * n + kk / 2, 4 + k / 8);
          return to_float(kk % 2 ? hi16(w) : lo16(w), bf16);
        };
        for (int l = 0; l < kWarp; ++l) {
          const int g = l / 4, t = l % 4;
          float acc[4];
          std::memcpy(&acc[0], &in[static_cast<size_t>(l)][3], 8);
          std::memcpy(&acc[2], &in[static_cast<size_t>(l)][4], 8);
          for (int e = 0; e < 4; ++e) {
            const int row = g + 8 * (e / 2), n = 2 * t + e % 2;
            double sum = acc[e];
            for (int k = 0; k < 16; ++k) sum += static_cast<double>(A(row, k)) * B(k, n);
            acc[e] = static_cast<float>(sum);
          }
          std::memcpy(&result[static_cast<size_t>(l)][0], &acc[0], 8);
          std::memcpy(&result[static_cast<size_t>(l)][1], &acc[2], 8);
        }
      });
  std::memcpy(&c[0], &out[0], 8);
  std::memcpy(&c[2], &out[1], 8);
}

float exp2f_device(float x) {
  float y = std::exp2(x);
  if (!std::isfinite(y) || y == 0.0f) return y;
  if (std::fpclassify(y) == FP_SUBNORMAL) return 0.0f;  // .ftz
  // A deterministic error of -2..2 ulp, as the documented bound allows.
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits ^= bits >> 15;
  bits *= 0x2c1b3c6dU;
  bits ^= bits >> 12;
  const int ulps = static_cast<int>(bits % 5) - 2;
  for (int i = 0; i < ulps; ++i) y = std::nextafter(y, INFINITY);
  for (int i = 0; i > ulps; --i) y = std::nextafter(y, 0.0f);
  return y;
}

// ---- the grid ----

namespace {

void describe_deadlock(const Cta& c) {
  std::string waiting;
  for (size_t w = 0; w < c.warps.size(); ++w) {
    const WarpOp& op = c.warps[w];
    if (op.arrived > 0) {
      char line[160];
      std::snprintf(line, sizeof(line), " warp %zu: %d lanes at %s, %d exited;", w, op.arrived,
                    op_name(op.op), op.exited);
      waiting += line;
    }
  }
  if (c.at_barrier > 0) {
    char line[160];
    std::snprintf(line, sizeof(line), " %d of %d live threads at __syncthreads (%s:%d);",
                  c.at_barrier, c.live, c.barrier_file, c.barrier_line);
    waiting += line;
  }
  report(kDeadlock, "no thread can go on:%s", waiting.c_str());
}

void run_cta(Runner& r, const GridLaunch& launch, uint3 block_idx, std::minstd_rand& rng) {
  Cta c;
  c.launch = &launch;
  c.block_idx = block_idx;
  c.rng.seed(static_cast<unsigned>(rng()));
  const dim3 block = launch.block;
  const int threads = static_cast<int>(block.x * block.y * block.z);
  c.smem = r.smem;
  c.smem_bytes = launch.smem_bytes;
  std::memset(c.smem, kPoisonByte, c.smem_bytes);
  c.threads.resize(static_cast<size_t>(threads));
  c.warps.resize(static_cast<size_t>((threads + kWarp - 1) / kWarp));
  // A partial last warp: its missing lanes count as exited.
  if (threads % kWarp != 0) c.warps.back().exited = kWarp - threads % kWarp;
  c.live = threads;
  r.cta = &c;
  for (int i = 0; i < threads; ++i) {
    EmuThread& t = c.threads[static_cast<size_t>(i)];
    t.index.thread_idx = {static_cast<unsigned>(i) % block.x,
                          static_cast<unsigned>(i) / block.x % block.y,
                          static_cast<unsigned>(i) / (block.x * block.y)};
    t.index.block_idx = block_idx;
    t.index.block_dim = block;
    t.index.grid_dim = launch.grid;
    t.warp = i / kWarp;
    t.lane = i % kWarp;
    t.fiber = ctx::fiber(std::allocator_arg, PooledStack{&r.stacks},
                         [&t, &launch](ctx::fiber&& scheduler) {
                           t.scheduler = std::move(scheduler);
                           launch.thread_body();
                           thread_exits(t);
                           return std::move(t.scheduler);
                         });
    c.ready.push_back(i);
  }
  while (!c.ready.empty()) {
    const size_t pick = c.rng() % c.ready.size();
    const int next = c.ready[pick];
    c.ready[pick] = c.ready.back();
    c.ready.pop_back();
    EmuThread& t = c.threads[static_cast<size_t>(next)];
    r.current = &t;
    t.fiber = std::move(t.fiber).resume();
    r.current = nullptr;
  }
  if (c.live > 0) describe_deadlock(c);
  // Threads stuck in a deadlock are unwound when their fibers are destroyed with c.
  r.cta = nullptr;
}

}  // namespace

std::string run_grid(const GridLaunch& launch) {
  Runner& r = runner();
  r.failures.clear();
  r.failure_count = 0;
  r.reported_kinds = 0;
  std::minstd_rand rng(static_cast<unsigned>(launch.seed));
  const dim3 g = launch.grid;
  for (unsigned z = 0; z < g.z; ++z) {
    for (unsigned y = 0; y < g.y; ++y) {
      for (unsigned x = 0; x < g.x; ++x) run_cta(r, launch, {x, y, z}, rng);
    }
  }
  if (r.failure_count == 0) return {};
  return r.failures + std::to_string(r.failure_count) + " failure(s) in all";
}

}  // namespace seqpar::cuda_emu
