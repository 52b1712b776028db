// seqpar-sim: the scaling simulator. Sweeps node counts, sequence lengths and head
// configurations for a described cluster (--topology FILE and/or --nodes/--gpus-per-node/--intra/
// --inter) and device (compute rate: the documented H100 figures, the host kernel's calibrated
// rate, or a saved rate file), calls the one cost model (model/cost_model.hpp, the same
// evaluate_candidates that seqpar-run --scheme auto uses) for every candidate, and prints per
// scheme (the hybrid's best U x R) the predicted step time, TFLOP/s per GPU and efficiency
// (single-GPU time / P over the predicted time). Writes CSV, JSON and an SVG plot. Everything it
// prints is a model prediction, and it says so.
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "model/calibration.hpp"
#include "model/cost_model.hpp"
#include "model/topology.hpp"
#include "runtime/scheme_registry.hpp"
#include "tools/sim_plot.hpp"
#include "tools/sim_table.hpp"

namespace po = boost::program_options;

namespace seqpar {
namespace {

constexpr const char* kPredictionNote =
    "MODEL PREDICTIONS from seqpar's cost model (model/cost_model.hpp, docs/cost_model.md), "
    "not measurements";

struct SimOptions {
  std::string topology_file;
  TopologyOverrides overrides;
  std::vector<int> nodes;
  std::vector<int64_t> seqs, heads, kv_heads;
  int64_t head_dim = 128, batch = 1, q_len = 1;
  std::string mask = "causal", dtype = "bf16", phase = "train";
  MaskKind mask_kind = MaskKind::kCausal;  // --mask, parsed
  bool backward = false;
  std::string rate_file;
  bool recalibrate = false;
  std::string csv, json, plot;
};

// "1,2,4" -> {1, 2, 4}; every entry a whole number >= 1.
template <class Int>
StatusOr<std::vector<Int>> parse_list(const std::string& flag, const std::string& text) {
  std::vector<Int> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    const long long value = std::strtoll(item.c_str(), &end, 10);
    SEQPAR_REQUIRE(!item.empty() && *end == '\0' && value >= 1 && value <= (1LL << 40),
                   StatusCode::kInvalidArgument, "--", flag, ": '", item,
                   "' is not a whole number >= 1 (expected a comma-separated list)");
    out.push_back(static_cast<Int>(value));
    pos = comma + 1;
  }
  return out;
}

StatusOr<SimOptions> parse_options(int argc, char** argv, bool* exit_now) {
  *exit_now = false;
  SimOptions o;
  std::string nodes = "1,2,4,8,16,32,64,128", seqs = "131072", heads = "32", kv_heads = "8";
  po::options_description desc(
      "seqpar-sim: predicted scaling of every scheme across node counts (cost model only; "
      "nothing is run).\n"
      "  seqpar-sim --nodes 1,2,4,8,16,32,64,128 --gpus-per-node 8 --intra nvlink --inter ib400 "
      "\\\n"
      "             --seq 131072 --heads 32 --kv-heads 8 --head-dim 128 --mask causal --backward "
      "--plot scaling.svg\n"
      "Options");
  desc.add_options()("help,h", "print this help")(
      "topology", po::value(&o.topology_file),
      "topology file (docs/topology.md); flags override it")(
      "nodes", po::value(&nodes)->default_value(nodes), "node counts to sweep, comma-separated")(
      "gpus-per-node", po::value(&o.overrides.gpus_per_node)->default_value(0),
      "GPUs (ranks) per node (0: the topology's, default 8)")(
      "intra", po::value(&o.overrides.intra), "intra-node link: nvlink | pcie | host")(
      "inter", po::value(&o.overrides.inter), "inter-node link: ib400 | ib200 | eth100 | host")(
      "seq", po::value(&seqs)->default_value(seqs), "sequence lengths S, comma-separated")(
      "heads", po::value(&heads)->default_value(heads), "query heads Hq, comma-separated")(
      "kv-heads", po::value(&kv_heads)->default_value(kv_heads),
      "key/value heads Hkv: one value for all, or one per --heads entry")(
      "head-dim", po::value(&o.head_dim)->default_value(o.head_dim), "head dimension D")(
      "batch", po::value(&o.batch)->default_value(o.batch), "batch size B")(
      "mask", po::value(&o.mask)->default_value(o.mask), "causal | full")(
      "dtype", po::value(&o.dtype)->default_value(o.dtype), "fp32 | bf16 | fp16")(
      "backward", po::bool_switch(&o.backward), "forward + backward (a training step)")(
      "phase", po::value(&o.phase)->default_value(o.phase),
      "train | prefill | decode (decode: --q-len tokens against a cache of --seq tokens)")(
      "q-len", po::value(&o.q_len)->default_value(o.q_len), "decode: new tokens per step")(
      "rate-file", po::value(&o.rate_file),
      "compute rate file (model/calibration.hpp format); default: the documented H100 figures "
      "for a GPU, the host kernel's calibrated (cached) rate for a cpu device")(
      "recalibrate", po::bool_switch(&o.recalibrate), "cpu device: measure the host kernel again")(
      "csv", po::value(&o.csv), "write every row as CSV to this file")(
      "json", po::value(&o.json), "write every row as JSON to this file")(
      "plot", po::value(&o.plot), "write an SVG plot (TFLOP/s per GPU and efficiency vs GPUs)");
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
  SEQPAR_ASSIGN_OR_RETURN(o.nodes, parse_list<int>("nodes", nodes));
  SEQPAR_ASSIGN_OR_RETURN(o.seqs, parse_list<int64_t>("seq", seqs));
  SEQPAR_ASSIGN_OR_RETURN(o.heads, parse_list<int64_t>("heads", heads));
  SEQPAR_ASSIGN_OR_RETURN(o.kv_heads, parse_list<int64_t>("kv-heads", kv_heads));
  SEQPAR_REQUIRE(o.kv_heads.size() == 1 || o.kv_heads.size() == o.heads.size(),
                 StatusCode::kInvalidArgument, "--kv-heads takes one value or one per --heads (",
                 o.heads.size(), "), got ", o.kv_heads.size());
  if (o.kv_heads.size() == 1) o.kv_heads.assign(o.heads.size(), o.kv_heads[0]);
  for (size_t i = 0; i < o.heads.size(); ++i) {
    SEQPAR_REQUIRE(o.heads[i] % o.kv_heads[i] == 0, StatusCode::kInvalidArgument, "--heads ",
                   o.heads[i], " is not a multiple of --kv-heads ", o.kv_heads[i]);
  }
  SEQPAR_REQUIRE(o.head_dim >= 1 && o.batch >= 1 && o.q_len >= 1, StatusCode::kInvalidArgument,
                 "--head-dim, --batch and --q-len must be >= 1");
  SEQPAR_ASSIGN_OR_RETURN(o.mask_kind, parse_mask(o.mask));
  SEQPAR_REQUIRE(vm["gpus-per-node"].defaulted() || o.overrides.gpus_per_node >= 1,
                 StatusCode::kInvalidArgument, "--gpus-per-node must be >= 1");
  return o;
}

StatusOr<ComputeRate> resolve_rate(const SimOptions& o, const Topology& topology, DType dtype) {
  if (!o.rate_file.empty()) return load_compute_rate(o.rate_file);
  if (topology.device_name.rfind("cpu", 0) != 0) return default_h100_rate(o.head_dim);
  CalibrationOptions calibration;
  calibration.head_dim = o.head_dim;
  calibration.dtype = dtype;
  calibration.remeasure = o.recalibrate;
  return load_or_calibrate(calibration);
}

std::string link_text(const LinkSpec& link) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%s %.1f GB/s %.1f us", link_kind_name(link.kind),
                link.bandwidth_bytes_per_s / 1e9, link.latency_s * 1e6);
  return buf;
}

