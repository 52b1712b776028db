// No allocation inside a step: after warm-up steps, forward + backward of every registered
// scheme, and a decoding step of every decoder (KV cache append + step, flat and per node),
// perform zero C++
// heap allocations on every rank (threads backend), for P up to 8. Global operator new is
// replaced in this test binary and counted per thread while a rank's steps run.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "comm/threads/threads_communicator.hpp"
#include "harness/test_data.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"
#include "scheme_cases.hpp"

namespace {
thread_local bool t_counting = false;
thread_local int64_t t_allocations = 0;
}  // namespace

// The replacements pair malloc with free themselves; GCC cannot see that through operator new.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t bytes) {
  if (t_counting) ++t_allocations;
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace seqpar {
namespace {

constexpr int kWarmupSteps = 3;
constexpr int kCountedSteps = 5;

class AllocationFreeStep : public ::testing::TestWithParam<std::tuple<SchemeKind, int>> {};

TEST_P(AllocationFreeStep, ForwardAndBackwardAllocateNothingOnceWarm) {
  const SchemeKind scheme = std::get<0>(GetParam());  // plain names: the lambda captures them
  const int ranks = std::get<1>(GetParam());
  std::vector<int64_t> allocations(static_cast<size_t>(ranks), -1);
  const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
    PlanConfig config;
    config.scheme = scheme;
    config.ulysses_degree = testing::grid_ulysses_degree(scheme, ranks);  // hybrid: 2 x P/2
    config.problem =
        AttentionProblem{1, 2 * ranks * 16, 8, 2, 16, MaskKind::kCausal, DType::kBF16, 0.0f};
    // Contiguous layouts get S % P != 0 (shards differ by a token): the general case.
    SEQPAR_ASSIGN_OR_RETURN(const Layout layout, plan_layout(config, ranks));
    if (layout.kind() == LayoutKind::kContiguous) config.problem.seq += 1;
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, Plan::create(config, comm));
    RankTensors t;
    SEQPAR_RETURN_IF_ERROR(t.allocate(plan->problem(), plan->local_seq()));
    const std::pair<InputTensor, HostBuffer*> inputs[] = {{InputTensor::kQ, &t.q},
                                                          {InputTensor::kK, &t.k},
                                                          {InputTensor::kV, &t.v},
                                                          {InputTensor::kDout, &t.dout}};
    for (const auto& [input, buffer] : inputs) {
      fill_input_shard(plan->problem(), plan->layout(), comm.rank(), 7, input, buffer->data());
    }
    const ForwardArgs fwd{t.q.data(), t.k.data(), t.v.data(), t.out.data(), t.lse.as<float>()};
    const BackwardArgs bwd{t.q.data(),    t.k.data(),  t.v.data(),  t.out.data(), t.lse.as<float>(),
                           t.dout.data(), t.dq.data(), t.dk.data(), t.dv.data()};
    for (int step = 0; step < kWarmupSteps + kCountedSteps; ++step) {
      t_counting = step >= kWarmupSteps;
      const Status f = plan->forward(fwd);
      const Status b = f.is_ok() ? plan->backward(bwd) : f;
      t_counting = false;
      SEQPAR_RETURN_IF_ERROR(b);
    }
    allocations[static_cast<size_t>(comm.rank())] = t_allocations;
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < ranks; ++r) {
    EXPECT_EQ(allocations[static_cast<size_t>(r)], 0)
        << "rank " << r << " allocated during " << kCountedSteps << " warm steps";
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryScheme, AllocationFreeStep,
    ::testing::Combine(::testing::ValuesIn(all_schemes()), ::testing::Values(1, 2, 3, 4, 6, 8)),
    [](const ::testing::TestParamInfo<std::tuple<SchemeKind, int>>& param_info) {
      return str_cat(scheme_name(std::get<0>(param_info.param)), "_P",
                     std::get<1>(param_info.param));
    });

// (decoder, placement), through DecodePlan.
struct Placement {
  int ranks;
  int per_node;  // ranks per node: 0 flat
};
using DecodeRanks = std::tuple<DecoderKind, Placement>;
class AllocationFreeDecode : public ::testing::TestWithParam<DecodeRanks> {};

std::string decode_case_name(const ::testing::TestParamInfo<DecodeRanks>& param_info) {
  const Placement placement = std::get<1>(param_info.param);
  return str_cat(decoder_name(std::get<0>(param_info.param)), "_P", placement.ranks, "_R",
                 placement.per_node);
}

TEST_P(AllocationFreeDecode, AppendAndStepAllocateNothingOnceWarm) {
  const DecoderKind decoder = std::get<0>(GetParam());
  const int ranks = std::get<1>(GetParam()).ranks;
  const int ranks_per_node = std::get<1>(GetParam()).per_node;
  constexpr int64_t kNew = 2;  // tokens per step
  std::vector<int64_t> allocations(static_cast<size_t>(ranks), -1);
  const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
    DecodeConfig config;
    config.problem =
        AttentionProblem{1, 4 * ranks, 8, 2, 16, MaskKind::kCausal, DType::kBF16, 0.25f};
    config.q_len = kNew;
    config.capacity = 4 * ranks + (kWarmupSteps + kCountedSteps) * kNew;
    config.decoder = decoder;
    config.ranks_per_node = ranks_per_node;
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodePlan> plan, DecodePlan::create(config, comm));
    HostBuffer q, k, v, out, lse;
    for (HostBuffer* b : {&q, &k, &v, &out}) SEQPAR_RETURN_IF_ERROR(b->allocate(8 * kNew * 16 * 2));
    SEQPAR_RETURN_IF_ERROR(lse.allocate(8 * kNew * sizeof(float)));
    for (HostBuffer* b : {&q, &k, &v}) b->fill_zero();
    for (int step = 0; step < kWarmupSteps + kCountedSteps; ++step) {
      t_counting = step >= kWarmupSteps;
      Status s = plan->append(k.data(), v.data(), kNew);
      if (s.is_ok()) s = plan->step(q.data(), out.data(), lse.as<float>());
      t_counting = false;
      SEQPAR_RETURN_IF_ERROR(s);
    }
    allocations[static_cast<size_t>(comm.rank())] = t_allocations;
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < ranks; ++r) {
    EXPECT_EQ(allocations[static_cast<size_t>(r)], 0)
        << "rank " << r << " allocated during " << kCountedSteps << " warm decoding steps";
  }
}

INSTANTIATE_TEST_SUITE_P(EveryDecoder, AllocationFreeDecode,
                         ::testing::Combine(::testing::ValuesIn(all_decoders()),
                                            ::testing::Values(Placement{1, 0}, Placement{3, 0},
                                                              Placement{8, 0}, Placement{8, 4},
                                                              Placement{6, 2})),
                         decode_case_name);

}  // namespace
}  // namespace seqpar
