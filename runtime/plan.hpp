#pragma once
// Plan: made once per (problem, scheme, communicator), then forward/backward run many times.
// create() is collective: every rank of `comm` calls it with its config. It checks that all
// ranks agree (a small fingerprint of the config, exchanged once), validates the problem
// against the scheme's rules, and allocates all workspace; any failure, on any rank, fails
// create() on every rank with a message naming the rank and the rule.
//
// The communicator is the caller's (adopted, not owned): a threads group, an MPI_Comm wrapped by
// make_mpi_communicator, or an ncclComm_t wrapped by make_nccl_communicator. It must outlive the
// plan. forward() and backward() are collective too, and allocate nothing.
#include <memory>

#include "comm/communicator.hpp"
#include "partition/layout.hpp"
#include "runtime/problem.hpp"
#include "runtime/schedule.hpp"
#include "runtime/scheme.hpp"

namespace seqpar {

class Plan {
 public:
  // Also sets this thread's log rank to comm.rank() when the caller has not set one.
  static StatusOr<std::unique_ptr<Plan>> create(const PlanConfig& config, Communicator& comm);

  const AttentionProblem& problem() const { return context_.problem; }  // scale resolved
  SchemeKind scheme() const { return context_.kind; }
  const Layout& layout() const { return context_.layout; }
  int64_t local_seq() const { return context_.layout.local_seq(context_.comm->rank()); }
  size_t workspace_bytes() const { return scheme_->workspace_bytes(); }
  Communicator& comm() const { return *context_.comm; }
  // What this rank's communicators count in one forward / backward: its scheme's schedule
  // (runtime/schedule.hpp), summed when the plan was made.
  const CommVolume& expected_forward_comm() const { return forward_comm_; }
  const CommVolume& expected_backward_comm() const { return backward_comm_; }
  // This rank's counters: the plan's communicator plus the subgroups its scheme split off it
  // (Scheme::subgroups), summed per op kind; what the formulas above predict.
  CommStats comm_stats() const;
  void reset_comm_stats();  // of the plan's communicator and the scheme's subgroups

  bool has_backward() const { return context_.backward; }  // PlanConfig::backward

  // Collective. Any failure, a missing tensor on one rank included, aborts the group (a partial
  // step cannot be resumed), so no rank is left waiting for it. backward() on a forward-only plan
  // (PlanConfig::backward = false) is such a failure: kInvalidArgument.
  Status forward(const ForwardArgs& args);
  Status backward(const BackwardArgs& args);

 private:
  Status fail_group_on_error(Status status);
  // PlanConfig::check_finite: this rank's inputs (a NaN in them need not reach the outputs: the
  // kernels' fast exp can turn it into a finite wrong value) and, after backward, the gradients
  // (an overflow of a 16-bit storage dtype).
  Status check_inputs(const void* q, const void* k, const void* v, const void* dout) const;
  Status check_gradients(const BackwardArgs& args) const;
  Plan(SchemeContext context, std::unique_ptr<Scheme> scheme, bool check_finite,
       CommVolume forward_comm, CommVolume backward_comm)
      : context_(std::move(context)),
        scheme_(std::move(scheme)),
        check_finite_(check_finite),
        forward_comm_(forward_comm),
        backward_comm_(backward_comm) {}
  SchemeContext context_;
  std::unique_ptr<Scheme> scheme_;
  bool check_finite_ = true;  // PlanConfig::check_finite, on a host plan
  CommVolume forward_comm_;   // this rank's share of the scheme's schedule, per pass
  CommVolume backward_comm_;
};

// The rules every problem must meet: positive sizes, Hq % Hkv == 0, a supported head dim and
// storage dtype, a finite softmax scale, and sizes far from overflow (no communication).
Status validate_attention_problem(const AttentionProblem& problem);

// Consecutive ranks per node: 0 (all on one node) or a divisor of `ranks`.
Status validate_ranks_per_node(int ranks_per_node, int ranks);

// The token layout of each rank's shards under `config` on `ranks` ranks: its scheme's (the
// hybrid's carries its U x R grid).
StatusOr<Layout> plan_layout(const PlanConfig& config, int ranks);

// validate_attention_problem, then the rules of the plan on `ranks` ranks: ranks per node, the
// scheme's layout and the scheme's own rules (no communication).
Status validate_problem(const PlanConfig& config, int ranks);

}  // namespace seqpar
