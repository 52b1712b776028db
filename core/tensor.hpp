#pragma once
// TensorView: a non-owning view of up to 4-D data (pointer, dtype, shape, strides, device).
// Attention tensors are (B, S, H, D) row-major; LSE and delta are (B, H, S) fp32.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/dtype.hpp"

namespace seqpar {

enum class Device : int { kHost = 0, kCuda };
const char* device_name(Device device);  // "host", "cuda"
StatusOr<Device> parse_device(std::string_view name);

struct TensorView {
  static constexpr int kMaxRank = 4;

  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kHost;
  int rank = 0;                             // number of dimensions
  std::array<int64_t, kMaxRank> shape{};    // extents, outermost first
  std::array<int64_t, kMaxRank> strides{};  // in elements

  // A row-major view of `shape`.
  static TensorView contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape,
                               Device device = Device::kHost);

  int64_t numel() const;
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;
  std::string shape_string() const;  // "(2, 1024, 8, 64) bf16 host"
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

}  // namespace seqpar
