#pragma once
// listing: "a, b or c" from a range, for messages and help texts that name every choice.
#include <iterator>
#include <string>

#include "core/status.hpp"

namespace seqpar {

// The items' texts joined by ", ", the last pair by `last` (" or ", " and ").
template <class Range, class ToText>
std::string listing(const Range& items, ToText to_text, const char* last = " or ") {
  std::string text;
  const size_t count = std::size(items);
  size_t at = 0;
  for (const auto& item : items) {
    if (at > 0) text += at + 1 == count ? last : ", ";
    text += str_cat(to_text(item));
    ++at;
  }
  return text;
}

}  // namespace seqpar
