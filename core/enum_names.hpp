#pragma once
// EnumNames: the names of an enum's values, in enumerator order (the enumerators are 0, 1, ...),
// and the one parser of each name back to its value. A name function and its parser read the
// same table, so every tool that parses a --mask, --dtype, --phase, ... agrees with what the
// reports print. A value past the table's end prints as "?".
//
//   constexpr auto kMaskNames = enum_names<MaskKind>("full", "causal");
//   const char* mask_name(MaskKind mask) { return kMaskNames.name(mask); }
//   StatusOr<MaskKind> parse_mask(std::string_view name) { return kMaskNames.parse(name, "mask"); }
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/listing.hpp"
#include "core/status.hpp"

namespace seqpar {

template <class Enum, size_t N>
struct EnumNames {
  std::array<const char*, N> names;

  // "?" for a value outside the table.
  constexpr const char* name(Enum value) const {
    const auto at = static_cast<size_t>(value);
    return at < N ? names[at] : "?";
  }

  constexpr std::optional<Enum> find(std::string_view text) const {
    for (size_t at = 0; at < N; ++at) {
      if (text == names[at]) return static_cast<Enum>(at);
    }
    return std::nullopt;
  }

  // "a, b or c".
  std::string listed() const {
    return listing(names, [](const char* name) { return name; });
  }

  // The value named `text`, or kInvalidArgument: "unknown <what> 'x' (expected a, b or c)".
  StatusOr<Enum> parse(std::string_view text, const char* what) const {
    if (const std::optional<Enum> value = find(text)) return *value;
    return make_status(StatusCode::kInvalidArgument, __FILE__, __LINE__,
                       str_cat("unknown ", what, " '", text, "' (expected ", listed(), ")"));
  }
};

// The table of `names`, its size counted, checked at compile time: a null name does not compile.
template <class Enum, class... Names>
consteval EnumNames<Enum, sizeof...(Names)> enum_names(Names... names) {
  EnumNames<Enum, sizeof...(Names)> table{{names...}};
  for (const char* name : table.names) {
    if (name == nullptr) throw "enum_names: a name is null";
  }
  return table;
}

}  // namespace seqpar
