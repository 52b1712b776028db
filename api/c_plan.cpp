// The C ABI's training / prefill plans: seqpar::Plan behind a handle.
#include "api/c_api_support.hpp"

namespace seqpar::c_api {
namespace {

// The plan handle, checked: every entry point names itself in the message.
Status require_plan(const seqpar_plan* plan, const char* function) {
  SEQPAR_RETURN_IF_ERROR(require_non_null(plan, function, "plan"));
  return require_non_null(plan->plan.get(), function, "plan's state");
}

}  // namespace
}  // namespace seqpar::c_api

extern "C" {

seqpar_status seqpar_plan_create(const seqpar_plan_config* config, seqpar_comm* comm,
                                 seqpar_plan** out) {
  constexpr const char* kFunction = "seqpar_plan_create";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using seqpar::c_api::require_non_null;
    SEQPAR_RETURN_IF_ERROR(require_non_null(out, kFunction, "out"));
    SEQPAR_RETURN_IF_ERROR(require_non_null(comm, kFunction, "comm"));
    SEQPAR_ASSIGN_OR_RETURN(const seqpar::PlanConfig plan_config,
                            seqpar::c_api::plan_config_from_c(config, kFunction));
    SEQPAR_ASSIGN_OR_RETURN(auto plan, seqpar::Plan::create(plan_config, *comm->comm));
    auto handle = std::make_unique<seqpar_plan>();
    handle->comm = comm->owned;
    handle->plan = std::move(plan);
    *out = handle.release();
    return seqpar::Status::ok();
  });
}

void seqpar_plan_destroy(seqpar_plan* plan) { delete plan; }

seqpar_status seqpar_plan_forward(seqpar_plan* plan, const void* q, const void* k, const void* v,
                                  void* out, float* lse) {
  return seqpar::c_api::c_call("seqpar_plan_forward", [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, "seqpar_plan_forward"));
    // The plan checks the tensors itself (and aborts the group on a missing one).
    return plan->plan->forward({q, k, v, out, lse});
  });
}

seqpar_status seqpar_plan_backward(seqpar_plan* plan, const void* q, const void* k, const void* v,
                                   const void* out, const float* lse, const void* dout, void* dq,
                                   void* dk, void* dv) {
  return seqpar::c_api::c_call("seqpar_plan_backward", [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, "seqpar_plan_backward"));
    return plan->plan->backward({q, k, v, out, lse, dout, dq, dk, dv});
  });
}

seqpar_status seqpar_plan_finite_check_result(seqpar_plan* plan) {
  return seqpar::c_api::c_call("seqpar_plan_finite_check_result", [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, "seqpar_plan_finite_check_result"));
    return plan->plan->finite_check_result();
  });
}

seqpar_status seqpar_plan_workspace_bytes(const seqpar_plan* plan, size_t* bytes) {
  constexpr const char* kFunction = "seqpar_plan_workspace_bytes";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(bytes, kFunction, "bytes"));
    *bytes = plan->plan->workspace_bytes();
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_plan_local_seq(const seqpar_plan* plan, int64_t* local_seq) {
  constexpr const char* kFunction = "seqpar_plan_local_seq";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(local_seq, kFunction, "local_seq"));
    *local_seq = plan->plan->local_seq();
    return seqpar::Status::ok();
  });
}

seqpar_status seqpar_plan_layout(const seqpar_plan* plan, seqpar_layout** out) {
  constexpr const char* kFunction = "seqpar_plan_layout";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_plan(plan, kFunction));
    SEQPAR_RETURN_IF_ERROR(seqpar::c_api::require_non_null(out, kFunction, "out"));
    *out = new seqpar_layout{plan->plan->layout()};
    return seqpar::Status::ok();
  });
}

}  // extern "C"
