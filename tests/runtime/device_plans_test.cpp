// Device plans: every registered scheme on the threads backend on a device (the CPU emulator of
// the GPU in CI, cuda_emu/; the GPU in a GPU round), forward and backward, bf16 and fp16, checked
// as the host plans are: O, LSE, dQ, dK and dV of every rank against the fp64 reference within
// the dtype's tolerance, and every rank's traffic against its schedule. The tensors, workspace,
// position maps and transfers are all in device memory, the kernels and copies ordered on each
// rank's stream, and (on the emulator, which counts them) a warm step never waits on the host for
// the device. Both decoders likewise: the KV cache, the new tokens and the outputs on the device,
// three steps over an uneven prompt against the fp64 reference and the decoder's schedule.
// Skips without a CUDA device (or in builds without the CUDA toolkit).
#include <gtest/gtest.h>

#include <tuple>

#include "checked_step.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "harness/decode_step.hpp"
#include "harness/device_shards.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"
#include "runtime/workspace_arena.hpp"
#include "scheme_cases.hpp"
#include "tests/support/cuda_visible.hpp"
#ifdef SEQPAR_CUDA_EMULATION
#include "cuda_emu/device.hpp"
#endif

namespace seqpar {
namespace {

using DeviceCase = std::tuple<SchemeKind, int, DType>;  // scheme, ranks, storage dtype
class DevicePlan : public ::testing::TestWithParam<DeviceCase> {};

TEST_P(DevicePlan, MatchesTheReferenceAndItsSchedule) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
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

// decoder, ranks, storage dtype, ranks per node (0: flat)
using DeviceDecodeCase = std::tuple<DecoderKind, int, DType, int>;
class DeviceDecode : public ::testing::TestWithParam<DeviceDecodeCase> {};

TEST_P(DeviceDecode, MatchesTheReferenceAndItsSchedule) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const auto [decoder, ranks, dtype, ranks_per_node] = GetParam();
  StepConfig step;
  step.phase = Phase::kDecode;
  step.decoder = decoder;
  step.q_len = 2;
  step.plan.device = Device::kCuda;
  step.plan.ranks_per_node = ranks_per_node;
  // A prompt of 40 tokens per rank and 3 more (uneven shards), GQA 2, head dim 64; three steps
  // of two tokens grow the shards unevenly.
  step.plan.problem = AttentionProblem{2, 40 * ranks + 3, 4, 2, 64, MaskKind::kCausal, dtype, 0.0f};
  step.check = true;
  step.warmup = 1;
  step.iters = 2;
  step.seed = 131 + static_cast<uint64_t>(decoder) * 7 + static_cast<uint64_t>(ranks);
  step.timeout_s = 120;
  std::vector<StepReport> reports(static_cast<size_t>(ranks));
  const Status status = run_threads(
      ranks,
      [&](Communicator& comm) -> Status {
        SEQPAR_ASSIGN_OR_RETURN(reports[static_cast<size_t>(comm.rank())],
                                run_decode_step(step, comm));
        return Status::ok();
      },
      Device::kCuda);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < ranks; ++r) {
    const StepReport& rep = reports[static_cast<size_t>(r)];
    ASSERT_TRUE(rep.errors.has_value()) << "rank " << r;
    EXPECT_LE(rep.errors->out, rep.errors->tolerance) << "rank " << r;
    EXPECT_LE(rep.errors->lse, rep.errors->tolerance) << "rank " << r;
    EXPECT_TRUE(rep.errors->passed) << "rank " << r;
    EXPECT_TRUE(rep.comm_matches_formula) << "rank " << r << ": " << rep.measured_comm.bytes_sent
                                          << " bytes; formula " << rep.expected_comm.bytes_sent;
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryDecoder, DeviceDecode,
    ::testing::Values(DeviceDecodeCase{DecoderKind::kTree, 1, DType::kBF16, 0},
                      DeviceDecodeCase{DecoderKind::kTree, 2, DType::kBF16, 0},
                      DeviceDecodeCase{DecoderKind::kTree, 4, DType::kF16, 0},
                      DeviceDecodeCase{DecoderKind::kTree, 4, DType::kBF16, 2},  // per node
                      DeviceDecodeCase{DecoderKind::kRing, 1, DType::kF16, 0},
                      DeviceDecodeCase{DecoderKind::kRing, 2, DType::kF16, 0},
                      DeviceDecodeCase{DecoderKind::kRing, 4, DType::kBF16, 0}),
    [](const ::testing::TestParamInfo<DeviceDecodeCase>& param_info) {
      const DeviceDecodeCase& c = param_info.param;
      const int per_node = std::get<3>(c);
      return str_cat(decoder_name(std::get<0>(c)), "_P", std::get<1>(c), "_",
                     dtype_name(std::get<2>(c)),
                     per_node > 0 ? str_cat("_rpn", per_node) : std::string());
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

// A warm decoding step (append + step) waits on the host for the device no more than a training
// step does: never.
class DeviceDecodeStep : public ::testing::TestWithParam<DecoderKind> {};

TEST_P(DeviceDecodeStep, NeverWaitsOnTheHostForTheDevice) {
  const DecoderKind decoder = GetParam();
  constexpr int kRanks = 4;
  std::vector<int64_t> waits(kRanks, -1);
  const auto body = [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DeviceShards> device, DeviceShards::create());
    DecodeConfig config;
    config.decoder = decoder;
    config.device = Device::kCuda;
    config.stream = device->stream();
    config.q_len = 2;
    config.problem =
        AttentionProblem{1, 16 * kRanks, 4, 2, 64, MaskKind::kCausal, DType::kBF16, 0.0f};
    config.capacity = config.problem.seq + 3 * config.q_len;
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodePlan> plan, DecodePlan::create(config, comm));
    const AttentionProblem& p = plan->config().problem;
    // Zero tokens (finite; the values do not matter here): q (1, 2, Hq, D), k, v (1, 2, Hkv, D),
    // out (1, 2, Hq, D), lse (1, Hq, 2).
    const size_t e = dtype_size(p.dtype);
    char *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr;
    float* lse = nullptr;
    WorkspaceArena arena;
    arena.add(q, static_cast<size_t>(2 * p.heads_q * p.head_dim) * e);
    arena.add(k, static_cast<size_t>(2 * p.heads_kv * p.head_dim) * e);
    arena.add(v, static_cast<size_t>(2 * p.heads_kv * p.head_dim) * e);
    arena.add(out, static_cast<size_t>(2 * p.heads_q * p.head_dim) * e);
    arena.add(lse, static_cast<size_t>(2 * p.heads_q) * sizeof(float));
    WorkspaceBuffer tensors;
    SEQPAR_RETURN_IF_ERROR(arena.allocate(tensors, Device::kCuda));
    const KernelTarget target{Device::kCuda, device->stream()};
    SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(tensors.data(), arena.bytes(), target));
    KvCache& cache = plan->cache();  // the prompt's rows: zeros too
    const size_t shard = static_cast<size_t>(cache.local_capacity() * p.heads_kv * p.head_dim) * e;
    SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(cache.k(), shard, target));
    SEQPAR_RETURN_IF_ERROR(buffer_ops::zero(cache.v(), shard, target));
    for (int step = 0; step < 3; ++step) {
      const uint64_t before = cuda_emu::host_waits_on_this_thread();
      SEQPAR_RETURN_IF_ERROR(plan->append(k, v, config.q_len));
      SEQPAR_RETURN_IF_ERROR(plan->step(q, out, lse));
      if (step == 2) {
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
        << decoder_name(decoder) << " rank " << r << " waited on the host in a warm step";
  }
}

INSTANTIATE_TEST_SUITE_P(EveryDecoder, DeviceDecodeStep, ::testing::ValuesIn(all_decoders()),
                         [](const ::testing::TestParamInfo<DecoderKind>& param_info) {
                           return std::string(decoder_name(param_info.param));
                         });
#endif

}  // namespace
}  // namespace seqpar
