// Elementwise host reductions in input order (see host_reduce.hpp).
#include "comm/host_reduce.hpp"

#include <cstdint>

namespace seqpar {
namespace {

template <class T>
T combine(T a, T b, ReduceOp op) {
  if (op == ReduceOp::kMax) return b > a ? b : a;
  return static_cast<T>(a + b);
}

template <class T>
void reduce_native(std::span<const void* const> inputs, size_t first, size_t count, ReduceOp op,
                   void* dst) {
  T* out = static_cast<T*>(dst);
  for (size_t i = 0; i < count; ++i) {
    T acc = static_cast<const T*>(inputs[0])[first + i];
    for (size_t k = 1; k < inputs.size(); ++k)
      acc = combine(acc, static_cast<const T*>(inputs[k])[first + i], op);
    out[i] = acc;
  }
}

void reduce_through_float(std::span<const void* const> inputs, size_t first, size_t count,
                          DType dtype, ReduceOp op, void* dst) {
  for (size_t i = 0; i < count; ++i) {
    float acc = load_float(inputs[0], dtype, first + i);
    for (size_t k = 1; k < inputs.size(); ++k)
      acc = combine(acc, load_float(inputs[k], dtype, first + i), op);
    store_float(dst, dtype, i, acc);
  }
}

}  // namespace

void reduce_in_order(std::span<const void* const> inputs, size_t first, size_t count, DType dtype,
                     ReduceOp op, void* dst) {
  if (inputs.empty() || count == 0) return;
  switch (dtype) {
    case DType::kF32:
      reduce_native<float>(inputs, first, count, op, dst);
      break;
    case DType::kF64:
      reduce_native<double>(inputs, first, count, op, dst);
      break;
    case DType::kI32:
      reduce_native<int32_t>(inputs, first, count, op, dst);
      break;
    case DType::kI64:
      reduce_native<int64_t>(inputs, first, count, op, dst);
      break;
    case DType::kBF16:
    case DType::kF16:
      reduce_through_float(inputs, first, count, dtype, op, dst);
      break;
  }
}

}  // namespace seqpar
