// Topology discovery and link measurement under mpirun (one host): the MPI shared-memory split
// finds one node holding every rank, every rank gets the same Topology, and the ping-pong gives
// the same positive figures on every rank. Results are combined across ranks by the MPI test main.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

#include "comm/mpi_communicator.hpp"
#include "model/calibration.hpp"
#include "model/topology.hpp"
#include "mpi_world.hpp"

namespace seqpar {
namespace {

using testing::mpi_world;

TEST(LaunchMpi, DiscoversOneHostNodeBySharedMemorySplit) {
  auto comm = mpi_world();
  ASSERT_NE(comm, nullptr);
  StatusOr<DiscoveredTopology> found = discover_topology(*comm);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  const Topology& t = found->topology;
  EXPECT_EQ(t.nodes, 1);
  EXPECT_EQ(t.ranks_per_node, comm->size());
  EXPECT_EQ(t.device_name, "cpu");
  EXPECT_EQ(t.intra.kind, LinkKind::kHost);
  bool split = false;
  for (const std::string& note : found->notes) {
    split = split || note.find("MPI shared-memory split") != std::string::npos;
  }
  EXPECT_TRUE(split);
  // Every rank holds the same figures.
  int mine[2] = {t.nodes, t.ranks_per_node}, lo[2] = {0, 0}, hi[2] = {0, 0};
  MPI_Allreduce(mine, lo, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(mine, hi, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo[0], hi[0]);
  EXPECT_EQ(lo[1], hi[1]);
}

TEST(LaunchMpi, MeasuresTheLinkToTheLastRank) {
  auto comm = mpi_world();
  ASSERT_NE(comm, nullptr);
  if (comm->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  LinkMeasureOptions o;
  o.peer = comm->size() - 1;
  o.large_bytes = size_t{16} << 20;
  o.repeats = 5;
  o.kind = LinkKind::kHost;
  StatusOr<LinkSpec> link = measure_link(*comm, o);
  ASSERT_TRUE(link.is_ok()) << link.status().to_string();
  EXPECT_GT(link->bandwidth_bytes_per_s, 1e6);
  EXPECT_GE(link->latency_s, 0.0);
  double mine = link->bandwidth_bytes_per_s, lo = 0, hi = 0;
  MPI_Allreduce(&mine, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&mine, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi);
  if (comm->rank() == 0) {
    std::printf("mpi link 0 <-> %d: %.2f GB/s, %.1f us\n", o.peer,
                link->bandwidth_bytes_per_s / 1e9, link->latency_s * 1e6);
  }
}

}  // namespace
}  // namespace seqpar