PlotSeries* series_named(std::vector<PlotSeries>& all, const std::string& name) {
  for (PlotSeries& s : all) {
    if (s.name == name) return &s;
  }
  all.push_back(PlotSeries{name, {}, {}});
  return &all.back();
}

// Two panels per problem: TFLOP/s per GPU and efficiency, one line per scheme, points where the
// scheme is feasible.
void add_problem_panels(const std::string& problem, const std::vector<SimRow>& rows,
                        PlotDocument& doc) {
  PlotPanel tflops{
      "TFLOP/s per GPU, " + problem, "GPUs (log2 scale)", "TFLOP/s per GPU (predicted)", {}, 0};
  PlotPanel efficiency{
      "Efficiency, " + problem, "GPUs (log2 scale)", "efficiency = (1-GPU time / P) / time", {}, 0};
  for (const SimRow& r : rows) {
    if (r.problem != problem) continue;
    const StatusOr<SchemeKind> scheme = parse_scheme(r.scheme);
    const bool grid = scheme.is_ok() && scheme_descriptor(scheme.value()).takes_ulysses_degree;
    const std::string name = grid ? r.scheme + " (best U x R)" : r.scheme;
    const bool shown = r.feasible && r.seconds > 0;
    PlotSeries* a = series_named(tflops.series, name);
    a->x.push_back(r.gpus);
    a->y.push_back(shown ? r.tflops_per_gpu : NAN);
    PlotSeries* b = series_named(efficiency.series, name);
    b->x.push_back(r.gpus);
    b->y.push_back(shown ? r.efficiency : NAN);
  }
  doc.panels.push_back(std::move(tflops));
  doc.panels.push_back(std::move(efficiency));
}

