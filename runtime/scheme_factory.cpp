// create_scheme: SchemeKind -> Scheme.
#include "runtime/scheme_factory.hpp"

#include "runtime/ring_attention.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> create_scheme(const SchemeContext& context) {
  switch (context.kind) {
    case SchemeKind::kRing:
    case SchemeKind::kStriped:
    case SchemeKind::kZigzag:
      return RingAttention::create(context);
    case SchemeKind::kUlysses:
    case SchemeKind::kLightSeq:
    case SchemeKind::kTree:
      break;
  }
  return SEQPAR_FAIL(StatusCode::kUnsupported, "scheme ", scheme_name(context.kind),
                     " is not built yet");
}

}  // namespace seqpar
