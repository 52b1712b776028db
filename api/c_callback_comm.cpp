// The C ABI's communicators over the caller's callbacks: seqpar_comm_from_callbacks.
#include "api/c_api_support.hpp"
#include "api/callback_communicator.hpp"

extern "C" {

seqpar_status seqpar_comm_from_callbacks(const seqpar_comm_callbacks* callbacks, void* user,
                                         int rank, int size, int32_t device, seqpar_comm** out) {
  constexpr const char* kFunction = "seqpar_comm_from_callbacks";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using namespace seqpar::c_api;
    SEQPAR_RETURN_IF_ERROR(require_non_null(out, kFunction, "out"));
    SEQPAR_ASSIGN_OR_RETURN(const seqpar_comm_callbacks table,
                            read_callbacks(callbacks, kFunction, "callbacks"));
    SEQPAR_ASSIGN_OR_RETURN(const seqpar::Device on, device_from_c(device, kFunction));
    // The handle first, so nothing can fail once the communicator owns `user`.
    auto handle = std::make_unique<seqpar_comm>();
    SEQPAR_ASSIGN_OR_RETURN(handle->owned,
                            make_callback_communicator(table, user, rank, size, on, kFunction));
    handle->comm = handle->owned.get();
    *out = handle.release();
    return seqpar::Status::ok();
  });
}

}  // extern "C"
