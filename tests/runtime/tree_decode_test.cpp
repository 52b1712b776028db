// Tree decoding and the ring-decode baseline on the threads backend, P in {1, 2, 3, 4, 6, 8}:
// the last step's (O, LSE) on every rank against the fp64 reference, communication against the
// formulas (tree flat and per node), and the KV cache's ownership rule.
#include "runtime/tree_decode.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <vector>

#include "comm/threads_communicator.hpp"
#include "launch/decode_step.hpp"
#include "runtime/kv_cache.hpp"
#include "runtime/ring_decode.hpp"

namespace seqpar {
namespace {

struct DecodeCase {
  SchemeKind scheme;
  int64_t heads_q, heads_kv, head_dim, q_len, batch, tokens_per_rank;
  DType dtype;
  int ranks_per_node;
  int64_t extra_tokens = 0;  // S = P * tokens_per_rank + extra_tokens: a prompt with S % P != 0
  std::string name() const {
    return str_cat(scheme_name(scheme), "_h", heads_q, "kv", heads_kv, "_d", head_dim, "_n", q_len,
                   "_b", batch, "_t", tokens_per_rank, "_", dtype_name(dtype), "_R", ranks_per_node,
                   extra_tokens > 0 ? str_cat("_x", extra_tokens) : "");
  }
};

std::vector<DecodeCase> decode_cases() {
  std::vector<DecodeCase> cases;
  for (SchemeKind s : {SchemeKind::kTree, SchemeKind::kRing}) {
    cases.push_back({s, 8, 8, 16, 1, 1, 9, DType::kF32, 0});     // GQA 1, one token
    cases.push_back({s, 8, 4, 32, 4, 2, 70, DType::kF32, 0});    // GQA 2, batch 2, 4 tokens
    cases.push_back({s, 8, 2, 64, 3, 1, 33, DType::kF32, 0});    // GQA 4
    cases.push_back({s, 8, 1, 16, 5, 1, 5, DType::kF32, 0});     // MQA (GQA 8)
    cases.push_back({s, 4, 2, 64, 2, 2, 40, DType::kBF16, 0});   // bf16
    cases.push_back({s, 8, 2, 16, 2, 1, 7, DType::kF32, 0, 3});  // uneven prompt shards
  }
  cases.push_back({SchemeKind::kTree, 8, 2, 16, 3, 2, 12, DType::kF32, 2});  // per node
  return cases;
}

class Decode : public ::testing::TestWithParam<std::tuple<DecodeCase, int>> {};

TEST_P(Decode, MatchesReferenceAndCommFormula) {
  const auto& [c, ranks] = GetParam();
  RunOptions o;
  o.decode = true;
  o.q_len = c.q_len;
  o.plan.scheme = c.scheme;
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
  if (c.scheme == SchemeKind::kTree) {
    const DecodeProblem d{c.batch, c.heads_q, c.head_dim, c.q_len, 0.0f};
    EXPECT_EQ(rep.measured_comm.bytes_sent,
              tree_decode_comm(d, ranks, o.plan.ranks_per_node).bytes_sent);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllRanks, Decode,
    ::testing::Combine(::testing::ValuesIn(decode_cases()), ::testing::Values(1, 2, 3, 4, 6, 8)),
    [](const ::testing::TestParamInfo<std::tuple<DecodeCase, int>>& param_info) {
      return str_cat(std::get<0>(param_info.param).name(), "_P", std::get<1>(param_info.param));
    });

// Tree decode's bytes by hand: B=1, n=2, Hq=8, D=16 on 4 ranks: max of 16 LSE values, then 256
// numerator + 16 denominator values, fp32; independent of the cache length.
TEST(TreeDecodeFormula, MatchesHandCount) {
  const DecodeProblem d{1, 8, 16, 2, 0.0f};
  const CommVolume v = tree_decode_comm(d, 4, 0);
  EXPECT_EQ(v[CommOp::kAllReduce], 2);
  EXPECT_EQ(v.bytes_sent, 16 * 4 + (256 + 16) * 4);
}

// Ring decode's bytes by hand: S = 16 on 4 ranks, then tokens 16, 17, 18 appended to ranks 0, 1,
// 2, so ranks 0-2 hold 5 tokens and rank 3 holds 4. Hop h, rank r forwards the shard of rank
// r - h (h = 0, 1, 2); a token's K and V are 2 x Hkv 2 x D 8 x 4 B = 128 bytes.
TEST(RingDecodeFormula, MatchesHandCount) {
  constexpr int kRanks = 4;
  const KvCacheShape shape{1, 2, 8, DType::kF32, 16, 19};
  std::vector<int64_t> bytes(kRanks, -1);
  std::mutex mutex;
  const Status status = run_threads(kRanks, [&](Communicator& comm) -> Status {
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                            KvCache::create(shape, comm.rank(), kRanks));
    const std::vector<float> k_new(3 * 2 * 8, 1.0f), v_new(3 * 2 * 8, 2.0f);
    SEQPAR_RETURN_IF_ERROR(cache->append(k_new.data(), v_new.data(), 3));
    SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<DecodeAttention> ring,
                            RingDecode::create(comm, {1, 4, 8, 1, 0.0f}, shape));
    std::lock_guard<std::mutex> lock(mutex);
    bytes[static_cast<size_t>(comm.rank())] = ring->expected_comm(*cache).bytes_sent;
    return Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  const int64_t tokens_forwarded[kRanks] = {5 + 4 + 5, 5 + 5 + 4, 5 + 5 + 5, 4 + 5 + 5};
  for (int r = 0; r < kRanks; ++r)
    EXPECT_EQ(bytes[static_cast<size_t>(r)], tokens_forwarded[r] * 128);
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
