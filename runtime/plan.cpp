// Plan creation (agreement across ranks, validation, workspace) and the checked entry points.
#include "runtime/plan.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/log.hpp"
#include "runtime/agreement.hpp"
#include "runtime/finite_check.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

constexpr int64_t kMinHeadDim = 8;
constexpr int64_t kMaxHeadDim = 256;
constexpr int64_t kMaxElements = int64_t{1} << 56;  // per global tensor; bytes stay far from 2^63

// The tensors the finite check reads, by their names in its messages (the device check's records
// are indexed by these).
enum CheckedSlot : int { kQ = 0, kK, kV, kDout, kDq, kDk, kDv, kCheckedTensors };
constexpr const char* kCheckedNames[kCheckedTensors] = {
    "Q", "K", "V", "dO", "backward's dQ", "backward's dK", "backward's dV"};

// The config values every rank must agree on, exchanged once per plan. PlanConfig::backward is
// not one: forward runs the same on a forward-only rank (only the arena's backward regions are
// empty), and a backward fails at once on a forward-only rank and aborts the group, so a
// disagreement cannot leave a rank waiting; check_finite and the stream are per rank too.
Fingerprint fingerprint_of(const PlanConfig& c, int ranks) {
  Fingerprint f;
  f.add("ranks", ranks);
  f.add("scheme", static_cast<int64_t>(c.scheme));
  f.add_problem(c.problem);
  f.add("device", static_cast<int64_t>(c.device));
  f.add("ranks_per_node", c.ranks_per_node);
  f.add("ulysses_degree", c.ulysses_degree);
  return f;
}

}  // namespace

Status validate_attention_problem(const AttentionProblem& p) {
  SEQPAR_REQUIRE(p.batch >= 1 && p.seq >= 1 && p.heads_q >= 1 && p.heads_kv >= 1,
                 StatusCode::kInvalidArgument,
                 "batch, seq, heads and kv-heads must be positive (got ", p.batch, ", ", p.seq,
                 ", ", p.heads_q, ", ", p.heads_kv, ")");
  SEQPAR_REQUIRE(p.heads_q % p.heads_kv == 0, StatusCode::kInvalidArgument, "heads (", p.heads_q,
                 ") must be a multiple of kv-heads (", p.heads_kv,
                 "): each kv head serves an equal group of query heads");
  SEQPAR_REQUIRE(p.head_dim >= kMinHeadDim && p.head_dim <= kMaxHeadDim && p.head_dim % 8 == 0,
                 StatusCode::kInvalidArgument, "head dim ", p.head_dim,
                 " is unsupported: it must be a multiple of 8 from ", kMinHeadDim, " to ",
                 kMaxHeadDim);
  SEQPAR_REQUIRE(is_storage_dtype(p.dtype), StatusCode::kInvalidArgument, "dtype ",
                 dtype_name(p.dtype), " is not a storage dtype (fp32, bf16, fp16)");
  int64_t elements = 0;  // of the largest global tensor, (B, S, max(Hq, Hkv), D)
  const bool overflow =
      __builtin_mul_overflow(p.batch, p.seq, &elements) ||
      __builtin_mul_overflow(elements, std::max(p.heads_q, p.heads_kv), &elements) ||
      __builtin_mul_overflow(elements, p.head_dim, &elements);
  SEQPAR_REQUIRE(!overflow && elements <= kMaxElements, StatusCode::kInvalidArgument,
                 "problem too large: B*S*H*D of (", p.batch, ", ", p.seq, ", ",
                 std::max(p.heads_q, p.heads_kv), ", ", p.head_dim, ") exceeds 2^56 elements");
  SEQPAR_REQUIRE(p.softmax_scale >= 0.0f && std::isfinite(p.softmax_scale),
                 StatusCode::kInvalidArgument,
                 "softmax scale must be finite and >= 0 (0 means 1/sqrt(D))");
  return Status::ok();
}

StatusOr<Layout> plan_layout(const PlanConfig& config, int ranks) {
  SEQPAR_RETURN_IF_ERROR(check_registered(config.scheme));
  return scheme_descriptor(config.scheme).layout(config, ranks);
}

Status validate_ranks_per_node(int ranks_per_node, int ranks) {
  SEQPAR_REQUIRE(ranks_per_node >= 0 && (ranks_per_node == 0 || ranks % ranks_per_node == 0),
                 StatusCode::kInvalidArgument, "ranks per node (", ranks_per_node,
                 ") must divide the ", ranks, " ranks (0: all ranks on one node)");
  return Status::ok();
}

