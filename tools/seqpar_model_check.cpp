// seqpar-model-check: the cost model's compute part against measured per-step times of the ring
// family and LightSeq (model/efficiency_check.hpp). --device cpu (default): every virtual
// rank's every step of ring and zigzag timed sequentially on one core with the CPU kernel,
// against the model fed this host's rate. --device cuda: the GPU virtual-rank benchmark
// (model/efficiency_cuda.hpp): P virtual ranks of every scheme it can time (ring, striped,
// zigzag, and lightseq under the causal mask) on the one GPU, bf16, against the model fed the rate
// of the same run (kept-tile FLOP/s of the shard-sized and whole-sequence blocks). With --input
// FILE it takes saved per-step times instead (the file's own rate when it has one). --write FILE
// saves the measured times in the same JSON. Exit status: 0 done, 1 failed, 2 bad arguments, 3
// --device cuda without a visible GPU (or a build without CUDA).
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "model/efficiency_check.hpp"
#include "runtime/scheme_kind.hpp"
#ifdef SEQPAR_HAVE_CUDA
#include "core/device_buffer.hpp"
#include "model/efficiency_cuda.hpp"
#endif

namespace seqpar {
namespace {
namespace po = boost::program_options;

int run(int argc, char** argv) {
  AttentionProblem p{1, 4096, 4, 1, 64, MaskKind::kCausal, DType::kF32, 0.0f};
  int ranks = 8, repeats = 3, warmup = 1;
  bool backward = false;
  std::string input, write, rate_file, schemes, device = "cpu", dtype, mask = "causal";
  po::options_description desc("seqpar-model-check: measured vs predicted ring-family efficiency");
  desc.add_options()("help,h", "print this help")("ranks", po::value(&ranks)->default_value(ranks),
                                                  "virtual ranks P")(
      "seq", po::value(&p.seq)->default_value(p.seq), "sequence length S")(
      "heads", po::value(&p.heads_q)->default_value(p.heads_q), "query heads")(
      "kv-heads", po::value(&p.heads_kv)->default_value(p.heads_kv), "kv heads")(
      "head-dim", po::value(&p.head_dim)->default_value(p.head_dim), "head dim")(
      "mask", po::value(&mask)->default_value(mask), "causal or full (lightseq: causal only)")(
      "backward", po::bool_switch(&backward), "time backward steps too")(
      "device", po::value(&device)->default_value(device),
      "cpu (the CPU kernel on one core) or cuda (the GPU virtual-rank benchmark)")(
      "dtype", po::value(&dtype),
      "cuda: bf16 (default) or fp16; the CPU measurement always runs fp32")(
      "repeats", po::value(&repeats)->default_value(repeats),
      "per block: cpu the best of this many, cuda the median")(
      "warmup", po::value(&warmup)->default_value(warmup), "cuda: untimed rounds first")(
      "schemes", po::value(&schemes),
      "comma list of schemes whose steps give each rank at most one block of its own shards "
      "(ring, striped, zigzag, lightseq); default cpu ring,zigzag, cuda every such scheme that "
      "takes the problem")("input", po::value(&input),
                           "per-step times to compare (JSON; skips measuring)")(
      "write", po::value(&write), "save the measured per-step times (JSON)")(
      "rate-file", po::value(&rate_file),
      "compute rate (default: the rate measured with the steps (--device cuda, or an input file "
      "that has one), else this host's cached or measured rate for the head dim)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "seqpar-model-check: %s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (device != "cpu" && device != "cuda") {
    std::fprintf(stderr, "seqpar-model-check: --device must be cpu or cuda (got '%s')\n",
                 device.c_str());
    return 2;
  }
  const StatusOr<MaskKind> parsed_mask = parse_mask(mask);
  if (!parsed_mask.is_ok()) {
    std::fprintf(stderr, "seqpar-model-check: --mask: %s\n",
                 parsed_mask.status().message().c_str());
    return 2;
  }
  p.mask = parsed_mask.value();
  const bool cuda = device == "cuda";
  if (cuda) {
    StatusOr<DType> parsed = parse_dtype(dtype.empty() ? "bf16" : dtype);
    if (!parsed.is_ok()) {
      std::fprintf(stderr, "seqpar-model-check: %s\n", parsed.status().to_string().c_str());
      return 2;
    }
    p.dtype = parsed.value();
  }
  StatusOr<EfficiencyInput> measured = Status::ok();
  if (!input.empty()) {
    std::ifstream file(input);
    std::stringstream text;
    text << file.rdbuf();
    if (!file) {
      std::fprintf(stderr, "seqpar-model-check: cannot read %s\n", input.c_str());
      return 1;
    }
    measured = parse_efficiency_input(text.str());
  } else {
    std::vector<SchemeKind> kinds;
    if (schemes.empty() && !cuda) kinds = {SchemeKind::kRing, SchemeKind::kZigzag};
    if (schemes.empty() && cuda) {
      for (const SchemeKind scheme : all_schemes()) {
        if (scheme_step_blocks(scheme, p, ranks).is_ok()) kinds.push_back(scheme);
      }
    }
    std::stringstream list(schemes);
    for (std::string name; std::getline(list, name, ',');) {
      StatusOr<SchemeKind> kind = parse_scheme(name);
      if (!kind.is_ok()) {
        std::fprintf(stderr, "seqpar-model-check: %s\n", kind.status().to_string().c_str());
        return 2;
      }
      kinds.push_back(kind.value());
    }
    if (!cuda) {
      measured = measure_host_steps(p, ranks, backward, kinds, repeats);
    } else {
#ifdef SEQPAR_HAVE_CUDA
      if (cuda_device_count() == 0) {
        std::fprintf(stderr,
                     "seqpar-model-check: --device cuda: no CUDA device is visible "
                     "(cudaGetDeviceCount reports none)\n");
        return 3;
      }
      CudaStepOptions options;
      options.warmup = warmup;
      options.repeats = repeats;
      measured = measure_cuda_steps(p, ranks, backward, kinds, options);
#else
      std::fprintf(stderr,
                   "seqpar-model-check: --device cuda: this build has no CUDA toolkit "
                   "(SEQPAR_HAVE_CUDA off)\n");
      return 3;
#endif
    }
  }
  if (!measured.is_ok()) {
    std::fprintf(stderr, "seqpar-model-check: %s\n", measured.status().to_string().c_str());
    return 1;
  }
  if (!write.empty()) {
    std::ofstream file(write);
    file << efficiency_input_json(measured.value());
    if (!file) {
      std::fprintf(stderr, "seqpar-model-check: cannot write %s\n", write.c_str());
      return 1;
    }
    std::fprintf(stderr, "seqpar-model-check: wrote %s\n", write.c_str());
  }
  // The rate: --rate-file, else the one measured with the steps (a GPU run's), else this host's.
  const EfficiencyInput& in = measured.value();
  StatusOr<ComputeRate> rate = Status::ok();
  if (!rate_file.empty()) {
    rate = load_compute_rate(rate_file);
  } else if (!in.rate.block_tokens.empty()) {
    rate = in.rate;
  } else {
    CalibrationOptions calibration;
    calibration.head_dim = in.problem.head_dim;
    calibration.dtype = in.problem.dtype;
    calibration.remeasure = input.empty();  // the rate of this machine as it is now, like the steps
    rate = load_or_calibrate(calibration);
  }
  if (!rate.is_ok()) {
    std::fprintf(stderr, "seqpar-model-check: %s\n", rate.status().to_string().c_str());
    return 1;
  }
  const KernelTiles tiles = kernel_tiles_for(input.empty() && !cuda ? "cpu" : in.device);
  StatusOr<std::vector<EfficiencyRow>> rows = compare_efficiency(in, rate.value(), tiles, nullptr);
  if (!rows.is_ok()) {
    std::fprintf(stderr, "seqpar-model-check: %s\n", rows.status().to_string().c_str());
    return 1;
  }
  std::cout << efficiency_table(in, rows.value(), rate.value());
  return 0;
}

}  // namespace
}  // namespace seqpar

int main(int argc, char** argv) { return seqpar::run(argc, argv); }
