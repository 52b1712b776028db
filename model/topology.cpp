// Link kinds and their documented defaults, the default topology, validation, CLI overrides and
// the human description of a Topology.
#include "model/topology.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>

#include "core/enum_names.hpp"

namespace seqpar {

namespace {

constexpr auto kLinkKindNames =
    enum_names<LinkKind>("nvlink", "pcie", "ib400", "ib200", "eth100", "host", "custom");
constexpr int kMaxNodes = 1 << 20;
constexpr int kMaxGpusPerNode = 1 << 20;

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, value);
  return buf;
}

std::string describe_link(const LinkSpec& link) {
  return str_cat(link_kind_name(link.kind), " ", fixed(link.bandwidth_bytes_per_s / 1e9, 1),
                 " GB/s, ", fixed(link.latency_s * 1e6, 1), " us");
}

}  // namespace

const char* link_kind_name(LinkKind kind) { return kLinkKindNames.name(kind); }

StatusOr<LinkKind> parse_link_kind(std::string_view name) {
  if (const std::optional<LinkKind> kind = kLinkKindNames.find(lowercase(name))) return *kind;
  return kLinkKindNames.parse(name, "link kind");  // names what was given, and the kinds
}

LinkSpec default_link(LinkKind kind) {
  // Sources and assumptions: docs/topology.md, "Default link figures".
  switch (kind) {
    // docs/reference_figures.md: NCCL ring bus bandwidth ~370 GB/s, 10-15 us
    case LinkKind::kNvlink:
      return {kind, 370e9, 12.5e-6};
    case LinkKind::kPcie:  // assumption: Gen5 x16 64 GB/s at NVLink's NCCL efficiency (370/450)
      return {kind, 52.6e9, 12.5e-6};
    case LinkKind::kIb400:  // docs/reference_figures.md: NDR 400 Gb/s per GPU ~46-49 GB/s, 40-50 us
      return {kind, 47.5e9, 45e-6};
    case LinkKind::kIb200:  // assumption: half of ib400 (line-rate ratio)
      return {kind, 23.75e9, 45e-6};
    case LinkKind::kEth100:  // assumption: a quarter of ib400 (line-rate ratio), same latency
      return {kind, 11.875e9, 45e-6};
    case LinkKind::kHost:  // measured: mpi shared memory on the development VM (docs/topology.md)
      return {kind, 3.7e9, 2e-6};
    case LinkKind::kCustom:
      return {kind, 0.0, 0.0};
  }
  return {};
}

Topology default_topology() {
  Topology t;
  t.nodes = 1;
  t.ranks_per_node = 8;
  t.device_name = "NVIDIA H100 80GB HBM3";
  t.device_memory_bytes = int64_t{80} << 30;
  t.intra = default_link(LinkKind::kNvlink);
  t.inter = default_link(LinkKind::kIb400);
  t.source = "default";
  return t;
}

Status validate_topology(const Topology& t) {
  SEQPAR_REQUIRE(t.nodes >= 1 && t.nodes <= kMaxNodes, StatusCode::kInvalidArgument,
                 "topology: nodes must be from 1 to ", kMaxNodes, " (got ", t.nodes, ")");
  SEQPAR_REQUIRE(t.ranks_per_node >= 1 && t.ranks_per_node <= kMaxGpusPerNode,
                 StatusCode::kInvalidArgument, "topology: gpus per node must be from 1 to ",
                 kMaxGpusPerNode, " (got ", t.ranks_per_node, ")");
  SEQPAR_REQUIRE(int64_t{t.nodes} * t.ranks_per_node <= int64_t{1} << 24,
                 StatusCode::kInvalidArgument, "topology: ", t.nodes, " nodes x ", t.ranks_per_node,
                 " gpus is too many ranks");
  SEQPAR_REQUIRE(t.device_memory_bytes >= 0, StatusCode::kInvalidArgument,
                 "topology: device memory must be >= 0 (got ", t.device_memory_bytes, ")");
  for (const auto& [name, link] : {std::pair<const char*, const LinkSpec*>{"intra", &t.intra},
                                   std::pair<const char*, const LinkSpec*>{"inter", &t.inter}}) {
    SEQPAR_REQUIRE(link->bandwidth_bytes_per_s > 0, StatusCode::kInvalidArgument,
                   "topology: ", name, " bandwidth must be > 0 (got ", link->bandwidth_bytes_per_s,
                   " B/s; a custom link needs its bandwidth given)");
    SEQPAR_REQUIRE(link->latency_s >= 0, StatusCode::kInvalidArgument, "topology: ", name,
                   " latency must be >= 0 (got ", link->latency_s, " s)");
  }
  return Status::ok();
}

