// Link and collective costs (see link_cost.hpp).
#include "model/link_cost.hpp"

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

LinkLoad& LinkLoad::operator+=(const LinkLoad& other) {
  intra_bytes += other.intra_bytes;
  inter_bytes += other.inter_bytes;
  intra_messages += other.intra_messages;
  inter_messages += other.inter_messages;
  return *this;
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

const LinkSpec& slowest_link(const Topology& topology, RankGroup group) {
  for (int i = 1; i < group.count; ++i) {
    if (!topology.same_node(group.at(i), group.first)) return topology.inter;
  }
  return topology.intra;
}

namespace {

double transfer(const LinkSpec& link, double bytes) {
  const double bw = link.bandwidth_bytes_per_s > 0 ? link.bandwidth_bytes_per_s : 1.0;
  return bytes / bw + link.latency_s;
}

}  // namespace

double ring_all_gather_seconds(const Topology& topology, RankGroup group, double chunk_bytes) {
  const double n = group.count;
  if (n <= 1) return 0;
  return (n - 1) * transfer(slowest_link(topology, group), chunk_bytes);
}

double ring_reduce_scatter_seconds(const Topology& topology, RankGroup group, double chunk_bytes) {
  return ring_all_gather_seconds(topology, group, chunk_bytes);
}

double all_reduce_seconds(const Topology& topology, RankGroup group, double bytes) {
  const double n = group.count;
  if (n <= 1) return 0;
  const LinkSpec& link = slowest_link(topology, group);
  const double bw = link.bandwidth_bytes_per_s > 0 ? link.bandwidth_bytes_per_s : 1.0;
  const double ring = 2 * (n - 1) * (bytes / n / bw + link.latency_s);
  const double tree = 2 * std::ceil(std::log2(n)) * link.latency_s + 2 * bytes / bw;
  return std::min(ring, tree);
}

}  // namespace seqpar
