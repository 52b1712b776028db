#pragma once
// A scheme's step schedule: what every rank computes and sends in one pass (a forward, a
// backward, or one decoding step), step by step. Each scheme describes its schedule once, beside
// its step loops (runtime/schemes/), and what must agree with those loops is derived from it:
//   - the calls and bytes each rank's communicators count (comm_volumes() below), which
//     Plan::expected_forward_comm() reports and seqpar-run and the tests assert;
//   - the cost model's steps, transfers and compute (model/schedule_cost.hpp);
//   - the blocks the model check times (model/efficiency_check.hpp).
// The tests hold each schedule against closed-form per-rank formulas written apart from it
// (tests/support/comm_oracles.hpp) and against the communicators' counters.
//
// Steps run in lock step: every rank finishes a step before the next begins. A step's transfers
// either overlap its compute (posted before it, waited after it) or do not (collectives,
// all-to-alls, and results sent after the compute that made them).
//
//   out.step(StepOverlap::kOverlapped);
//   out.compute(rank, {layout, rank, source, Hq, Hkv});      // queries of shard `rank` x keys
//   const Send kv{next, 2 * kv_bytes};                       // of shard `source`
//   out.exchange(rank, {&kv, 1});                            // one grouped send/recv call
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "comm/communicator.hpp"
#include "partition/layout.hpp"

namespace seqpar {

// Forward or backward: the two passes a training plan runs.
enum class Pass : int { kForward = 0, kBackward };

enum class StepOverlap : int {
  kOverlapped,  // transfers posted before the step's compute: the step costs the longer of the two
  kSerial,      // transfers after (or without) compute: the step costs their sum
};

// Ranks first, first + stride, ..., count of them: the communicator a collective runs on. Every
// group a scheme splits off is such a progression (a node, one rank per node, a hybrid's group
// or ring).
struct RankGroup {
  int first = 0;
  int count = 1;
  int stride = 1;
  int at(int i) const { return first + i * stride; }
  static RankGroup all(int ranks) { return {0, ranks, 1}; }
};

// `bytes` sent to global rank `peer`: one message of an exchange or one piece of an all-to-all.
struct Send {
  int peer = 0;
  int64_t bytes = 0;
};

// One block-kernel call: the queries of shard q_shard against the keys of shard k_shard of a
// layout the schedule declared (ScheduleSink::add_layout), on heads_q query and heads_kv kv
// heads; or, with layout kDense, q_tokens queries against k_tokens keys, every pair counted
// (decoding's new rows against a cache shard: with q_len > 1 the new rows are causal among
// themselves, which skips at most q_len * (q_len - 1) / 2 of the pairs).
struct BlockWork {
  static constexpr int kDense = -1;
  int layout = kDense;
  int q_shard = 0;
  int k_shard = 0;
  int64_t heads_q = 0;
  int64_t heads_kv = 0;
  int64_t q_tokens = 0;  // dense blocks only
  int64_t k_tokens = 0;
};

// The collectives a schedule describes, each the CommOp its communicator counts it as
// (broadcasts and barriers are never part of a step).
enum class Collective : int { kAllGather, kReduceScatter, kAllReduce };
constexpr CommOp comm_op_of(Collective collective) {
  switch (collective) {
    case Collective::kAllGather:
      return CommOp::kAllGather;
    case Collective::kReduceScatter:
      return CommOp::kReduceScatter;
    case Collective::kAllReduce:
      break;
  }
  return CommOp::kAllReduce;
}

// Receives a schedule. Schemes call it; the comm volumes, the cost model and the model check
// implement it.
class ScheduleSink {
 public:
  virtual ~ScheduleSink() = default;
  // Declares a layout blocks refer to; returns its index (0, 1, ... in declaration order).
  virtual int add_layout(const Layout& layout) = 0;
  // Starts a step; every call until the next step() belongs to it.
  virtual void step(StepOverlap overlap) = 0;
  virtual void compute(int rank, const BlockWork& block) = 0;
  // One grouped point-to-point call (Communicator::start_exchange) of `rank`: its sends, each a
  // message; empty when the call only receives.
  virtual void exchange(int rank, std::span<const Send> sends) = 0;
  // One all_to_all(_v) call of `rank` on `group`: what goes to each other member.
  virtual void all_to_all(int rank, RankGroup group, std::span<const Send> sends) = 0;
  // One all_gather, reduce_scatter or all_reduce of `rank` on `group`, `bytes` as the
  // Communicator takes it (collective_bytes_sent in comm/communicator.hpp).
  virtual void collective(int rank, Collective kind, RankGroup group, int64_t bytes) = 0;
};

// Calls per op kind and bytes sent by one rank, as its communicators count them (barriers are
// never part of a schedule).
struct CommVolume {
  std::array<int64_t, static_cast<size_t>(CommOp::kCount)> calls{};
  int64_t bytes_sent = 0;

  int64_t& operator[](CommOp op) { return calls[static_cast<size_t>(op)]; }
  int64_t operator[](CommOp op) const { return calls[static_cast<size_t>(op)]; }
  CommVolume& operator+=(const CommVolume& other);
  bool operator==(const CommVolume& other) const = default;
};

// Sums a schedule's calls and bytes per rank.
class CommVolumeSink final : public ScheduleSink {
 public:
  explicit CommVolumeSink(int ranks) : volumes_(static_cast<size_t>(ranks)) {}
  const std::vector<CommVolume>& volumes() const { return volumes_; }  // (ranks)

  int add_layout(const Layout&) override { return layouts_++; }
  void step(StepOverlap) override {}
  void compute(int, const BlockWork&) override {}
  void exchange(int rank, std::span<const Send> sends) override;
  void all_to_all(int rank, RankGroup group, std::span<const Send> sends) override;
  void collective(int rank, Collective kind, RankGroup group, int64_t bytes) override;

 private:
  void add(int rank, CommOp op, int64_t bytes);
  std::vector<CommVolume> volumes_;
  int layouts_ = 0;
};

}  // namespace seqpar
