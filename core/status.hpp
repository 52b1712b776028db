#pragma once
// Status, StatusOr<T>, str_cat and the check macros used by every seqpar module.
// No exceptions cross module or ABI lines: functions that can fail return Status.
// A failed check names where it failed: "rank 2 on host-a at runtime/plan.cpp:88".
#include <optional>
#include <sstream>
#include <string>
#include <utility>

namespace seqpar {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,  // a caller broke a documented rule (shape, divisibility, dtype)
  kMismatch,         // ranks disagree (shapes, scheme, dtype)
  kUnsupported,      // valid request that this build or device cannot run
  kOutOfMemory,
  kTimeout,    // a bounded wait ran out
  kCommError,  // a backend reported an error
  kAborted,    // another rank failed and aborted the group
  kCudaError,
  kNumericError,  // NaN / Inf where there must be none
  kInternal,
};

const char* status_code_name(StatusCode code);

template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: <message>", or "ok".
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <class T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  StatusOr(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  bool is_ok() const { return status_.is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

// "rank R on HOST at FILE:LINE" (rank from the calling thread's log context).
std::string source_location_string(const char* file, int line);
// A failed Status whose message starts with the location of the failure.
Status make_status(StatusCode code, const char* file, int line, const std::string& message);

}  // namespace seqpar

#define SEQPAR_RETURN_IF_ERROR(expr)                    \
  do {                                                  \
    ::seqpar::Status seqpar_status_ = (expr);           \
    if (!seqpar_status_.is_ok()) return seqpar_status_; \
  } while (0)

// Return a Status of `code` naming rank, host, file and line when `cond` is false.
#define SEQPAR_REQUIRE(cond, code, ...)                                                         \
  do {                                                                                          \
    if (!(cond))                                                                                \
      return ::seqpar::make_status((code), __FILE__, __LINE__, ::seqpar::str_cat(__VA_ARGS__)); \
  } while (0)

#define SEQPAR_FAIL(code, ...) \
  ::seqpar::make_status((code), __FILE__, __LINE__, ::seqpar::str_cat(__VA_ARGS__))

#define SEQPAR_CONCAT_INNER(a, b) a##b
#define SEQPAR_CONCAT(a, b) SEQPAR_CONCAT_INNER(a, b)
#define SEQPAR_ASSIGN_OR_RETURN(lhs, expr)               \
  auto SEQPAR_CONCAT(seqpar_or_, __LINE__) = (expr);     \
  if (!SEQPAR_CONCAT(seqpar_or_, __LINE__).is_ok())      \
    return SEQPAR_CONCAT(seqpar_or_, __LINE__).status(); \
  lhs = std::move(SEQPAR_CONCAT(seqpar_or_, __LINE__)).value()
