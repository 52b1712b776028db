// The hybrid scheme's U x R grid: the choice of U and its checks (see hybrid_grid.hpp).
#include "runtime/hybrid_grid.hpp"

namespace seqpar {

StatusOr<HybridGrid> hybrid_grid(const PlanConfig& config, int ranks) {
  const int64_t heads_q = config.problem.heads_q;
  int ulysses = config.ulysses_degree;
  SEQPAR_REQUIRE(ulysses >= 0, StatusCode::kInvalidArgument, "ulysses degree must be >= 0 (got ",
                 ulysses, "; 0 chooses)");
  if (ulysses == 0) {
    const int span = config.ranks_per_node > 0 ? config.ranks_per_node : ranks;
    ulysses = 1;
    for (int d = 1; d <= span; ++d) {
      if (span % d == 0 && d <= heads_q) ulysses = d;
    }
  }
  SEQPAR_REQUIRE(ranks % ulysses == 0, StatusCode::kInvalidArgument,
                 "hybrid needs the ulysses degree U = ", ulysses, " to divide the ", ranks,
                 " ranks (a U x R grid)");
  SEQPAR_REQUIRE(
      ulysses <= heads_q, StatusCode::kInvalidArgument,
      "hybrid needs at least as many query heads (H) as ranks per Ulysses group (U): H = ", heads_q,
      ", U = ", ulysses);
  return HybridGrid{ulysses, ranks / ulysses};
}

}  // namespace seqpar
