// The C ABI's status codes, last-error message and version (include/seqpar/seqpar.h).
#include <type_traits>

#include "api/c_api_support.hpp"

namespace seqpar::c_api {
namespace {

// One per thread: a failing call on one rank's thread never overwrites another rank's message.
thread_local std::string last_error;

// The C codes are the internal ones, value for value (both lists are append-only).
static_assert(static_cast<int>(StatusCode::kOk) == SEQPAR_OK);
static_assert(static_cast<int>(StatusCode::kInvalidArgument) == SEQPAR_INVALID_ARGUMENT);
static_assert(static_cast<int>(StatusCode::kMismatch) == SEQPAR_MISMATCH);
static_assert(static_cast<int>(StatusCode::kUnsupported) == SEQPAR_UNSUPPORTED);
static_assert(static_cast<int>(StatusCode::kOutOfMemory) == SEQPAR_OUT_OF_MEMORY);
static_assert(static_cast<int>(StatusCode::kTimeout) == SEQPAR_TIMEOUT);
static_assert(static_cast<int>(StatusCode::kCommError) == SEQPAR_COMM_ERROR);
static_assert(static_cast<int>(StatusCode::kAborted) == SEQPAR_ABORTED);
static_assert(static_cast<int>(StatusCode::kCudaError) == SEQPAR_CUDA_ERROR);
static_assert(static_cast<int>(StatusCode::kNumericError) == SEQPAR_NUMERIC_ERROR);
static_assert(static_cast<int>(StatusCode::kInternal) == SEQPAR_INTERNAL);

}  // namespace

seqpar_status report(const Status& status) {
  if (!status.is_ok()) {
    try {
      last_error = status.message().empty() ? status_code_name(status.code()) : status.message();
    } catch (...) {  // no room for the message: the code still says what happened
      last_error.clear();
    }
  }
  return static_cast<seqpar_status>(status.code());
}

}  // namespace seqpar::c_api

// The header's version must be the project's (CMake passes PROJECT_VERSION).
static_assert(std::string_view(SEQPAR_VERSION_STRING) == SEQPAR_PROJECT_VERSION,
              "include/seqpar/seqpar.h's SEQPAR_VERSION_* differ from project(VERSION)");

extern "C" {

const char* seqpar_version_string(void) { return SEQPAR_PROJECT_VERSION; }

const char* seqpar_status_name(seqpar_status status) {
  const int code = static_cast<int>(status);
  if (code < SEQPAR_OK || code > SEQPAR_INTERNAL) return "unknown";
  return seqpar::status_code_name(static_cast<seqpar::StatusCode>(code));
}

const char* seqpar_last_error(void) { return seqpar::c_api::last_error.c_str(); }

void seqpar_set_last_error(const char* message) {
  try {
    seqpar::c_api::last_error = message != nullptr ? message : "";
  } catch (...) {
    seqpar::c_api::last_error.clear();
  }
}

}  // extern "C"
