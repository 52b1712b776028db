// Topology discovery at run time: the launcher's environment variables, the MPI shared-memory
// split, hostnames gathered over the communicator, the CUDA device query and NVML (loaded with
// dlopen, so there is no link dependency on the driver's library).
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/comm_staging.hpp"
#include "comm/communicator.hpp"
#include "model/topology.hpp"

#ifdef SEQPAR_HAVE_MPI
#include <mpi.h>
#endif
#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace seqpar {

namespace {

// An integer environment variable: nullopt when unset, an error when malformed.
StatusOr<std::optional<int>> env_int(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::optional<int>();
  char* end = nullptr;
  errno = 0;
  const long number = std::strtol(value, &end, 10);
  if (*end != '\0' || errno != 0 || number < 0 || number > (1L << 24)) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat("environment variable ", name, "='", value,
                          "' is not a whole number from 0 to ", 1 << 24));
  }
  return std::optional<int>(static_cast<int>(number));
}

// SLURM_TASKS_PER_NODE: "8(x4)", "8,8" or "4(x2),3": the common count, or 0 when uneven.
int uniform_slurm_tasks_per_node(const char* value) {
  int common = 0;
  std::string text(value);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    const int count = std::atoi(item.c_str());
    if (count <= 0 || (common != 0 && count != common)) return 0;
    common = count;
    pos = comma + 1;
  }
  return common;
}

struct EnvNames {
  const char* launcher;
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;
};

constexpr EnvNames kLaunchers[] = {
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
};

// ---- NVML, resolved at run time ----
using NvmlReturn = int;
using NvmlDevice = void*;
constexpr int kNvmlP2pCapsIndexNvlink = 2;  // NVML_P2P_CAPS_INDEX_NVLINK
constexpr int kNvmlP2pStatusOk = 0;         // NVML_P2P_STATUS_OK

struct NvmlApi {
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  NvmlReturn (*device_count)(unsigned int*) = nullptr;
  NvmlReturn (*handle_by_index)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*p2p_status)(NvmlDevice, NvmlDevice, int, int*) = nullptr;
};

template <class Fn>
bool resolve(void* library, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(dlsym(library, name));
  return *fn != nullptr;
}

// Per-rank facts gathered to every rank (fixed size, so one all_gather carries them).
struct RankFacts {
  char host[64];
  char device[64];
  int64_t memory_bytes;
  int32_t local_size;    // this rank's idea of ranks on its node (0: none)
  int32_t nvlink_state;  // 0: unknown, 1: NVLink between every GPU pair, 2: not every pair
};

}  // namespace

StatusOr<LaunchEnvironment> launch_environment_from_env() {
  LaunchEnvironment env;
  for (const EnvNames& names : kLaunchers) {
    SEQPAR_ASSIGN_OR_RETURN(std::optional<int> rank, env_int(names.rank));
    SEQPAR_ASSIGN_OR_RETURN(std::optional<int> size, env_int(names.size));
    if (!rank || !size) continue;
    SEQPAR_ASSIGN_OR_RETURN(std::optional<int> local_rank, env_int(names.local_rank));
    SEQPAR_ASSIGN_OR_RETURN(std::optional<int> local_size, env_int(names.local_size));
    env.launcher = names.launcher;
    env.rank = *rank;
    env.world_size = *size;
    env.local_rank = local_rank.value_or(0);
    env.local_world_size = local_size.value_or(0);
    if (env.launcher == "slurm" && !local_size) {
      if (const char* per_node = std::getenv("SLURM_TASKS_PER_NODE")) {
        env.local_world_size = uniform_slurm_tasks_per_node(per_node);
      }
    }
    SEQPAR_REQUIRE(env.world_size >= 1 && env.rank < env.world_size, StatusCode::kInvalidArgument,
                   names.launcher, " environment: ", names.rank, "=", env.rank, " is not below ",
                   names.size, "=", env.world_size);
    SEQPAR_REQUIRE(
        env.local_world_size == 0 ||
            (env.local_rank < env.local_world_size && env.local_world_size <= env.world_size),
        StatusCode::kInvalidArgument, names.launcher, " environment: local rank ", env.local_rank,
        " and local size ", env.local_world_size, " do not fit a world of ", env.world_size);
    return env;
  }
  return env;  // launcher "": none set
}

