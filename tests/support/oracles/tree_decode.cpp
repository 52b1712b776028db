// Tree decoding's oracle (tests/support/comm_oracles.hpp): the combine of the B n new rows, the
// same at every cache length.
#include "oracle_parts.hpp"

namespace seqpar::oracle {

extern constinit const DecoderOracle kTreeDecoderOracle{
    [](const Shape& s, int64_t q_len, int64_t /*cache_length*/, int /*rank*/) {
      const AttentionProblem& p = s.problem;
      return combine(p.batch * q_len * p.heads_q, p.head_dim, s.ranks, s.ranks_per_node);
    }};

}  // namespace seqpar::oracle
