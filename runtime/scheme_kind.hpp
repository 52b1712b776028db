#pragma once
// The schemes and decoders seqpar runs, as enums made from the registration list
// (runtime/schemes.def), and their names. What each one is and does: runtime/scheme_registry.hpp.
#include <span>
#include <string>
#include <string_view>

#include "core/status.hpp"

namespace seqpar {

enum class SchemeKind : int {
#define SEQPAR_SCHEME(kind, descriptor) kind,
#include "runtime/schemes.def"
};

enum class DecoderKind : int {
#define SEQPAR_DECODER(kind, descriptor) kind,
#include "runtime/schemes.def"
};

const char* scheme_name(SchemeKind scheme);  // "ring", "striped", "zigzag", ...; "?" if unknown
StatusOr<SchemeKind> parse_scheme(std::string_view name);
std::span<const SchemeKind> all_schemes();  // in registration order

const char* decoder_name(DecoderKind decoder);  // "tree", "ring"
StatusOr<DecoderKind> parse_decoder(std::string_view name);
std::span<const DecoderKind> all_decoders();

// Whether a value names a registered scheme or decoder (an int cast to the enum may not), and
// kInvalidArgument naming the value when it does not.
bool is_registered(SchemeKind scheme);
bool is_registered(DecoderKind decoder);
Status check_registered(SchemeKind scheme);
Status check_registered(DecoderKind decoder);

// "ring, striped, ... or tree": every registered name, for messages and help texts.
std::string scheme_names_text();
std::string decoder_names_text();

}  // namespace seqpar
