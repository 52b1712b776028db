// The registry's tables, made from runtime/schemes.def, and the lookups over them.
#include "runtime/scheme_registry.hpp"

#include <cstdio>
#include <cstdlib>

#include "core/listing.hpp"

namespace seqpar {

#define SEQPAR_SCHEME(kind, descriptor) extern const SchemeDescriptor descriptor;
#define SEQPAR_DECODER(kind, descriptor) extern const DecoderDescriptor descriptor;
#include "runtime/schemes.def"

namespace {

constexpr SchemeKind kSchemes[] = {
#define SEQPAR_SCHEME(kind, descriptor) SchemeKind::kind,
#include "runtime/schemes.def"
};

constexpr DecoderKind kDecoders[] = {
#define SEQPAR_DECODER(kind, descriptor) DecoderKind::kind,
#include "runtime/schemes.def"
};

// The descriptors are constant-initialised (constinit in their files), so these tables are
// safe to read from any static initialiser too.
constexpr const SchemeDescriptor* kSchemeDescriptors[] = {
#define SEQPAR_SCHEME(kind, descriptor) &descriptor,
#include "runtime/schemes.def"
};

constexpr const DecoderDescriptor* kDecoderDescriptors[] = {
#define SEQPAR_DECODER(kind, descriptor) &descriptor,
#include "runtime/schemes.def"
};

}  // namespace

bool is_registered(SchemeKind scheme) {
  return static_cast<size_t>(scheme) < std::size(kSchemeDescriptors);
}

bool is_registered(DecoderKind decoder) {
  return static_cast<size_t>(decoder) < std::size(kDecoderDescriptors);
}

const SchemeDescriptor& scheme_descriptor(SchemeKind scheme) {
  if (!is_registered(scheme)) {
    std::fprintf(stderr, "seqpar: scheme_descriptor(%d): no such scheme\n",
                 static_cast<int>(scheme));
    std::abort();
  }
  return *kSchemeDescriptors[static_cast<size_t>(scheme)];
}

const DecoderDescriptor& decoder_descriptor(DecoderKind decoder) {
  if (!is_registered(decoder)) {
    std::fprintf(stderr, "seqpar: decoder_descriptor(%d): no such decoder\n",
                 static_cast<int>(decoder));
    std::abort();
  }
  return *kDecoderDescriptors[static_cast<size_t>(decoder)];
}

std::vector<int> no_ulysses_degrees(int /*ranks*/) { return {1}; }

std::span<const SchemeKind> all_schemes() { return kSchemes; }
std::span<const DecoderKind> all_decoders() { return kDecoders; }

const char* scheme_name(SchemeKind scheme) {
  return is_registered(scheme) ? scheme_descriptor(scheme).name : "?";
}

const char* decoder_name(DecoderKind decoder) {
  return is_registered(decoder) ? decoder_descriptor(decoder).name : "?";
}

std::string scheme_names_text() { return listing(all_schemes(), scheme_name); }
std::string decoder_names_text() { return listing(all_decoders(), decoder_name); }

Status check_registered(SchemeKind scheme) {
  SEQPAR_REQUIRE(is_registered(scheme), StatusCode::kInvalidArgument, "unknown scheme ",
                 static_cast<int>(scheme), " (expected ", scheme_names_text(), ")");
  return Status::ok();
}

Status check_registered(DecoderKind decoder) {
  SEQPAR_REQUIRE(is_registered(decoder), StatusCode::kInvalidArgument, "unknown decoder ",
                 static_cast<int>(decoder), " (expected ", decoder_names_text(), ")");
  return Status::ok();
}

StatusOr<SchemeKind> parse_scheme(std::string_view name) {
  for (SchemeKind s : all_schemes()) {
    if (name == scheme_name(s)) return s;
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, "unknown scheme '", name, "' (expected ",
                     scheme_names_text(), ")");
}

StatusOr<DecoderKind> parse_decoder(std::string_view name) {
  for (DecoderKind d : all_decoders()) {
    if (name == decoder_name(d)) return d;
  }
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, "unknown decoder '", name, "' (expected ",
                     decoder_names_text(), ")");
}

StatusOr<std::vector<CommVolume>> scheme_comm(const SchemeContext& context, Pass pass) {
  CommVolumeSink volumes(context.layout.ranks());
  SEQPAR_RETURN_IF_ERROR(scheme_descriptor(context.kind).schedule(context, pass, volumes));
  return volumes.volumes();
}

StatusOr<std::vector<CommVolume>> decoder_comm(const DecodeContext& context, int64_t cache_length) {
  CommVolumeSink volumes(context.ranks);
  SEQPAR_RETURN_IF_ERROR(
      decoder_descriptor(context.config.decoder).schedule(context, cache_length, volumes));
  return volumes.volumes();
}

}  // namespace seqpar
