// --scheme auto's selection: the cases where a careful engineer knows the answer, the
// choice against an exhaustive evaluation of every scheme x U, and memory exclusion. The inputs
// are the documented H100 / NVLink / NDR figures (model/topology.hpp, model/calibration.hpp).
#include "model/scheme_choice.hpp"

#include <gtest/gtest.h>

#include <cstdio>

#include "model/candidates.hpp"

namespace seqpar {
namespace {

ModelInputs h100_inputs(int nodes, int gpus_per_node, AttentionProblem p, bool backward = true,
                        Phase phase = Phase::kTrain) {
  ModelInputs in;
  in.topology = topology_from_cli({nodes, gpus_per_node, "nvlink", "ib400"}).value();
  in.rate = default_h100_rate(p.head_dim);
  in.problem = p;
  in.backward = backward;
  in.phase = phase;
  return in;
}

AttentionProblem problem(int64_t seq, int64_t hq, int64_t hkv, int64_t d = 128,
                         MaskKind mask = MaskKind::kCausal) {
  return AttentionProblem{1, seq, hq, hkv, d, mask, DType::kBF16, 0.0f};
}

const CandidateCost& chosen(const ModelInputs& in) {
  static SchemeChoice choice;  // kept alive for the returned reference
  StatusOr<SchemeChoice> made = choose_scheme(in);
  EXPECT_TRUE(made.is_ok()) << made.status().to_string();
  choice = made.value();
  return choice.best();
}

// ~1k tokens per rank on 8 NVLink GPUs, 32 heads: Ulysses (a ring step of 1k tokens is too short
// to hide its transfer and latency; Ulysses' all-to-alls stay on NVLink).
TEST(SchemeChoice, ShortSequenceOnOneNvlinkNodeWithManyHeadsPicksUlysses) {
  for (int64_t hkv : {8, 32}) {
    const ModelInputs in = h100_inputs(1, 8, problem(8192, 32, hkv));
    const CandidateCost& c = chosen(in);
    EXPECT_EQ(c.candidate.scheme, SchemeKind::kUlysses)
        << c.candidate.name() << "\n"
        << explain_table(in, choose_scheme(in).value());
  }
}

// 4 heads on 64 GPUs over 8 nodes: Ulysses alone cannot go past the head count, so a ring-family
// scheme or a hybrid with U <= 4.
TEST(SchemeChoice, FewHeadsOnManyNodesPicksTheRingFamilyOrANarrowHybrid) {
  for (int64_t seq : {65536, 262144, 1048576}) {
    for (int64_t hkv : {1, 4}) {
      const ModelInputs in = h100_inputs(8, 8, problem(seq, 4, hkv));
      const CandidateCost& c = chosen(in);
      const SchemeKind s = c.candidate.scheme;
      const bool ring_family = s == SchemeKind::kRing || s == SchemeKind::kStriped ||
                               s == SchemeKind::kZigzag || s == SchemeKind::kLightSeq;
      EXPECT_TRUE(ring_family || (s == SchemeKind::kHybrid && c.candidate.ulysses_degree <= 4))
          << "S=" << seq << " Hkv=" << hkv << ": " << c.candidate.name();
      EXPECT_NE(s, SchemeKind::kUlysses);
    }
  }
}

// Decoding one token against a cache sharded over the ranks: tree (two small all-reduces)
// beats moving the cache round a ring.
TEST(SchemeChoice, DecodingOneTokenPicksTree) {
  for (const auto& [nodes, gpus] : std::vector<std::pair<int, int>>{{1, 8}, {4, 8}, {1, 2}}) {
    for (int64_t cache : {16384, 1048576}) {
      ModelInputs in = h100_inputs(nodes, gpus, problem(cache, 32, 8), false, Phase::kDecode);
      in.q_len = 1;
      const Candidate best = chosen(in).candidate;
      EXPECT_TRUE(best.decode);
      EXPECT_EQ(best.decoder, DecoderKind::kTree) << nodes << "x" << gpus << " cache " << cache;
    }
  }
}

// A causal mask never picks plain contiguous ring when a balanced layout (striped, zigzag) is
// allowed: the last rank's 2P-1 half-blocks against zigzag's P.
TEST(SchemeChoice, CausalNeverPicksPlainRingWhenABalancedLayoutIsAllowed) {
  int cases = 0;
  for (const auto& [nodes, gpus] :
       std::vector<std::pair<int, int>>{{1, 2}, {1, 4}, {1, 8}, {2, 8}, {4, 8}, {8, 8}, {16, 4}}) {
    for (int64_t seq : {4096, 32768, 262144}) {
      for (const auto& [hq, hkv] :
           std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {4, 1}, {32, 8}}) {
        const ModelInputs in = h100_inputs(nodes, gpus, problem(seq, hq, hkv));
        const SchemeChoice choice = choose_scheme(in).value();
        bool balanced_allowed = false;
        for (const CandidateCost& c : choice.candidates) {
          balanced_allowed |= c.feasible && (c.candidate.scheme == SchemeKind::kStriped ||
                                             c.candidate.scheme == SchemeKind::kZigzag);
        }
        if (!balanced_allowed) continue;
        ++cases;
        EXPECT_NE(choice.best().candidate.scheme, SchemeKind::kRing)
            << nodes << "x" << gpus << " S=" << seq << " Hq=" << hq;
      }
    }
  }
  std::printf("causal: %d configurations with a balanced layout allowed\n", cases);
  EXPECT_GT(cases, 40);
}

// The choice is the cheapest of an exhaustive evaluation: every scheme with every U from 1 to P
// (most of them refused by the runtime), and enumeration misses no feasible one.
TEST(SchemeChoice, IsTheCheapestOfAnExhaustiveEvaluation) {
  const std::vector<ModelInputs> inputs = {
      h100_inputs(1, 8, problem(8192, 32, 8)),
      h100_inputs(2, 8, problem(131072, 32, 8)),
      h100_inputs(8, 8, problem(262144, 4, 1)),
      h100_inputs(3, 4, problem(49152, 12, 4)),
      h100_inputs(2, 4, problem(65536, 8, 8, 64, MaskKind::kFull), false),
      h100_inputs(2, 4, problem(65536, 8, 8, 64), false, Phase::kPrefill),
  };
  for (const ModelInputs& in : inputs) {
    const SchemeChoice choice = choose_scheme(in).value();
    const std::vector<Candidate> listed = enumerate_candidates(in);
    const int ranks = in.topology.ranks();
    int feasible = 0;
    for (int s = 0; s <= static_cast<int>(SchemeKind::kHybrid); ++s) {
      for (int u = 1; u <= ranks; ++u) {
        const SchemeKind scheme = static_cast<SchemeKind>(s);
        const bool u_matters = scheme == SchemeKind::kHybrid;
        const int u_fixed = scheme == SchemeKind::kUlysses ? ranks : 1;
        if (!u_matters && u != u_fixed) continue;
        const Candidate any{scheme, u, ranks / u, Placement::kConsecutive};
        const CandidateCost cost = evaluate_candidate(in, any);
        if (!cost.feasible) continue;
        ++feasible;
        bool is_listed = false;
        for (const Candidate& c : listed) {
          is_listed |= c.scheme == scheme && c.ulysses_degree == u;
        }
        EXPECT_TRUE(is_listed) << any.name() << " is feasible but not a candidate";
        EXPECT_LE(choice.best().seconds(), cost.seconds())
            << choice.best().candidate.name() << " chosen over the cheaper " << any.name();
      }
    }
    EXPECT_GE(feasible, 2);
  }
}

// Candidates that do not fit the device's memory are excluded with the sizes in the reason;
// the choice moves to one that fits, and nothing fitting is an error listing every reason.
TEST(SchemeChoice, ExcludesWhatDoesNotFitMemory) {
  ModelInputs in = h100_inputs(1, 8, problem(1048576, 32, 8));
  const SchemeChoice roomy = choose_scheme(in).value();
  // A limit between the smallest and the largest memory of the feasible candidates.
  int64_t least = INT64_MAX, most = 0;
  for (const CandidateCost& c : roomy.candidates) {
    if (!c.feasible) continue;
    least = std::min(least, c.memory_bytes_per_rank);
    most = std::max(most, c.memory_bytes_per_rank);
  }
  ASSERT_LT(least, most);
  in.topology.device_memory_bytes = (least + most) / 2;
  const SchemeChoice tight = choose_scheme(in).value();
  int excluded = 0;
  for (const CandidateCost& c : tight.candidates) {
    if (c.memory_bytes_per_rank > in.topology.device_memory_bytes) {
      EXPECT_FALSE(c.feasible) << c.candidate.name();
      EXPECT_NE(c.excluded_reason.find("per rank"), std::string::npos) << c.excluded_reason;
      ++excluded;
    }
  }
  EXPECT_GT(excluded, 0);
  EXPECT_LE(tight.best().memory_bytes_per_rank, in.topology.device_memory_bytes);
  in.topology.device_memory_bytes = least / 2;
  const StatusOr<SchemeChoice> none = choose_scheme(in);
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("zigzag: needs"), std::string::npos)
      << none.status().message();
}

// The explain table lists every candidate once, marks one chosen, and names the exclusions.
TEST(SchemeChoice, ExplainTableListsEveryCandidate) {
  const ModelInputs in = h100_inputs(2, 8, problem(131072, 32, 8));
  const SchemeChoice choice = choose_scheme(in).value();
  const std::string table = explain_table(in, choice);
  for (const CandidateCost& c : choice.candidates) {
    EXPECT_NE(table.find("  " + c.candidate.name() + " "), std::string::npos) << c.candidate.name();
  }
  EXPECT_NE(table.find("* " + choice.best().candidate.name()), std::string::npos) << table;
  const std::string json = choice_json(in, choice);
  EXPECT_NE(json.find("\"chosen\": {\"candidate\": \"" + choice.best().candidate.name()),
            std::string::npos)
      << json;
}

}  // namespace
}  // namespace seqpar
