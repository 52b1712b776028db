#pragma once
// What every C entry point of libseqpar (include/seqpar/seqpar.h) shares: the handle structs,
// this thread's last-error message, and c_call(), the one place where internal Status values
// and exceptions become a seqpar_status. Internal to api/: it sees the internal headers and the
// C header, never the public C++ header (whose names would clash with the internal ones; see
// api/CMakeLists.txt).
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>

#include "comm/communicator.hpp"
#include "core/status.hpp"
#include "partition/layout.hpp"
#include "runtime/decode_plan.hpp"
#include "runtime/plan.hpp"
#include "seqpar/seqpar.h"

// A communicator the caller owns (adopted MPI / NCCL, a threads group's), or one lent to a
// seqpar_run_threads body for the duration of the call. Plans share ownership of an owned one,
// so the caller may destroy the handle and its plans in either order.
struct seqpar_comm {
  std::shared_ptr<seqpar::Communicator> owned;  // empty for a lent one
  seqpar::Communicator* comm = nullptr;
  bool lent = false;  // seqpar_comm_destroy leaves a lent handle alone
};

struct seqpar_plan {
  std::shared_ptr<seqpar::Communicator> comm;  // declared first: outlives the plan
  std::unique_ptr<seqpar::Plan> plan;
};

struct seqpar_layout {
  seqpar::Layout layout;
};

struct seqpar_decode_plan {
  std::shared_ptr<seqpar::Communicator> comm;  // declared first: outlives the plan
  std::unique_ptr<seqpar::DecodePlan> plan;
};

namespace seqpar::c_api {

// Records `status`'s message as this thread's last error (when failed) and returns its code.
seqpar_status report(const Status& status);

// Runs `body` (returning Status) and converts its result; an exception becomes
// SEQPAR_OUT_OF_MEMORY (bad_alloc) or SEQPAR_INTERNAL with its what(): none crosses the ABI.
template <class Body>
seqpar_status c_call(const char* function, Body&& body) noexcept {
  try {
    return report(body());
  } catch (const std::bad_alloc&) {
    return report(Status(StatusCode::kOutOfMemory, str_cat(function, ": out of host memory")));
  } catch (const std::exception& e) {
    return report(Status(StatusCode::kInternal, str_cat(function, ": ", e.what())));
  } catch (...) {
    return report(Status(StatusCode::kInternal, str_cat(function, ": unknown exception")));
  }
}

// kInvalidArgument "<function>: <what> is null" unless `pointer` is set.
inline Status require_non_null(const void* pointer, const char* function, const char* what) {
  if (pointer != nullptr) return Status::ok();
  return Status(StatusCode::kInvalidArgument, str_cat(function, ": ", what, " is null"));
}

// Internal and C values of the enums (unknown C values: kInvalidArgument naming the field).
StatusOr<DType> dtype_from_c(int32_t value, const char* function);
StatusOr<MaskKind> mask_from_c(int32_t value, const char* function);
StatusOr<Device> device_from_c(int32_t value, const char* function);
StatusOr<SchemeKind> scheme_from_c(int32_t value, const char* function);
StatusOr<DecoderKind> decoder_from_c(int32_t value, const char* function);
// The seqpar_scheme value of a registered scheme (-1 for one the C ABI does not name).
int32_t scheme_to_c(SchemeKind scheme);
seqpar_layout_kind layout_kind_to_c(LayoutKind kind);

// The versioned structs, read as far as the caller's struct_size goes (see seqpar.h).
StatusOr<PlanConfig> plan_config_from_c(const seqpar_plan_config* config, const char* function);
StatusOr<DecodeConfig> decode_config_from_c(const seqpar_decode_config* config,
                                            const char* function);

}  // namespace seqpar::c_api
