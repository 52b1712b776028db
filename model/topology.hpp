#pragma once
// Topology: the cluster a run is planned for (nodes, ranks per node, device, and the two link
// levels, intra-node and inter-node), where it comes from (a topology file, CLI overrides,
// discovery at run time, or the documented default), and the documented link defaults
// (docs/reference_figures.md). The cost model (model/cost_model.hpp) reads only this struct.
// File format: docs/topology.md.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace seqpar {

class Communicator;

enum class LinkKind : int {
  kNvlink = 0,
  kPcie,
  kIb400,
  kIb200,
  kEth100,
  kHost,  // in-process or shared memory on a CPU host
  kCustom
};

struct LinkSpec {
  LinkKind kind = LinkKind::kNvlink;
  double bandwidth_bytes_per_s = 0;  // achievable per GPU per direction (what NCCL/MPI reach)
  double latency_s = 0;              // per message (small-message latency)
};

struct Topology {
  int nodes = 1;
  int ranks_per_node = 1;           // one rank per GPU; consecutive ranks share a node
  std::string device_name;          // e.g. "NVIDIA H100 80GB HBM3", or "cpu"
  int64_t device_memory_bytes = 0;  // per rank; 0: unknown (no memory limit applied)
  LinkSpec intra;                   // between ranks of one node
  LinkSpec inter;                   // between nodes (one NIC per GPU)
  std::string source;  // where it came from: "file PATH", "cli", "discovered", "default"
  int ranks() const { return nodes * ranks_per_node; }
  bool same_node(int a, int b) const { return a / ranks_per_node == b / ranks_per_node; }
  const LinkSpec& link(int a, int b) const { return same_node(a, b) ? intra : inter; }
};

// "nvlink", "pcie", "ib400", "ib200", "eth100", "host", "custom".
const char* link_kind_name(LinkKind kind);
// Accepts the names above (case-insensitive); anything else is kInvalidArgument listing them.
StatusOr<LinkKind> parse_link_kind(std::string_view name);

// Documented achievable figures per GPU per direction (see docs/topology.md for the sources):
//   nvlink  370 GB/s, 12.5 us (H100 SXM NVLink 4: NCCL ring bus bandwidth,
//   docs/reference_figures.md) pcie   52.6 GB/s, 12.5 us (assumption: Gen5 x16 at NVLink's NCCL
//   efficiency; not measured) ib400  47.5 GB/s, 45 us   (NDR 400 Gb/s, one NIC per GPU,
//   docs/reference_figures.md) ib200 23.75 GB/s, 45 us   (assumption: HDR 200 Gb/s, half of ib400)
//   eth100 11.9 GB/s, 45 us   (assumption: 100 GbE RoCE, a quarter of ib400)
//   host    3.7 GB/s,  2 us   (one CPU host: Open MPI shared memory, measured on the 2-core
//                              development VM with measure_link; the threads backend is faster)
//   custom   0, 0             (must be given explicitly)
LinkSpec default_link(LinkKind kind);

// One H100 SXM node of 8 GPUs (80 GB), NVLink inside, NDR 400 between nodes: source "default".
Topology default_topology();

// Structural checks: nodes >= 1, ranks_per_node >= 1, bandwidths > 0, latencies >= 0,
// device memory >= 0. Names the offending field.
Status validate_topology(const Topology& topology);

// ---- the topology file (docs/topology.md) ----
// Parses `text`; errors read "NAME:LINE: message". nodes and gpus_per_node are required; other
// keys not given keep default_topology()'s values.
StatusOr<Topology> parse_topology_text(std::string_view text, const std::string& name);
// Reads and parses PATH; source becomes "file PATH".
StatusOr<Topology> read_topology_file(const std::string& path);

// ---- CLI overrides: --nodes N --gpus-per-node G --intra KIND --inter KIND ----
// Zero / empty fields keep `base`'s values. Link kinds set the link to default_link(kind).
// Validated: nodes and gpus per node in [1, 1<<20]; intra must be nvlink, pcie or host (or
// custom, keeping base's figures); inter must be ib400, ib200, eth100, host or custom.
// source becomes "cli" (or "<base source> + cli" when base came from a file).
struct TopologyOverrides {
  int nodes = 0;
  int gpus_per_node = 0;
  std::string intra;  // "" keeps base
  std::string inter;  // "" keeps base
};
StatusOr<Topology> topology_from_cli(const TopologyOverrides& overrides, const Topology& base);
// Same, on top of default_topology().
StatusOr<Topology> topology_from_cli(const TopologyOverrides& overrides);

// ---- discovery at run time (model/topology_discovery.cpp) ----
// What the launcher's environment says about this process: the first that is set of Open MPI
// (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE), torchrun-style (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE) and SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE,
// else SLURM_TASKS_PER_NODE when every node has the same count, e.g. "8(x4)").
struct LaunchEnvironment {
  std::string launcher;  // "torchrun", "openmpi", "slurm"
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 0;  // 0: not given by the launcher
};
// launcher "" when none of the variables is set; a malformed value (not an integer, rank outside
// the world) is kInvalidArgument naming the variable.
StatusOr<LaunchEnvironment> launch_environment_from_env();

// What NVML says about NVLink between the GPUs of this node (dlopen("libnvidia-ml.so.1") at run
// time; no link dependency).
struct NvlinkProbe {
  bool nvml_available = false;
  std::string note;      // why not available, or what was found
  int gpus = 0;          // GPUs NVML sees
  int gpu_pairs = 0;     // pairs checked
  int nvlink_pairs = 0;  // pairs with an active NVLink between them (direct or via NVSwitch)
  bool all_pairs_nvlink() const { return gpu_pairs > 0 && nvlink_pairs == gpu_pairs; }
};
NvlinkProbe probe_nvlink();

// The CUDA device this process would use (CUDA runtime query); nullopt without CUDA or a device.
struct CudaDeviceInfo {
  std::string name;
  int64_t memory_bytes = 0;
  int device_count = 0;
};
std::optional<CudaDeviceInfo> query_cuda_device();

// Collective over `comm`: ranks and ranks per node (MPI shared-memory split for the mpi backend,
// else the launch environment, else one node holding every rank), device name and memory (CUDA
// query, else "cpu"), intra link (host for the threads / CPU mpi backends; nvlink when NVML sees
// NVLink between every GPU pair, else pcie), inter link ib400 by default (a network cannot be
// discovered here: say so in `notes`). Every rank returns the same Topology.
struct DiscoveredTopology {
  Topology topology;
  std::vector<std::string> notes;  // one line per decision, for --explain
  // Whether every block of ranks_per_node consecutive ranks shares a host, as the schemes'
  // node groups assume (mpirun --map-by slot); false under a round-robin placement.
  bool consecutive_ranks_share_nodes = true;
};
StatusOr<DiscoveredTopology> discover_topology(Communicator& comm);

// Multi-line human description ("2 nodes x 8 ranks, NVIDIA H100 ..., intra nvlink 370 GB/s ...").
std::string describe_topology(const Topology& topology);

}  // namespace seqpar
