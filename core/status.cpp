// Status names and located failures.
#include "core/status.hpp"

#include "core/log.hpp"

namespace seqpar {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kMismatch:
      return "mismatch_between_ranks";
    case StatusCode::kUnsupported:
      return "unsupported";
    case StatusCode::kOutOfMemory:
      return "out_of_memory";
    case StatusCode::kTimeout:
      return "timeout";
    case StatusCode::kCommError:
      return "comm_error";
    case StatusCode::kAborted:
      return "aborted";
    case StatusCode::kCudaError:
      return "cuda_error";
    case StatusCode::kNumericError:
      return "numeric_error";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

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
