// Link and collective costs (see link_cost.hpp).
#include "launch/link_cost.hpp"

#include <algorithm>
#include <cmath>

namespace seqpar {

void LinkLoad::add(const Topology& topology, int from, int to, double bytes, int messages) {
  if (from == to) return;
  if (topology.same_node(from, to)) {
    intra_bytes += bytes;
    intra_messages += messages;
  } else {
    inter_bytes += bytes;
    inter_messages += messages;
  }
}

double LinkLoad::seconds(const Topology& topology) const {
  auto cost = [](const LinkSpec& link, double bytes, int messages) {
    if (messages == 0 && bytes == 0) return 0.0;
    const double bw = link.bandwidth_bytes_per_s > 0 ? link.bandwidth_bytes_per_s : 1.0;
    return bytes / bw + messages * link.latency_s;
  };
  return std::max(cost(topology.intra, intra_bytes, intra_messages),
                  cost(topology.inter, inter_bytes, inter_messages));
}

const LinkSpec& slowest_link(const Topology& topology, const std::vector<int>& ranks) {
  if (ranks.empty()) return topology.intra;
  const bool one_node = std::all_of(ranks.begin(), ranks.end(),
                                    [&](int r) { return topology.same_node(r, ranks.front()); });
  return one_node ? topology.intra : topology.inter;
}

namespace {

double transfer(const LinkSpec& link, double bytes) {
  const double bw = link.bandwidth_bytes_per_s > 0 ? link.bandwidth_bytes_per_s : 1.0;
  return bytes / bw + link.latency_s;
}

}  // namespace

double ring_all_gather_seconds(const Topology& topology, const std::vector<int>& ranks,
                               double chunk_bytes) {
  const double n = static_cast<double>(ranks.size());
  if (n <= 1) return 0;
  return (n - 1) * transfer(slowest_link(topology, ranks), chunk_bytes);
}

double ring_reduce_scatter_seconds(const Topology& topology, const std::vector<int>& ranks,
                                   double chunk_bytes) {
  return ring_all_gather_seconds(topology, ranks, chunk_bytes);
}

double all_reduce_seconds(const Topology& topology, const std::vector<int>& ranks, double bytes) {
  const double n = static_cast<double>(ranks.size());
  if (n <= 1) return 0;
  const LinkSpec& link = slowest_link(topology, ranks);
  const double bw = link.bandwidth_bytes_per_s > 0 ? link.bandwidth_bytes_per_s : 1.0;
  const double ring = 2 * (n - 1) * (bytes / n / bw + link.latency_s);
  const double tree = 2 * std::ceil(std::log2(n)) * link.latency_s + 2 * bytes / bw;
  return std::min(ring, tree);
}

double combine_all_reduce_seconds(const Topology& topology, int ranks, int ranks_per_node,
                                  double bytes) {
  if (ranks_per_node <= 1 || ranks_per_node >= ranks) {
    return all_reduce_seconds(topology, rank_range(0, ranks), bytes);
  }
  const std::vector<int> node = rank_range(0, ranks_per_node);
  const std::vector<int> cross = rank_range(0, ranks / ranks_per_node, ranks_per_node);
  const double slice = bytes / ranks_per_node;
  return ring_reduce_scatter_seconds(topology, node, slice) +
         all_reduce_seconds(topology, cross, slice) +
         ring_all_gather_seconds(topology, node, slice);
}

std::vector<int> rank_range(int first, int count, int stride) {
  std::vector<int> out(static_cast<size_t>(std::max(count, 0)));
  for (int i = 0; i < count; ++i) out[static_cast<size_t>(i)] = first + i * stride;
  return out;
}

}  // namespace seqpar
