// TensorView helpers.
#include "core/tensor.hpp"

#include "core/enum_names.hpp"

namespace seqpar {

constexpr auto kDeviceNames = enum_names<Device>("host", "cuda");

const char* device_name(Device device) { return kDeviceNames.name(device); }

StatusOr<Device> parse_device(std::string_view name) { return kDeviceNames.parse(name, "device"); }

TensorView TensorView::contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape,
                                  Device device) {
  TensorView t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.rank = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t extent : shape) t.shape[i++] = extent;
  int64_t stride = 1;
  for (int d = t.rank - 1; d >= 0; --d) {
    t.strides[d] = stride;
    stride *= t.shape[d];
  }
  return t;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != stride) return false;
    stride *= shape[d];
  }
  return true;
}

std::string TensorView::shape_string() const {
  std::string s = "(";
  for (int d = 0; d < rank; ++d) s += str_cat(d ? ", " : "", shape[d]);
  return str_cat(s, ") ", dtype_name(dtype), " ", device_name(device));
}

}  // namespace seqpar
