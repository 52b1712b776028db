#pragma once
// The one place a SchemeKind becomes a Scheme.
#include <memory>

#include "runtime/scheme.hpp"

namespace seqpar {

// Builds the scheme of context.kind; its own rules (beyond validate_problem's) are checked here,
// identically on every rank.
StatusOr<std::unique_ptr<Scheme>> create_scheme(const SchemeContext& context);

}  // namespace seqpar