int run(int argc, char** argv) {
  bool exit_now = false;
  StatusOr<SimOptions> parsed = parse_options(argc, argv, &exit_now);
  if (!parsed.is_ok()) {
    std::fprintf(stderr, "seqpar-sim: %s\n", parsed.status().message().c_str());
    return 2;
  }
  if (exit_now) return 0;
  const SimOptions& o = parsed.value();

  Topology base = default_topology();
  if (!o.topology_file.empty()) {
    StatusOr<Topology> file = read_topology_file(o.topology_file);
    if (!file.is_ok()) {
      std::fprintf(stderr, "seqpar-sim: %s\n", file.status().message().c_str());
      return 2;
    }
    base = file.value();
  }
  StatusOr<Topology> shaped = topology_from_cli(o.overrides, base);
  if (!shaped.is_ok()) {
    std::fprintf(stderr, "seqpar-sim: %s\n", shaped.status().message().c_str());
    return 2;
  }
  const Topology topology = shaped.value();
  StatusOr<DType> dtype = parse_dtype(o.dtype);
  if (!dtype.is_ok() || !is_storage_dtype(dtype.value())) {
    std::fprintf(stderr, "seqpar-sim: --dtype must be fp32, bf16 or fp16 (got '%s')\n",
                 o.dtype.c_str());
    return 2;
  }
  StatusOr<Phase> phase = parse_phase(o.phase);
  if (!phase.is_ok()) {
    std::fprintf(stderr, "seqpar-sim: %s\n", phase.status().message().c_str());
    return 2;
  }
  StatusOr<ComputeRate> rate = resolve_rate(o, topology, dtype.value());
  if (!rate.is_ok()) {
    std::fprintf(stderr, "seqpar-sim: %s\n", rate.status().message().c_str());
    return 2;
  }

  std::printf("seqpar-sim: %s.\n", kPredictionNote);
  std::printf("cluster: %d GPUs per node, device %s, intra %s, inter %s (%s)\n",
              topology.ranks_per_node, topology.device_name.c_str(),
              link_text(topology.intra).c_str(), link_text(topology.inter).c_str(),
              topology.source.c_str());
  std::printf("compute rate: %s, %s\n\n", rate->device.c_str(), rate->source.c_str());

  std::vector<SimRow> all_rows;
  std::vector<std::string> problems;
  for (int64_t seq : o.seqs) {
    for (size_t h = 0; h < o.heads.size(); ++h) {
      ModelInputs in;
      in.topology = topology;
      in.rate = rate.value();
      in.problem = AttentionProblem{o.batch,    seq,         o.heads[h],    o.kv_heads[h],
                                    o.head_dim, o.mask_kind, dtype.value(), 0.0f};
      in.backward = o.backward;
      in.phase = phase.value();
      in.q_len = o.q_len;
      const double one_gpu = single_gpu_seconds(in);
      const std::string problem = problem_label(in);
      problems.push_back(problem);
      std::printf("== %s  (1-GPU predicted time %.3f ms)\n", problem.c_str(), one_gpu * 1e3);
      std::vector<SimRow> problem_rows;
      for (int n : o.nodes) {
        in.topology.nodes = n;
        const std::vector<SimRow> rows = rows_per_scheme(in, evaluate_candidates(in), one_gpu);
        problem_rows.insert(problem_rows.end(), rows.begin(), rows.end());
      }
      std::printf("%s\n", sim_text_table(problem_rows).c_str());
      all_rows.insert(all_rows.end(), problem_rows.begin(), problem_rows.end());
    }
  }
  std::printf("(%s; efficiency: the 1-GPU predicted time / GPUs, over the predicted time.)\n",
              kPredictionNote);

  int exit_code = 0;
  auto write = [&](const std::string& path, const std::string& text, const char* what) {
    if (path.empty()) return;
    Status status = write_text_file(path, text);
    if (status.is_ok()) {
      std::printf("wrote %s %s\n", what, path.c_str());
    } else {
      std::fprintf(stderr, "seqpar-sim: %s\n", status.message().c_str());
      exit_code = 1;
    }
  };
  write(o.csv, sim_csv(all_rows), "CSV");
  Topology shown = topology;
  write(o.json, sim_json(all_rows, shown, rate.value(), kPredictionNote), "JSON");
  if (!o.plot.empty()) {
    PlotDocument doc;
    doc.title = str_cat("seqpar-sim: ", topology.ranks_per_node, " x ", topology.device_name,
                        " per node, intra ", link_text(topology.intra), ", inter ",
                        link_text(topology.inter));
    doc.subtitle = str_cat(kPredictionNote, ".\nCompute rate: ", rate->source,
                           ". Topology: ", topology.source, ".");
    doc.columns = 2;
    for (const std::string& problem : problems) add_problem_panels(problem, all_rows, doc);
    write(o.plot, render_svg(doc), "SVG plot");
  }
  return exit_code;
}

}  // namespace
}  // namespace seqpar

int main(int argc, char** argv) { return seqpar::run(argc, argv); }
