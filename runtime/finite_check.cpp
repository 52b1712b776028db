// The finite check of a step's outputs (see finite_check.hpp).
#include "runtime/finite_check.hpp"

#include <cmath>

namespace seqpar {

Status require_finite(const void* data, DType dtype, size_t n, const char* what) {
  size_t bad = 0;
  size_t first = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(load_float(data, dtype, i))) {
      if (bad == 0) first = i;
      ++bad;
    }
  }
  SEQPAR_REQUIRE(bad == 0, StatusCode::kInvalidArgument, what, " holds ", bad,
                 " non-finite value(s) (NaN or Inf), the first at element ", first, " of ", n, " (",
                 dtype_name(dtype),
                 "): bad input, or an overflow of the storage dtype (PlanConfig::check_finite = "
                 "false skips this check)");
  return Status::ok();
}

}  // namespace seqpar
