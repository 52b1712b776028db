// Scheme names and layouts.
#include "runtime/scheme_kind.hpp"

namespace seqpar {

namespace {
constexpr SchemeKind kAllSchemes[] = {
    SchemeKind::kRing,     SchemeKind::kStriped, SchemeKind::kZigzag, SchemeKind::kUlysses,
    SchemeKind::kLightSeq, SchemeKind::kTree,    SchemeKind::kHybrid};
}  // namespace

const char* scheme_name(SchemeKind scheme) {
  switch (scheme) {
    case SchemeKind::kRing:
      return "ring";
    case SchemeKind::kStriped:
      return "striped";
    case SchemeKind::kZigzag:
      return "zigzag";
    case SchemeKind::kUlysses:
      return "ulysses";
    case SchemeKind::kLightSeq:
      return "lightseq";
    case SchemeKind::kTree:
      return "tree";
    case SchemeKind::kHybrid:
      return "hybrid";
  }
  return "?";
}

StatusOr<SchemeKind> parse_scheme(std::string_view name) {
  for (SchemeKind s : kAllSchemes) {
    if (name == scheme_name(s)) return s;
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, "unknown scheme '", name,
                     "' (expected ring, striped, zigzag, ulysses, lightseq, tree or hybrid)");
}

LayoutKind scheme_layout(SchemeKind scheme) {
  switch (scheme) {
    case SchemeKind::kStriped:
      return LayoutKind::kStriped;
    case SchemeKind::kZigzag:
      return LayoutKind::kZigzag;
    case SchemeKind::kHybrid:
      return LayoutKind::kHybridZigzag;
    case SchemeKind::kRing:
    case SchemeKind::kUlysses:
    case SchemeKind::kLightSeq:
    case SchemeKind::kTree:
      return LayoutKind::kContiguous;
  }
  return LayoutKind::kContiguous;
}

}  // namespace seqpar
