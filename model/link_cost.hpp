#pragma once
// Communication time on a Topology's two link levels, for the cost model (model/cost_model.hpp).
// A rank's transfers in one step are summed per link class (intra-node, inter-node: by
// Topology::same_node of the two ranks); the classes are separate hardware (NVLink, the NIC), so
// they run in parallel and the step's communication is the slower class. Each class costs
// bytes / bandwidth + messages * latency. Collectives over a group of ranks use the usual costs
// on the slowest link the group crosses:
//   all-gather, reduce-scatter (ring)   (n-1) * (chunk / bw + latency)
//   all-reduce of N bytes               the cheaper of ring 2(n-1) * (N/n / bw + latency) and
//                                       tree 2*ceil(log2 n) * latency + 2 * N / bw
// (a hierarchical all-reduce is three of these on the node and cross groups, as the schedule of
// runtime/tree_combine.hpp lists them).
#include "model/topology.hpp"
#include "runtime/schedule.hpp"

namespace seqpar {

// One rank's sends in one step, per link class.
struct LinkLoad {
  double intra_bytes = 0;
  double inter_bytes = 0;
  int intra_messages = 0;
  int inter_messages = 0;

  // `bytes` from rank `from` to rank `to` as `messages` messages (nothing when from == to).
  void add(const Topology& topology, int from, int to, double bytes, int messages = 1);
  LinkLoad& operator+=(const LinkLoad& other);
  double seconds(const Topology& topology) const;
};

// The slowest link between any two members of `group` (intra when all share a node).
const LinkSpec& slowest_link(const Topology& topology, RankGroup group);

double ring_all_gather_seconds(const Topology& topology, RankGroup group, double chunk_bytes);
double ring_reduce_scatter_seconds(const Topology& topology, RankGroup group, double chunk_bytes);
double all_reduce_seconds(const Topology& topology, RankGroup group, double bytes);

}  // namespace seqpar
