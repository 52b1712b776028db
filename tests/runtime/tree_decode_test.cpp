// Tree decoding and the ring-decode baseline through DecodePlan on the threads backend, P in
// {1, 2, 3, 4, 6, 8}: the last step's (O, LSE) on every rank against the fp64 reference,
// communication against the decoders' schedules and the closed-form oracles (tree flat and per
// node), the plan's agreement and validation, and the KV cache's ownership rule.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "comm/threads/threads_communicator.hpp"
#include "comm_oracles.hpp"
#include "harness/decode_step.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/kv_cache.hpp"
#include "scheme_cases.hpp"

namespace seqpar {
namespace {

struct DecodeCase {
  DecoderKind decoder;
  int64_t heads_q, heads_kv, head_dim, q_len, batch, tokens_per_rank;
  DType dtype;
  int ranks_per_node;
  int64_t extra_tokens = 0;  // S = P * tokens_per_rank + extra_tokens: a prompt with S % P != 0
  std::string name() const {
    return str_cat(decoder_name(decoder), "_h", heads_q, "kv", heads_kv, "_d", head_dim, "_n",
                   q_len, "_b", batch, "_t", tokens_per_rank, "_", dtype_name(dtype), "_R",
                   ranks_per_node, extra_tokens > 0 ? str_cat("_x", extra_tokens) : "");
  }
};

std::vector<DecodeCase> decode_cases() {
  std::vector<DecodeCase> cases;
  for (DecoderKind s : all_decoders()) {
    cases.push_back({s, 8, 8, 16, 1, 1, 9, DType::kF32, 0});     // GQA 1, one token
    cases.push_back({s, 8, 4, 32, 4, 2, 70, DType::kF32, 0});    // GQA 2, batch 2, 4 tokens
    cases.push_back({s, 8, 2, 64, 3, 1, 33, DType::kF32, 0});    // GQA 4
    cases.push_back({s, 8, 1, 16, 5, 1, 5, DType::kF32, 0});     // MQA (GQA 8)
    cases.push_back({s, 4, 2, 64, 2, 2, 40, DType::kBF16, 0});   // bf16
    cases.push_back({s, 8, 2, 16, 2, 1, 7, DType::kF32, 0, 3});  // uneven prompt shards
  }
  cases.push_back({DecoderKind::kTree, 8, 2, 16, 3, 2, 12, DType::kF32, 2});  // per node
  return cases;
}

class Decode : public ::testing::TestWithParam<std::tuple<DecodeCase, int>> {};

TEST_P(Decode, MatchesReferenceAndCommFormula) {
  const auto& [c, ranks] = GetParam();
  StepConfig o;
  o.phase = Phase::kDecode;
  o.q_len = c.q_len;
  o.decoder = c.decoder;
  o.plan.ranks_per_node = ranks % 2 == 0 ? c.ranks_per_node : 0;
  o.plan.problem = AttentionProblem{c.batch,    ranks * c.tokens_per_rank + c.extra_tokens,
                                    c.heads_q,  c.heads_kv,
                                    c.head_dim, MaskKind::kCausal,
                                    c.dtype,    0.0f};
  o.check = true;
  o.iters = 2;
  o.warmup = 1;  // three steps: the cache grows unevenly across ranks
  std::vector<StepReport> reports(static_cast<size_t>(ranks));
  const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(reports[static_cast<size_t>(comm.rank())], run_decode_step(o, comm));
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  const StepReport& rep = reports[0];
  ASSERT_TRUE(rep.errors.has_value());
  EXPECT_LE(rep.errors->out, rep.errors->tolerance);
  EXPECT_LE(rep.errors->lse, rep.errors->tolerance);
  // Every rank's traffic, over the world and (per node) the node and cross communicators, is
  // its formula.
  EXPECT_TRUE(rep.comm_matches_formula)
      << rep.measured_comm.bytes_sent << " bytes; formula " << rep.expected_comm.bytes_sent;
  if (c.decoder == DecoderKind::kTree) {  // independent of the cache: the oracle's, every step
    const oracle::Shape shape{o.plan.problem, ranks, 1, o.plan.ranks_per_node};
    EXPECT_EQ(rep.measured_comm.bytes_sent,
              oracle::decode_step(c.decoder, shape, c.q_len, 0, 0).bytes_sent);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllRanks, Decode,
    ::testing::Combine(::testing::ValuesIn(decode_cases()), ::testing::Values(1, 2, 3, 4, 6, 8)),
    [](const ::testing::TestParamInfo<std::tuple<DecodeCase, int>>& param_info) {
      return str_cat(std::get<0>(param_info.param).name(), "_P", std::get<1>(param_info.param));
    });

// Every rank's schedule-derived step volume (DecodePlan::expected_step_comm), gathered on
// `ranks` threads after appending `appended` tokens to a prompt of config.problem.seq.
std::vector<CommVolume> plan_step_comm(const DecodeConfig& config, int ranks, int64_t appended) {
  std::vector<CommVolume> volumes(static_cast<size_t>(ranks));
  std::mutex mutex;
  const Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodePlan> plan, DecodePlan::create(config, comm));
    const AttentionProblem& p = config.problem;
    const std::vector<char> rows(static_cast<size_t>(appended * p.heads_kv * p.head_dim) * 4, 0);
    SEQPAR_RETURN_IF_ERROR(plan->append(rows.data(), rows.data(), appended));
    SEQPAR_ASSIGN_OR_RETURN(const CommVolume step, plan->expected_step_comm());
    std::lock_guard<std::mutex> lock(mutex);
    volumes[static_cast<size_t>(comm.rank())] = step;
    return Status::ok();
  });
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  return volumes;
}

