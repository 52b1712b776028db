// The topology file parser: a good file, the shipped example files, and each kind of error with
// the file and line it names.
#include <gtest/gtest.h>

#include <fstream>

#include "model/topology.hpp"

namespace seqpar {
namespace {

constexpr const char* kGoodFile = R"(# two DGX H100 nodes
nodes = 2
gpus_per_node = 8          # one rank per GPU
device = NVIDIA H100 80GB HBM3
device_memory = 80 GiB

intra = nvlink
inter = ib400
inter_bandwidth = 400 Gb/s   # explicit figure overrides the kind's default
inter_latency = 3.5 us
)";

TEST(TopologyFile, ParsesAGoodFile) {
  StatusOr<Topology> t = parse_topology_text(kGoodFile, "good.txt");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->nodes, 2);
  EXPECT_EQ(t->ranks_per_node, 8);
  EXPECT_EQ(t->ranks(), 16);
  EXPECT_EQ(t->device_name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(t->device_memory_bytes, int64_t{80} << 30);
  EXPECT_EQ(t->intra.kind, LinkKind::kNvlink);
  EXPECT_DOUBLE_EQ(t->intra.bandwidth_bytes_per_s,
                   default_link(LinkKind::kNvlink).bandwidth_bytes_per_s);
  EXPECT_DOUBLE_EQ(t->intra.latency_s, default_link(LinkKind::kNvlink).latency_s);
  EXPECT_EQ(t->inter.kind, LinkKind::kIb400);
  EXPECT_DOUBLE_EQ(t->inter.bandwidth_bytes_per_s, 50e9);  // 400 Gb/s = 50 GB/s
  EXPECT_NEAR(t->inter.latency_s, 3.5e-6, 1e-15);
  EXPECT_TRUE(t->same_node(0, 7));
  EXPECT_FALSE(t->same_node(7, 8));
  EXPECT_EQ(t->link(3, 12).kind, LinkKind::kIb400);
}

TEST(TopologyFile, FiguresOverrideTheKindInAnyOrder) {
  StatusOr<Topology> t = parse_topology_text(
      "intra_bandwidth = 100 GB/s\nintra = pcie\nnodes = 1\ngpus_per_node = 4\n", "x");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->intra.kind, LinkKind::kPcie);
  EXPECT_DOUBLE_EQ(t->intra.bandwidth_bytes_per_s, 100e9);
  EXPECT_DOUBLE_EQ(t->intra.latency_s, default_link(LinkKind::kPcie).latency_s);
}

TEST(TopologyFile, CustomLinkNeedsBothFigures) {
  StatusOr<Topology> t = parse_topology_text(
      "nodes = 4\ngpus_per_node = 4\ninter = custom\ninter_bandwidth = 12.5 GiB/s\n"
      "inter_latency = 2 ms\n",
      "custom.txt");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->inter.kind, LinkKind::kCustom);
  EXPECT_DOUBLE_EQ(t->inter.bandwidth_bytes_per_s, 12.5 * 1073741824.0);
  EXPECT_DOUBLE_EQ(t->inter.latency_s, 2e-3);
  StatusOr<Topology> missing =
      parse_topology_text("nodes = 4\ngpus_per_node = 4\ninter = custom\n", "custom.txt");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().message(),
            "custom.txt:3: inter = custom needs inter_bandwidth and inter_latency");
}

struct BadFile {
  const char* text;
  const char* message;  // the whole message: file, line and rule
};

