// Compute-rate calibration: interpolation of a ComputeRate, the documented H100 figures, the
// timed host block kernel, and the cache file (model/calibration.hpp).
#include "model/calibration.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>

#include "attention/dispatch.hpp"
#include "core/host_buffer.hpp"
#include "core/random.hpp"

namespace seqpar {

namespace {

// Rate at `tokens`, linear in log(tokens) between points, clamped at the ends.
double interpolate(const std::vector<int64_t>& tokens, const std::vector<double>& rate,
                   int64_t at) {
  if (tokens.empty() || rate.size() != tokens.size()) return 0.0;
  if (at <= tokens.front()) return rate.front();
  if (at >= tokens.back()) return rate.back();
  const auto upper = std::upper_bound(tokens.begin(), tokens.end(), at);
  const size_t hi = static_cast<size_t>(upper - tokens.begin());
  const size_t lo = hi - 1;
  const double x0 = std::log(static_cast<double>(tokens[lo]));
  const double x1 = std::log(static_cast<double>(tokens[hi]));
  const double w = (std::log(static_cast<double>(at)) - x0) / (x1 - x0);
  return rate[lo] + w * (rate[hi] - rate[lo]);
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

// Random values in [-1, 1) stored as `dtype`.
void fill_random(HostBuffer& buffer, DType dtype, size_t count, uint64_t stream) {
  for (size_t i = 0; i < count; ++i) {
    store_float(buffer.data(), dtype, i, uniform_pm1(2026, stream, i));
  }
}

Status allocate_elements(HostBuffer& buffer, size_t count, size_t element_bytes) {
  return buffer.allocate(std::max<size_t>(count * element_bytes, 64));
}

// Median seconds of `call` over at least 3 calls and min_seconds, after one warm-up call.
template <class Call>
StatusOr<double> median_call_seconds(double min_seconds, Call call) {
  SEQPAR_RETURN_IF_ERROR(call());
  std::vector<double> times;
  const auto start = std::chrono::steady_clock::now();
  while (times.size() < 3 ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
             min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    SEQPAR_RETURN_IF_ERROR(call());
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (times.size() >= 10000) break;
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::string sanitise(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    out += keep ? c : '_';
  }
  return out;
}

Status make_directories(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      const std::string prefix = path.substr(0, pos);
      if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        return SEQPAR_FAIL(StatusCode::kInvalidArgument, "cannot create directory '", prefix, "'");
      }
    }
  }
  return Status::ok();
}

}  // namespace

double ComputeRate::forward_at(int64_t tokens) const {
  return interpolate(block_tokens, forward_flops_per_s, tokens);
}

double ComputeRate::backward_at(int64_t tokens) const {
  return interpolate(block_tokens, backward_flops_per_s, tokens);
}

Status validate_compute_rate(const ComputeRate& rate) {
  const size_t n = rate.block_tokens.size();
  SEQPAR_REQUIRE(
      n >= 1 && rate.forward_flops_per_s.size() == n && rate.backward_flops_per_s.size() == n,
      StatusCode::kInvalidArgument, "compute rate of '", rate.device,
      "': needs at least one point and as many rates as block sizes");
  for (size_t i = 0; i < n; ++i) {
    SEQPAR_REQUIRE(
        rate.block_tokens[i] > 0 && (i == 0 || rate.block_tokens[i] > rate.block_tokens[i - 1]),
        StatusCode::kInvalidArgument, "compute rate of '", rate.device,
        "': block sizes must be positive and ascending");
    SEQPAR_REQUIRE(rate.forward_flops_per_s[i] > 0 && rate.backward_flops_per_s[i] > 0 &&
                       std::isfinite(rate.forward_flops_per_s[i]) &&
                       std::isfinite(rate.backward_flops_per_s[i]),
                   StatusCode::kInvalidArgument, "compute rate of '", rate.device,
                   "': rates must be positive and finite");
  }
  return Status::ok();
}

ComputeRate default_h100_rate(int64_t head_dim) {
  ComputeRate rate;
  rate.device = "NVIDIA H100 SXM (published)";
  rate.block_tokens = {512, 16384};
  if (head_dim <= 96) {
    rate.forward_flops_per_s = {282e12, 324e12};
    rate.backward_flops_per_s = {198e12, 291e12};
    rate.source =
        "default H100 (docs/reference_figures.md: FlashAttention-2, bf16, d64, full mask; "
        "published, not measured here)";
  } else {
    rate.forward_flops_per_s = {309e12, 370e12};
    rate.backward_flops_per_s = {214e12, 322e12};
    rate.source =
        "default H100 (docs/reference_figures.md: FlashAttention-2, bf16, d128, full mask; "
        "published, not measured here)";
  }
  return rate;
}

