// The ring-family test cases (see scheme_cases.hpp).
#include "scheme_cases.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <mutex>

#include "comm/threads/threads_communicator.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar::testing {

std::string SchemeCase::name() const {
  return str_cat(scheme_name(scheme), "_", mask_name(mask), "_h", heads_q, "kv", heads_kv, "_d",
                 head_dim, "_t", tokens_per_rank,
                 extra_tokens > 0 ? str_cat("x", extra_tokens) : "", "_b", batch, "_",
                 dtype_name(dtype));
}

std::vector<SchemeCase> scheme_cases() {
  std::vector<SchemeCase> cases;
  for (SchemeKind s : {SchemeKind::kRing, SchemeKind::kStriped, SchemeKind::kZigzag}) {
    const bool zigzag = s == SchemeKind::kZigzag;  // two chunks per rank: even token counts
    cases.push_back(
        {s, MaskKind::kCausal, 8, 2, 16, 10, 1, DType::kF32});           // GQA 4, tiny odd chunks
    cases.push_back({s, MaskKind::kFull, 4, 4, 8, 14, 2, DType::kF32});  // MHA, batch 2
    cases.push_back(
        {s, MaskKind::kCausal, 8, 1, 32, 80, 1, DType::kF32});  // MQA, chunks cross tiles
    cases.push_back({s, MaskKind::kCausal, 4, 2, 64, 48, 1, DType::kBF16});
    cases.push_back({s, MaskKind::kCausal, 8, 8, 8, 6, 1, DType::kF16});
    if (!zigzag) {  // S % 2P != 0: layouts that need only S % P == 0
      cases.push_back({s, MaskKind::kCausal, 4, 2, 16, 7, 1, DType::kF32});
      cases.push_back({s, MaskKind::kFull, 2, 1, 8, 1, 1, DType::kF32});  // one token per rank
    }
    if (s == SchemeKind::kRing) {  // S % P != 0: contiguous shards differ by a token
      cases.push_back({s, MaskKind::kCausal, 8, 2, 16, 10, 1, DType::kF32, 5});
      cases.push_back({s, MaskKind::kFull, 4, 4, 8, 14, 2, DType::kF32, 1});
      cases.push_back({s, MaskKind::kCausal, 4, 2, 64, 20, 1, DType::kBF16, 3});
    }
  }
  return cases;
}

StepConfig options_for(const SchemeCase& c, int ranks) {
  StepConfig o;
  o.plan.scheme = c.scheme;
  o.plan.problem = AttentionProblem{c.batch,    ranks * c.tokens_per_rank + c.extra_tokens,
                                    c.heads_q,  c.heads_kv,
                                    c.head_dim, c.mask,
                                    c.dtype,    0.0f};
  o.backward = true;
  o.check = true;
  o.iters = 1;
  o.warmup = 0;
  o.seed = std::hash<std::string>{}(c.name()) ^ static_cast<uint64_t>(ranks);
  return o;
}

int grid_ulysses_degree(SchemeKind scheme, int ranks) {
  const SchemeDescriptor& descriptor = scheme_descriptor(scheme);
  if (!descriptor.takes_ulysses_degree) return 0;
  for (const int u : descriptor.candidate_degrees(ranks)) {
    if (u > 1 && u < ranks) return u;
  }
  return 0;
}

std::vector<CommVolume> schedule_comm(SchemeKind scheme, const oracle::Shape& shape, Pass pass) {
  PlanConfig config;
  config.problem = shape.problem;
  config.scheme = scheme;
  config.ulysses_degree = scheme_descriptor(scheme).takes_ulysses_degree ? shape.ulysses : 0;
  config.ranks_per_node = shape.ranks_per_node;
  if (!validate_problem(config, shape.ranks).is_ok()) return {};
  const SchemeContext context{shape.problem,
                              scheme,
                              plan_layout(config, shape.ranks).value(),
                              nullptr,
                              Device::kHost,
                              nullptr,
                              shape.ranks_per_node,
                              true};
  StatusOr<std::vector<CommVolume>> volumes = scheme_comm(context, pass);
  EXPECT_TRUE(volumes.is_ok()) << "a validated shape's schedule failed: "
                               << volumes.status().to_string();
  return volumes.is_ok() ? std::move(volumes).value() : std::vector<CommVolume>{};
}

void for_schedule_and_oracle(
    SchemeKind scheme, const oracle::Shape& shape,
    const std::function<void(const RankVolume& forward, const RankVolume& backward)>& check) {
  const std::vector<CommVolume> fwd = schedule_comm(scheme, shape, Pass::kForward);
  const std::vector<CommVolume> bwd = schedule_comm(scheme, shape, Pass::kBackward);
  ASSERT_EQ(fwd.size(), static_cast<size_t>(shape.ranks)) << "the plan refuses the shape";
  {
    SCOPED_TRACE("schedule");
    check([&](int r) { return fwd[static_cast<size_t>(r)]; },
          [&](int r) { return bwd[static_cast<size_t>(r)]; });
  }
  SCOPED_TRACE("oracle");
  check([&](int r) { return oracle::forward(scheme, shape, r); },
        [&](int r) { return oracle::backward(scheme, shape, r); });
}

std::vector<Status> statuses_on_threads(int ranks,
                                        const std::function<Status(Communicator&)>& body) {
  std::vector<Status> statuses(static_cast<size_t>(ranks));
  std::mutex mutex;
  (void)run_threads(ranks, [&](Communicator& comm) -> Status {
    comm.set_timeout(std::chrono::seconds(20));
    Status s = body(comm);
    std::lock_guard<std::mutex> lock(mutex);
    statuses[static_cast<size_t>(comm.rank())] = s;
    return Status::ok();  // every rank reports; none aborts the others
  });
  return statuses;
}

}  // namespace seqpar::testing
