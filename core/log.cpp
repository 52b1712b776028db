// Rank-prefixed logging; one write per line so lines from different ranks never interleave.
#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/enum_names.hpp"

namespace seqpar {
namespace {

thread_local int t_rank = -1;

constexpr auto kLevelNames = enum_names<LogLevel>("debug", "info", "warn", "error");

// SEQPAR_LOG: debug, info, warn (the default) or error.
LogLevel level_from_env() {
  const char* env = std::getenv("SEQPAR_LOG");
  return env == nullptr ? LogLevel::kWarn : kLevelNames.find(env).value_or(LogLevel::kWarn);
}

std::atomic<int> g_level{static_cast<int>(level_from_env())};
std::mutex g_write_mutex;

const char* level_tag(LogLevel level) { return kLevelNames.name(level); }

}  // namespace

void set_log_rank(int rank) { t_rank = rank; }
int log_rank() { return t_rank; }

const std::string& host_name() {
  static const std::string name = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0) return std::string("unknown-host");
    return std::string(buf);
  }();
  return name;
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_line(LogLevel level, std::string_view message) {
  std::string line =
      str_cat("[seqpar r", t_rank, "@", host_name(), " ", level_tag(level), "] ", message, "\n");
  std::lock_guard<std::mutex> lock(g_write_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace seqpar
