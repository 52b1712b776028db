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
//
// PlanConfig::check_finite: a host plan checks a step's inputs before it and its gradients after
// it, synchronously, and the failing step itself returns the error. A device plan checks the same
// tensors with kernels on its stream and never waits for them inside a step: each step's report
// is copied to pinned host memory behind an event, and the check's verdict is
//   - returned by the first forward() or backward() that starts once the device has finished
//     the failing step's report (the next call when the device keeps up, the one after when it
//     runs a step behind the host: the report alternates between two host copies; later when it
//     runs further behind), which fails before any of its own work;
//   - returned, waiting for the device, by finite_check_result(), the one explicit host wait
//     (call it at the end of a loop, before trusting a step's outputs, or in tests).
// Both fail with kInvalidArgument naming the tensor, the step it came from, the first non-finite
// element and the count, and abort the group; the verdict then stays, every later call
// returning it.
#include <memory>

#include "comm/communicator.hpp"
#include "partition/layout.hpp"
#include "runtime/problem.hpp"
#include "runtime/schedule.hpp"
#include "runtime/scheme.hpp"

namespace seqpar {

class DeviceFiniteCheck;  // runtime/finite_check.hpp

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

  // The finite check's verdict on every step so far (PlanConfig::check_finite; ok when it is
  // off). On a device plan it waits on the host for the device's last report (cudaEventSynchronize)
  // and, when a step held a NaN or Inf, fails as that step would have (aborting the group: call
  // it on every rank, or expect the others' next collective call to fail kAborted). On a host
  // plan it returns ok: its checks are synchronous, so a failing step has already said so.
  Status finite_check_result();

  ~Plan();

 private:
  Status fail_group_on_error(Status status);
  // PlanConfig::check_finite: this rank's inputs (a NaN in them need not reach the outputs: the
  // kernels' fast exp can turn it into a finite wrong value) and, after backward, the gradients
  // (an overflow of a 16-bit storage dtype). On a device plan check_inputs first takes the
  // verdict of earlier steps' reports, then enqueues this step's counts, and
  // finish_device_check enqueues the step's report (see the top of this file).
  Status check_inputs(const void* q, const void* k, const void* v, const void* dout);
  Status check_gradients(const BackwardArgs& args);
  Status finish_device_check();
  Plan(SchemeContext context, std::unique_ptr<Scheme> scheme, bool check_finite,
       std::unique_ptr<DeviceFiniteCheck> device_check, CommVolume forward_comm,
       CommVolume backward_comm);
  SchemeContext context_;
  std::unique_ptr<Scheme> scheme_;
  bool check_finite_ = true;                         // PlanConfig::check_finite, on a host plan
  std::unique_ptr<DeviceFiniteCheck> device_check_;  // PlanConfig::check_finite, on a device plan
  uint64_t steps_ = 0;       // forward and backward calls so far: the step a report names
  CommVolume forward_comm_;  // this rank's share of the scheme's schedule, per pass
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
