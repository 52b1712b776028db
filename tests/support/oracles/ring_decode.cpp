// The ring-decode baseline's oracle (tests/support/comm_oracles.hpp): P-1 hops, at hop h the
// block of rank r - h: 2 B len(r - h) Hkv D e, len from the cache's rule (the prompt's balanced
// runs, then token t >= S on rank t mod P).
#include "oracle_parts.hpp"
#include "partition/layout.hpp"

namespace seqpar::oracle {

extern constinit const DecoderOracle kRingDecoderOracle{
    [](const Shape& s, int64_t /*q_len*/, int64_t cache_length, int rank) {
      const AttentionProblem& p = s.problem;
      auto tokens_of = [&](int r) {
        int64_t n = BalancedSplit{p.seq, s.ranks}.size(r);
        for (int64_t t = p.seq; t < cache_length; ++t) n += t % s.ranks == r ? 1 : 0;
        return n;
      };
      int64_t bytes = 0;
      for (int hop = 0; hop + 1 < s.ranks; ++hop) {
        bytes += 2 * p.batch * tokens_of((rank - hop + s.ranks) % s.ranks) * p.heads_kv *
                 p.head_dim * e_of(p);
      }
      return volume(CommOp::kExchange, s.ranks - 1, bytes);
    }};

}  // namespace seqpar::oracle
