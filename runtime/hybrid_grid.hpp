#pragma once
// The hybrid scheme's U x R grid of ranks (U * R = P) and its rank placement. Groups of U
// consecutive ranks (consecutive ranks share a node, so a group's all-to-alls stay on NVLink)
// run Ulysses among themselves; the R ranks with the same place u in their groups form a zigzag
// ring across the groups (over the network):
//   rank = g * U + u,  Ulysses group g = ranks [g * U, (g + 1) * U),  ring u = {u, U + u, ...}
// U comes from PlanConfig::ulysses_degree; 0 chooses the largest divisor of N that is <= Hq,
// where N = ranks_per_node when set (a group never spans nodes), else P (all ranks on one node:
// as much Ulysses as the heads allow).
#include "core/status.hpp"
#include "runtime/problem.hpp"

namespace seqpar {

struct HybridGrid {
  int ulysses = 1;  // U: ranks per Ulysses group
  int rings = 1;    // R: groups, joined by the zigzag ring

  int group_of(int rank) const { return rank / ulysses; }  // g: which group, its ring position
  int place_of(int rank) const { return rank % ulysses; }  // u: place in the group, which ring
  int rank_at(int group, int place) const { return group * ulysses + place; }
};

// The grid of `config` on `ranks` ranks. kInvalidArgument, naming the rule, when U does not
// divide P or exceeds Hq (every rank of a group needs a query head).
StatusOr<HybridGrid> hybrid_grid(const PlanConfig& config, int ranks);

}  // namespace seqpar
