// The fp64 reference itself: forward against a hand-computed case, backward against central
// finite differences of the loss sum(dout * out) on a tiny GQA causal problem.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attention_test_util.hpp"

namespace seqpar::test {
namespace {

TEST(AttentionReference, SingleQueryTwoKeys) {
  // One query, keys with scores 0 and log 3 (after scale): weights 1/4 and 3/4.
  const double q[1] = {1.0}, k[2] = {0.0, std::log(3.0)}, v[2] = {2.0, 6.0};
  const int64_t q_pos[1] = {5}, k_pos[2] = {4, 5};
  const ReferenceBlock r{1, 1, 2, 1, 1, 1, q, k, v, q_pos, k_pos, MaskKind::kCausal, 1.0};
  double out[1], lse[1];
  reference_forward(r, out, lse);
  EXPECT_NEAR(out[0], 0.25 * 2.0 + 0.75 * 6.0, 1e-12);
  EXPECT_NEAR(lse[0], std::log(4.0), 1e-12);
}

TEST(AttentionReference, BackwardMatchesFiniteDifferences) {
  const Case c{1,
               3,
               4,
               2,
               1,
               3,
               MaskKind::kCausal,
               DType::kF32,
               {MapKind::kContiguous, 1, 1, 0},
               {MapKind::kContiguous, 0, 1, 0}};
  Problem pr = make_problem(c, 41);
  auto loss = [&]() {
    const ReferenceResult r = reference_results(pr);
    double sum = 0.0;
    for (size_t i = 0; i < r.out.size(); ++i) sum += r.out[i] * pr.dout.values[i];
    return sum;
  };
  const ReferenceResult ref = reference_results(pr);
  std::vector<double> dq(static_cast<size_t>(pr.q_elems())), dk(static_cast<size_t>(pr.k_elems())),
      dv(static_cast<size_t>(pr.k_elems()));
  reference_backward(pr.reference(), pr.dout.values.data(), ref.lse.data(), ref.delta.data(),
                     dq.data(), dk.data(), dv.data());
  constexpr double kStep = 1e-6;
  constexpr double kTol = 1e-7;
  for (auto [x, g] :
       {std::pair{&pr.q.values, &dq}, std::pair{&pr.k.values, &dk}, std::pair{&pr.v.values, &dv}}) {
    for (size_t i = 0; i < x->size(); ++i) {
      const double saved = (*x)[i];
      (*x)[i] = saved + kStep;
      const double up = loss();
      (*x)[i] = saved - kStep;
      const double down = loss();
      (*x)[i] = saved;
      EXPECT_NEAR((*g)[i], (up - down) / (2.0 * kStep), kTol) << "element " << i;
    }
  }
}

}  // namespace
}  // namespace seqpar::test