TEST(TopologyFile, EachErrorNamesFileAndLine) {
  const BadFile cases[] = {
      {"nodes = 2\ngpus_per_node = 8\nnodez = 3\n",
       "bad.txt:3: unknown key 'nodez' (expected nodes, gpus_per_node, device, device_memory, "
       "intra, intra_bandwidth, intra_latency, inter, inter_bandwidth, inter_latency)"},
      {"nodes = 2\n\n# comment\ngpus_per_node 8\n",
       "bad.txt:4: expected 'key = value', got 'gpus_per_node 8'"},
      {"nodes = 2\ngpus_per_node = 8\nnodes = 4\n",
       "bad.txt:3: 'nodes' given twice (first on line 1)"},
      {"nodes = two\n", "bad.txt:1: nodes: 'two' is not a whole number from 1 to 1048576"},
      {"nodes = 0\n", "bad.txt:1: nodes: '0' is not a whole number from 1 to 1048576"},
      {"nodes = 1\ngpus_per_node = 8\nintra = infiniband\n",
       "bad.txt:3: intra: unknown link kind 'infiniband' (expected nvlink, pcie, ib400, ib200, "
       "eth100, host or custom)"},
      {"nodes = 1\ngpus_per_node = 8\ninter_bandwidth = 50 GB\n",
       "bad.txt:3: inter_bandwidth: unknown unit 'GB' (expected B/s, KB/s, MB/s, GB/s, TB/s, "
       "KiB/s, MiB/s, GiB/s, Kb/s, Mb/s, Gb/s, Tb/s)"},
      {"nodes = 1\ngpus_per_node = 8\ninter_latency = 5\n",
       "bad.txt:3: inter_latency: '5' needs a unit (s, ms, us, ns)"},
      {"nodes = 1\ngpus_per_node = 8\nintra_bandwidth = -3 GB/s\n",
       "bad.txt:3: intra_bandwidth must be > 0"},
      {"nodes = 1\ngpus_per_node = 8\ndevice_memory = lots\n",
       "bad.txt:3: device_memory: 'lots' is not a number with a unit (B, KB, MB, GB, TB, KiB, "
       "MiB, GiB, TiB)"},
      {"nodes = 1\ndevice =\n", "bad.txt:2: 'device' has no value"},
      {"gpus_per_node = 8\n", "bad.txt: missing 'nodes = N'"},
      {"nodes = 8\n", "bad.txt: missing 'gpus_per_node = G'"},
  };
  for (const BadFile& c : cases) {
    StatusOr<Topology> t = parse_topology_text(c.text, "bad.txt");
    ASSERT_FALSE(t.is_ok()) << c.text;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(t.status().message(), c.message) << c.text;
  }
}

TEST(TopologyFile, ReadsAFileAndNamesItsSource) {
  const std::string path = ::testing::TempDir() + "/seqpar_topology_test.txt";
  {
    std::ofstream out(path);
    out << kGoodFile;
  }
  StatusOr<Topology> t = read_topology_file(path);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->source, "file " + path);
  StatusOr<Topology> missing = read_topology_file(path + ".absent");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("cannot open topology file"), std::string::npos);
}

// The example files shipped in configs/topology/ parse (SEQPAR_SOURCE_DIR from CMake).
TEST(TopologyFile, ShippedExamplesParse) {
  const std::string dir = std::string(SEQPAR_SOURCE_DIR) + "/configs/topology/";
  struct Expected {
    const char* file;
    int nodes, gpus;
    LinkKind intra, inter;
  };
  const Expected examples[] = {
      {"dgx-h100-2node.txt", 2, 8, LinkKind::kNvlink, LinkKind::kIb400},
      {"pcie-4gpu-eth100-4node.txt", 4, 4, LinkKind::kPcie, LinkKind::kEth100},
      {"h100-hdr-16node.txt", 16, 8, LinkKind::kNvlink, LinkKind::kIb200},
  };
  for (const Expected& e : examples) {
    StatusOr<Topology> t = read_topology_file(dir + e.file);
    ASSERT_TRUE(t.is_ok()) << t.status().to_string();
    EXPECT_EQ(t->nodes, e.nodes) << e.file;
    EXPECT_EQ(t->ranks_per_node, e.gpus) << e.file;
    EXPECT_EQ(t->intra.kind, e.intra) << e.file;
    EXPECT_EQ(t->inter.kind, e.inter) << e.file;
  }
}

}  // namespace
}  // namespace seqpar
