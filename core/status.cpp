// Status names and located failures.
#include "core/status.hpp"

#include "core/enum_names.hpp"
#include "core/log.hpp"

namespace seqpar {

constexpr auto kStatusCodeNames = enum_names<StatusCode>(
    "ok", "invalid_argument", "mismatch_between_ranks", "unsupported", "out_of_memory", "timeout",
    "comm_error", "aborted", "cuda_error", "numeric_error", "internal");

const char* status_code_name(StatusCode code) { return kStatusCodeNames.name(code); }

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return str_cat(status_code_name(code_), ": ", message_);
}

std::string source_location_string(const char* file, int line) {
  return str_cat("rank ", log_rank(), " on ", host_name(), " at ", file, ":", line);
}

Status make_status(StatusCode code, const char* file, int line, const std::string& message) {
  return Status(code, str_cat(message, " [", source_location_string(file, line), "]"));
}

}  // namespace seqpar
