// seqpar-sim's rows and writers on the real cost model: one row per scheme (the hybrid's best),
// the chosen row is the cheapest feasible candidate, TFLOP/s and efficiency follow their
// definitions, and the CSV / JSON carry every row and say that these are predictions.
#include "tools/sim_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "model/scheme_choice.hpp"

namespace seqpar {
namespace {

ModelInputs h100_inputs(int nodes) {
  ModelInputs in;
  StatusOr<Topology> t = topology_from_cli({nodes, 8, "nvlink", "ib400"});
  EXPECT_TRUE(t.is_ok());
  in.topology = t.value();
  in.rate = default_h100_rate(128);
  in.problem = AttentionProblem{1, 32768, 32, 8, 128, MaskKind::kCausal, DType::kBF16, 0.0f};
  in.backward = true;
  in.phase = Phase::kTrain;
  return in;
}

TEST(SimTable, OneRowPerSchemeWithTheBestHybrid) {
  const ModelInputs in = h100_inputs(2);
  const std::vector<CandidateCost> costs = evaluate_candidates(in);
  const double one_gpu = single_gpu_seconds(in);
  ASSERT_TRUE(std::isfinite(one_gpu) && one_gpu > 0);
  const std::vector<SimRow> rows = rows_per_scheme(in, costs, one_gpu);
  std::set<std::string> schemes;
  for (const CandidateCost& c : costs) schemes.insert(scheme_name(c.candidate.scheme));
  ASSERT_EQ(rows.size(), schemes.size());
  int chosen = 0;
  const int cheapest = cheapest_feasible(costs);
  for (const SimRow& r : rows) {
    EXPECT_EQ(schemes.count(r.scheme), 1u) << r.scheme;
    EXPECT_EQ(r.gpus, 16);
    EXPECT_EQ(r.nodes, 2);
    chosen += r.chosen ? 1 : 0;
    // The row's candidate is that scheme's fastest feasible one.
    for (const CandidateCost& c : costs) {
      if (scheme_name(c.candidate.scheme) == r.scheme && c.feasible && r.feasible) {
        EXPECT_LE(r.seconds, c.seconds()) << r.candidate << " vs " << c.candidate.name();
      }
    }
    if (r.feasible) {
      const double flops = costs[0].useful_flops;
      EXPECT_NEAR(r.tflops_per_gpu, flops / r.seconds / 16 / 1e12, 1e-9 * r.tflops_per_gpu);
      EXPECT_NEAR(r.efficiency, one_gpu / 16 / r.seconds, 1e-12);
      EXPECT_GT(r.efficiency, 0.0);
    }
    if (r.chosen) {
      ASSERT_GE(cheapest, 0);
      EXPECT_EQ(r.candidate, costs[static_cast<size_t>(cheapest)].candidate.name());
    }
  }
  EXPECT_EQ(chosen, cheapest >= 0 ? 1 : 0);
}

TEST(SimTable, CsvAndJsonCarryEveryRow) {
  std::vector<SimRow> rows;
  for (int nodes : {1, 4}) {
    const ModelInputs in = h100_inputs(nodes);
    const std::vector<SimRow> r =
        rows_per_scheme(in, evaluate_candidates(in), single_gpu_seconds(in));
    rows.insert(rows.end(), r.begin(), r.end());
  }
  ASSERT_FALSE(rows.empty());
  const std::string csv = sim_csv(rows);
  size_t lines = 0;
  for (char c : csv) lines += c == '\n' ? 1 : 0;
  EXPECT_EQ(lines, rows.size() + 1);
  EXPECT_EQ(csv.rfind("problem,batch,seq,", 0), 0u);
  // Every line has the header's number of fields outside quotes.
  auto fields = [](const std::string& line) {
    int n = 1;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) ++n;
    }
    return n;
  };
  std::istringstream in(csv);
  std::string header, line;
  std::getline(in, header);
  while (std::getline(in, line)) EXPECT_EQ(fields(line), fields(header)) << line;

  const ModelInputs in4 = h100_inputs(4);
  const std::string json = sim_json(rows, in4.topology, in4.rate, "model predictions");
  EXPECT_NE(json.find("\"note\": \"model predictions\""), std::string::npos);
  EXPECT_EQ(static_cast<size_t>(std::count(json.begin(), json.end(), '{')),
            static_cast<size_t>(std::count(json.begin(), json.end(), '}')));
  size_t objects = 0;
  for (size_t p = json.find("{\"problem\""); p != std::string::npos;
       p = json.find("{\"problem\"", p + 1)) {
    ++objects;
  }
  EXPECT_EQ(objects, rows.size());
  EXPECT_NE(json.find("published, not measured here"), std::string::npos);
  EXPECT_EQ(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");

  const std::string table = sim_text_table(rows);
  EXPECT_NE(table.find("<- auto"), std::string::npos);
}

TEST(SimTable, ProblemLabel) {
  ModelInputs in = h100_inputs(1);
  EXPECT_EQ(problem_label(in), "S=32768 Hq=32 Hkv=8 D=128 causal fwd+bwd");
  in.phase = Phase::kDecode;
  in.q_len = 4;
  in.problem.batch = 2;
  EXPECT_EQ(problem_label(in), "B=2 S=32768 Hq=32 Hkv=8 D=128 causal decode q_len=4");
}

}  // namespace
}  // namespace seqpar
