// The registry's tables, made from runtime/schemes.def, and the lookups over them.
#include "runtime/scheme_registry.hpp"

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

// "a, b or c".
template <class Kind, class NameOf>
std::string names_text(std::span<const Kind> kinds, NameOf name_of) {
  std::string text;
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i > 0) text += i + 1 == kinds.size() ? " or " : ", ";
    text += name_of(kinds[i]);
  }
  return text;
}

}  // namespace

const SchemeDescriptor& scheme_descriptor(SchemeKind scheme) {
  return *kSchemeDescriptors[static_cast<size_t>(scheme)];
}

const DecoderDescriptor& decoder_descriptor(DecoderKind decoder) {
  return *kDecoderDescriptors[static_cast<size_t>(decoder)];
}

std::vector<int> sequence_only(int /*ranks*/) { return {1}; }

std::span<const SchemeKind> all_schemes() { return kSchemes; }
std::span<const DecoderKind> all_decoders() { return kDecoders; }

const char* scheme_name(SchemeKind scheme) { return scheme_descriptor(scheme).name; }
const char* decoder_name(DecoderKind decoder) { return decoder_descriptor(decoder).name; }

std::string scheme_names_text() { return names_text(all_schemes(), scheme_name); }
std::string decoder_names_text() { return names_text(all_decoders(), decoder_name); }

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

std::vector<CommVolume> scheme_comm(const SchemeContext& context, Pass pass) {
  CommVolumeSink volumes(context.layout.ranks());
  scheme_descriptor(context.kind).schedule(context, pass, volumes);
  return volumes.volumes();
}

std::vector<CommVolume> decoder_comm(const DecodeContext& context, int64_t cache_length) {
  CommVolumeSink volumes(context.ranks);
  decoder_descriptor(context.config.decoder).schedule(context, cache_length, volumes);
  return volumes.volumes();
}

}  // namespace seqpar
