// The table of oracles, made from runtime/schemes.def (see comm_oracles.hpp).
#include "comm_oracles.hpp"

namespace seqpar::oracle {

#define SEQPAR_SCHEME(kind, descriptor) extern const SchemeOracle descriptor##Oracle;
#define SEQPAR_DECODER(kind, descriptor) extern const DecoderOracle descriptor##Oracle;
#include "runtime/schemes.def"

namespace {

const SchemeOracle* const kSchemeOracles[] = {
#define SEQPAR_SCHEME(kind, descriptor) &descriptor##Oracle,
#include "runtime/schemes.def"
};

const DecoderOracle* const kDecoderOracles[] = {
#define SEQPAR_DECODER(kind, descriptor) &descriptor##Oracle,
#include "runtime/schemes.def"
};

const SchemeOracle& oracle_of(SchemeKind scheme) {
  return *kSchemeOracles[static_cast<size_t>(scheme)];
}

}  // namespace

bool has_oracle(SchemeKind scheme) {
  const SchemeOracle& o = oracle_of(scheme);
  return o.forward != nullptr && o.backward != nullptr;
}

CommVolume forward(SchemeKind scheme, const Shape& shape, int rank) {
  return oracle_of(scheme).forward(shape, rank);
}

CommVolume backward(SchemeKind scheme, const Shape& shape, int rank) {
  return oracle_of(scheme).backward(shape, rank);
}

CommVolume decode_step(DecoderKind decoder, const Shape& shape, int64_t q_len, int64_t cache_length,
                       int rank) {
  return kDecoderOracles[static_cast<size_t>(decoder)]->step(shape, q_len, cache_length, rank);
}

}  // namespace seqpar::oracle
