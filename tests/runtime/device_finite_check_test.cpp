// The finite check of device plans (PlanConfig::check_finite, runtime/finite_check.hpp's
// DeviceFiniteCheck): a deferred report, read one step late or at Plan::finite_check_result().
//   - the count kernel alone, per dtype, on sizes with ragged tails and beyond one grid-stride
//     pass, against a host count (finite extremes and subnormals are not counted);
//   - per dtype, a NaN, an Inf, or both planted at known indices in Q, and a NaN in dO, reported
//     by finite_check_result() naming the tensor, the step, the first index and the count; a
//     gradient overflow (fp16 dV past 65504) reported with the count and index the host finds in
//     the downloaded gradients; a clean run reported ok;
//   - once the device has finished the failing step, the next forward fails with its verdict,
//     and so does every later call; a step never waits on the host (the emulator counts waits)
//     and finite_check_result() waits exactly once;
//   - threads backend, P = 2: a NaN on rank 0 fails rank 0's calls (kInvalidArgument) and rank
//     1's (kAborted) rather than leaving rank 1 waiting.
// Skips without a CUDA device (or in builds without the CUDA toolkit); in CI it runs on the
// emulator (ctest -L gpu).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "comm/threads/threads_communicator.hpp"
#include "harness/device_shards.hpp"
#include "harness/test_data.hpp"
#include "runtime/plan.hpp"
#include "tests/support/cuda_visible.hpp"
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "runtime/cuda/finite_check_launch.hpp"
#endif
#ifdef SEQPAR_CUDA_EMULATION
#include "cuda_emu/device.hpp"
#endif

namespace seqpar {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- the count kernel alone ----

#ifdef SEQPAR_HAVE_CUDA
struct Found {
  unsigned long long count = 0;
  unsigned long long first = ~0ull;  // untouched: none found
};

// The kernel's (count, first) of `host` (n elements of `dtype`), copied to an allocation of
// exactly its size (the emulator pads allocations with NaN, so a read past n is counted).
Found count_on_device(const std::vector<unsigned char>& host, DType dtype, int64_t n) {
  void* data = nullptr;
  Found* record = nullptr;
  EXPECT_EQ(cudaMalloc(&data, host.size()), cudaSuccess);
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&record), sizeof(Found)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(data, host.data(), host.size(), cudaMemcpyHostToDevice), cudaSuccess);
  const Found clean;
  EXPECT_EQ(cudaMemcpy(record, &clean, sizeof(Found), cudaMemcpyHostToDevice), cudaSuccess);
  const cuda_finite_check::CountArgs args{data, dtype, n, &record->count, &record->first};
  EXPECT_EQ(cuda_finite_check::launch_count_non_finite(args, nullptr), cudaSuccess);
  Found found;
  EXPECT_EQ(cudaMemcpy(&found, record, sizeof(Found), cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(data);
  cudaFree(record);
  return found;
}
#endif

TEST(DeviceFiniteCount, MatchesAHostCountOnRaggedSizes) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
#ifdef SEQPAR_HAVE_CUDA
  std::mt19937_64 rng(20261203);
  struct Size {
    DType dtype;
    int64_t n;
  };
  std::vector<Size> sizes;
  for (const DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (const int64_t n : {1, 31, 255, 256, 257, 4097, 70001}) sizes.push_back({dtype, n});
  }
  // Beyond one grid-stride pass (4096 blocks of 256 threads).
  sizes.push_back({DType::kBF16, int64_t{4096} * 256 + 77});
  for (const Size& size : sizes) {
    const DType dtype = size.dtype;
    const auto n = static_cast<size_t>(size.n);
    const float largest = dtype == DType::kF16 ? 65504.0f : std::numeric_limits<float>::max();
    for (int trial = 0; trial < 3; ++trial) {
      std::vector<unsigned char> host(n * dtype_size(dtype));
      std::uniform_real_distribution<float> value(-4.0f, 4.0f);
      for (size_t i = 0; i < n; ++i) store_float(host.data(), dtype, i, value(rng));
      // Finite extremes, which must not count: the largest value and a subnormal.
      store_float(host.data(), dtype, rng() % n, -largest);
      store_float(host.data(), dtype, rng() % n, 1e-40f);
      // trial 0: clean; 1: the last element and a few others; 2: the first element and more.
      const size_t planted = trial == 0 ? 0 : trial == 1 ? 3 : 1 + n / 97;
      const float bad[] = {kNaN, kInf, -kInf};
      for (size_t p = 0; p < planted; ++p) {
        const size_t at = p == 0 ? (trial == 1 ? n - 1 : 0) : rng() % n;
        store_float(host.data(), dtype, at, bad[p % 3]);
      }
      Found expected;
      for (size_t i = 0; i < n; ++i) {
        if (std::isfinite(load_float(host.data(), dtype, i))) continue;
        if (expected.count++ == 0) expected.first = i;
      }
      const Found found = count_on_device(host, dtype, size.n);
      EXPECT_EQ(found.count, expected.count)
          << dtype_name(dtype) << " n " << n << " trial " << trial;
      EXPECT_EQ(found.first, expected.first)
          << dtype_name(dtype) << " n " << n << " trial " << trial;
    }
  }
#endif
}