NvlinkProbe probe_nvlink() {
  NvlinkProbe probe;
  void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    probe.note = "NVML not available (libnvidia-ml.so.1 could not be loaded)";
    return probe;
  }
  NvmlApi api;
  if (!resolve(library, "nvmlInit_v2", &api.init) ||
      !resolve(library, "nvmlShutdown", &api.shutdown) ||
      !resolve(library, "nvmlDeviceGetCount_v2", &api.device_count) ||
      !resolve(library, "nvmlDeviceGetHandleByIndex_v2", &api.handle_by_index) ||
      !resolve(library, "nvmlDeviceGetP2PStatus", &api.p2p_status)) {
    probe.note = "NVML loaded but lacks the functions needed (old driver?)";
    dlclose(library);
    return probe;
  }
  if (NvmlReturn rc = api.init(); rc != 0) {
    probe.note = str_cat("NVML present but nvmlInit failed (code ", rc, ")");
    dlclose(library);
    return probe;
  }
  probe.nvml_available = true;
  unsigned int count = 0;
  if (api.device_count(&count) == 0) {
    probe.gpus = static_cast<int>(count);
    std::vector<NvmlDevice> devices(count, nullptr);
    bool handles_ok = true;
    for (unsigned int i = 0; i < count; ++i) {
      handles_ok = handles_ok && api.handle_by_index(i, &devices[i]) == 0;
    }
    for (unsigned int i = 0; handles_ok && i < count; ++i) {
      for (unsigned int j = i + 1; j < count; ++j) {
        int status = -1;
        ++probe.gpu_pairs;
        if (api.p2p_status(devices[i], devices[j], kNvmlP2pCapsIndexNvlink, &status) == 0 &&
            status == kNvmlP2pStatusOk) {
          ++probe.nvlink_pairs;
        }
      }
    }
    probe.note = handles_ok ? str_cat("NVML: ", probe.gpus, " GPUs, NVLink between ",
                                      probe.nvlink_pairs, " of ", probe.gpu_pairs, " pairs")
                            : std::string("NVML: could not get device handles");
  } else {
    probe.note = "NVML: could not count devices";
  }
  api.shutdown();
  dlclose(library);
  return probe;
}

std::optional<CudaDeviceInfo> query_cuda_device() {
#ifdef SEQPAR_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0) {
    cudaGetLastError();  // clear the sticky "no device" error
    return std::nullopt;
  }
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return std::nullopt;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) return std::nullopt;
  CudaDeviceInfo info;
  info.name = prop.name;
  info.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  info.device_count = count;
  return info;
#else
  return std::nullopt;
#endif
}

StatusOr<DiscoveredTopology> discover_topology(Communicator& comm) {
  DiscoveredTopology result;
  Topology& t = result.topology;
  std::vector<std::string>& notes = result.notes;
  const int ranks = comm.size();
  const std::string backend = comm.backend_name();

  RankFacts mine{};
  if (gethostname(mine.host, sizeof(mine.host) - 1) != 0) std::strcpy(mine.host, "unknown");

  // Ranks on this node: the MPI shared-memory split when MPI_COMM_WORLD is this group, else
  // the launcher's local size, else the hostnames gathered below.
  std::string local_how;
#ifdef SEQPAR_HAVE_MPI
  int mpi_initialised = 0, mpi_finalised = 0;
  MPI_Initialized(&mpi_initialised);
  MPI_Finalized(&mpi_finalised);
  if (backend != "threads" && mpi_initialised != 0 && mpi_finalised == 0) {
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world == ranks) {
      MPI_Comm node = MPI_COMM_NULL;
      if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
          MPI_SUCCESS) {
        int local = 0;
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
        mine.local_size = local;
        local_how = "MPI shared-memory split";
      }
    }
  }
