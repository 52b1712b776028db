// Topology discovery: launcher environment variables (set in the test), NVML and CUDA probes
// (whatever this machine has, they must answer without failing), and discover_topology over
// the threads backend.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "comm/threads/threads_communicator.hpp"
#include "model/topology.hpp"

namespace seqpar {
namespace {

constexpr const char* kLauncherVariables[] = {"OMPI_COMM_WORLD_RANK",
                                              "OMPI_COMM_WORLD_SIZE",
                                              "OMPI_COMM_WORLD_LOCAL_RANK",
                                              "OMPI_COMM_WORLD_LOCAL_SIZE",
                                              "RANK",
                                              "WORLD_SIZE",
                                              "LOCAL_RANK",
                                              "LOCAL_WORLD_SIZE",
                                              "SLURM_PROCID",
                                              "SLURM_NTASKS",
                                              "SLURM_LOCALID",
                                              "SLURM_NTASKS_PER_NODE",
                                              "SLURM_TASKS_PER_NODE"};

// Clears the launcher variables for the test and restores them afterwards.
class LaunchEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kLauncherVariables) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      unsetenv(name);
    }
  }
  void TearDown() override {
    for (const char* name : kLauncherVariables) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }
  static void set(const char* name, const char* value) { setenv(name, value, 1); }

 private:
  std::map<std::string, std::string> saved_;
};

TEST_F(LaunchEnv, NoneSet) {
  StatusOr<LaunchEnvironment> env = launch_environment_from_env();
  ASSERT_TRUE(env.is_ok());
  EXPECT_EQ(env->launcher, "");
}

TEST_F(LaunchEnv, Torchrun) {
  set("RANK", "13");
  set("WORLD_SIZE", "16");
  set("LOCAL_RANK", "5");
  set("LOCAL_WORLD_SIZE", "8");
  StatusOr<LaunchEnvironment> env = launch_environment_from_env();
  ASSERT_TRUE(env.is_ok()) << env.status().to_string();
  EXPECT_EQ(env->launcher, "torchrun");
  EXPECT_EQ(env->rank, 13);
  EXPECT_EQ(env->world_size, 16);
  EXPECT_EQ(env->local_rank, 5);
  EXPECT_EQ(env->local_world_size, 8);
}

TEST_F(LaunchEnv, OpenMpiWinsOverSlurm) {
  set("SLURM_PROCID", "0");
  set("SLURM_NTASKS", "64");
  set("OMPI_COMM_WORLD_RANK", "3");
  set("OMPI_COMM_WORLD_SIZE", "4");
  set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
  set("OMPI_COMM_WORLD_LOCAL_SIZE", "2");
  StatusOr<LaunchEnvironment> env = launch_environment_from_env();
  ASSERT_TRUE(env.is_ok()) << env.status().to_string();
  EXPECT_EQ(env->launcher, "openmpi");
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->world_size, 4);
  EXPECT_EQ(env->local_world_size, 2);
}

TEST_F(LaunchEnv, SlurmTasksPerNode) {
  set("SLURM_PROCID", "9");
  set("SLURM_NTASKS", "32");
  set("SLURM_LOCALID", "1");
  set("SLURM_TASKS_PER_NODE", "8(x4)");
  StatusOr<LaunchEnvironment> env = launch_environment_from_env();
  ASSERT_TRUE(env.is_ok()) << env.status().to_string();
  EXPECT_EQ(env->launcher, "slurm");
  EXPECT_EQ(env->local_world_size, 8);
  set("SLURM_TASKS_PER_NODE", "4(x2),3");  // uneven: unknown
  EXPECT_EQ(launch_environment_from_env()->local_world_size, 0);
  set("SLURM_NTASKS_PER_NODE", "4");  // given explicitly
  EXPECT_EQ(launch_environment_from_env()->local_world_size, 4);
}

TEST_F(LaunchEnv, MalformedValuesAreErrors) {
  set("RANK", "zero");
  set("WORLD_SIZE", "4");
  StatusOr<LaunchEnvironment> env = launch_environment_from_env();
  ASSERT_FALSE(env.is_ok());
  EXPECT_NE(env.status().message().find("RANK='zero' is not a whole number"), std::string::npos)
      << env.status().message();
  set("RANK", "4");  // outside the world
  env = launch_environment_from_env();
  ASSERT_FALSE(env.is_ok());
  EXPECT_NE(env.status().message().find("RANK=4 is not below WORLD_SIZE=4"), std::string::npos)
      << env.status().message();
}

TEST(Probes, NvmlAndCudaAnswerWithoutFailing) {
  const NvlinkProbe probe = probe_nvlink();
  EXPECT_FALSE(probe.note.empty());
  EXPECT_LE(probe.nvlink_pairs, probe.gpu_pairs);
  if (!probe.nvml_available) {
    EXPECT_EQ(probe.gpus, 0);
  }
  const std::optional<CudaDeviceInfo> cuda = query_cuda_device();
  if (cuda.has_value()) {
    EXPECT_FALSE(cuda->name.empty());
    EXPECT_GT(cuda->memory_bytes, 0);
  }
  std::printf("NVML: %s\nCUDA: %s\n", probe.note.c_str(), cuda ? cuda->name.c_str() : "no device");
}

TEST(Discovery, ThreadsBackendIsOneHostNode) {
  for (int ranks : {1, 3, 4}) {
    std::mutex mutex;
    std::vector<DiscoveredTopology> found;
    Status status = run_threads(ranks, [&](Communicator& comm) -> Status {
      SEQPAR_ASSIGN_OR_RETURN(DiscoveredTopology d, discover_topology(comm));
      std::lock_guard<std::mutex> lock(mutex);
      found.push_back(std::move(d));
      return Status::ok();
    });
    ASSERT_TRUE(status.is_ok()) << status.to_string();
    ASSERT_EQ(found.size(), static_cast<size_t>(ranks));
    for (const DiscoveredTopology& d : found) {
      EXPECT_EQ(d.topology.nodes, 1);
      EXPECT_EQ(d.topology.ranks_per_node, ranks);
      EXPECT_EQ(d.topology.device_name, "cpu");
      EXPECT_EQ(d.topology.device_memory_bytes, 0);
      EXPECT_EQ(d.topology.intra.kind, LinkKind::kHost);
      EXPECT_EQ(d.topology.source, "discovered");
      ASSERT_FALSE(d.notes.empty());
      bool says_how = false;
      for (const std::string& note : d.notes) {
        says_how = says_how || note.find("threads backend") != std::string::npos;
      }
      EXPECT_TRUE(says_how);
    }
  }
}

}  // namespace
}  // namespace seqpar
