#pragma once
// The registry: each scheme and decoder described in one place, its own file under
// runtime/schemes/, and listed once in runtime/schemes.def. Everything that differs between
// schemes goes through a descriptor: Plan::create (layout, rules, creation), the communication
// each rank must count (its schedule), the cost model (its schedule and workspace) and the
// launcher's candidates. No other code switches over the schemes.
#include <memory>
#include <vector>

#include "runtime/decoder.hpp"
#include "runtime/problem.hpp"
#include "runtime/schedule.hpp"
#include "runtime/scheme.hpp"

namespace seqpar {

// A descriptor is initialised positionally, in field order. Beyond name and summary no two
// fields share a type (and neither a nullptr nor a bool converts to the other), so a field out of
// place does not compile; a null where a function is required fails
// SchemeRegistry.EverySchemeIsComplete.
struct SchemeDescriptor {
  const char* name;     // --scheme, JSON, messages
  const char* summary;  // one line for --help and the docs: layout, rules, when it wins
  // The token layout of each rank's shards under `config` on `ranks` ranks (the hybrid's carries
  // its U x R grid). Fails, naming the rule, when the sequence does not split as it needs.
  StatusOr<Layout> (*layout)(const PlanConfig& config, int ranks);
  // The scheme's rules beyond validate_problem's (null: none). No communication: every rank
  // reaches the same verdict.
  Status (*validate)(const PlanConfig& config, int ranks);
  // The Ulysses degrees U (ranks per head-sharded group, R = P / U) of the launcher's candidates
  // on `ranks` ranks: {1} for the sequence schemes, {P} for Ulysses, every divisor for the hybrid.
  std::vector<int> (*candidate_degrees)(int ranks);
  // Whether PlanConfig::ulysses_degree picks the grid (the hybrid): candidates show U x R.
  bool takes_ulysses_degree;
  // Builds the scheme with its workspace; collective over context.comm when it splits it.
  StatusOr<std::unique_ptr<Scheme>> (*create)(const SchemeContext& context);
  // What create() allocates for `rank` (context.comm may be null): Scheme::workspace_bytes().
  StatusOr<size_t> (*workspace_bytes)(const SchemeContext& context, int rank);
  // Its steps in `pass` for every rank (context.comm may be null). Fails, and describes nothing
  // usable, on a context validate_problem refuses.
  Status (*schedule)(const SchemeContext& context, Pass pass, ScheduleSink& out);
};

struct DecoderDescriptor {
  const char* name;  // --scheme under --phase decode
  const char* summary;
  // The decoder's rules beyond DecodePlan::validate's (null: none); no communication.
  Status (*validate)(const DecodeConfig& config, int ranks);
  StatusOr<std::unique_ptr<Decoder>> (*create)(const DecodeContext& context);
  StatusOr<size_t> (*workspace_bytes)(const DecodeContext& context, int rank);
  // One decoding step over a cache of `cache_length` tokens (the new ones included).
  Status (*schedule)(const DecodeContext& context, int64_t cache_length, ScheduleSink& out);
};

// Parts several descriptors share.
template <LayoutKind kind>
StatusOr<Layout> layout_of_kind(const PlanConfig& config, int ranks) {
  return Layout::make(kind, config.problem.seq, ranks);
}
std::vector<int> no_ulysses_degrees(int ranks);  // {1}: no head-sharded groups

// The descriptor of a registered value (is_registered); an unregistered one aborts, naming it.
const SchemeDescriptor& scheme_descriptor(SchemeKind scheme);
const DecoderDescriptor& decoder_descriptor(DecoderKind decoder);

// Each rank's calls and bytes in `pass` of the scheme of `context` (its schedule, summed).
StatusOr<std::vector<CommVolume>> scheme_comm(const SchemeContext& context, Pass pass);
// Each rank's calls and bytes in one decoding step over `cache_length` tokens.
StatusOr<std::vector<CommVolume>> decoder_comm(const DecodeContext& context, int64_t cache_length);

}  // namespace seqpar