#endif
  if (mine.local_size == 0 && backend != "threads") {
    SEQPAR_ASSIGN_OR_RETURN(LaunchEnvironment env, launch_environment_from_env());
    if (!env.launcher.empty() && env.world_size == ranks && env.local_world_size > 0) {
      mine.local_size = env.local_world_size;
      local_how = str_cat(env.launcher, " environment variables");
    }
  }

  // The device: a CUDA device for device-memory backends, else this host's CPU.
  if (comm.device_memory()) {
    if (std::optional<CudaDeviceInfo> cuda = query_cuda_device()) {
      std::strncpy(mine.device, cuda->name.c_str(), sizeof(mine.device) - 1);
      mine.memory_bytes = cuda->memory_bytes;
    } else {
      std::strcpy(mine.device, "unknown CUDA device");
    }
    const NvlinkProbe probe = probe_nvlink();
    mine.nvlink_state =
        !probe.nvml_available || probe.gpu_pairs == 0 ? 0 : (probe.all_pairs_nvlink() ? 1 : 2);
    if (comm.rank() == 0) notes.push_back(str_cat("rank 0's node: ", probe.note));
  } else {
    std::strcpy(mine.device, "cpu");
  }

  std::vector<RankFacts> all(static_cast<size_t>(ranks));
  SEQPAR_RETURN_IF_ERROR(all_gather_host(comm, &mine, all.data(), sizeof(RankFacts)));

  // Ranks per node: agreed local sizes, else counted by hostname.
  int local = all[0].local_size;
  bool agreed = local > 0;
  for (const RankFacts& f : all) agreed = agreed && f.local_size == local;
  if (!agreed) {
    local = static_cast<int>(std::count_if(all.begin(), all.end(), [&](const RankFacts& f) {
      return std::strncmp(f.host, all[0].host, sizeof(f.host)) == 0;
    }));
    local_how = backend == "threads" ? "threads backend: every rank in this process"
                                     : "hostnames gathered over the communicator";
  }
  if (local <= 0 || ranks % local != 0) {
    notes.push_back(str_cat("uneven ranks per node (", local, " on the first node, ", ranks,
                            " ranks): treated as one node"));
    local = ranks;
  }
  t.ranks_per_node = local;
  t.nodes = ranks / local;
  notes.push_back(str_cat(t.nodes, " node(s) x ", t.ranks_per_node, " ranks, from ", local_how));
  // The cost model assumes consecutive ranks share a node: check it against the hostnames.
  for (int r = 0; r < ranks; ++r) {
    const bool same_host =
        std::strncmp(all[r].host, all[(r / local) * local].host, sizeof(all[r].host)) == 0;
    if (!same_host) {
      result.consecutive_ranks_share_nodes = false;
      notes.push_back(str_cat("rank ", r, " (", all[r].host,
                              ") does not share a host with the first rank of its node block; "
                              "the model assumes consecutive ranks share a node (mpirun "
                              "--map-by slot, the default, places them so)"));
      break;
    }
  }

  // Device and memory: rank 0's name; the smallest memory of any rank.
  t.device_name = all[0].device;
  t.device_memory_bytes = all[0].memory_bytes;
  for (const RankFacts& f : all) {
    t.device_memory_bytes = std::min(t.device_memory_bytes, f.memory_bytes);
    if (std::strncmp(f.device, all[0].device, sizeof(f.device)) != 0) {
      notes.push_back(str_cat("ranks use different devices (", all[0].device, ", ", f.device,
                              "); planning for ", all[0].device));
      break;
    }
  }

  // Links: host copies for host backends; NVLink or PCIe inside a GPU node as NVML says.
  if (!comm.device_memory()) {
    t.intra = default_link(LinkKind::kHost);
    notes.push_back(str_cat(backend, " backend on host memory: intra-node link 'host'"));
  } else {
    bool any_unknown = false, any_without = false;
    for (const RankFacts& f : all) {
      any_unknown = any_unknown || f.nvlink_state == 0;
      any_without = any_without || f.nvlink_state == 2;
    }
    if (any_without) {
      t.intra = default_link(LinkKind::kPcie);
      notes.push_back("NVML: some GPU pair has no NVLink: intra-node link 'pcie'");
    } else if (any_unknown) {
      t.intra = default_link(LinkKind::kNvlink);
      notes.push_back(
          "NVLink not verified (NVML unavailable or one GPU per node): 'nvlink' "
          "assumed; override with --intra");
    } else {
      t.intra = default_link(LinkKind::kNvlink);
      notes.push_back("NVML: NVLink between every GPU pair: intra-node link 'nvlink'");
    }
  }
  t.inter = default_link(LinkKind::kIb400);
  if (t.nodes > 1) {
    notes.push_back(
        "the network between nodes cannot be discovered here: 'ib400' assumed; "
        "override with --inter or --topology");
  }
  t.source = "discovered";
  SEQPAR_RETURN_IF_ERROR(validate_topology(t));
  return result;
}

}  // namespace seqpar
