#pragma once
// Element types and the host-side fp32 <-> bf16/fp16 conversions (round to nearest even).
// Attention tensors are stored as fp32, bf16 or fp16; fp64 and int64 exist for host-side checks
// and for communicator reductions.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/status.hpp"

namespace seqpar {

enum class DType : int { kF32 = 0, kBF16, kF16, kF64, kI32, kI64 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);                 // "fp32", "bf16", "fp16", "fp64", "i32", "i64"
StatusOr<DType> parse_dtype(std::string_view name);  // accepts the names above
inline bool is_storage_dtype(DType d) {
  return d == DType::kF32 || d == DType::kBF16 || d == DType::kF16;
}

inline float bf16_bits_to_float(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

float fp16_bits_to_float(uint16_t bits);
uint16_t float_to_fp16_bits(float f);

// Element i of a storage-dtype array, as float.
inline float load_float(const void* data, DType dtype, size_t i) {
  switch (dtype) {
    case DType::kF32:
      return static_cast<const float*>(data)[i];
    case DType::kBF16:
      return bf16_bits_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::kF16:
      return fp16_bits_to_float(static_cast<const uint16_t*>(data)[i]);
    default:
      return 0.0f;
  }
}

inline void store_float(void* data, DType dtype, size_t i, float value) {
  switch (dtype) {
    case DType::kF32:
      static_cast<float*>(data)[i] = value;
      break;
    case DType::kBF16:
      static_cast<uint16_t*>(data)[i] = float_to_bf16_bits(value);
      break;
    case DType::kF16:
      static_cast<uint16_t*>(data)[i] = float_to_fp16_bits(value);
      break;
    default:
      break;
  }
}

// The value a float takes after a round trip through `dtype` (identity for fp32).
inline float round_to_dtype(float value, DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return bf16_bits_to_float(float_to_bf16_bits(value));
    case DType::kF16:
      return fp16_bits_to_float(float_to_fp16_bits(value));
    default:
      return value;
  }
}

// n elements: storage dtype -> fp32, and fp32 -> storage dtype.
void convert_to_float(const void* src, DType src_dtype, float* dst, size_t n);
void convert_from_float(const float* src, void* dst, DType dst_dtype, size_t n);

}  // namespace seqpar
