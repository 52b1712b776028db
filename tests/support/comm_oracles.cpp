// The closed-form formulas (see comm_oracles.hpp).
#include "comm_oracles.hpp"

#include <algorithm>
#include <string_view>

#include "partition/head_split.hpp"
#include "partition/layout.hpp"
#include "runtime/lightseq_schedule.hpp"
#include "runtime/scheme_kind.hpp"

namespace seqpar::oracle {
namespace {

int64_t e_of(const AttentionProblem& p) { return static_cast<int64_t>(dtype_size(p.dtype)); }

// One of K or V of contiguous shard `rank` (striped and zigzag shards are equal, which the same
// split gives).
int64_t kv_bytes(const AttentionProblem& p, int ranks, int rank) {
  return p.batch * BalancedSplit{p.seq, ranks}.size(rank) * p.heads_kv * p.head_dim * e_of(p);
}

CommVolume volume(CommOp op, int64_t calls, int64_t bytes) {
  CommVolume v;
  v[op] = calls;
  v.bytes_sent = bytes;
  return v;
}

// ---- ring, striped, zigzag: forward sum over s = 0..P-2 of 2 kv(r - s); backward adds the
// dK, dV shares, sum over s = 1..P-1 of 2 kv(r - s) ----
CommVolume ring_forward(const AttentionProblem& p, int ranks, int rank) {
  int64_t bytes = 0;
  for (int s = 0; s + 1 < ranks; ++s) bytes += 2 * kv_bytes(p, ranks, (rank - s + ranks) % ranks);
  return volume(CommOp::kExchange, ranks - 1, bytes);
}

CommVolume ring_backward(const AttentionProblem& p, int ranks, int rank) {
  CommVolume v = ring_forward(p, ranks, rank);
  int64_t shares = 0;
  for (int s = 1; s < ranks; ++s) shares += 2 * kv_bytes(p, ranks, (rank - s + ranks) % ranks);
  v += volume(CommOp::kExchange, ranks - 1, shares);
  return v;
}

// ---- lightseq (runtime/schemes/lightseq.cpp's comment), per step t >= 1 ----
struct ShardBytes {
  int64_t q, q_f32, kv, lse;
};

ShardBytes shard_bytes(const AttentionProblem& p, int ranks, int rank) {
  const int64_t local = BalancedSplit{p.seq, ranks}.size(rank);
  const int64_t q_elems = p.batch * local * p.heads_q * p.head_dim;
  return {q_elems * e_of(p), q_elems * 4, p.batch * local * p.heads_kv * p.head_dim * e_of(p),
          p.batch * p.heads_q * local * 4};
}

CommVolume lightseq_forward(const AttentionProblem& p, int ranks, int rank) {
  const LightSeqSchedule pairs = lightseq_schedule(ranks);
  const ShardBytes own = shard_bytes(p, ranks, rank);
  CommVolume v;
  for (int t = 1; t < static_cast<int>(pairs.steps.size()); ++t) {
    const LightSeqRankStep& s = pairs.at(t, rank);
    ++v[CommOp::kExchange];  // the step's inputs
    if (s.kv_to >= 0) v.bytes_sent += 2 * own.kv;
    if (s.q_to >= 0) {  // our queries out; the helper's (O, LSE) back in a results exchange
      v.bytes_sent += own.q;
      ++v[CommOp::kExchange];
    }
    if (s.q_from >= 0) {  // helping: the (O, LSE) of the helped rank's queries back in fp32
      const ShardBytes helped = shard_bytes(p, ranks, s.q_from);
      v.bytes_sent += helped.q_f32 + helped.lse;
      ++v[CommOp::kExchange];
    }
  }
  return v;
}

CommVolume lightseq_backward(const AttentionProblem& p, int ranks, int rank) {
  const LightSeqSchedule pairs = lightseq_schedule(ranks);
  const ShardBytes own = shard_bytes(p, ranks, rank);
  CommVolume v;
  // Every step t >= 1 moves inputs and results for every rank (a rank either sends or receives
  // K/V, so it also receives or sends a dK/dV share).
  for (int t = 1; t < static_cast<int>(pairs.steps.size()); ++t) {
    const LightSeqRankStep& s = pairs.at(t, rank);
    v[CommOp::kExchange] += 2;
    if (s.kv_to >= 0) v.bytes_sent += 2 * own.kv;
    if (s.q_to >= 0) v.bytes_sent += 2 * own.q + 2 * own.lse;  // Q, dO, LSE, delta
    if (s.q_from >= 0) {
      v.bytes_sent += shard_bytes(p, ranks, s.q_from).q;  // the helped rank's dQ share
    } else if (s.kv_from >= 0) {
      v.bytes_sent += 2 * shard_bytes(p, ranks, s.kv_from).kv;  // dK, dV share of its block
    }
  }
  return v;
}

// ---- ulysses and hybrid's group all-to-alls: with t this rank's tokens, G the tokens of its
// group (all for Ulysses), (q_r, kv_r) its head slice of split_heads(Hq, Hkv, U), K = max(Hkv,
// U), row = D * e:
//   forward in   t row ((Hq - q_r) + 2 (K - kv_r))        out  (G - t) q_r (row + 4)
//   backward in  Ulysses t row (2 (Hq - q_r) + 2 (K - kv_r)) + 8 t (Hq - q_r)
//                hybrid  t row (3 (Hq - q_r) + 2 (K - kv_r)) + 4 t (Hq - q_r)
//   backward out (G - t) row (q_r + 2 kv_r) ----
struct HeadTerms {
  int64_t q = 0, kv = 0, kv_all = 0, tokens = 0, group_tokens = 0, row = 0;
};

bool head_terms(const AttentionProblem& p, int group_size, int place, int64_t tokens,
                int64_t group_tokens, HeadTerms* terms) {
  StatusOr<std::vector<HeadSlice>> slices = split_heads(p.heads_q, p.heads_kv, group_size);
  if (!slices.is_ok()) return false;
  const HeadSlice& mine = slices.value()[static_cast<size_t>(place)];
  *terms = {mine.q_count, mine.kv_count, std::max<int64_t>(p.heads_kv, group_size),
            tokens,       group_tokens,  p.head_dim * e_of(p)};
  return true;
}

CommVolume heads_forward(const AttentionProblem& p, const HeadTerms& h) {
  const int64_t in = h.tokens * h.row * ((p.heads_q - h.q) + 2 * (h.kv_all - h.kv));
  const int64_t out = (h.group_tokens - h.tokens) * h.q * (h.row + 4);
  return volume(CommOp::kAllToAll, 2, in + out);
}

CommVolume heads_backward(const AttentionProblem& p, const HeadTerms& h, bool carries_out) {
  const int64_t in = carries_out
                         ? h.tokens * h.row * (3 * (p.heads_q - h.q) + 2 * (h.kv_all - h.kv)) +
                               h.tokens * 4 * (p.heads_q - h.q)
                         : h.tokens * h.row * (2 * (p.heads_q - h.q) + 2 * (h.kv_all - h.kv)) +
                               h.tokens * 8 * (p.heads_q - h.q);
  const int64_t out = (h.group_tokens - h.tokens) * h.row * (h.q + 2 * h.kv);
  return volume(CommOp::kAllToAll, 2, in + out);
}

CommVolume ulysses_pass(const AttentionProblem& p, int ranks, int rank, bool backward) {
  HeadTerms h;
  const int64_t tokens = p.batch * BalancedSplit{p.seq, ranks}.size(rank);
  if (!head_terms(p, ranks, rank, tokens, p.batch * p.seq, &h)) return {};
  return backward ? heads_backward(p, h, false) : heads_forward(p, h);
}

// Hybrid adds its zigzag ring across the R groups on the slice's kv heads: R-1 K, V shifts
// forward, and as many dK, dV shares backward, each 2 kv with kv = B (S/R) kv_u D e.
CommVolume hybrid_pass(const AttentionProblem& p, int ranks, int ulysses, int rank, bool backward) {
  if (ulysses < 1 || ranks % ulysses != 0) return {};
  const int rings = ranks / ulysses;
  const int place = rank % ulysses;
  const int64_t group_tokens = p.batch * (p.seq / rings);
  const int64_t tokens = p.batch * BalancedSplit{p.seq / rings, ulysses}.size(place);
  HeadTerms h;
  if (!head_terms(p, ulysses, place, tokens, group_tokens, &h)) return {};
  CommVolume v = backward ? heads_backward(p, h, true) : heads_forward(p, h);
  const int64_t hops = (backward ? 2 : 1) * (rings - 1);
  v += volume(CommOp::kExchange, hops, hops * 2 * group_tokens * h.kv * h.row);
  return v;
}

// ---- tree: one all-reduce of n fp32 values, flat or node reduce-scatter + cross all-reduce +
// node all-gather of ceil(n / R) values each ----
CommVolume all_reduce(int64_t count, int ranks, int ranks_per_node) {
  if (ranks_per_node <= 1 || ranks_per_node >= ranks) {
    return volume(CommOp::kAllReduce, 1, ranks > 1 ? count * 4 : 0);
  }
  const int64_t r = ranks_per_node;
  const int64_t slice = (count + r - 1) / r;
  CommVolume v;
  v[CommOp::kReduceScatter] = 1;
  v[CommOp::kAllReduce] = 1;
  v[CommOp::kAllGather] = 1;
  v.bytes_sent = (r - 1) * slice * 4 + slice * 4 + (r - 1) * slice * 4;
  return v;
}

// The combine of `rows` (batch x seq x heads) rows of D values: max of LSE, then O and LSE.
CommVolume combine(int64_t rows, int64_t head_dim, int ranks, int ranks_per_node) {
  CommVolume v = all_reduce(rows, ranks, ranks_per_node);
  v += all_reduce(rows * head_dim + rows, ranks, ranks_per_node);
  return v;
}

// q = B S_max Hq D, s = B Hq S_max: forward all_gather Q ((P-1) q e) and the combine of P s
// rows; backward all_gather (LSE, delta, Q, dO) ((P-1) (2 s 4 + 2 q e)), reduce_scatter dQ
// ((P-1) q 4).
CommVolume tree_forward(const AttentionProblem& p, int ranks, int ranks_per_node) {
  const int64_t slot = BalancedSplit{p.seq, ranks}.max_size();
  const int64_t q = p.batch * slot * p.heads_q * p.head_dim;
  CommVolume v = volume(CommOp::kAllGather, 1, (ranks - 1) * q * e_of(p));
  v += combine(ranks * p.batch * slot * p.heads_q, p.head_dim, ranks, ranks_per_node);
  return v;
}

CommVolume tree_backward(const AttentionProblem& p, int ranks) {
  const int64_t slot = BalancedSplit{p.seq, ranks}.max_size();
  const int64_t q = p.batch * slot * p.heads_q * p.head_dim;
  const int64_t s = p.batch * p.heads_q * slot;
  CommVolume v = volume(CommOp::kAllGather, 1, (ranks - 1) * (2 * s * 4 + 2 * q * e_of(p)));
  v += volume(CommOp::kReduceScatter, 1, (ranks - 1) * q * 4);
  return v;
}

// The oracle of each scheme, by its registered name. A scheme missing here has no oracle.
struct SchemeOracle {
  const char* scheme;
  CommVolume (*forward)(const Shape& shape, int rank);
  CommVolume (*backward)(const Shape& shape, int rank);
};

constexpr SchemeOracle kOracles[] = {
    {"ring", [](const Shape& s, int r) { return ring_forward(s.problem, s.ranks, r); },
     [](const Shape& s, int r) { return ring_backward(s.problem, s.ranks, r); }},
    {"striped", [](const Shape& s, int r) { return ring_forward(s.problem, s.ranks, r); },
     [](const Shape& s, int r) { return ring_backward(s.problem, s.ranks, r); }},
    {"zigzag", [](const Shape& s, int r) { return ring_forward(s.problem, s.ranks, r); },
     [](const Shape& s, int r) { return ring_backward(s.problem, s.ranks, r); }},
    {"lightseq", [](const Shape& s, int r) { return lightseq_forward(s.problem, s.ranks, r); },
     [](const Shape& s, int r) { return lightseq_backward(s.problem, s.ranks, r); }},
    {"ulysses", [](const Shape& s, int r) { return ulysses_pass(s.problem, s.ranks, r, false); },
     [](const Shape& s, int r) { return ulysses_pass(s.problem, s.ranks, r, true); }},
    {"hybrid",
     [](const Shape& s, int r) { return hybrid_pass(s.problem, s.ranks, s.ulysses, r, false); },
     [](const Shape& s, int r) { return hybrid_pass(s.problem, s.ranks, s.ulysses, r, true); }},
    // Every rank of the tree sends the same; its backward is flat.
    {"tree", [](const Shape& s, int) { return tree_forward(s.problem, s.ranks, s.ranks_per_node); },
     [](const Shape& s, int) { return tree_backward(s.problem, s.ranks); }},
};

const SchemeOracle* oracle_of(SchemeKind scheme) {
  for (const SchemeOracle& o : kOracles) {
    if (std::string_view(o.scheme) == scheme_name(scheme)) return &o;
  }
  return nullptr;
}

}  // namespace

bool has_oracle(SchemeKind scheme) { return oracle_of(scheme) != nullptr; }

CommVolume forward(SchemeKind scheme, const Shape& s, int rank) {
  const SchemeOracle* o = oracle_of(scheme);
  return o != nullptr ? o->forward(s, rank) : CommVolume{};
}

CommVolume backward(SchemeKind scheme, const Shape& s, int rank) {
  const SchemeOracle* o = oracle_of(scheme);
  return o != nullptr ? o->backward(s, rank) : CommVolume{};
}

// Tree: the combine of B n rows, independent of the cache. Ring: P-1 hops, at hop h the block of
// rank r - h: 2 B len(r - h) Hkv D e, len from the cache's rule (the prompt's balanced runs, then
// token t >= S on rank t mod P).
CommVolume decode_step(DecoderKind decoder, const Shape& s, int64_t q_len, int64_t cache_length,
                       int rank) {
  const AttentionProblem& p = s.problem;
  if (decoder == DecoderKind::kTree) {
    return combine(p.batch * q_len * p.heads_q, p.head_dim, s.ranks, s.ranks_per_node);
  }
  auto tokens_of = [&](int r) {
    int64_t n = BalancedSplit{p.seq, s.ranks}.size(r);
    for (int64_t t = p.seq; t < cache_length; ++t) n += t % s.ranks == r ? 1 : 0;
    return n;
  };
  int64_t bytes = 0;
  for (int hop = 0; hop + 1 < s.ranks; ++hop) {
    bytes += 2 * p.batch * tokens_of((rank - hop + s.ranks) % s.ranks) * p.heads_kv * p.head_dim *
             e_of(p);
  }
  return volume(CommOp::kExchange, s.ranks - 1, bytes);
}

}  // namespace seqpar::oracle
