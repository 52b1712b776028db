// The topology file parser (format: docs/topology.md). One "key = value" per line, '#' comments,
// link kinds first set the documented defaults, explicit figures then override them (in any
// order). Errors name the file and line: "cluster.txt:7: unknown key 'nodez'".
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "model/topology.hpp"

namespace seqpar {

namespace {

struct Unit {
  const char* name;
  double scale;
};

// Bandwidths: bytes (decimal and binary prefixes) or bits per second.
constexpr Unit kBandwidthUnits[] = {
    {"B/s", 1.0},      {"KB/s", 1e3},     {"MB/s", 1e6},        {"GB/s", 1e9},
    {"TB/s", 1e12},    {"KiB/s", 1024.0}, {"MiB/s", 1048576.0}, {"GiB/s", 1073741824.0},
    {"Kb/s", 1e3 / 8}, {"Mb/s", 1e6 / 8}, {"Gb/s", 1e9 / 8},    {"Tb/s", 1e12 / 8}};
constexpr Unit kLatencyUnits[] = {{"s", 1.0}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}};
constexpr Unit kMemoryUnits[] = {
    {"B", 1.0},         {"KB", 1e3},           {"MB", 1e6},
    {"GB", 1e9},        {"TB", 1e12},          {"KiB", 1024.0},
    {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};

std::string trim(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && (text[begin] == ' ' || text[begin] == '\t' || text[begin] == '\r')) ++begin;
  while (end > begin && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r'))
    --end;
  return std::string(text.substr(begin, end - begin));
}

template <size_t N>
std::string unit_list(const Unit (&units)[N]) {
  std::string out;
  for (size_t i = 0; i < N; ++i) out += (i == 0 ? "" : ", ") + std::string(units[i].name);
  return out;
}

// "370 GB/s" -> 3.7e11 with the units given; a bare 0 needs no unit.
template <size_t N>
std::optional<double> parse_quantity(const std::string& value, const Unit (&units)[N],
                                     std::string* error) {
  const char* begin = value.c_str();
  char* end = nullptr;
  errno = 0;
  const double number = std::strtod(begin, &end);
  if (end == begin || errno != 0 || !std::isfinite(number)) {
    *error = str_cat("'", value, "' is not a number with a unit (", unit_list(units), ")");
    return std::nullopt;
  }
  const std::string unit = trim(end);
  if (unit.empty() && number == 0.0) return 0.0;
  for (const Unit& u : units) {
    if (unit == u.name) return number * u.scale;
  }
  *error = unit.empty() ? str_cat("'", value, "' needs a unit (", unit_list(units), ")")
                        : str_cat("unknown unit '", unit, "' (expected ", unit_list(units), ")");
  return std::nullopt;
}

std::optional<int> parse_count(const std::string& value, std::string* error) {
  const char* begin = value.c_str();
  char* end = nullptr;
  errno = 0;
  const long number = std::strtol(begin, &end, 10);
  if (end == begin || *end != '\0' || errno != 0 || number < 1 || number > (1L << 20)) {
    *error = str_cat("'", value, "' is not a whole number from 1 to ", 1 << 20);
    return std::nullopt;
  }
  return static_cast<int>(number);
}

// The fields of one link level as the file gives them.
struct LinkLines {
  std::optional<LinkKind> kind;
  std::optional<double> bandwidth;
  std::optional<double> latency;
  int kind_line = 0;
};

Status file_error(const std::string& name, int line, const std::string& message) {
  return Status(StatusCode::kInvalidArgument,
                line > 0 ? str_cat(name, ":", line, ": ", message) : str_cat(name, ": ", message));
}

// Kind defaults first, then explicit figures; a custom kind must give both figures.
Status resolve_link(const std::string& name, const char* level, const LinkLines& lines,
                    LinkSpec* link) {
  if (lines.kind) *link = default_link(*lines.kind);
  if (lines.kind == LinkKind::kCustom && (!lines.bandwidth || !lines.latency)) {
    return file_error(
        name, lines.kind_line,
        str_cat(level, " = custom needs ", level, "_bandwidth and ", level, "_latency"));
  }
  if (lines.bandwidth) link->bandwidth_bytes_per_s = *lines.bandwidth;
  if (lines.latency) link->latency_s = *lines.latency;
  return Status::ok();
}

}  // namespace

StatusOr<Topology> parse_topology_text(std::string_view text, const std::string& name) {
  Topology t = default_topology();
  t.source = name;
  LinkLines intra, inter;
  std::map<std::string, int> seen;  // key -> line it was given on
  bool have_nodes = false, have_gpus = false;

  std::istringstream in{std::string(text)};
  std::string raw;
  int line = 0;
  while (std::getline(in, raw)) {
    ++line;
    const size_t hash = raw.find('#');
    const std::string content = trim(hash == std::string::npos ? raw : raw.substr(0, hash));
    if (content.empty()) continue;
    const size_t eq = content.find('=');
    if (eq == std::string::npos) {
      return file_error(name, line, str_cat("expected 'key = value', got '", content, "'"));
    }
    const std::string key = trim(content.substr(0, eq));
    const std::string value = trim(content.substr(eq + 1));
    if (value.empty()) return file_error(name, line, str_cat("'", key, "' has no value"));
    if (auto it = seen.find(key); it != seen.end()) {
      return file_error(name, line,
                        str_cat("'", key, "' given twice (first on line ", it->second, ")"));
    }
    seen[key] = line;

    std::string error;
    if (key == "nodes" || key == "gpus_per_node") {
      const std::optional<int> count = parse_count(value, &error);
      if (!count) return file_error(name, line, str_cat(key, ": ", error));
      (key == "nodes" ? t.nodes : t.ranks_per_node) = *count;
      (key == "nodes" ? have_nodes : have_gpus) = true;
    } else if (key == "device") {
      t.device_name = value;
    } else if (key == "device_memory") {
      const std::optional<double> bytes = parse_quantity(value, kMemoryUnits, &error);
      if (!bytes) return file_error(name, line, str_cat(key, ": ", error));
      if (*bytes < 0) return file_error(name, line, "device_memory must be >= 0");
      t.device_memory_bytes = static_cast<int64_t>(std::llround(*bytes));
    } else if (key == "intra" || key == "inter") {
      StatusOr<LinkKind> kind = parse_link_kind(value);
      if (!kind.is_ok()) {
        return file_error(name, line,
                          str_cat(key, ": unknown link kind '", value,
                                  "' (expected nvlink, pcie, ib400, ib200, eth100, host or "
                                  "custom)"));
      }
      LinkLines& lines = key == "intra" ? intra : inter;
      lines.kind = kind.value();
      lines.kind_line = line;
    } else if (key == "intra_bandwidth" || key == "inter_bandwidth") {
      const std::optional<double> bw = parse_quantity(value, kBandwidthUnits, &error);
      if (!bw) return file_error(name, line, str_cat(key, ": ", error));
      if (*bw <= 0) return file_error(name, line, str_cat(key, " must be > 0"));
      (key == "intra_bandwidth" ? intra : inter).bandwidth = *bw;
    } else if (key == "intra_latency" || key == "inter_latency") {
      const std::optional<double> lat = parse_quantity(value, kLatencyUnits, &error);
      if (!lat) return file_error(name, line, str_cat(key, ": ", error));
      if (*lat < 0) return file_error(name, line, str_cat(key, " must be >= 0"));
      (key == "intra_latency" ? intra : inter).latency = *lat;
    } else {
      return file_error(
          name, line,
          str_cat("unknown key '", key,
                  "' (expected nodes, gpus_per_node, device, device_memory, intra, "
                  "intra_bandwidth, intra_latency, inter, inter_bandwidth, inter_latency)"));
    }
  }
  if (!have_nodes) return file_error(name, 0, "missing 'nodes = N'");
  if (!have_gpus) return file_error(name, 0, "missing 'gpus_per_node = G'");
  SEQPAR_RETURN_IF_ERROR(resolve_link(name, "intra", intra, &t.intra));
  SEQPAR_RETURN_IF_ERROR(resolve_link(name, "inter", inter, &t.inter));
  SEQPAR_RETURN_IF_ERROR(validate_topology(t));
  return t;
}

StatusOr<Topology> read_topology_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return Status(StatusCode::kInvalidArgument, str_cat("cannot open topology file '", path, "'"));
  }
  std::ostringstream text;
  text << file.rdbuf();
  SEQPAR_ASSIGN_OR_RETURN(Topology t, parse_topology_text(text.str(), path));
  t.source = str_cat("file ", path);
  return t;
}

}  // namespace seqpar