std::string host_device_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        size_t begin = colon + 1;
        while (begin < line.size() && line[begin] == ' ') ++begin;
        return "cpu: " + line.substr(begin);
      }
    }
  }
  return "cpu";
}

StatusOr<ComputeRate> calibrate_host_rate(const CalibrationOptions& o) {
  SEQPAR_REQUIRE(o.batch >= 1 && o.heads_q >= 1 && o.heads_kv >= 1 && o.heads_q % o.heads_kv == 0,
                 StatusCode::kInvalidArgument,
                 "calibration: batch, heads >= 1 and heads_q a multiple of heads_kv");
  SEQPAR_REQUIRE(!o.block_tokens.empty(), StatusCode::kInvalidArgument,
                 "calibration: no block sizes to measure");
  SEQPAR_REQUIRE(is_storage_dtype(o.dtype), StatusCode::kInvalidArgument,
                 "calibration: dtype must be fp32, bf16 or fp16");
  ComputeRate rate;
  rate.device = host_device_name();
  rate.source = str_cat("measured ", utc_now(), " (host block kernel, ", dtype_name(o.dtype),
                        ", Hq ", o.heads_q, " / Hkv ", o.heads_kv, ", one thread)");
  std::vector<int64_t> tokens = o.block_tokens;
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  const KernelTarget host{};
  const size_t elem = dtype_size(o.dtype);
  for (int64_t t : tokens) {
    SEQPAR_REQUIRE(t >= 1, StatusCode::kInvalidArgument, "calibration: block size ", t);
    BlockShape shape{o.batch, t, t, o.heads_q, o.heads_kv, o.head_dim};
    const size_t q_count = static_cast<size_t>(o.batch * t * o.heads_q * o.head_dim);
    const size_t kv_count = static_cast<size_t>(o.batch * t * o.heads_kv * o.head_dim);
    const size_t row_count = static_cast<size_t>(o.batch * o.heads_q * t);
    HostBuffer q, k, v, dout, out, lse, delta, dq, dk, dv;
    SEQPAR_RETURN_IF_ERROR(allocate_elements(q, q_count, elem));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(k, kv_count, elem));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(v, kv_count, elem));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(dout, q_count, elem));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(out, q_count, sizeof(float)));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(lse, row_count, sizeof(float)));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(delta, row_count, sizeof(float)));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(dq, q_count, sizeof(float)));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(dk, kv_count, sizeof(float)));
    SEQPAR_RETURN_IF_ERROR(allocate_elements(dv, kv_count, sizeof(float)));
    fill_random(q, o.dtype, q_count, 1);
    fill_random(k, o.dtype, kv_count, 2);
    fill_random(v, o.dtype, kv_count, 3);
    fill_random(dout, o.dtype, q_count, 4);
    const float scale = 1.0f / std::sqrt(static_cast<float>(o.head_dim));

    BlockForwardParams f;
    f.shape = shape;
    f.dtype = o.dtype;
    f.q = q.data();
    f.k = k.data();
    f.v = v.data();
    f.out = out.as<float>();
    f.lse = lse.as<float>();
    f.q_pos = PositionMap::affine(0);
    f.k_pos = PositionMap::affine(0);
    f.mask = MaskKind::kFull;
    f.softmax_scale = scale;
    SEQPAR_ASSIGN_OR_RETURN(double forward_s, median_call_seconds(o.min_seconds, [&] {
                              return run_block_forward(f, host);
                            }));
    // delta = rowsum(dout * out) only shifts the gradients' values, not the work: random rows.
    fill_random(delta, DType::kF32, row_count, 5);
    BlockBackwardParams b;
    b.shape = shape;
    b.dtype = o.dtype;
    b.q = q.data();
    b.k = k.data();
    b.v = v.data();
    b.dout = dout.data();
    b.lse = lse.as<float>();
    b.delta = delta.as<float>();
    b.dq = dq.as<float>();
    b.dk = dk.as<float>();
    b.dv = dv.as<float>();
    b.q_pos = f.q_pos;
    b.k_pos = f.k_pos;
    b.mask = MaskKind::kFull;
    b.softmax_scale = scale;
    SEQPAR_ASSIGN_OR_RETURN(double backward_s, median_call_seconds(o.min_seconds, [&] {
                              return run_block_backward(b, host);
                            }));
    const double flops = 4.0 * static_cast<double>(o.batch * o.heads_q * o.head_dim) *
                         static_cast<double>(t) * static_cast<double>(t);
    rate.block_tokens.push_back(t);
    rate.forward_flops_per_s.push_back(flops / forward_s);
    rate.backward_flops_per_s.push_back(2.5 * flops / backward_s);
  }
  SEQPAR_RETURN_IF_ERROR(validate_compute_rate(rate));
  return rate;
}

