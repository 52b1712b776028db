// seqpar-bench: timing harness. --mode kernel times the CPU block kernel (forward, backward) on
// one core for one problem shape and reports the median time and GFLOP/s, with the FlashAttention
// convention: forward 4*B*Hq*S*S*D (halved for causal), backward 2.5x forward; with --device cuda
// it times the CUDA block kernels with CUDA events (median after warm-up) and reports TFLOP/s.
// --mode decode runs tree decoding and the ring-decode baseline for P = 2..8 (threads backend) over
// a KV cache of
// --seq tokens, --q-len new tokens per step, and reports bytes sent per rank per step and the
// median time per token (slowest rank).
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "attention/cpu_block_attention.hpp"
#include "comm/threads/threads_communicator.hpp"
#include "core/dtype.hpp"
#include "core/random.hpp"
#include "harness/decode_step.hpp"
#include "runtime/scheme_kind.hpp"
#include "tools/cuda_kernel_bench.hpp"

namespace po = boost::program_options;

namespace seqpar {
namespace {

constexpr double kBackwardFlopRatio = 2.5;
constexpr uint64_t kBenchSeed = 2024;

struct KernelBenchConfig {
  int64_t seq = 2048, heads = 8, kv_heads = 8, head_dim = 64, batch = 1;
  DType dtype = DType::kF32;
  MaskKind mask = MaskKind::kFull;
  int iters = 5, warmup = 1;
};

struct KernelBenchResult {
  double fwd_ms = 0.0, bwd_ms = 0.0, fwd_gflops = 0.0, bwd_gflops = 0.0;
};

// A storage-dtype tensor of n random values in [-1, 1).
std::vector<unsigned char> random_tensor(uint64_t stream, int64_t n, DType dtype) {
  std::vector<unsigned char> bytes(static_cast<size_t>(n) * dtype_size(dtype));
  for (int64_t i = 0; i < n; ++i) {
    store_float(bytes.data(), dtype, static_cast<size_t>(i),
                uniform_pm1(kBenchSeed, stream, static_cast<uint64_t>(i)));
  }
  return bytes;
}

template <class F>
double median_ms(int iters, int warmup, F&& run) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

StatusOr<KernelBenchResult> bench_kernel(const KernelBenchConfig& cfg) {
  const int64_t q_elems = cfg.batch * cfg.seq * cfg.heads * cfg.head_dim;      // (B, S, Hq, D)
  const int64_t kv_elems = cfg.batch * cfg.seq * cfg.kv_heads * cfg.head_dim;  // (B, S, Hkv, D)
  const int64_t stat_elems = cfg.batch * cfg.heads * cfg.seq;                  // (B, Hq, S)
  const auto q = random_tensor(1, q_elems, cfg.dtype);
  const auto k = random_tensor(2, kv_elems, cfg.dtype);
  const auto v = random_tensor(3, kv_elems, cfg.dtype);
  const auto dout = random_tensor(4, q_elems, cfg.dtype);
  std::vector<float> out(static_cast<size_t>(q_elems)), lse(static_cast<size_t>(stat_elems));
  std::vector<float> delta(static_cast<size_t>(stat_elems));
  std::vector<float> dq(static_cast<size_t>(q_elems)), dk(static_cast<size_t>(kv_elems)),
      dv(static_cast<size_t>(kv_elems));

  BlockForwardParams fwd;
  fwd.shape = {cfg.batch, cfg.seq, cfg.seq, cfg.heads, cfg.kv_heads, cfg.head_dim};
  fwd.dtype = cfg.dtype;
  fwd.q = q.data();
  fwd.k = k.data();
  fwd.v = v.data();
  fwd.out = out.data();
  fwd.lse = lse.data();
  fwd.mask = cfg.mask;
  fwd.softmax_scale = 1.0f / std::sqrt(static_cast<float>(cfg.head_dim));
  SEQPAR_RETURN_IF_ERROR(validate_block_params(fwd));

  BlockBackwardParams bwd;
  bwd.shape = fwd.shape;
  bwd.dtype = cfg.dtype;
  bwd.q = q.data();
  bwd.k = k.data();
  bwd.v = v.data();
  bwd.dout = dout.data();
  bwd.lse = lse.data();
  bwd.delta = delta.data();
  bwd.dq = dq.data();
  bwd.dk = dk.data();
  bwd.dv = dv.data();
  bwd.mask = cfg.mask;
  bwd.softmax_scale = fwd.softmax_scale;
  SEQPAR_RETURN_IF_ERROR(validate_block_params(bwd));

  KernelBenchResult r;
  r.fwd_ms = median_ms(cfg.iters, cfg.warmup, [&] { cpu_block_forward(fwd); });
  std::vector<float> dout_f32(static_cast<size_t>(q_elems));  // (B, S, Hq, D), for delta
  convert_to_float(dout.data(), cfg.dtype, dout_f32.data(), dout_f32.size());
  cpu_attention_delta(out.data(), dout_f32.data(), DType::kF32, cfg.batch, cfg.seq, cfg.heads,
                      cfg.head_dim, delta.data());
  r.bwd_ms = median_ms(cfg.iters, cfg.warmup, [&] { cpu_block_backward(bwd); });
  const double s = static_cast<double>(cfg.seq);
  double fwd_flop = 4.0 * static_cast<double>(cfg.batch * cfg.heads * cfg.head_dim) * s * s;
  if (cfg.mask == MaskKind::kCausal) fwd_flop *= 0.5;
  r.fwd_gflops = fwd_flop / (r.fwd_ms * 1e6);
  r.bwd_gflops = kBackwardFlopRatio * fwd_flop / (r.bwd_ms * 1e6);
  return r;
}

struct DecodeBenchRow {
  int ranks = 0;
  DecoderKind decoder = DecoderKind::kTree;
  int64_t bytes_per_rank = 0;  // per step, the largest over ranks
  double ms_per_token = 0.0;   // median step (slowest rank) / q_len
};

// Every decoder (tree, and the ring baseline) on P = 2..8 threads, through the harness's
// DecodePlan step: one row per (P, decoder).
StatusOr<std::vector<DecodeBenchRow>> bench_decode(const KernelBenchConfig& cfg, int64_t q_len) {
  std::vector<DecodeBenchRow> rows;
  for (int ranks = 2; ranks <= 8; ++ranks) {
    for (DecoderKind decoder : all_decoders()) {
      StepConfig o;
      o.phase = Phase::kDecode;
      o.decoder = decoder;
      o.q_len = q_len;
      o.iters = cfg.iters;
      o.warmup = cfg.warmup;
      o.plan.problem = AttentionProblem{cfg.batch,    cfg.seq,           cfg.heads, cfg.kv_heads,
                                        cfg.head_dim, MaskKind::kCausal, cfg.dtype, 0.0f};
      StepReport report;
      SEQPAR_RETURN_IF_ERROR(run_threads(ranks, [&](Communicator& comm) -> Status {
        SEQPAR_ASSIGN_OR_RETURN(StepReport r, run_decode_step(o, comm));
        if (comm.rank() == 0) report = r;
        return Status::ok();
      }));
      rows.push_back({ranks, decoder, report.measured_comm.bytes_sent,
                      report.time_ms / static_cast<double>(q_len)});
    }
  }
  return rows;
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

int print_decode(const KernelBenchConfig& cfg, int64_t q_len, bool json) {
  if (q_len < 1 || cfg.seq < 8) {
    std::cerr << "seqpar-bench: decode needs --q-len >= 1 and --seq >= 8\n";
    return 2;
  }
  const StatusOr<std::vector<DecodeBenchRow>> rows = bench_decode(cfg, q_len);
  if (!rows.is_ok()) {
    std::cerr << "seqpar-bench: " << rows.status().to_string() << "\n";
    return 1;
  }
  const std::string host = host_name();
  if (json) {
    std::printf(
        "{\"mode\": \"decode\", \"seq\": %lld, \"q_len\": %lld, \"heads\": %lld, "
        "\"kv_heads\": %lld, \"head_dim\": %lld, \"batch\": %lld, \"dtype\": \"%s\", "
        "\"host\": \"%s\", \"rows\": [",
        static_cast<long long>(cfg.seq), static_cast<long long>(q_len),
        static_cast<long long>(cfg.heads), static_cast<long long>(cfg.kv_heads),
        static_cast<long long>(cfg.head_dim), static_cast<long long>(cfg.batch),
        dtype_name(cfg.dtype), host.c_str());
    for (size_t i = 0; i < rows->size(); ++i) {
      const DecodeBenchRow& r = rows.value()[i];
      std::printf(
          "%s{\"ranks\": %d, \"scheme\": \"%s\", \"bytes_per_rank\": %lld, "
          "\"ms_per_token\": %.4f}",
          i == 0 ? "" : ", ", r.ranks, decoder_name(r.decoder),
          static_cast<long long>(r.bytes_per_rank), r.ms_per_token);
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf(
      "seqpar-bench decode (threads backend, CPU) on %s: B=%lld S=%lld n=%lld Hq=%lld "
      "Hkv=%lld D=%lld %s\n",
      host.c_str(), static_cast<long long>(cfg.batch), static_cast<long long>(cfg.seq),
      static_cast<long long>(q_len), static_cast<long long>(cfg.heads),
      static_cast<long long>(cfg.kv_heads), static_cast<long long>(cfg.head_dim),
      dtype_name(cfg.dtype));
  std::printf("%-6s %-6s %18s %14s\n", "ranks", "scheme", "bytes/rank/step", "ms/token");
  for (const DecodeBenchRow& r : rows.value()) {
    std::printf("%-6d %-6s %18lld %14.4f\n", r.ranks, decoder_name(r.decoder),
                static_cast<long long>(r.bytes_per_rank), r.ms_per_token);
  }
  return 0;
}

// Forward FLOPs of the convention above.
double forward_flop(const KernelBenchConfig& cfg) {
  const double s = static_cast<double>(cfg.seq);
  const double flop = 4.0 * static_cast<double>(cfg.batch * cfg.heads * cfg.head_dim) * s * s;
  return cfg.mask == MaskKind::kCausal ? 0.5 * flop : flop;
}

// --mode kernel --device cuda: the CUDA block kernels on the current GPU.
int print_cuda_kernel(const KernelBenchConfig& cfg, bool json) {
  CudaKernelBenchConfig c;
  c.batch = cfg.batch;
  c.seq = cfg.seq;
  c.heads = cfg.heads;
  c.kv_heads = cfg.kv_heads;
  c.head_dim = cfg.head_dim;
  c.dtype = cfg.dtype;
  c.mask = cfg.mask;
  c.iters = cfg.iters;
  c.warmup = cfg.warmup;
  const StatusOr<CudaKernelBenchResult> r = bench_cuda_kernel(c);
  if (!r.is_ok()) {
    std::cerr << "seqpar-bench: " << r.status().to_string() << "\n";
    return 1;
  }
  const double fwd_tflops = forward_flop(cfg) / (r->fwd_ms * 1e9);
  const double bwd_tflops = kBackwardFlopRatio * forward_flop(cfg) / (r->bwd_ms * 1e9);
  if (json) {
    std::printf(
        "{\"mode\": \"kernel\", \"device\": \"cuda\", \"gpu\": \"%s\", \"seq\": %lld, "
        "\"heads\": %lld, \"kv_heads\": %lld, \"head_dim\": %lld, \"batch\": %lld, "
        "\"dtype\": \"%s\", \"mask\": \"%s\", \"iters\": %d, \"warmup\": %d, "
        "\"fwd_ms\": %.4f, \"bwd_ms\": %.4f, \"fwd_tflops\": %.2f, \"bwd_tflops\": %.2f}\n",
        r->gpu.c_str(), static_cast<long long>(cfg.seq), static_cast<long long>(cfg.heads),
        static_cast<long long>(cfg.kv_heads), static_cast<long long>(cfg.head_dim),
        static_cast<long long>(cfg.batch), dtype_name(cfg.dtype), mask_name(cfg.mask), cfg.iters,
        cfg.warmup, r->fwd_ms, r->bwd_ms, fwd_tflops, bwd_tflops);
    return 0;
  }
  std::printf("seqpar-bench kernel (CUDA, %s): B=%lld S=%lld Hq=%lld Hkv=%lld D=%lld %s %s\n",
              r->gpu.c_str(), static_cast<long long>(cfg.batch), static_cast<long long>(cfg.seq),
              static_cast<long long>(cfg.heads), static_cast<long long>(cfg.kv_heads),
              static_cast<long long>(cfg.head_dim), dtype_name(cfg.dtype), mask_name(cfg.mask));
  std::printf("%-10s %12s %12s\n", "pass", "median ms", "TFLOP/s");
  std::printf("%-10s %12.4f %12.2f\n", "forward", r->fwd_ms, fwd_tflops);
  std::printf("%-10s %12.4f %12.2f\n", "backward", r->bwd_ms, bwd_tflops);
  return 0;
}

}  // namespace
}  // namespace seqpar

int main(int argc, char** argv) {
  using namespace seqpar;
  KernelBenchConfig cfg;
  std::string mode, dtype, mask, device;
  bool json = false;
  int64_t q_len = 1;
  po::options_description desc("seqpar-bench options");
  desc.add_options()("help,h", "show this help")(
      "mode", po::value(&mode)->default_value("kernel"),
      "what to time: kernel (the block kernel) | decode (tree vs ring decode, P = 2..8)")(
      "device", po::value(&device)->default_value("cpu"),
      "kernel mode: cpu (one core) or cuda (the CUDA kernels, CUDA events; default --iters 30 "
      "--warmup 5)")("seq", po::value(&cfg.seq)->default_value(cfg.seq),
                     "sequence length (Sq = Sk)")(
      "heads", po::value(&cfg.heads)->default_value(cfg.heads), "query heads")(
      "kv-heads", po::value(&cfg.kv_heads)->default_value(cfg.kv_heads), "key/value heads")(
      "head-dim", po::value(&cfg.head_dim)->default_value(cfg.head_dim), "head dimension")(
      "batch", po::value(&cfg.batch)->default_value(cfg.batch), "batch size")(
      "dtype", po::value(&dtype)->default_value("fp32"), "storage dtype: fp32, bf16, fp16")(
      "mask", po::value(&mask)->default_value("full"), "full or causal")(
      "iters", po::value(&cfg.iters)->default_value(cfg.iters),
      "timed iterations (median reported)")(
      "warmup", po::value(&cfg.warmup)->default_value(cfg.warmup), "untimed iterations first")(
      "json", po::bool_switch(&json), "print one JSON object instead of a table")(
      "q-len", po::value(&q_len)->default_value(q_len), "decode: new tokens per step");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "seqpar-bench: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (mode != "kernel" && mode != "decode") {
    std::cerr << "seqpar-bench: unknown --mode '" << mode << "' (expected kernel or decode)\n";
    return 2;
  }
  const StatusOr<DType> parsed = parse_dtype(dtype);
  if (!parsed.is_ok() || !is_storage_dtype(parsed.value())) {
    std::cerr << "seqpar-bench: --dtype must be fp32, bf16 or fp16 (got '" << dtype << "')\n";
    return 2;
  }
  cfg.dtype = parsed.value();
  const StatusOr<MaskKind> parsed_mask = parse_mask(mask);
  if (!parsed_mask.is_ok()) {
    std::cerr << "seqpar-bench: --mask: " << parsed_mask.status().message() << "\n";
    return 2;
  }
  cfg.mask = parsed_mask.value();
  if (cfg.iters < 1 || cfg.warmup < 0) {
    std::cerr << "seqpar-bench: --iters must be >= 1 and --warmup >= 0\n";
    return 2;
  }

  if (device != "cpu" && device != "cuda") {
    std::cerr << "seqpar-bench: --device must be cpu or cuda (got '" << device << "')\n";
    return 2;
  }
  if (mode == "decode") return print_decode(cfg, q_len, json);
  if (device == "cuda") {
    if (vm["iters"].defaulted()) cfg.iters = 30;
    if (vm["warmup"].defaulted()) cfg.warmup = 5;
    return print_cuda_kernel(cfg, json);
  }
  const StatusOr<KernelBenchResult> r = bench_kernel(cfg);
  if (!r.is_ok()) {
    std::cerr << "seqpar-bench: " << r.status().to_string() << "\n";
    return 1;
  }
  const std::string host = host_name();
  if (json) {
    std::printf(
        "{\"mode\": \"kernel\", \"seq\": %lld, \"heads\": %lld, \"kv_heads\": %lld, "
        "\"head_dim\": %lld, \"batch\": %lld, \"dtype\": \"%s\", \"mask\": \"%s\", "
        "\"fwd_ms\": %.3f, \"bwd_ms\": %.3f, \"fwd_gflops\": %.3f, \"bwd_gflops\": %.3f, "
        "\"host\": \"%s\"}\n",
        static_cast<long long>(cfg.seq), static_cast<long long>(cfg.heads),
        static_cast<long long>(cfg.kv_heads), static_cast<long long>(cfg.head_dim),
        static_cast<long long>(cfg.batch), dtype_name(cfg.dtype), mask_name(cfg.mask), r->fwd_ms,
        r->bwd_ms, r->fwd_gflops, r->bwd_gflops, host.c_str());
    return 0;
  }
  std::printf(
      "seqpar-bench kernel (CPU, one core) on %s: B=%lld S=%lld Hq=%lld Hkv=%lld D=%lld %s %s\n",
      host.c_str(), static_cast<long long>(cfg.batch), static_cast<long long>(cfg.seq),
      static_cast<long long>(cfg.heads), static_cast<long long>(cfg.kv_heads),
      static_cast<long long>(cfg.head_dim), dtype_name(cfg.dtype), mask_name(cfg.mask));
  std::printf("%-10s %12s %12s\n", "pass", "median ms", "GFLOP/s");
  std::printf("%-10s %12.3f %12.3f\n", "forward", r->fwd_ms, r->fwd_gflops);
  std::printf("%-10s %12.3f %12.3f\n", "backward", r->bwd_ms, r->bwd_gflops);
  return 0;
}
