// Topology CLI overrides (--nodes --gpus-per-node --intra --inter), link kinds and defaults.
#include <gtest/gtest.h>

#include "model/topology.hpp"

namespace seqpar {
namespace {

TEST(LinkKinds, NamesRoundTripAndUnknownIsRejected) {
  for (LinkKind kind : {LinkKind::kNvlink, LinkKind::kPcie, LinkKind::kIb400, LinkKind::kIb200,
                        LinkKind::kEth100, LinkKind::kHost, LinkKind::kCustom}) {
    StatusOr<LinkKind> parsed = parse_link_kind(link_kind_name(kind));
    ASSERT_TRUE(parsed.is_ok());
    EXPECT_EQ(parsed.value(), kind);
  }
  EXPECT_EQ(parse_link_kind("NVLink").value(), LinkKind::kNvlink);
  EXPECT_FALSE(parse_link_kind("ib800").is_ok());
}

TEST(LinkKinds, DocumentedDefaults) {
  // docs/reference_figures.md: NVLink 4 ~370 GB/s NCCL bus bandwidth, 10-15 us; NDR 46-49 GB/s,
  // 40-50 us.
  EXPECT_DOUBLE_EQ(default_link(LinkKind::kNvlink).bandwidth_bytes_per_s, 370e9);
  EXPECT_GE(default_link(LinkKind::kNvlink).latency_s, 10e-6);
  EXPECT_LE(default_link(LinkKind::kNvlink).latency_s, 15e-6);
  EXPECT_GE(default_link(LinkKind::kIb400).bandwidth_bytes_per_s, 46e9);
  EXPECT_LE(default_link(LinkKind::kIb400).bandwidth_bytes_per_s, 49e9);
  EXPECT_GE(default_link(LinkKind::kIb400).latency_s, 40e-6);
  EXPECT_LE(default_link(LinkKind::kIb400).latency_s, 50e-6);
  EXPECT_LT(default_link(LinkKind::kIb200).bandwidth_bytes_per_s,
            default_link(LinkKind::kIb400).bandwidth_bytes_per_s);
  EXPECT_LT(default_link(LinkKind::kEth100).bandwidth_bytes_per_s,
            default_link(LinkKind::kIb200).bandwidth_bytes_per_s);
  EXPECT_EQ(default_link(LinkKind::kCustom).bandwidth_bytes_per_s, 0.0);
}

TEST(TopologyCli, OverridesTheDefault) {
  TopologyOverrides o;
  o.nodes = 4;
  o.gpus_per_node = 8;
  o.intra = "nvlink";
  o.inter = "ib200";
  StatusOr<Topology> t = topology_from_cli(o);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->ranks(), 32);
  EXPECT_EQ(t->inter.kind, LinkKind::kIb200);
  EXPECT_EQ(t->source, "cli");
  EXPECT_EQ(t->device_name, default_topology().device_name);
}

TEST(TopologyCli, KeepsTheBaseWhereNothingIsGiven) {
  Topology base = default_topology();
  base.nodes = 3;
  base.inter = {LinkKind::kCustom, 7e9, 9e-6};
  base.source = "file cluster.txt";
  TopologyOverrides o;
  o.gpus_per_node = 4;
  StatusOr<Topology> t = topology_from_cli(o, base);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->nodes, 3);
  EXPECT_EQ(t->ranks_per_node, 4);
  EXPECT_DOUBLE_EQ(t->inter.bandwidth_bytes_per_s, 7e9);
  EXPECT_EQ(t->source, "file cluster.txt + cli");
  StatusOr<Topology> same = topology_from_cli(TopologyOverrides{}, base);
  ASSERT_TRUE(same.is_ok());
  EXPECT_EQ(same->source, "file cluster.txt");
}

TEST(TopologyCli, RejectsBadValues) {
  struct Bad {
    TopologyOverrides o;
    const char* fragment;
  };
  const Bad cases[] = {
      {{-1, 0, "", ""}, "--nodes must be from 1 to"},
      {{0, -8, "", ""}, "--gpus-per-node must be from 1 to"},
      {{0, 2000000, "", ""}, "--gpus-per-node must be from 1 to"},
      {{0, 0, "ib400", ""}, "--intra ib400 is not an intra-node link"},
      {{0, 0, "", "nvlink"}, "--inter nvlink is not an inter-node link"},
      {{0, 0, "", "token-ring"}, "unknown link kind 'token-ring'"},
  };
  for (const Bad& c : cases) {
    StatusOr<Topology> t = topology_from_cli(c.o);
    ASSERT_FALSE(t.is_ok()) << c.fragment;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.fragment), std::string::npos) << t.status().message();
  }
}

TEST(TopologyCli, CustomKindNeedsFiguresFromTheBase) {
  TopologyOverrides o;
  o.inter = "custom";
  StatusOr<Topology> t = topology_from_cli(o);  // default's ib400 figures are kept
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->inter.kind, LinkKind::kCustom);
  Topology zero = default_topology();
  zero.inter = default_link(LinkKind::kCustom);
  EXPECT_FALSE(topology_from_cli(o, zero).is_ok());  // no bandwidth anywhere
}

TEST(TopologyDescription, MentionsTheLinks) {
  const std::string text = describe_topology(default_topology());
  EXPECT_NE(text.find("nvlink 370.0 GB/s"), std::string::npos) << text;
  EXPECT_NE(text.find("ib400 47.5 GB/s"), std::string::npos) << text;
  EXPECT_NE(text.find("1 node x 8 ranks"), std::string::npos) << text;
}

}  // namespace
}  // namespace seqpar
