#pragma once
// Calibration: the block kernel's compute rate (measured on this host, cached, or the documented
// H100 figures) and link bandwidth / latency measured over a Communicator. The cost model
// (model/cost_model.hpp) takes a ComputeRate and the Topology's LinkSpecs.
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/status.hpp"
#include "model/topology.hpp"

namespace seqpar {

class Communicator;

// Block-kernel compute rate as a function of the block size (query tokens = key tokens per block,
// one (batch, head-group) shape), forward and backward, in FLOP/s with docs/reference_figures.md's
// convention (forward 4*B*Hq*Sq*Sk*D for a full block; backward 2.5x). Interpolated (log-linear in
// block tokens) between measured points, clamped at the ends.
struct ComputeRate {
  std::string device;  // what it was measured on or taken for
  // "measured <date>", "cache FILE", "default H100 (docs/reference_figures.md)"
  std::string source;
  std::vector<int64_t> block_tokens;         // ascending
  std::vector<double> forward_flops_per_s;   // same length
  std::vector<double> backward_flops_per_s;  // same length
  double forward_at(int64_t tokens) const;
  double backward_at(int64_t tokens) const;
};

// Checks lengths, ascending positive block sizes and positive rates.
Status validate_compute_rate(const ComputeRate& rate);

// FlashAttention-2 on one H100 SXM, bf16, full mask (docs/reference_figures.md, from the
// FlashAttention-3 paper): head_dim 128: forward 309 -> 370 TFLOP/s, backward 214 -> 322 from 512
// to 16k tokens; head_dim 64: forward 282 -> 324, backward 198 -> 291. Other head dims take the
// nearer column. Published figures, not measured here: source says so.
ComputeRate default_h100_rate(int64_t head_dim);

// What to measure: the CPU block kernel (attention/dispatch.hpp, on the host, one thread) on one
// block of (batch, t, heads_q, head_dim) queries against (batch, t, heads_kv, head_dim) keys,
// full mask, for t in block_tokens; each point and direction is called repeatedly for at least
// min_seconds (and at least 3 calls) after one warm-up call, and the median call time is used.
struct CalibrationOptions {
  int64_t head_dim = 128;
  DType dtype = DType::kBF16;
  int64_t batch = 1;
  int64_t heads_q = 4;
  int64_t heads_kv = 1;
  std::vector<int64_t> block_tokens = {64, 128, 256, 512};
  double min_seconds = 0.05;  // per point and direction
  bool remeasure = false;     // load_or_calibrate: ignore the cache and measure again
  std::string cache_dir;      // "": compute_rate_cache_dir()
};

// Measures the host block kernel; device host_device_name(), source
// "measured YYYY-MM-DD HH:MM UTC (host block kernel, <dtype>, Hq/Hkv, one thread)".
StatusOr<ComputeRate> calibrate_host_rate(const CalibrationOptions& options);
// "cpu: <model name from /proc/cpuinfo>", or "cpu".
std::string host_device_name();

// $SEQPAR_CACHE_DIR, else $HOME/.cache/seqpar, else ./.seqpar-cache.
std::string compute_rate_cache_dir();
// DIR/rate-<device>-d<head_dim>-<dtype>.txt, the device name reduced to [A-Za-z0-9._-].
std::string compute_rate_cache_path(const std::string& dir, const std::string& device,
                                    int64_t head_dim, DType dtype);
// Plain text: "device ...", "source ...", then one "tokens forward backward" line per point.
Status save_compute_rate(const ComputeRate& rate, const std::string& path);
StatusOr<ComputeRate> load_compute_rate(const std::string& path);

// The cached rate of this host (host_device_name()) for (head_dim, dtype) if the cache has it and
// !options.remeasure; otherwise measures with calibrate_host_rate and writes the cache.
// The returned source says which ("cache FILE" or "measured ...").
StatusOr<ComputeRate> load_or_calibrate(const CalibrationOptions& options);

// ---- links ----
// Collective over `comm`: rank 0 and rank `peer` time a ping-pong of `small_bytes` (latency =
// half the round trip) and of `large_bytes` (bandwidth = (large - small bytes) / (half round
// trip - latency)), best of `repeats` rounds in which the two sizes alternate. When the large
// message is not twice as slow as the small one (host noise), it tries twice more, then reports
// large_bytes / half its round trip, a lower bound on the bandwidth, with a warning. Every rank
// returns rank 0's LinkSpec (kind `kind`); ranks other than 0 and `peer` only take part in the
// broadcasts.
struct LinkMeasureOptions {
  int peer = 1;
  size_t small_bytes = 8;
  size_t large_bytes = size_t{16} << 20;
  int repeats = 5;
  LinkKind kind = LinkKind::kCustom;
};
StatusOr<LinkSpec> measure_link(Communicator& comm, const LinkMeasureOptions& options);

// measure_link's arithmetic. A clean split needs the large message's one-way time to be at least
// kLinkMinLargeOverSmall times the small one's; otherwise latency = min of the two one-way times
// and bandwidth = large_bytes / the large one-way time (a lower bound), clean = false.
inline constexpr double kLinkMinLargeOverSmall = 2.0;
struct LinkFromRoundTrips {
  double latency_s = 0.0;
  double bandwidth_bytes_per_s = 0.0;
  bool clean = false;
};
LinkFromRoundTrips link_from_round_trips(double small_round_trip_s, double large_round_trip_s,
                                         size_t small_bytes, size_t large_bytes);

}  // namespace seqpar
