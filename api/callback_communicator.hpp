#pragma once
// CallbackCommunicator: a Communicator whose operations go to a seqpar_comm_callbacks table the
// caller implements (include/seqpar/seqpar.h, seqpar_comm_from_callbacks). The Communicator base
// still validates and counts every call, so the byte counters stay checked against the schemes'
// formulas whatever the transport.
#include <memory>

#include "comm/communicator.hpp"
#include "core/status.hpp"
#include "core/tensor.hpp"
#include "seqpar/seqpar.h"

namespace seqpar::c_api {

// The caller's table, read as far as its struct_size goes and checked (struct_size, required
// functions); `function` and `what` name it in errors.
StatusOr<seqpar_comm_callbacks> read_callbacks(const seqpar_comm_callbacks* given,
                                               const char* function, const char* what);

// A communicator of rank `rank` of `size` over a checked table. Owns `user` through the table's
// destroy (if any) once made; on failure destroy is not called.
StatusOr<std::unique_ptr<Communicator>> make_callback_communicator(
    const seqpar_comm_callbacks& callbacks, void* user, int rank, int size, Device device,
    const char* function);

}  // namespace seqpar::c_api
