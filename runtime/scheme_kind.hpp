#pragma once
// The schemes seqpar runs, their names, and the token layout each one uses.
#include <string_view>

#include "core/status.hpp"
#include "partition/layout.hpp"

namespace seqpar {

enum class SchemeKind : int { kRing = 0, kStriped, kZigzag, kUlysses, kLightSeq, kTree, kHybrid };

const char* scheme_name(SchemeKind scheme);  // "ring", "striped", "zigzag", "ulysses", ...
StatusOr<SchemeKind> parse_scheme(std::string_view name);
LayoutKind scheme_layout(SchemeKind scheme);  // token layout of each rank's input shards

}  // namespace seqpar