// ---- device plans ----

constexpr int64_t kTokensPerRank = 48;

// One rank's device plan and its step tensors (the plan is destroyed first: it uses the stream).
struct DeviceRank {
  RankTensors t;
  std::unique_ptr<DeviceShards> device;
  std::unique_ptr<Plan> plan;
  DType dtype = DType::kBF16;

  static StatusOr<std::unique_ptr<DeviceRank>> create(Communicator& comm, DType dtype) {
    auto r = std::make_unique<DeviceRank>();
    r->dtype = dtype;
    SEQPAR_ASSIGN_OR_RETURN(r->device, DeviceShards::create());
    PlanConfig config;
    config.scheme = SchemeKind::kZigzag;
    config.device = Device::kCuda;
    config.stream = r->device->stream();
    config.problem =
        AttentionProblem{1, kTokensPerRank * comm.size(), 4, 2, 64, MaskKind::kCausal, dtype, 0.0f};
    config.check_finite = true;
    SEQPAR_ASSIGN_OR_RETURN(r->plan, Plan::create(config, comm));
    SEQPAR_RETURN_IF_ERROR(r->t.allocate(r->plan->problem(), r->plan->local_seq()));
    SEQPAR_RETURN_IF_ERROR(r->device->allocate(r->t));
    for (const InputTensor input :
         {InputTensor::kQ, InputTensor::kK, InputTensor::kV, InputTensor::kDout}) {
      fill_input_shard(r->plan->problem(), r->plan->layout(), comm.rank(), 11, input,
                       r->host(input).data());
    }
    SEQPAR_RETURN_IF_ERROR(r->device->upload_inputs(r->t));
    return r;
  }

  HostBuffer& host(InputTensor input) {
    return input == InputTensor::kQ   ? t.q
           : input == InputTensor::kK ? t.k
           : input == InputTensor::kV ? t.v
                                      : t.dout;
  }
  size_t q_elems() const { return static_cast<size_t>(kTokensPerRank * 4 * 64); }

  // Sets element `at` of the host input to `value` and uploads the inputs again, ordered before
  // the next step. An upload reads the host tensor when the stream reaches it, so the earlier
  // steps and uploads are waited for first (a test-side wait, outside every step).
  Status plant(InputTensor input, size_t at, float value) {
    SEQPAR_RETURN_IF_ERROR(device->sync());
    store_float(host(input).data(), dtype, at, value);
    return device->upload_inputs(t);
  }
  Status forward() { return plan->forward(device->forward_args()); }
  Status backward() { return plan->backward(device->backward_args()); }
};

// What a verdict must say: the tensor, its count, first index and size, and the step.
void expect_names(const Status& verdict, const std::string& what, uint64_t count, uint64_t first,
                  size_t n, DType dtype, const std::string& step) {
  EXPECT_EQ(verdict.code(), StatusCode::kInvalidArgument) << verdict.to_string();
  const std::string& m = verdict.message();
  EXPECT_TRUE(contains(m, str_cat(what, " holds ", count, " non-finite value(s)"))) << m;
  EXPECT_TRUE(
      contains(m, str_cat("the first at element ", first, " of ", n, " (", dtype_name(dtype), ")")))
      << m;
  EXPECT_TRUE(contains(m, step)) << m;
}

class DeviceFiniteCheckPlan : public ::testing::TestWithParam<DType> {};

