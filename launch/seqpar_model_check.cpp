// seqpar-model-check: the cost model's compute part against measured per-step times of the ring
// family (launch/efficiency_check.hpp). On a CPU host it measures every virtual rank's every step
// of ring and zigzag sequentially on one core and compares the measured efficiency with the
// model's; with --input FILE it takes a benchmark's per-step times (a GPU virtual-rank run)
// instead. --write FILE saves the measured times in the same JSON.
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "launch/efficiency_check.hpp"

namespace seqpar {
namespace {
namespace po = boost::program_options;

int run(int argc, char** argv) {
  AttentionProblem p{1, 4096, 4, 1, 64, MaskKind::kCausal, DType::kF32, 0.0f};
  int ranks = 8, repeats = 3;
  bool backward = false;
  std::string input, write, rate_file, schemes = "ring,zigzag";
  po::options_description desc("seqpar-model-check: measured vs predicted ring-family efficiency");
  desc.add_options()("help,h", "print this help")("ranks", po::value(&ranks)->default_value(ranks),
                                                  "virtual ranks P")(
      "seq", po::value(&p.seq)->default_value(p.seq), "sequence length S")(
      "heads", po::value(&p.heads_q)->default_value(p.heads_q), "query heads")(
      "kv-heads", po::value(&p.heads_kv)->default_value(p.heads_kv), "kv heads")(
      "head-dim", po::value(&p.head_dim)->default_value(p.head_dim), "head dim")(
      "backward", po::bool_switch(&backward), "time backward steps too")(
      "repeats", po::value(&repeats)->default_value(repeats), "best of this many per block")(
      "schemes", po::value(&schemes)->default_value(schemes), "ring, striped, zigzag (comma list)")(
      "input", po::value(&input), "per-step times to compare (JSON; skips measuring)")(
      "write", po::value(&write), "save the measured per-step times (JSON)")(
      "rate-file", po::value(&rate_file),
      "compute rate (default: this host's cached or measured fp32 rate for the head dim)");
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
    std::stringstream list(schemes);
    for (std::string name; std::getline(list, name, ',');) {
      StatusOr<SchemeKind> kind = parse_scheme(name);
      if (!kind.is_ok()) {
        std::fprintf(stderr, "seqpar-model-check: %s\n", kind.status().to_string().c_str());
        return 2;
      }
      kinds.push_back(kind.value());
    }
    measured = measure_host_steps(p, ranks, backward, kinds, repeats);
  }
  if (!measured.is_ok()) {
    std::fprintf(stderr, "seqpar-model-check: %s\n", measured.status().to_string().c_str());
    return 1;
  }
  if (!write.empty()) std::ofstream(write) << efficiency_input_json(measured.value());
  CalibrationOptions calibration;
  calibration.head_dim = measured.value().problem.head_dim;
  calibration.dtype = measured.value().problem.dtype;
  calibration.remeasure = input.empty();  // the rate of this machine as it is now, like the steps
  StatusOr<ComputeRate> rate =
      rate_file.empty() ? load_or_calibrate(calibration) : load_compute_rate(rate_file);
  if (!rate.is_ok()) {
    std::fprintf(stderr, "seqpar-model-check: %s\n", rate.status().to_string().c_str());
    return 1;
  }
  const KernelTiles tiles = kernel_tiles_for(input.empty() ? "cpu" : measured.value().device);
  StatusOr<std::vector<EfficiencyRow>> rows =
      compare_efficiency(measured.value(), rate.value(), tiles, nullptr);
  if (!rows.is_ok()) {
    std::fprintf(stderr, "seqpar-model-check: %s\n", rows.status().to_string().c_str());
    return 1;
  }
  std::cout << efficiency_table(measured.value(), rows.value(), rate.value());
  return 0;
}

}  // namespace
}  // namespace seqpar

int main(int argc, char** argv) { return seqpar::run(argc, argv); }
