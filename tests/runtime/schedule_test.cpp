// Every scheme's schedule against its closed-form oracle (tests/support/comm_oracles.hpp), rank
// by rank, calls per op kind and bytes, forward and backward, over many shapes: uneven contiguous
// shards, GQA and MQA, uneven head splits, every hybrid grid, tree's node hierarchy; and every
// decoder's step over a growing cache. The checked-step tests then hold the counters to the same
// schedules, so the two are tied to each other through something written apart from both.
#include <gtest/gtest.h>

#include <vector>

#include "comm_oracles.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/scheme_registry.hpp"
#include "scheme_cases.hpp"

namespace seqpar {
namespace {

struct ProblemCase {
  int64_t seq, heads_q, heads_kv, head_dim, batch;
  DType dtype;
};

std::vector<ProblemCase> problems() {
  return {{96, 8, 2, 16, 1, DType::kBF16}, {97, 8, 8, 8, 2, DType::kF32},
          {120, 6, 2, 32, 1, DType::kF16}, {1000, 12, 3, 64, 1, DType::kBF16},
          {48, 16, 1, 8, 1, DType::kF32},  {4099, 4, 4, 128, 1, DType::kBF16}};
}

// One scheme, every shape and rank count the plan accepts: the schedule equals the oracle.
// Returns how many shapes the plan accepted.
int expect_schedules_match_oracles(SchemeKind scheme, MaskKind mask) {
  int checked = 0;
  for (const ProblemCase& c : problems()) {
    for (const int ranks : {1, 2, 3, 4, 6, 8, 12, 16}) {
      const SchemeDescriptor& d = scheme_descriptor(scheme);
      for (const int ulysses :
           d.takes_ulysses_degree ? d.candidate_degrees(ranks) : std::vector<int>{1}) {
        for (const int per_node : {0, 2, 4}) {
          if (per_node > 0 && (ranks % per_node != 0 || per_node >= ranks)) continue;
          const AttentionProblem p{c.batch,    c.seq, c.heads_q, c.heads_kv,
                                   c.head_dim, mask,  c.dtype,   0.0f};
          const oracle::Shape shape{p, ranks, ulysses, per_node};
          const std::vector<CommVolume> fwd = testing::schedule_comm(scheme, shape, Pass::kForward);
          if (fwd.empty()) continue;  // a shape this scheme refuses
          const std::vector<CommVolume> bwd =
              testing::schedule_comm(scheme, shape, Pass::kBackward);
          for (int r = 0; r < ranks; ++r) {
            SCOPED_TRACE(str_cat(scheme_name(scheme), " S=", c.seq, " Hq=", c.heads_q,
                                 " Hkv=", c.heads_kv, " P=", ranks, " U=", ulysses,
                                 " R/node=", per_node, " rank ", r));
            EXPECT_EQ(fwd[static_cast<size_t>(r)], oracle::forward(scheme, shape, r));
            EXPECT_EQ(bwd[static_cast<size_t>(r)], oracle::backward(scheme, shape, r));
          }
          ++checked;
        }
      }
    }
  }
  return checked;
}

class ScheduleMatchesOracle : public ::testing::TestWithParam<SchemeKind> {};

// Both masks (a scheme that refuses one, as LightSeq refuses full, is checked on the other).
TEST_P(ScheduleMatchesOracle, EveryRankEveryShape) {
  const int checked = expect_schedules_match_oracles(GetParam(), MaskKind::kCausal) +
                      expect_schedules_match_oracles(GetParam(), MaskKind::kFull);
  EXPECT_GT(checked, 20) << scheme_name(GetParam()) << ": too few shapes accepted to mean anything";
}

INSTANTIATE_TEST_SUITE_P(EveryScheme, ScheduleMatchesOracle, ::testing::ValuesIn(all_schemes()),
                         [](const ::testing::TestParamInfo<SchemeKind>& param_info) {
                           return std::string(scheme_name(param_info.param));
                         });

// Every decoder's step at several cache lengths (the ring's bytes grow with the cache, the
// tree's do not), flat and per node.
TEST(DecoderScheduleMatchesOracle, EveryRankEveryCacheLength) {
  for (const DecoderKind decoder : all_decoders()) {
    for (const int ranks : {1, 2, 3, 4, 6, 8}) {
      for (const int per_node : {0, 2, 3}) {
        if (per_node > 0 && (ranks % per_node != 0 || per_node >= ranks)) continue;
        DecodeConfig config;
        config.problem =
            AttentionProblem{2, 10 * ranks + 3, 8, 2, 16, MaskKind::kCausal, DType::kBF16, 0.0f};
        config.q_len = 3;
        config.capacity = config.problem.seq + 5 * config.q_len;
        config.decoder = decoder;
        config.ranks_per_node = per_node;
        ASSERT_TRUE(DecodePlan::validate(config, ranks).is_ok());
        const DecodeConfig resolved = DecodePlan::resolved(config);
        const AttentionProblem& p = resolved.problem;
        const DecodeContext context = DecodeContext::of(resolved, ranks, nullptr);
        const oracle::Shape shape{p, ranks, 1, per_node};
        for (int64_t length = p.seq + config.q_len; length <= resolved.capacity;
             length += config.q_len) {
          const StatusOr<std::vector<CommVolume>> computed = decoder_comm(context, length);
          ASSERT_TRUE(computed.is_ok()) << computed.status().to_string();
          const std::vector<CommVolume>& step = computed.value();
          for (int r = 0; r < ranks; ++r) {
            SCOPED_TRACE(str_cat(decoder_name(decoder), " P=", ranks, " R/node=", per_node,
                                 " cache ", length, " rank ", r));
            EXPECT_EQ(step[static_cast<size_t>(r)],
                      oracle::decode_step(decoder, shape, config.q_len, length, r));
          }
        }
        // Outside the steps a plan can run: shorter than the prompt and a step, past capacity.
        EXPECT_FALSE(decoder_comm(context, p.seq).is_ok());
        EXPECT_FALSE(decoder_comm(context, resolved.capacity + 1).is_ok());
      }
    }
  }
}

}  // namespace
}  // namespace seqpar