TEST_P(DeviceFiniteCheckPlan, ANaNOrAnInfInQIsReportedWithItsIndexAndCount) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const DType dtype = GetParam();
  struct Planted {
    size_t at;
    float value;
  };
  const std::vector<std::vector<Planted>> cases = {
      {{37, kNaN}}, {{1000, kInf}}, {{2000, kNaN}, {5, -kInf}}, {{12287, kNaN}}};
  for (const std::vector<Planted>& planted : cases) {
    const Status status = run_threads(
        1,
        [&](Communicator& comm) -> Status {
          SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceRank> r, DeviceRank::create(comm, dtype));
          uint64_t first = ~0ull;
          for (const Planted& p : planted) {
            SEQPAR_RETURN_IF_ERROR(r->plant(InputTensor::kQ, p.at, p.value));
            first = std::min<uint64_t>(first, p.at);
          }
          // The step itself does not wait for its check: it succeeds.
          SEQPAR_RETURN_IF_ERROR(r->forward());
          const Status verdict = r->plan->finite_check_result();
          expect_names(verdict, "Q", planted.size(), first, r->q_elems(), dtype,
                       "in this plan's step 1 (its forward)");
          // The verdict stays: the next step fails with it, as does the next result.
          const Status next = r->forward();
          EXPECT_EQ(next.message(), verdict.message());
          EXPECT_EQ(r->plan->finite_check_result().message(), verdict.message());
          return r->device->sync();
        },
        Device::kCuda);
    EXPECT_TRUE(status.is_ok()) << status.to_string();
  }
}

TEST_P(DeviceFiniteCheckPlan, ANaNInDoutIsReportedAsTheBackwardsDO) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const DType dtype = GetParam();
  const Status status = run_threads(
      1,
      [&](Communicator& comm) -> Status {
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceRank> r, DeviceRank::create(comm, dtype));
        SEQPAR_RETURN_IF_ERROR(r->forward());
        SEQPAR_RETURN_IF_ERROR(r->plant(InputTensor::kDout, 4321, kNaN));
        SEQPAR_RETURN_IF_ERROR(r->backward());  // its forward's report may or may not be in
        expect_names(r->plan->finite_check_result(), "dO", 1, 4321, r->q_elems(), dtype,
                     "in this plan's step 2 (its backward)");
        return r->device->sync();
      },
      Device::kCuda);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

TEST_P(DeviceFiniteCheckPlan, CleanStepsReportOkAndNeverWaitOnTheHost) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const DType dtype = GetParam();
  const Status status = run_threads(
      1,
      [&](Communicator& comm) -> Status {
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceRank> r, DeviceRank::create(comm, dtype));
#ifdef SEQPAR_CUDA_EMULATION
        const uint64_t before = cuda_emu::host_waits_on_this_thread();
#endif
        for (int step = 0; step < 3; ++step) {
          SEQPAR_RETURN_IF_ERROR(r->forward());
          SEQPAR_RETURN_IF_ERROR(r->backward());
        }
#ifdef SEQPAR_CUDA_EMULATION
        EXPECT_EQ(cuda_emu::host_waits_on_this_thread() - before, 0u);
#endif
        const Status verdict = r->plan->finite_check_result();
        EXPECT_TRUE(verdict.is_ok()) << verdict.to_string();
#ifdef SEQPAR_CUDA_EMULATION
        EXPECT_EQ(cuda_emu::host_waits_on_this_thread() - before, 1u);  // the result's, only
#endif
        return r->device->sync();
      },
      Device::kCuda);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

TEST_P(DeviceFiniteCheckPlan, OnceTheDeviceHasReportedTheNextStepFails) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const DType dtype = GetParam();
  const Status status = run_threads(
      1,
      [&](Communicator& comm) -> Status {
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceRank> r, DeviceRank::create(comm, dtype));
        SEQPAR_RETURN_IF_ERROR(r->forward());  // step 1: clean
        SEQPAR_RETURN_IF_ERROR(r->plant(InputTensor::kQ, 777, kInf));
        SEQPAR_RETURN_IF_ERROR(r->forward());                          // step 2: Inf in Q
        SEQPAR_RETURN_IF_ERROR(r->plant(InputTensor::kQ, 777, 0.5f));  // waits for step 2
#ifdef SEQPAR_CUDA_EMULATION
        const uint64_t before = cuda_emu::host_waits_on_this_thread();
#endif
        const Status next = r->backward();  // step 3 fails before its own work
#ifdef SEQPAR_CUDA_EMULATION
        EXPECT_EQ(cuda_emu::host_waits_on_this_thread() - before, 0u);
#endif
        expect_names(next, "Q", 1, 777, r->q_elems(), dtype, "in this plan's step 2 (its forward)");
        // Clean inputs do not clear it: every later call says the same.
        EXPECT_EQ(r->forward().message(), next.message());
        EXPECT_EQ(r->plan->finite_check_result().message(), next.message());
        return r->device->sync();
      },
      Device::kCuda);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DeviceFiniteCheckPlan,
                         ::testing::Values(DType::kBF16, DType::kF16),
                         [](const ::testing::TestParamInfo<DType>& param_info) {
                           return std::string(dtype_name(param_info.param));
                         });