// Tree decode's bytes by hand: B=1, n=2, Hq=8, D=16 on 4 ranks: max of 16 LSE values, then 256
// numerator + 16 denominator values, fp32; independent of the cache length.
TEST(TreeDecodeFormula, MatchesHandCount) {
  DecodeConfig config;
  config.problem = AttentionProblem{1, 16, 8, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  config.q_len = 2;
  config.decoder = DecoderKind::kTree;
  for (const CommVolume& v :
       {plan_step_comm(config, 4, 2)[1],
        oracle::decode_step(DecoderKind::kTree, {config.problem, 4}, 2, 18, 1)}) {
    EXPECT_EQ(v[CommOp::kAllReduce], 2);
    EXPECT_EQ(v.bytes_sent, 16 * 4 + (256 + 16) * 4);
  }
}

// Ring decode's bytes by hand: S = 16 on 4 ranks, then tokens 16, 17, 18 appended to ranks 0, 1,
// 2, so ranks 0-2 hold 5 tokens and rank 3 holds 4. Hop h, rank r forwards the shard of rank
// r - h (h = 0, 1, 2); a token's K and V are 2 x Hkv 2 x D 8 x 4 B = 128 bytes.
TEST(RingDecodeFormula, MatchesHandCount) {
  constexpr int kRanks = 4;
  DecodeConfig config;
  config.problem = AttentionProblem{1, 16, 4, 2, 8, MaskKind::kCausal, DType::kF32, 0.0f};
  config.q_len = 1;
  config.capacity = 19;
  config.decoder = DecoderKind::kRing;
  const std::vector<CommVolume> planned = plan_step_comm(config, kRanks, 3);
  const int64_t tokens_forwarded[kRanks] = {5 + 4 + 5, 5 + 5 + 4, 5 + 5 + 5, 4 + 5 + 5};
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(planned[static_cast<size_t>(r)].bytes_sent, tokens_forwarded[r] * 128);
    EXPECT_EQ(
        oracle::decode_step(DecoderKind::kRing, {config.problem, kRanks}, 1, 19, r).bytes_sent,
        tokens_forwarded[r] * 128);
  }
}

// DecodePlan::create is collective like Plan::create: ranks that disagree fail at once with the
// field named, and a config the plan refuses fails on every rank with the rule.
TEST(DecodePlanRejects, DisagreementAndBadConfigsOnEveryRank) {
  DecodeConfig good;
  good.problem = AttentionProblem{1, 30, 4, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  const struct {
    std::function<void(DecodeConfig&, int rank)> change;
    StatusCode code;
    const char* words;
  } cases[] = {
      {[](DecodeConfig& c, int rank) { c.q_len = rank == 2 ? 2 : 1; }, StatusCode::kMismatch,
       "q_len is 1 on rank 0 but 2 on rank 2"},
      {[](DecodeConfig& c, int) { c.problem.seq = 2; }, StatusCode::kInvalidArgument,
       "prompt of 2 tokens is shorter than the 3 ranks"},
      {[](DecodeConfig& c, int) { c.capacity = 30; }, StatusCode::kInvalidArgument,
       "does not hold the prompt"},
      {[](DecodeConfig& c, int) { c.problem.heads_kv = 3; }, StatusCode::kInvalidArgument,
       "multiple of kv-heads"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.words);
    const std::vector<Status> statuses = testing::statuses_on_threads(3, [&](Communicator& comm) {
      DecodeConfig config = good;
      c.change(config, comm.rank());
      return DecodePlan::create(config, comm).status();
    });
    for (size_t r = 0; r < statuses.size(); ++r) {
      EXPECT_EQ(statuses[r].code(), c.code) << "rank " << r << ": " << statuses[r].to_string();
      EXPECT_NE(statuses[r].message().find(c.words), std::string::npos) << statuses[r].message();
    }
  }
}

// A step's queries are the last q_len tokens, so a step after appending other than q_len tokens
// is refused on every rank before any communication; a step's expected traffic needs the cache
// to hold the prompt and one step.
TEST(DecodePlanRejects, StepAfterAppendingOtherThanQLenTokens) {
  DecodeConfig config;
  config.problem = AttentionProblem{1, 30, 4, 2, 16, MaskKind::kCausal, DType::kF32, 0.0f};
  config.q_len = 2;
  config.capacity = 40;
  for (const int64_t appended : {0, 1, 3}) {
    SCOPED_TRACE(str_cat(appended, " appended"));
    const std::vector<Status> statuses = testing::statuses_on_threads(3, [&](Communicator& comm) {
      SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodePlan> plan, DecodePlan::create(config, comm));
      const AttentionProblem& p = config.problem;
      const std::vector<float> rows(static_cast<size_t>(3 * p.heads_kv * p.head_dim));
      const std::vector<float> q(static_cast<size_t>(2 * p.heads_q * p.head_dim));
      std::vector<float> out(q.size()), lse(static_cast<size_t>(2 * p.heads_q));
      if (appended == 0) {
        const StatusOr<CommVolume> early = plan->expected_step_comm();
        SEQPAR_REQUIRE(!early.is_ok(), StatusCode::kInternal,
                       "expected_step_comm with no step appended was not refused");
      }
      if (appended > 0) SEQPAR_RETURN_IF_ERROR(plan->append(rows.data(), rows.data(), appended));
      return plan->step(q.data(), out.data(), lse.data());
    });
    for (size_t r = 0; r < statuses.size(); ++r) {
      EXPECT_EQ(statuses[r].code(), StatusCode::kInvalidArgument) << statuses[r].to_string();
      EXPECT_NE(statuses[r].message().find(str_cat(appended, " were appended")), std::string::npos)
          << statuses[r].message();
    }
  }
}

