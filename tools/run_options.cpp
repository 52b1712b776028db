// seqpar-run option parsing.
#include "tools/run_options.hpp"

#include <boost/program_options.hpp>
#include <cstdlib>
#include <iostream>

#include "core/enum_names.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace po = boost::program_options;

namespace {

constexpr int kMaxThreadRanks = 1024;

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMI_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr;
}

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    if (const char* v = std::getenv(name)) return std::atoi(v);
  }
  return 1;
}

}  // namespace

constexpr auto kBackendNames = enum_names<BackendKind>("threads", "mpi", "nccl");

const char* backend_name(BackendKind backend) { return kBackendNames.name(backend); }

StatusOr<BackendKind> parse_backend(std::string_view name) {
  return kBackendNames.parse(name, "backend");
}

StatusOr<RunOptions> parse_run_options(int argc, char** argv, bool* exit_now) {
  *exit_now = false;
  RunOptions o;
  AttentionProblem& p = o.plan.problem;
  p = AttentionProblem{1, 4096, 8, 2, 64, MaskKind::kCausal, DType::kBF16, 0.0f};
  std::string backend = launched_by_mpirun() ? "mpi" : "threads";
  std::string device = "host";
  std::string scheme = "auto", mask = "causal", dtype = "bf16", phase = "train";
  const std::string scheme_help =
      str_cat("auto (the cost model's cheapest for the topology and problem; see --explain), or ",
              scheme_names_text(), "; under --phase decode: auto, ", decoder_names_text());

  po::options_description desc(
      "seqpar-run: one attention training step across ranks.\n"
      "  mpirun -np 4 seqpar-run --backend mpi ...   or   seqpar-run --backend threads --ranks 4 "
      "...\n"
      "Options");
  desc.add_options()("help,h", "print this help")(
      "backend", po::value(&backend)->default_value(backend),
      "threads | mpi | nccl (default: mpi under mpirun, else threads)")(
      "ranks", po::value(&o.ranks)->default_value(o.ranks), "ranks for the threads backend")(
      "scheme", po::value(&scheme)->default_value(scheme), scheme_help.c_str())(
      "ulysses", po::value(&o.plan.ulysses_degree)->default_value(o.plan.ulysses_degree),
      "hybrid: ranks per Ulysses group, U x R = P (0: widest the heads allow)")(
      "batch", po::value(&p.batch)->default_value(p.batch), "batch size B")(
      "seq", po::value(&p.seq)->default_value(p.seq), "global sequence length S")(
      "heads", po::value(&p.heads_q)->default_value(p.heads_q), "query heads Hq")(
      "kv-heads", po::value(&p.heads_kv)->default_value(p.heads_kv), "key/value heads Hkv (GQA)")(
      "head-dim", po::value(&p.head_dim)->default_value(p.head_dim), "head dimension D")(
      "mask", po::value(&mask)->default_value(mask), "causal | full")(
      "dtype", po::value(&dtype)->default_value(dtype), "fp32 | bf16 | fp16")(
      "device", po::value(&device)->default_value(device),
      "host | cuda: where the tensors live and the kernels run (cuda: bf16 or fp16, head dim 64 "
      "or 128; --backend nccl, mpi (CUDA-aware or staged through host memory), or threads: the "
      "ranks share the one GPU, or the CPU emulator in a SEQPAR_CUDA_EMULATOR build)")(
      "backward", po::bool_switch(&o.backward), "run backward too (a training step)")(
      "phase", po::value(&phase)->default_value(phase),
      "train | prefill | decode (prefill: the forward alone; decode: --q-len new tokens "
      "against a KV cache of --seq tokens, --scheme naming the decoder)")(
      "q-len", po::value(&o.q_len)->default_value(o.q_len), "new query tokens per decode step")(
      "iters", po::value(&o.iters)->default_value(o.iters), "timed steps")(
      "warmup", po::value(&o.warmup)->default_value(o.warmup), "untimed steps first")(
      "seed", po::value(&o.seed)->default_value(o.seed), "seed of the inputs")(
      "check", po::bool_switch(&o.check), "compare with the fp64 reference; exit 1 on failure")(
      "json", po::bool_switch(&o.json), "rank 0 prints one JSON object on stdout")(
      "timeout", po::value(&o.timeout_s)->default_value(0.0),
      "seconds any communication wait may take (0: SEQPAR_TIMEOUT_S or 300)")(
      "dry-run", po::bool_switch(&o.dry_run),
      "choose the scheme and stop: no communicator, no run (with --explain: show why)")(
      "explain", po::bool_switch(&o.explain),
      "print every candidate (scheme x U x R) with predicted time, bytes, memory, or why it "
      "was excluded")("topology", po::value(&o.topology_file), "topology file (docs/topology.md)")(
      "nodes", po::value(&o.topology.nodes), "nodes (overrides the topology)")(
      "gpus-per-node", po::value(&o.topology.gpus_per_node), "ranks per node")(
      "intra", po::value(&o.topology.intra), "link inside a node: nvlink | pcie | host")(
      "inter", po::value(&o.topology.inter), "link between nodes: ib400 | ib200 | eth100 | host")(
      "rate-file", po::value(&o.rate_file),
      "block-kernel compute rate saved by the calibration (default: the cached or measured "
      "host rate on a CPU, the documented H100 figures for a GPU topology)")(
      "recalibrate", po::bool_switch(&o.recalibrate),
      "measure the host block kernel again instead of using the cached rate")(
      "measure-links", po::bool_switch(&o.measure_links),
      "time the active backend's links (a ping-pong inside a node and across nodes) and use "
      "them instead of the topology's figures (needs a communicator: --backend mpi or nccl)");

  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return SEQPAR_FAIL(StatusCode::kInvalidArgument, e.what(), " (see --help)");
  }
  if (vm.count("help") != 0) {
    std::cout << desc << "\n";
    *exit_now = true;
    return o;
  }
  SEQPAR_ASSIGN_OR_RETURN(o.backend, parse_backend(backend));
  SEQPAR_ASSIGN_OR_RETURN(o.plan.device, parse_device(device));
  SEQPAR_REQUIRE(
      o.backend != BackendKind::kNccl || vm["device"].defaulted() || o.plan.device == Device::kCuda,
      StatusCode::kInvalidArgument, "--backend nccl moves device memory: --device cuda");
  if (o.backend == BackendKind::kNccl) o.plan.device = Device::kCuda;
  o.ranks_given = !vm["ranks"].defaulted();
  SEQPAR_ASSIGN_OR_RETURN(o.phase, parse_phase(phase));
  const bool decode = o.phase == Phase::kDecode;
  o.scheme_auto = scheme == "auto";
  if (!o.scheme_auto && decode) {
    StatusOr<DecoderKind> decoder = parse_decoder(scheme);
    SEQPAR_REQUIRE(decoder.is_ok(), StatusCode::kInvalidArgument, "--phase decode runs --scheme ",
                   decoder_names_text(), " (got ", scheme, ")");
    o.decoder = decoder.value();
  } else if (!o.scheme_auto) {
    SEQPAR_ASSIGN_OR_RETURN(o.plan.scheme, parse_scheme(scheme));
  }
  SEQPAR_REQUIRE(
      vm["ulysses"].defaulted() ||
          (!o.scheme_auto && !decode && scheme_descriptor(o.plan.scheme).takes_ulysses_degree),
      StatusCode::kInvalidArgument, "--ulysses is for --scheme hybrid (got --scheme ", scheme, ")");
  SEQPAR_ASSIGN_OR_RETURN(p.dtype, parse_dtype(dtype));
  SEQPAR_REQUIRE(is_storage_dtype(p.dtype), StatusCode::kInvalidArgument,
                 "--dtype must be fp32, bf16 or fp16");
  SEQPAR_ASSIGN_OR_RETURN(p.mask, parse_mask(mask));
  if (o.backend == BackendKind::kThreads) {
    SEQPAR_REQUIRE(o.ranks >= 1 && o.ranks <= kMaxThreadRanks, StatusCode::kInvalidArgument,
                   "--ranks must be from 1 to ", kMaxThreadRanks, " (got ", o.ranks, ")");
    SEQPAR_REQUIRE(
        launcher_world_size() == 1, StatusCode::kInvalidArgument,
        "--backend threads runs all ranks in one process; under mpirun use --backend mpi");
  } else {
    SEQPAR_REQUIRE(vm["ranks"].defaulted(), StatusCode::kInvalidArgument,
                   "--ranks is for --backend threads; with ", backend,
                   " the ranks are mpirun's processes (-np)");
  }
  SEQPAR_REQUIRE(o.phase != Phase::kPrefill || !o.backward, StatusCode::kInvalidArgument,
                 "--phase prefill is the forward alone (no --backward)");
  SEQPAR_REQUIRE(!decode || !o.backward, StatusCode::kInvalidArgument,
                 "--phase decode has no backward");
  SEQPAR_REQUIRE(o.q_len >= 1, StatusCode::kInvalidArgument, "--q-len must be >= 1");
  SEQPAR_REQUIRE(o.iters >= 1 && o.warmup >= 0, StatusCode::kInvalidArgument,
                 "--iters must be >= 1 and --warmup >= 0");
  SEQPAR_REQUIRE(o.timeout_s >= 0.0, StatusCode::kInvalidArgument, "--timeout must be >= 0");
  SEQPAR_REQUIRE(!o.dry_run || o.scheme_auto || o.explain, StatusCode::kInvalidArgument,
                 "--dry-run with --scheme ", scheme,
                 " has nothing to do: add --explain, or use --scheme auto");
  return o;
}

}  // namespace seqpar