Status validate_problem(const PlanConfig& config, int ranks) {
  SEQPAR_RETURN_IF_ERROR(validate_attention_problem(config.problem));
  SEQPAR_RETURN_IF_ERROR(validate_ranks_per_node(config.ranks_per_node, ranks));
  SEQPAR_RETURN_IF_ERROR(check_registered(config.scheme));
  SEQPAR_RETURN_IF_ERROR(
      block_kernels_support(config.device, config.problem.dtype, config.problem.head_dim));
  const SchemeDescriptor& scheme = scheme_descriptor(config.scheme);
  SEQPAR_RETURN_IF_ERROR(scheme.layout(config, ranks).status());
  return scheme.validate ? scheme.validate(config, ranks) : Status::ok();
}

StatusOr<std::unique_ptr<Plan>> Plan::create(const PlanConfig& requested, Communicator& comm) {
  if (log_rank() < 0) set_log_rank(comm.rank());  // errors name the rank in embedded use too
  PlanConfig config = requested;
  if (config.problem.softmax_scale == 0.0f && config.problem.head_dim > 0) {
    config.problem.softmax_scale = 1.0f / std::sqrt(static_cast<float>(config.problem.head_dim));
  }
  SEQPAR_RETURN_IF_ERROR(check_ranks_agree(fingerprint_of(config, comm.size()), comm));
  // Configs are equal on every rank now, so every rank reaches the same verdict here.
  SEQPAR_REQUIRE(comm.device_memory() == (config.device == Device::kCuda),
                 StatusCode::kInvalidArgument, "the ", comm.backend_name(), " backend moves ",
                 comm.device_memory() ? "device" : "host", " memory but the plan's tensors are on ",
                 device_name(config.device));
  SEQPAR_RETURN_IF_ERROR(validate_problem(config, comm.size()));

  if (config.device == Device::kCuda) {
    // The plan's kernels, elementwise work and transfers all follow its stream.
    SEQPAR_RETURN_IF_ERROR(comm.set_stream(config.stream));
  }

  const SchemeDescriptor& descriptor = scheme_descriptor(config.scheme);
  SEQPAR_ASSIGN_OR_RETURN(Layout layout, descriptor.layout(config, comm.size()));
  SchemeContext context{config.problem, config.scheme, std::move(layout),     &comm,
                        config.device,  config.stream, config.ranks_per_node, config.backward};
  // The schedules depend on the agreed config alone: every rank gets the same verdict.
  const auto mine = static_cast<size_t>(comm.rank());
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<CommVolume> forward,
                          scheme_comm(context, Pass::kForward));
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<CommVolume> backward,
                          scheme_comm(context, Pass::kBackward));
  StatusOr<std::unique_ptr<Scheme>> scheme = descriptor.create(context);
  Status made = scheme.status();
  std::unique_ptr<DeviceFiniteCheck> device_check;
  if (made.is_ok() && config.check_finite && config.device == Device::kCuda) {
    const ShardSizes own = ShardSizes::of_rank(context, comm.rank());
    std::array<CheckedTensor, kCheckedTensors> tensors{};
    for (const CheckedSlot slot : {kQ, kDout, kDq}) {
      tensors[slot] = {kCheckedNames[slot], own.q_elems};
    }
    for (const CheckedSlot slot : {kK, kV, kDk, kDv}) {
      tensors[slot] = {kCheckedNames[slot], own.kv_elems};
    }
    StatusOr<std::unique_ptr<DeviceFiniteCheck>> check =
        DeviceFiniteCheck::create(config.stream, config.problem.dtype, tensors);
    made = check.status();
    if (made.is_ok()) device_check = std::move(check).value();
  }
  SEQPAR_RETURN_IF_ERROR(
      agree_across_ranks(made, comm, "create their plan"));  // e.g. out of memory
  const bool check_finite = config.check_finite && config.device == Device::kHost;
  return std::unique_ptr<Plan>(new Plan(std::move(context), std::move(scheme).value(), check_finite,
                                        std::move(device_check), forward[mine], backward[mine]));
}

Plan::Plan(SchemeContext context, std::unique_ptr<Scheme> scheme, bool check_finite,
           std::unique_ptr<DeviceFiniteCheck> device_check, CommVolume forward_comm,
           CommVolume backward_comm)
    : context_(std::move(context)),
      scheme_(std::move(scheme)),
      check_finite_(check_finite),
      device_check_(std::move(device_check)),
      forward_comm_(forward_comm),
      backward_comm_(backward_comm) {}

Plan::~Plan() = default;

CommStats Plan::comm_stats() const { return stats_with(*context_.comm, scheme_->subgroups()); }

