#pragma once
// Rank-prefixed logging to stderr: "[seqpar r2@host-a] message". The rank is per thread, so the
// threads backend (ranks as threads) and mpirun (ranks as processes) both prefix correctly.
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace seqpar {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_log_rank(int rank);  // this thread's rank; -1 when not part of a group
int log_rank();
const std::string& host_name();
void set_log_level(
    LogLevel level);  // process-wide; default kWarn, or SEQPAR_LOG=debug|info|warn|error
LogLevel log_level();
void log_line(LogLevel level, std::string_view message);

}  // namespace seqpar

#define SEQPAR_LOG(level, ...)                                     \
  do {                                                             \
    if ((level) >= ::seqpar::log_level())                          \
      ::seqpar::log_line((level), ::seqpar::str_cat(__VA_ARGS__)); \
  } while (0)
#define SEQPAR_LOG_DEBUG(...) SEQPAR_LOG(::seqpar::LogLevel::kDebug, __VA_ARGS__)
#define SEQPAR_LOG_INFO(...) SEQPAR_LOG(::seqpar::LogLevel::kInfo, __VA_ARGS__)
#define SEQPAR_LOG_WARN(...) SEQPAR_LOG(::seqpar::LogLevel::kWarn, __VA_ARGS__)
#define SEQPAR_LOG_ERROR(...) SEQPAR_LOG(::seqpar::LogLevel::kError, __VA_ARGS__)
