// The small JSON reader (see mini_json.hpp): recursive descent over the text.
#include "model/mini_json.hpp"

#include <cctype>
#include <cstdlib>

namespace seqpar {

const JsonValue* JsonValue::find(const std::string& key) const {
  if (kind != Kind::kObject) return nullptr;
  const auto it = members.find(key);
  return it == members.end() ? nullptr : &it->second;
}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  StatusOr<JsonValue> document() {
    SEQPAR_ASSIGN_OR_RETURN(JsonValue value, parse_value(0));
    skip_space();
    if (at_ != text_.size()) return error("text after the JSON value");
    return value;
  }

 private:
  static constexpr int kMaxDepth = 64;

  Status error(const char* what) const {
    return SEQPAR_FAIL(StatusCode::kInvalidArgument, "JSON: ", what, " at offset ", at_);
  }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  bool take(char c) {
    skip_space();
    if (at_ < text_.size() && text_[at_] == c) {
      ++at_;
      return true;
    }
    return false;
  }
  bool take_word(std::string_view word) {
    if (text_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  StatusOr<std::string> parse_string() {
    if (!take('"')) return error("expected a string");
    std::string out;
    while (at_ < text_.size() && text_[at_] != '"') {
      char c = text_[at_++];
      if (c == '\\' && at_ < text_.size()) {
        const char e = text_[at_++];
        c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
        if (e != '"' && e != '\\' && e != '/' && e != 'n' && e != 't') {
          return error("unsupported string escape");
        }
      }
      out += c;
    }
    if (!take('"')) return error("unterminated string");
    return out;
  }

  StatusOr<JsonValue> parse_value(int depth) {
    if (depth > kMaxDepth) return error("nesting too deep");
    skip_space();
    if (at_ >= text_.size()) return error("unexpected end");
    JsonValue v;
    const char c = text_[at_];
    if (c == '{') {
      ++at_;
      v.kind = JsonValue::Kind::kObject;
      if (take('}')) return v;
      do {
        SEQPAR_ASSIGN_OR_RETURN(std::string key, parse_string());
        if (!take(':')) return error("expected ':'");
        SEQPAR_ASSIGN_OR_RETURN(JsonValue member, parse_value(depth + 1));
        v.members[key] = std::move(member);
      } while (take(','));
      if (!take('}')) return error("expected ',' or '}'");
    } else if (c == '[') {
      ++at_;
      v.kind = JsonValue::Kind::kArray;
      if (take(']')) return v;
      do {
        SEQPAR_ASSIGN_OR_RETURN(JsonValue item, parse_value(depth + 1));
        v.items.push_back(std::move(item));
      } while (take(','));
      if (!take(']')) return error("expected ',' or ']'");
    } else if (c == '"') {
      v.kind = JsonValue::Kind::kString;
      SEQPAR_ASSIGN_OR_RETURN(v.text, parse_string());
    } else if (take_word("true")) {
      v.kind = JsonValue::Kind::kBool;
      v.boolean = true;
    } else if (take_word("false")) {
      v.kind = JsonValue::Kind::kBool;
    } else if (take_word("null")) {
      v.kind = JsonValue::Kind::kNull;
    } else {
      const std::string rest(text_.substr(at_, 64));
      char* end = nullptr;
      v.number = std::strtod(rest.c_str(), &end);
      if (end == rest.c_str()) return error("expected a value");
      v.kind = JsonValue::Kind::kNumber;
      at_ += static_cast<size_t>(end - rest.c_str());
    }
    return v;
  }

  std::string_view text_;
  size_t at_ = 0;
};

}  // namespace

StatusOr<JsonValue> parse_json(std::string_view text) { return Parser(text).document(); }

}  // namespace seqpar
