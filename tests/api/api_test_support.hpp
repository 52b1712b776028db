#pragma once
// Helpers shared by the C++ API tests (cpp_api_test, device_api_test): random inputs, the
// reference's problem, decoding positions, the scheme cases and their test names. Header-only;
// only the public headers and api_reference.hpp's plain types (the internal headers' names would
// clash with the public seqpar::v0 ones).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <seqpar/seqpar.hpp>
#include <string>
#include <vector>

#include "api_reference.hpp"

namespace api_test {

// n uniform values in [-1, 1), the same for the same seed.
inline std::vector<float> random_values(size_t n, unsigned seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (float& x : values) x = uniform(engine);
  return values;
}

inline std::vector<double> as_double(const std::vector<float>& x) { return {x.begin(), x.end()}; }

// The reference's problem for `p`: causal, the default scale.
inline ReferenceProblem causal_reference_problem(const seqpar::AttentionProblem& p) {
  return {p.batch, p.seq, p.heads_q, p.heads_kv, p.head_dim, true, 0.0};
}

// A decoding step's positions: keys at [0, seq + n) (the prompt, then the n new tokens), queries
// at the new tokens [seq, seq + n).
struct DecodePositions {
  std::vector<int64_t> k_pos, q_pos;
};

inline DecodePositions decode_positions(int64_t seq, int64_t n) {
  DecodePositions d;
  for (int64_t t = 0; t < seq + n; ++t) d.k_pos.push_back(t);
  for (int64_t t = seq; t < seq + n; ++t) d.q_pos.push_back(t);
  return d;
}

// A parameterized test's scheme on `ranks` ranks, named "<name>_P<ranks>".
struct SchemeCase {
  seqpar::SchemeKind scheme;
  const char* name;
  int ranks;
};

inline std::string scheme_case_name(const testing::TestParamInfo<SchemeCase>& param) {
  return std::string(param.param.name) + "_P" + std::to_string(param.param.ranks);
}

}  // namespace api_test
