// Device plans: every registered scheme on the threads backend on a device (the CPU emulator of
// the GPU in CI, cuda_emu/; the GPU in a GPU round), forward and backward, bf16 and fp16, checked
// as the host plans are: O, LSE, dQ, dK and dV of every rank against the fp64 reference within
// the dtype's tolerance, and every rank's traffic against its schedule. The tensors, workspace,
// position maps and transfers are all in device memory, the kernels and copies ordered on each
// rank's stream, and (on the emulator, which counts them) a warm step never waits on the host for
// the device. Skips without a CUDA device (or in builds without the CUDA toolkit).
#include <gtest/gtest.h>

#include <tuple>

#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "harness/device_shards.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"
#include "scheme_cases.hpp"
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#ifdef SEQPAR_CUDA_EMULATION
#include "cuda_emu/device.hpp"
#endif

namespace seqpar {
namespace {

bool cuda_device_visible() {
#ifdef SEQPAR_HAVE_CUDA
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
#else
  return false;
#endif
}

using DeviceCase = std::tuple<SchemeKind, int, DType>;  // scheme, ranks, storage dtype
class DevicePlan : public ::testing::TestWithParam<DeviceCase> {};

TEST_P(DevicePlan, MatchesTheReferenceAndItsSchedule) {
  if (!cuda_device_visible()) GTEST_SKIP() << "no CUDA device visible (nor the emulator)";
  const auto [scheme, ranks, dtype] = GetParam();
  StepConfig step;
  step.plan.scheme = scheme;
  step.plan.device = Device::kCuda;
  step.plan.ulysses_degree = testing::grid_ulysses_degree(scheme, ranks);
  // Causal (LightSeq's rule), S divisible by 2P (zigzag, the hybrid's ring), Hq >= P (Ulysses),
  // GQA 2, head dim 64: 48 tokens per rank, so blocks have ragged 64-key tiles.
  step.plan.problem = AttentionProblem{1, 48 * ranks, 4, 2, 64, MaskKind::kCausal, dtype, 0.0f};
  step.backward = true;
  step.check = true;
  step.iters = 1;
  step.warmup = 0;
  step.seed = 97 + static_cast<uint64_t>(scheme) * 13 + static_cast<uint64_t>(ranks);
  step.timeout_s = 120;
  testing::expect_checked_step_on_threads(step, ranks);
}

INSTANTIATE_TEST_SUITE_P(EveryScheme, DevicePlan,
                         ::testing::Combine(::testing::ValuesIn(all_schemes()),
                                            ::testing::Values(1, 2, 4),
                                            ::testing::Values(DType::kBF16, DType::kF16)),
                         [](const ::testing::TestParamInfo<DeviceCase>& param_info) {
                           return str_cat(scheme_name(std::get<0>(param_info.param)), "_P",
                                          std::get<1>(param_info.param), "_",
                                          dtype_name(std::get<2>(param_info.param)));
                         });

#ifdef SEQPAR_CUDA_EMULATION
// A warm device step (forward + backward) makes no host call that waits for the device: the
// kernels, copies and transfers are all ordered on the streams, so the host only enqueues. The
// emulator counts such calls per host thread (cuda_emu::host_waits_on_this_thread).
class DevicePlanStep : public ::testing::TestWithParam<SchemeKind> {};

TEST_P(DevicePlanStep, NeverWaitsOnTheHostForTheDevice) {
  const SchemeKind scheme = GetParam();
  constexpr int kRanks = 4;
  std::vector<int64_t> waits(kRanks, -1);
  const auto body = [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceShards> device, DeviceShards::create());
    PlanConfig config;
    config.scheme = scheme;
    config.device = Device::kCuda;
    config.stream = device->stream();
    config.ulysses_degree = testing::grid_ulysses_degree(scheme, kRanks);
    config.problem =
        AttentionProblem{1, 48 * kRanks, 4, 2, 64, MaskKind::kCausal, DType::kBF16, 0.0f};
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
    RankTensors t;
    SEQPAR_RETURN_IF_ERROR(t.allocate(plan->problem(), plan->local_seq()));
    SEQPAR_RETURN_IF_ERROR(device->allocate(t));
    for (const InputTensor input :
         {InputTensor::kQ, InputTensor::kK, InputTensor::kV, InputTensor::kDout}) {
      HostBuffer* host = input == InputTensor::kQ   ? &t.q
                         : input == InputTensor::kK ? &t.k
                         : input == InputTensor::kV ? &t.v
                                                    : &t.dout;
      fill_input_shard(plan->problem(), plan->layout(), comm.rank(), 5, input, host->data());
    }
    SEQPAR_RETURN_IF_ERROR(device->upload_inputs(t));
    for (int step = 0; step < 2; ++step) {
      const uint64_t before = cuda_emu::host_waits_on_this_thread();
      SEQPAR_RETURN_IF_ERROR(plan->forward(device->forward_args()));
      SEQPAR_RETURN_IF_ERROR(plan->backward(device->backward_args()));
      if (step == 1) {
        waits[static_cast<size_t>(comm.rank())] =
            static_cast<int64_t>(cuda_emu::host_waits_on_this_thread() - before);
      }
    }
    return device->sync();
  };
  const Status status = run_threads(kRanks, body, Device::kCuda);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(waits[static_cast<size_t>(r)], 0)
        << scheme_name(scheme) << " rank " << r << " waited on the host in a warm step";
  }
}

INSTANTIATE_TEST_SUITE_P(EveryScheme, DevicePlanStep, ::testing::ValuesIn(all_schemes()),
                         [](const ::testing::TestParamInfo<SchemeKind>& param_info) {
                           return std::string(scheme_name(param_info.param));
                         });
#endif

}  // namespace
}  // namespace seqpar
