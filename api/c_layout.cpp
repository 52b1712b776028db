// The C ABI's layouts: which global tokens each rank holds, and host shard <-> global copies.
#include <limits>

#include "api/c_api_support.hpp"

namespace seqpar::c_api {
namespace {

Status require_rank(const seqpar_layout* layout, int rank, const char* function) {
  SEQPAR_RETURN_IF_ERROR(require_non_null(layout, function, "layout"));
  if (rank >= 0 && rank < layout->layout.ranks()) return Status::ok();
  return Status(StatusCode::kInvalidArgument, str_cat(function, ": rank ", rank, " is outside [0, ",
                                                      layout->layout.ranks(), ")"));
}

// Shared by shard and unshard: the pointers, the batch, and sizes far from overflow.
Status check_copy(const seqpar_layout* layout, int rank, const void* from, const void* to,
                  int64_t batch, size_t row_bytes, const char* function) {
  SEQPAR_RETURN_IF_ERROR(require_rank(layout, rank, function));
  SEQPAR_RETURN_IF_ERROR(require_non_null(from, function, "source tensor"));
  SEQPAR_RETURN_IF_ERROR(require_non_null(to, function, "destination tensor"));
  if (batch < 1 || row_bytes == 0) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": batch = ", batch, ", row_bytes = ", row_bytes,
                          " (both must be positive)"));
  }
  const auto max = static_cast<double>(std::numeric_limits<int64_t>::max());
  if (static_cast<double>(batch) * static_cast<double>(layout->layout.seq()) *
          static_cast<double>(row_bytes) >
      max / 2) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat(function, ": batch * seq * row_bytes overflows"));
  }
  return Status::ok();
}

}  // namespace
}  // namespace seqpar::c_api

extern "C" {

seqpar_status seqpar_layout_create(const seqpar_plan_config* config, int ranks,
                                   seqpar_layout** out) {
  constexpr const char* kFunction = "seqpar_layout_create";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(out, kFunction, "out"));
    SEQPAR_ASSIGN_OR_RETURN(const seqpar::PlanConfig plan_config,
                            seqpar::c_api::plan_config_from_c(config, kFunction));
    if (ranks < 1) {
      return seqpar::Status(seqpar::StatusCode::kInvalidArgument,
                            seqpar::str_cat(kFunction, ": ranks = ", ranks, " (need >= 1)"));
    }
    SEQPAR_ASSIGN_OR_RETURN(seqpar::Layout layout, seqpar::plan_layout(plan_config, ranks));
    *out = new seqpar_layout{layout};
    return seqpar::Status::ok();
  });
}

void seqpar_layout_destroy(seqpar_layout* layout) { delete layout; }

seqpar_status seqpar_layout_get_kind(const seqpar_layout* layout, int32_t* kind) {
  return seqpar::c_api::c_call("seqpar_layout_get_kind", [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(require_non_null(layout, "seqpar_layout_get_kind", "layout"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(kind, "seqpar_layout_get_kind", "kind"));
    *kind = seqpar::c_api::layout_kind_to_c(layout->layout.kind());
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_layout_ranks(const seqpar_layout* layout, int* ranks) {
  return seqpar::c_api::c_call("seqpar_layout_ranks", [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(require_non_null(layout, "seqpar_layout_ranks", "layout"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(ranks, "seqpar_layout_ranks", "ranks"));
    *ranks = layout->layout.ranks();
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_layout_seq(const seqpar_layout* layout, int64_t* seq) {
  return seqpar::c_api::c_call("seqpar_layout_seq", [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(require_non_null(layout, "seqpar_layout_seq", "layout"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(seq, "seqpar_layout_seq", "seq"));
    *seq = layout->layout.seq();
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_layout_local_seq(const seqpar_layout* layout, int rank, int64_t* local_seq) {
  constexpr const char* kFunction = "seqpar_layout_local_seq";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_rank(layout, rank, kFunction));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(local_seq, kFunction, "local_seq"));
    *local_seq = layout->layout.local_seq(rank);
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_layout_positions(const seqpar_layout* layout, int rank, int64_t* positions,
                                      int64_t capacity) {
  constexpr const char* kFunction = "seqpar_layout_positions";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_rank(layout, rank, kFunction));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(positions, kFunction, "positions"));
    const int64_t needed = layout->layout.local_seq(rank);
    if (capacity < needed) {
      return seqpar::Status(seqpar::StatusCode::kInvalidArgument,
                            seqpar::str_cat(kFunction, ": capacity ", capacity, " < the ", needed,
                                            " tokens rank ", rank, " holds"));
    }
    layout->layout.positions(rank, positions);
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_layout_shard(const seqpar_layout* layout, int rank, const void* global,
                                  void* shard, int64_t batch, size_t row_bytes) {
  constexpr const char* kFunction = "seqpar_layout_shard";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(
        seqpar::c_api::check_copy(layout, rank, global, shard, batch, row_bytes, kFunction));
    seqpar::scatter_to_shard(layout->layout, rank, global, shard, batch, row_bytes);
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_layout_unshard(const seqpar_layout* layout, int rank, const void* shard,
                                    void* global, int64_t batch, size_t row_bytes) {
  constexpr const char* kFunction = "seqpar_layout_unshard";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(
        seqpar::c_api::check_copy(layout, rank, shard, global, batch, row_bytes, kFunction));
    seqpar::gather_from_shard(layout->layout, rank, shard, global, batch, row_bytes);
    return seqpar::Status::ok();
  });
}

}  // extern "C"
