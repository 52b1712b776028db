// The C ABI's decoding plans: seqpar::DecodePlan and its KV cache behind a handle.
#include <cstring>

#include "api/c_api_support.hpp"

namespace seqpar::c_api {
namespace {

Status require_plan(const seqpar_decode_plan* plan, const char* function) {
  SEQPAR_RETURN_IF_ERROR(require_non_null(plan, function, "plan"));
  return require_non_null(plan->plan.get(), function, "plan's state");
}

// Copies this rank's rows of a whole (B, S, Hkv, D) prompt tensor into its cache storage
// (B, local_capacity, Hkv, D); the rank's prompt rows are its first local_length() rows.
void copy_prompt_rows(const KvCache& cache, int rank, const void* prompt, void* storage) {
  const KvCacheShape& shape = cache.shape();
  const size_t row = static_cast<size_t>(shape.heads_kv * shape.head_dim) * dtype_size(shape.dtype);
  const int64_t* positions = cache.positions_of(rank);
  const int64_t rows = cache.local_length_of(rank);
  const auto* from = static_cast<const char*>(prompt);
  auto* to = static_cast<char*>(storage);
  for (int64_t b = 0; b < shape.batch; ++b) {
    for (int64_t i = 0; i < rows; ++i) {
      std::memcpy(to + static_cast<size_t>(b * cache.local_capacity() + i) * row,
                  from + static_cast<size_t>(b * shape.prompt + positions[i]) * row, row);
    }
  }
}

}  // namespace
}  // namespace seqpar::c_api

extern "C" {

seqpar_status seqpar_decode_plan_create(const seqpar_decode_config* config, seqpar_comm* comm,
                                        seqpar_decode_plan** out) {
  constexpr const char* kFunction = "seqpar_decode_plan_create";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(require_non_null(out, kFunction, "out"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(comm, kFunction, "comm"));
    SEQPAR_ASSIGN_OR_RETURN(const seqpar::DecodeConfig decode_config,
                            seqpar::c_api::decode_config_from_c(config, kFunction));
    SEQPAR_ASSIGN_OR_RETURN(auto plan, seqpar::DecodePlan::create(decode_config, *comm->comm));
    auto handle = std::make_unique<seqpar_decode_plan>();
    handle->comm = comm->owned;
    handle->plan = std::move(plan);
    *out = handle.release();
    return seqpar::Status::ok();
  });
}

void seqpar_decode_plan_destroy(seqpar_decode_plan* plan) { delete plan; }

seqpar_status seqpar_decode_plan_load_prompt(seqpar_decode_plan* plan, const void* k_prompt,
                                             const void* v_prompt) {
  constexpr const char* kFunction = "seqpar_decode_plan_load_prompt";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(require_non_null(k_prompt, kFunction, "k_prompt"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(v_prompt, kFunction, "v_prompt"));
    seqpar::KvCache& cache = plan->plan->cache();
    if (plan->plan->config().device != seqpar::Device::kHost) {
      return seqpar::Status(seqpar::StatusCode::kUnsupported,
                            seqpar::str_cat(kFunction,
                                            ": host plans only (fill a device "
                                            "cache through seqpar_decode_plan_cache)"));
    }
    if (cache.length() != cache.shape().prompt) {
      return seqpar::Status(seqpar::StatusCode::kInvalidArgument,
                            seqpar::str_cat(kFunction, ": the cache holds ", cache.length(),
                                            " tokens; load the prompt before any append"));
    }
    const int rank = plan->plan->comm().rank();
    seqpar::c_api::copy_prompt_rows(cache, rank, k_prompt, cache.k());
    seqpar::c_api::copy_prompt_rows(cache, rank, v_prompt, cache.v());
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_decode_plan_cache(seqpar_decode_plan* plan, void** k, void** v,
                                       int64_t* local_capacity, int64_t* local_length) {
  constexpr const char* kFunction = "seqpar_decode_plan_cache";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(require_non_null(k, kFunction, "k"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(v, kFunction, "v"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(local_capacity, kFunction, "local_capacity"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(local_length, kFunction, "local_length"));
    seqpar::KvCache& cache = plan->plan->cache();
    *k = cache.k();
    *v = cache.v();
    *local_capacity = cache.local_capacity();
    *local_length = cache.local_length();
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_decode_plan_positions(const seqpar_decode_plan* plan, int64_t* positions,
                                           int64_t capacity) {
  constexpr const char* kFunction = "seqpar_decode_plan_positions";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(positions, kFunction, "positions"));
    const seqpar::KvCache& cache = plan->plan->cache();
    const int64_t held = cache.local_length();
    if (capacity < held) {
      return seqpar::Status(seqpar::StatusCode::kInvalidArgument,
                            seqpar::str_cat(kFunction, ": capacity ", capacity, " < the ", held,
                                            " tokens this rank holds"));
    }
    const int64_t* from = cache.positions_of(plan->plan->comm().rank());
    std::copy(from, from + held, positions);
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_decode_plan_append(seqpar_decode_plan* plan, const void* k_new,
                                        const void* v_new, int64_t n) {
  constexpr const char* kFunction = "seqpar_decode_plan_append";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(require_non_null(k_new, kFunction, "k_new"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(v_new, kFunction, "v_new"));
    return plan->plan->append(k_new, v_new, n);
  });
}

seqpar_status seqpar_decode_plan_step(seqpar_decode_plan* plan, const void* q, void* out,
                                      float* lse) {
  return seqpar::c_api::c_call("seqpar_decode_plan_step", [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, "seqpar_decode_plan_step"));
    return plan->plan->step(q, out, lse);
  });
}

seqpar_status seqpar_decode_plan_workspace_bytes(const seqpar_decode_plan* plan, size_t* bytes) {
  constexpr const char* kFunction = "seqpar_decode_plan_workspace_bytes";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(bytes, kFunction, "bytes"));
    *bytes = plan->plan->workspace_bytes();
    return seqpar::Status::ok();
  });
}

}  // extern "C"
