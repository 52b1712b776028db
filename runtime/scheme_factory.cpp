// create_scheme: SchemeKind -> Scheme.
#include "runtime/scheme_factory.hpp"

#include "runtime/hybrid_attention.hpp"
#include "runtime/lightseq_attention.hpp"
#include "runtime/ring_attention.hpp"
#include "runtime/tree_attention.hpp"
#include "runtime/ulysses_attention.hpp"

namespace seqpar {

StatusOr<std::unique_ptr<Scheme>> create_scheme(const SchemeContext& context) {
  switch (context.kind) {
    case SchemeKind::kRing:
    case SchemeKind::kStriped:
    case SchemeKind::kZigzag:
      return RingAttention::create(context);
    case SchemeKind::kUlysses:
      return UlyssesAttention::create(context);
    case SchemeKind::kLightSeq:
      return LightSeqAttention::create(context);
    case SchemeKind::kTree:
      return TreeAttention::create(context);
    case SchemeKind::kHybrid:
      return HybridAttention::create(context);
  }
  return SEQPAR_FAIL(StatusCode::kUnsupported, "scheme ", scheme_name(context.kind),
                     " is not built yet");
}

}  // namespace seqpar
