// DecodePlan: agreement, validation, the cache and the decoder; the checked step.
#include "runtime/decode_plan.hpp"

#include <cmath>
#include <utility>

#include "core/log.hpp"
#include "runtime/agreement.hpp"
#include "runtime/plan.hpp"
#include "runtime/scheme_registry.hpp"

namespace seqpar {
namespace {

// The config values every rank must agree on, exchanged once per plan.
Fingerprint fingerprint_of(const DecodeConfig& c, int ranks) {
  Fingerprint f;
  f.add("ranks", ranks);
  f.add("decoder", static_cast<int64_t>(c.decoder));
  f.add_problem(c.problem);
  f.add("q_len", c.q_len);
  f.add("capacity", c.capacity);
  f.add("device", static_cast<int64_t>(c.device));
  f.add("ranks_per_node", c.ranks_per_node);
  return f;
}

}  // namespace

DecodeConfig DecodePlan::resolved(const DecodeConfig& requested) {
  DecodeConfig config = requested;
  AttentionProblem& p = config.problem;
  if (p.softmax_scale == 0.0f && p.head_dim > 0) {
    p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  }
  if (config.capacity == 0) config.capacity = p.seq + config.q_len;
  p.mask = MaskKind::kCausal;  // what the decoders run, whatever the caller set
  return config;
}

Status DecodePlan::validate(const DecodeConfig& requested, int ranks) {
  const DecodeConfig config = resolved(requested);
  const AttentionProblem& p = config.problem;
  SEQPAR_RETURN_IF_ERROR(check_registered(config.decoder));
  SEQPAR_RETURN_IF_ERROR(validate_attention_problem(p));
  SEQPAR_REQUIRE(config.q_len >= 1, StatusCode::kInvalidArgument,
                 "a decoding step needs at least one new token (q_len ", config.q_len, ")");
  SEQPAR_REQUIRE(p.seq >= ranks, StatusCode::kInvalidArgument, "the KV cache's prompt of ", p.seq,
                 " tokens is shorter than the ", ranks,
                 " ranks (every shard needs at least one token)");
  SEQPAR_REQUIRE(config.capacity >= p.seq + config.q_len, StatusCode::kInvalidArgument,
                 "the KV cache's capacity (", config.capacity, ") does not hold the prompt (",
                 p.seq, ") and one step of ", config.q_len, " tokens");
  SEQPAR_RETURN_IF_ERROR(validate_ranks_per_node(config.ranks_per_node, ranks));
  SEQPAR_RETURN_IF_ERROR(block_kernels_support(config.device, p.dtype, p.head_dim));
  const DecoderDescriptor& decoder = decoder_descriptor(config.decoder);
  return decoder.validate ? decoder.validate(config, ranks) : Status::ok();
}

StatusOr<std::unique_ptr<DecodePlan>> DecodePlan::create(const DecodeConfig& requested,
                                                         Communicator& comm) {
  if (log_rank() < 0) set_log_rank(comm.rank());
  const DecodeConfig config = resolved(requested);
  SEQPAR_RETURN_IF_ERROR(check_ranks_agree(fingerprint_of(config, comm.size()), comm));
  SEQPAR_RETURN_IF_ERROR(validate(config, comm.size()));  // configs are equal on every rank
  SEQPAR_REQUIRE(comm.device_memory() == (config.device == Device::kCuda),
                 StatusCode::kInvalidArgument, "the ", comm.backend_name(), " backend moves ",
                 comm.device_memory() ? "device" : "host",
                 " memory but the decoding tensors are on ", device_name(config.device));
  if (config.device == Device::kCuda) SEQPAR_RETURN_IF_ERROR(comm.set_stream(config.stream));

  DecodeContext context = DecodeContext::of(config, comm.size(), &comm);
  StatusOr<std::unique_ptr<KvCache>> cache =
      KvCache::create(context.cache, comm.rank(), comm.size(), context.target());
  SEQPAR_RETURN_IF_ERROR(agree_across_ranks(cache.status(), comm, "create their KV cache"));
  StatusOr<std::unique_ptr<Decoder>> decoder = decoder_descriptor(config.decoder).create(context);
  SEQPAR_RETURN_IF_ERROR(agree_across_ranks(decoder.status(), comm, "create their decoder"));
  return std::unique_ptr<DecodePlan>(
      new DecodePlan(std::move(context), std::move(cache).value(), std::move(decoder).value()));
}

Status DecodePlan::append(const void* k_new, const void* v_new, int64_t n) {
  SEQPAR_RETURN_IF_ERROR(cache_->append(k_new, v_new, n));
  appended_ += n;
  return Status::ok();
}

Status DecodePlan::step(const void* q, void* out, float* lse) {
  const int64_t appended = std::exchange(appended_, 0);
  Status status = q && out && lse ? Status::ok()
                                  : SEQPAR_FAIL(StatusCode::kInvalidArgument,
                                                "a decoding step needs q, out and lse");
  // The step's queries are the cache's last q_len tokens: the ones appended since the last step.
  if (status.is_ok() && appended != context_.config.q_len) {
    status = SEQPAR_FAIL(StatusCode::kInvalidArgument,
                         "a decoding step attends the q_len = ", context_.config.q_len,
                         " tokens appended since the last step, but ", appended, " were appended");
  }
  if (status.is_ok()) status = decoder_->step(q, *cache_, out, lse);
  if (!status.is_ok() && status.code() != StatusCode::kAborted) context_.comm->abort(status);
  return status;
}

StatusOr<CommVolume> DecodePlan::expected_step_comm() const {
  SEQPAR_ASSIGN_OR_RETURN(const std::vector<CommVolume> volumes,
                          decoder_comm(context_, cache_->length()));
  return volumes[static_cast<size_t>(context_.comm->rank())];
}

CommStats DecodePlan::comm_stats() const {
  return stats_with(*context_.comm, decoder_->subgroups());
}

void DecodePlan::reset_comm_stats() { reset_stats_with(*context_.comm, decoder_->subgroups()); }

}  // namespace seqpar