// An uneven prompt: S = 7 on 3 ranks is 3 + 2 + 2; new tokens go to rank t mod P, so token 7
// fills rank 1 first and the shards stay within one token: lengths 3, 3, 2, then 3, 3, 3.
TEST(KvCache, UnevenPromptStaysBalancedAsItGrows) {
  const KvCacheShape shape{1, 1, 4, DType::kF32, 7, 9};
  EXPECT_EQ(KvCache::local_capacity_for(shape, 3), 3);
  std::vector<float> k_new(2 * 4), v_new(2 * 4);
  for (int rank = 0; rank < 3; ++rank) {
    auto cache = KvCache::create(shape, rank, 3);
    ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
    KvCache& c = *cache.value();
    EXPECT_EQ(c.owner(2), 0);
    EXPECT_EQ(c.owner(3), 1);
    EXPECT_EQ(c.owner(5), 2);
    EXPECT_EQ(c.owner(7), 1);
    EXPECT_EQ(c.owner(8), 2);
    EXPECT_EQ(c.positions_of(1)[0], 3);
    EXPECT_EQ(c.positions_of(2)[1], 6);
    const int64_t prompt_len[] = {3, 2, 2};
    EXPECT_EQ(c.local_length(), prompt_len[rank]);
    ASSERT_TRUE(c.append(k_new.data(), v_new.data(), 1).is_ok());  // token 7 -> rank 1
    const int64_t after_one[] = {3, 3, 2};
    EXPECT_EQ(c.local_length(), after_one[rank]);
    ASSERT_TRUE(c.append(k_new.data(), v_new.data(), 1).is_ok());  // token 8 -> rank 2
    EXPECT_EQ(c.local_length(), 3);
    EXPECT_EQ(c.positions_of(1)[2], 7);
    EXPECT_EQ(c.positions_of(2)[2], 8);
  }
  EXPECT_FALSE(KvCache::create({1, 1, 4, DType::kF32, 2, 4}, 0, 3).is_ok());  // fewer than P
}

// Prompt tokens contiguous; new token t on rank t mod P; lengths and positions follow.
TEST(KvCache, AppendsEachNewTokenToItsOwner) {
  const KvCacheShape shape{1, 1, 8, DType::kF32, 6, 11};
  std::vector<float> k_new(5 * 8), v_new(5 * 8);
  for (size_t i = 0; i < k_new.size(); ++i) k_new[i] = static_cast<float>(i / 8);  // token index
  for (int rank = 0; rank < 3; ++rank) {
    auto cache = KvCache::create(shape, rank, 3);
    ASSERT_TRUE(cache.is_ok());
    KvCache& c = *cache.value();
    EXPECT_EQ(c.owner(0), 0);
    EXPECT_EQ(c.owner(5), 2);
    EXPECT_EQ(c.owner(6), 0);
    EXPECT_EQ(c.owner(7), 1);
    ASSERT_TRUE(c.append(k_new.data(), v_new.data(), 5).is_ok());  // tokens 6..10
    EXPECT_EQ(c.length(), 11);
    const int64_t want_len[] = {4, 4, 3};  // 2 prompt each + {6, 9}, {7, 10}, {8}
    EXPECT_EQ(c.local_length(), want_len[rank]);
    EXPECT_EQ(c.positions_of(rank)[2], 6 + rank);
    EXPECT_EQ(static_cast<const float*>(c.k())[2 * 8], static_cast<float>(rank));  // token 6+rank
    EXPECT_FALSE(c.append(k_new.data(), v_new.data(), 1).is_ok());                 // full
  }
}

}  // namespace
}  // namespace seqpar