std::string compute_rate_cache_dir() {
  if (const char* dir = std::getenv("SEQPAR_CACHE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return str_cat(home, "/.cache/seqpar");
  }
  return "./.seqpar-cache";
}

std::string compute_rate_cache_path(const std::string& dir, const std::string& device,
                                    int64_t head_dim, DType dtype) {
  return str_cat(dir, "/rate-", sanitise(device), "-d", head_dim, "-", dtype_name(dtype), ".txt");
}

Status save_compute_rate(const ComputeRate& rate, const std::string& path) {
  SEQPAR_RETURN_IF_ERROR(validate_compute_rate(rate));
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    SEQPAR_RETURN_IF_ERROR(make_directories(path.substr(0, slash)));
  }
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    SEQPAR_REQUIRE(out.good(), StatusCode::kInvalidArgument, "cannot write '", temporary, "'");
    out << "# seqpar compute rate: block tokens, forward FLOP/s, backward FLOP/s "
           "(docs/reference_figures.md "
           "FLOP convention)\n";
    out << "device " << rate.device << "\n";
    out << "source " << rate.source << "\n";
    char line[128];
    for (size_t i = 0; i < rate.block_tokens.size(); ++i) {
      std::snprintf(line, sizeof(line), "point %lld %.6e %.6e\n",
                    static_cast<long long>(rate.block_tokens[i]), rate.forward_flops_per_s[i],
                    rate.backward_flops_per_s[i]);
      out << line;
    }
    SEQPAR_REQUIRE(out.good(), StatusCode::kInvalidArgument, "cannot write '", temporary, "'");
  }
  SEQPAR_REQUIRE(std::rename(temporary.c_str(), path.c_str()) == 0, StatusCode::kInvalidArgument,
                 "cannot move '", temporary, "' to '", path, "'");
  return Status::ok();
}

StatusOr<ComputeRate> load_compute_rate(const std::string& path) {
  std::ifstream in(path);
  SEQPAR_REQUIRE(in.good(), StatusCode::kInvalidArgument, "cannot open compute rate file '", path,
                 "'");
  ComputeRate rate;
  std::string line, measured;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("device ", 0) == 0) {
      rate.device = line.substr(7);
    } else if (line.rfind("source ", 0) == 0) {
      measured = line.substr(7);
    } else if (line.rfind("point ", 0) == 0) {
      std::istringstream fields(line.substr(6));
      long long tokens = 0;
      double forward = 0, backward = 0;
      std::string rest;
      if (!(fields >> tokens >> forward >> backward) || (fields >> rest)) {
        return Status(StatusCode::kInvalidArgument,
                      str_cat(path, ":", line_number, ": expected 'point TOKENS FWD BWD'"));
      }
      rate.block_tokens.push_back(tokens);
      rate.forward_flops_per_s.push_back(forward);
      rate.backward_flops_per_s.push_back(backward);
    } else {
      return Status(StatusCode::kInvalidArgument,
                    str_cat(path, ":", line_number, ": unknown line '", line, "'"));
    }
  }
  rate.source = str_cat("cache ", path, " (", measured, ")");
  SEQPAR_RETURN_IF_ERROR(validate_compute_rate(rate));
  return rate;
}

StatusOr<ComputeRate> load_or_calibrate(const CalibrationOptions& options) {
  const std::string dir = options.cache_dir.empty() ? compute_rate_cache_dir() : options.cache_dir;
  const std::string path =
      compute_rate_cache_path(dir, host_device_name(), options.head_dim, options.dtype);
  if (!options.remeasure) {
    std::ifstream probe(path);
    if (probe.good()) {
      StatusOr<ComputeRate> cached = load_compute_rate(path);
      if (cached.is_ok()) return cached;  // a damaged cache is measured again below
    }
  }
  SEQPAR_ASSIGN_OR_RETURN(ComputeRate rate, calibrate_host_rate(options));
  SEQPAR_RETURN_IF_ERROR(save_compute_rate(rate, path));
  return rate;
}

}  // namespace seqpar
