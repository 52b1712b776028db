// Plan creation (agreement across ranks, validation, workspace) and the checked entry points.
#include "runtime/plan.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/ring_attention.hpp"

namespace seqpar {
namespace {

constexpr int64_t kMinHeadDim = 8;
constexpr int64_t kMaxHeadDim = 256;

// The config values every rank must agree on, exchanged once per plan.
struct Fingerprint {
  static constexpr int kFields = 11;
  static constexpr const char* kNames[kFields] = {
      "ranks", "scheme", "batch", "seq", "heads", "kv_heads", "head_dim", "mask", "dtype",
      "softmax_scale (bits)", "device"};
  int64_t values[kFields];
};

Fingerprint fingerprint_of(const PlanConfig& c, int ranks) {
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &c.problem.softmax_scale, sizeof(scale_bits));
  const AttentionProblem& p = c.problem;
  return {{ranks, static_cast<int64_t>(c.scheme), p.batch, p.seq, p.heads_q, p.heads_kv, p.head_dim,
           static_cast<int64_t>(p.mask), static_cast<int64_t>(p.dtype), int64_t{scale_bits},
           static_cast<int64_t>(c.device)}};
}

// Every rank learns whether all ranks hold the same config; a mismatch names the field.
Status check_ranks_agree(const PlanConfig& config, Communicator& comm) {
  const Fingerprint mine = fingerprint_of(config, comm.size());
  std::vector<Fingerprint> all(static_cast<size_t>(comm.size()));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(&mine, all.data(), sizeof(Fingerprint)));
  for (int r = 1; r < comm.size(); ++r) {
    for (int f = 0; f < Fingerprint::kFields; ++f) {
      const int64_t first = all[0].values[f];
      const int64_t other = all[static_cast<size_t>(r)].values[f];
      SEQPAR_REQUIRE(first == other, StatusCode::kMismatch, "ranks disagree on the plan: ",
                     Fingerprint::kNames[f], " is ", first, " on rank 0 but ", other, " on rank ", r);
    }
  }
  return Status::ok();
}

// Every rank learns whether any rank failed `local`; the failing ranks keep their own error.
Status agree_on_success(const Status& local, Communicator& comm) {
  int32_t failed = local.is_ok() ? 0 : 1;
  std::vector<int32_t> all(static_cast<size_t>(comm.size()));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(&failed, all.data(), sizeof(failed)));
  if (!local.is_ok()) return local;
  for (int r = 0; r < comm.size(); ++r) {
    SEQPAR_REQUIRE(all[static_cast<size_t>(r)] == 0, StatusCode::kAborted, "rank ", r,
                   " failed to create its plan (see its error)");
  }
  return Status::ok();
}

}  // namespace

Status validate_problem(const PlanConfig& config, int ranks) {
  const AttentionProblem& p = config.problem;
  SEQPAR_REQUIRE(p.batch >= 1 && p.seq >= 1 && p.heads_q >= 1 && p.heads_kv >= 1,
                 StatusCode::kInvalidArgument, "batch, seq, heads and kv-heads must be positive (got ",
                 p.batch, ", ", p.seq, ", ", p.heads_q, ", ", p.heads_kv, ")");
  SEQPAR_REQUIRE(p.heads_q % p.heads_kv == 0, StatusCode::kInvalidArgument, "heads (", p.heads_q,
                 ") must be a multiple of kv-heads (", p.heads_kv,
                 "): each kv head serves an equal group of query heads");
  SEQPAR_REQUIRE(p.head_dim >= kMinHeadDim && p.head_dim <= kMaxHeadDim && p.head_dim % 8 == 0,
                 StatusCode::kInvalidArgument, "head dim ", p.head_dim,
                 " is unsupported: it must be a multiple of 8 from ", kMinHeadDim, " to ", kMaxHeadDim);
  SEQPAR_REQUIRE(is_storage_dtype(p.dtype), StatusCode::kInvalidArgument, "dtype ",
                 dtype_name(p.dtype), " is not a storage dtype (fp32, bf16, fp16)");
  SEQPAR_REQUIRE(p.softmax_scale >= 0.0f && std::isfinite(p.softmax_scale),
                 StatusCode::kInvalidArgument, "softmax scale must be finite and >= 0 (0 means 1/sqrt(D))");
  return Layout::make(scheme_layout(config.scheme), p.seq, ranks).status();
}

StatusOr<std::unique_ptr<Plan>> Plan::create(const PlanConfig& config, Communicator& comm) {
  SEQPAR_RETURN_IF_ERROR(check_ranks_agree(config, comm));
  // Configs are equal on every rank now, so every rank reaches the same verdict here.
  SEQPAR_RETURN_IF_ERROR(validate_problem(config, comm.size()));
  SEQPAR_REQUIRE(comm.device_memory() == (config.device == Device::kCuda), StatusCode::kInvalidArgument,
                 "the ", comm.backend_name(), " backend moves ",
                 comm.device_memory() ? "device" : "host", " memory but the plan's tensors are on ",
                 device_name(config.device));

  SchemeContext context{config.problem, config.scheme,
                        Layout::make(scheme_layout(config.scheme), config.problem.seq, comm.size()).value(),
                        &comm, config.device, config.stream};
  if (context.problem.softmax_scale == 0.0f) {
    context.problem.softmax_scale = 1.0f / std::sqrt(static_cast<float>(context.problem.head_dim));
  }
  StatusOr<std::unique_ptr<Scheme>> scheme = RingAttention::create(context);
  SEQPAR_RETURN_IF_ERROR(agree_on_success(scheme.status(), comm));  // e.g. out of memory on one rank
  return std::unique_ptr<Plan>(new Plan(std::move(context), std::move(scheme).value()));
}

CommVolume Plan::expected_forward_comm() const {
  return seqpar::expected_forward_comm(context_.kind, context_.problem, context_.comm->size());
}

CommVolume Plan::expected_backward_comm() const {
  return seqpar::expected_backward_comm(context_.kind, context_.problem, context_.comm->size());
}

Status Plan::forward(const ForwardArgs& args) {
  SEQPAR_REQUIRE(args.q && args.k && args.v && args.out && args.lse, StatusCode::kInvalidArgument,
                 "forward needs q, k, v, out and lse");
  Status status = scheme_->forward(args);
  if (!status.is_ok() && status.code() != StatusCode::kAborted) context_.comm->abort(status);
  return status;
}

Status Plan::backward(const BackwardArgs& args) {
  SEQPAR_REQUIRE(args.q && args.k && args.v && args.out && args.lse && args.dout && args.dq &&
                     args.dk && args.dv,
                 StatusCode::kInvalidArgument, "backward needs q, k, v, out, lse, dout, dq, dk and dv");
  Status status = scheme_->backward(args);
  if (!status.is_ok() && status.code() != StatusCode::kAborted) context_.comm->abort(status);
  return status;
}

}  // namespace seqpar
