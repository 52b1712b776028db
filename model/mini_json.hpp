#pragma once
// A small JSON reader for the launcher's inputs (the per-step timings a benchmark writes for
// seqpar-model-check): objects, arrays, numbers, strings (escapes \" \\ \/ \n \t only), true,
// false, null. Enough for files seqpar writes itself; not a general-purpose parser.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"

namespace seqpar {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;
  std::vector<JsonValue> items;              // kArray
  std::map<std::string, JsonValue> members;  // kObject

  // The member `key` of an object, or null when absent (or this is not an object).
  const JsonValue* find(const std::string& key) const;
};

// kInvalidArgument naming the offset where the text stops being JSON.
StatusOr<JsonValue> parse_json(std::string_view text);

}  // namespace seqpar
