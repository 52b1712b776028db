#pragma once
// Elementwise host reduction of several arrays in a fixed (rank) order, shared by the host
// backends. fp32/fp64/int types reduce in their own type; bf16/fp16 accumulate in fp32 and
// round once at the end, so every rank that reduces the same inputs gets the same bits.
#include <cstddef>
#include <span>

#include "comm/communicator.hpp"
#include "core/dtype.hpp"

namespace seqpar {

// dst[i] = op(inputs[0][first + i], inputs[1][first + i], ...) for i in [0, count), reduced in
// the order of `inputs`. dst may alias inputs[k] + first for one k (each element is read from
// every input before it is written).
void reduce_in_order(std::span<const void* const> inputs, size_t first, size_t count, DType dtype,
                     ReduceOp op, void* dst);

}  // namespace seqpar