void Plan::reset_comm_stats() { reset_stats_with(*context_.comm, scheme_->subgroups()); }

Status Plan::fail_group_on_error(Status status) {
  if (!status.is_ok() && status.code() != StatusCode::kAborted) context_.comm->abort(status);
  return status;
}

Status Plan::check_inputs(const void* q, const void* k, const void* v, const void* dout) {
  if (device_check_) {
    // Earlier steps' verdict first: a failure the device has reported fails this step before
    // any of its work.
    SEQPAR_RETURN_IF_ERROR(device_check_->poll());
    const auto kind = dout == nullptr ? DeviceFiniteCheck::StepKind::kForward
                                      : DeviceFiniteCheck::StepKind::kBackward;
    SEQPAR_RETURN_IF_ERROR(device_check_->begin_step(steps_, kind));
    SEQPAR_RETURN_IF_ERROR(device_check_->count(kQ, q));
    SEQPAR_RETURN_IF_ERROR(device_check_->count(kK, k));
    SEQPAR_RETURN_IF_ERROR(device_check_->count(kV, v));
    return dout == nullptr ? Status::ok() : device_check_->count(kDout, dout);
  }
  if (!check_finite_) return Status::ok();
  const ShardSizes own = ShardSizes::of_rank(context_, context_.comm->rank());
  const DType dt = context_.problem.dtype;
  SEQPAR_RETURN_IF_ERROR(require_finite(q, dt, own.q_elems, kCheckedNames[kQ]));
  SEQPAR_RETURN_IF_ERROR(require_finite(k, dt, own.kv_elems, kCheckedNames[kK]));
  SEQPAR_RETURN_IF_ERROR(require_finite(v, dt, own.kv_elems, kCheckedNames[kV]));
  return dout == nullptr ? Status::ok()
                         : require_finite(dout, dt, own.q_elems, kCheckedNames[kDout]);
}

Status Plan::check_gradients(const BackwardArgs& args) {
  if (device_check_) {
    SEQPAR_RETURN_IF_ERROR(device_check_->count(kDq, args.dq));
    SEQPAR_RETURN_IF_ERROR(device_check_->count(kDk, args.dk));
    return device_check_->count(kDv, args.dv);
  }
  if (!check_finite_) return Status::ok();
  const ShardSizes own = ShardSizes::of_rank(context_, context_.comm->rank());
  const DType dt = context_.problem.dtype;
  SEQPAR_RETURN_IF_ERROR(require_finite(args.dq, dt, own.q_elems, kCheckedNames[kDq]));
  SEQPAR_RETURN_IF_ERROR(require_finite(args.dk, dt, own.kv_elems, kCheckedNames[kDk]));
  return require_finite(args.dv, dt, own.kv_elems, kCheckedNames[kDv]);
}

Status Plan::finish_device_check() {
  return device_check_ ? device_check_->end_step() : Status::ok();
}

Status Plan::finite_check_result() {
  return device_check_ ? fail_group_on_error(device_check_->wait(context_.comm->timeout()))
                       : Status::ok();
}

Status Plan::forward(const ForwardArgs& args) {
  ++steps_;
  const bool complete = args.q && args.k && args.v && args.out && args.lse;
  if (!complete) {
    return fail_group_on_error(
        SEQPAR_FAIL(StatusCode::kInvalidArgument, "forward needs q, k, v, out and lse"));
  }
  Status status = check_inputs(args.q, args.k, args.v, nullptr);
  if (status.is_ok()) status = scheme_->forward(args);
  if (status.is_ok()) status = finish_device_check();
  return fail_group_on_error(std::move(status));
}

Status Plan::backward(const BackwardArgs& args) {
  ++steps_;
  if (!context_.backward) {
    return fail_group_on_error(
        SEQPAR_FAIL(StatusCode::kInvalidArgument,
                    "backward: this plan was made forward-only (PlanConfig::backward = false)"));
  }
  const bool complete = args.q && args.k && args.v && args.out && args.lse && args.dout &&
                        args.dq && args.dk && args.dv;
  if (!complete) {
    return fail_group_on_error(SEQPAR_FAIL(
        StatusCode::kInvalidArgument, "backward needs q, k, v, out, lse, dout, dq, dk and dv"));
  }
  Status status = check_inputs(args.q, args.k, args.v, args.dout);
  if (status.is_ok()) status = scheme_->backward(args);
  if (status.is_ok()) status = check_gradients(args);
  if (status.is_ok()) status = finish_device_check();
  return fail_group_on_error(std::move(status));
}

}  // namespace seqpar
