// Scheme names and layouts.
#include "runtime/scheme_kind.hpp"

namespace seqpar {

const char* scheme_name(SchemeKind scheme) {
  switch (scheme) {
    case SchemeKind::kRing:
      return "ring";
    case SchemeKind::kStriped:
      return "striped";
    case SchemeKind::kZigzag:
      return "zigzag";
  }
  return "?";
}

StatusOr<SchemeKind> parse_scheme(std::string_view name) {
  for (SchemeKind s : {SchemeKind::kRing, SchemeKind::kStriped, SchemeKind::kZigzag}) {
    if (name == scheme_name(s)) return s;
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, "unknown scheme '", name,
                     "' (expected ring, striped or zigzag)");
}

LayoutKind scheme_layout(SchemeKind scheme) {
  switch (scheme) {
    case SchemeKind::kRing:
      return LayoutKind::kContiguous;
    case SchemeKind::kStriped:
      return LayoutKind::kStriped;
    case SchemeKind::kZigzag:
      return LayoutKind::kZigzag;
  }
  return LayoutKind::kContiguous;
}

}  // namespace seqpar