StatusOr<Topology> topology_from_cli(const TopologyOverrides& o, const Topology& base) {
  Topology t = base;
  if (o.nodes != 0) {
    SEQPAR_REQUIRE(o.nodes >= 1 && o.nodes <= kMaxNodes, StatusCode::kInvalidArgument,
                   "--nodes must be from 1 to ", kMaxNodes, " (got ", o.nodes, ")");
    t.nodes = o.nodes;
  }
  if (o.gpus_per_node != 0) {
    SEQPAR_REQUIRE(o.gpus_per_node >= 1 && o.gpus_per_node <= kMaxGpusPerNode,
                   StatusCode::kInvalidArgument, "--gpus-per-node must be from 1 to ",
                   kMaxGpusPerNode, " (got ", o.gpus_per_node, ")");
    t.ranks_per_node = o.gpus_per_node;
  }
  if (!o.intra.empty()) {
    SEQPAR_ASSIGN_OR_RETURN(LinkKind kind, parse_link_kind(o.intra));
    SEQPAR_REQUIRE(kind == LinkKind::kNvlink || kind == LinkKind::kPcie ||
                       kind == LinkKind::kHost || kind == LinkKind::kCustom,
                   StatusCode::kInvalidArgument, "--intra ", o.intra,
                   " is not an intra-node link (expected nvlink, pcie or host)");
    if (kind == LinkKind::kCustom) {
      t.intra.kind = kind;  // keeps base's figures
    } else {
      t.intra = default_link(kind);
    }
  }
  if (!o.inter.empty()) {
    SEQPAR_ASSIGN_OR_RETURN(LinkKind kind, parse_link_kind(o.inter));
    SEQPAR_REQUIRE(kind == LinkKind::kIb400 || kind == LinkKind::kIb200 ||
                       kind == LinkKind::kEth100 || kind == LinkKind::kHost ||
                       kind == LinkKind::kCustom,
                   StatusCode::kInvalidArgument, "--inter ", o.inter,
                   " is not an inter-node link (expected ib400, ib200, eth100 or host)");
    if (kind == LinkKind::kCustom) {
      t.inter.kind = kind;
    } else {
      t.inter = default_link(kind);
    }
  }
  const bool overridden =
      o.nodes != 0 || o.gpus_per_node != 0 || !o.intra.empty() || !o.inter.empty();
  if (overridden) {
    t.source = base.source.rfind("file ", 0) == 0 || base.source == "discovered"
                   ? str_cat(base.source, " + cli")
                   : std::string("cli");
  }
  SEQPAR_RETURN_IF_ERROR(validate_topology(t));
  return t;
}

StatusOr<Topology> topology_from_cli(const TopologyOverrides& overrides) {
  return topology_from_cli(overrides, default_topology());
}

std::string describe_topology(const Topology& t) {
  std::string memory = t.device_memory_bytes > 0
                           ? str_cat(fixed(static_cast<double>(t.device_memory_bytes) /
                                               static_cast<double>(int64_t{1} << 30),
                                           1),
                                     " GiB")
                           : std::string("unknown memory");
  return str_cat(t.nodes, " node", t.nodes == 1 ? "" : "s", " x ", t.ranks_per_node,
                 " ranks = ", t.ranks(), " ranks; device ",
                 t.device_name.empty() ? std::string("?") : t.device_name, " (", memory,
                 ")\n  intra-node: ", describe_link(t.intra),
                 "\n  inter-node: ", describe_link(t.inter), "\n  source: ", t.source);
}

}  // namespace seqpar