// fp16 stores at most 65504: with Q = 0 every causal row attends uniformly, so with dO = 60000
// everywhere the first key's dV sums 60000 * (1 + 1/2 + ... + 1/48), about 2.7e5, an Inf.
TEST(DeviceFiniteCheckGradients, AnFp16GradientOverflowIsReportedAsTheHostFindsIt) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const DType dtype = DType::kF16;
  const Status status = run_threads(
      1,
      [&](Communicator& comm) -> Status {
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceRank> r, DeviceRank::create(comm, dtype));
        const size_t n = r->q_elems();
        SEQPAR_RETURN_IF_ERROR(r->device->sync());  // the first upload has read the host tensors
        for (size_t i = 0; i < n; ++i) {
          store_float(r->t.q.data(), dtype, i, 0.0f);
          store_float(r->t.dout.data(), dtype, i, 60000.0f);
        }
        SEQPAR_RETURN_IF_ERROR(r->device->upload_inputs(r->t));
        SEQPAR_RETURN_IF_ERROR(r->forward());
        SEQPAR_RETURN_IF_ERROR(r->backward());
        const Status verdict = r->plan->finite_check_result();
        SEQPAR_RETURN_IF_ERROR(r->device->download_outputs(r->t, true));
        // The first gradient, in the check's order, with a non-finite value, as the host counts.
        struct Gradient {
          const char* what;
          const HostBuffer* data;
          size_t n;
        };
        const size_t kv = n / 2;  // Hkv = Hq / 2
        const Gradient gradients[] = {{"backward's dQ", &r->t.dq, n},
                                      {"backward's dK", &r->t.dk, kv},
                                      {"backward's dV", &r->t.dv, kv}};
        bool dv_overflowed = false;
        bool named = false;
        for (const Gradient& g : gradients) {
          uint64_t count = 0, first = 0;
          for (size_t i = 0; i < g.n; ++i) {
            if (std::isfinite(load_float(g.data->data(), dtype, i))) continue;
            if (count++ == 0) first = i;
          }
          if (g.data == &r->t.dv) dv_overflowed = count > 0;
          if (count > 0 && !named) {
            expect_names(verdict, g.what, count, first, g.n, dtype,
                         "in this plan's step 2 (its backward)");
            named = true;
          }
        }
        EXPECT_TRUE(dv_overflowed) << "the planted overflow did not happen";
        return Status::ok();
      },
      Device::kCuda);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

// P = 2: rank 0's Q holds a NaN. Neither rank waits for the device inside a step, so rank 0
// learns of it at a later forward (once its device has finished step 1) or, at the latest, at
// finite_check_result(); either way it aborts the group, and rank 1, waiting in that step's
// exchange for rank 0, fails kAborted instead of hanging.
TEST(DeviceFiniteCheckRanks, ANaNOnOneRankFailsBothRanksCalls) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  constexpr int kRanks = 2;
  constexpr int kMaxSteps = 4;
  std::vector<Status> last(kRanks);
  std::vector<int> calls(kRanks, 0);
  const Status status = run_threads(
      kRanks,
      [&](Communicator& comm) -> Status {
        const int rank = comm.rank();
        SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceRank> r,
                                DeviceRank::create(comm, DType::kBF16));
        if (rank == 0) SEQPAR_RETURN_IF_ERROR(r->plant(InputTensor::kQ, 99, kNaN));
        Status s;
        // Rank 1 runs one step more than rank 0 may: that one cannot finish without rank 0.
        const int steps = rank == 0 ? kMaxSteps : kMaxSteps + 1;
        for (int step = 0; step < steps && s.is_ok(); ++step) {
          s = r->forward();
          ++calls[static_cast<size_t>(rank)];
        }
        if (s.is_ok() && rank == 0) s = r->plan->finite_check_result();
        last[static_cast<size_t>(rank)] = s;
        (void)r->device->sync();
        return Status::ok();
      },
      Device::kCuda);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  expect_names(last[0], "Q", 1, 99, static_cast<size_t>(kTokensPerRank * 4 * 64), DType::kBF16,
               "in this plan's step 1 (its forward)");
  EXPECT_EQ(last[1].code(), StatusCode::kAborted) << last[1].to_string();
  EXPECT_GE(calls[1], 2) << "rank 1 failed at its first step, before rank 0 could know";
}

}  // namespace
}  // namespace seqpar
