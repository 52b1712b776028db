// buffer_ops on a host target against the host functions the schemes called before
// (std::memset, std::memcpy, convert_from_float, add_to_float, copy_grid_rect, add_grid_rect):
// bitwise-equal results on random data, every storage dtype, rectangles with offsets on both
// sides; bad dtypes refused; a CUDA target refused in builds without the toolkit; a host
// WorkspaceArena carving a WorkspaceBuffer. The CUDA target vs these host results is
// buffer_ops_cuda_test.cpp (label gpu).
#include "runtime/buffer_ops.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "buffer_ops_cases.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar::test {
namespace {

constexpr KernelTarget kHost{Device::kHost, nullptr};
using Bytes = std::vector<unsigned char>;

TEST(BufferOpsHost, ZeroAndCopyMatchMemsetAndMemcpy) {
  const Bytes src = random_bytes(DType::kF32, 1000, 1);
  Bytes ours = random_bytes(DType::kF32, 1000, 2), old = ours;
  ASSERT_TRUE(buffer_ops::zero(ours.data() + 12, 400, kHost).is_ok());
  std::memset(old.data() + 12, 0, 400);
  EXPECT_EQ(ours, old);
  ASSERT_TRUE(buffer_ops::copy(ours.data() + 100, src.data() + 36, 2000, kHost).is_ok());
  std::memcpy(old.data() + 100, src.data() + 36, 2000);
  EXPECT_EQ(ours, old);
  // Empty ranges touch nothing, null pointers included.
  EXPECT_TRUE(buffer_ops::zero(nullptr, 0, kHost).is_ok());
  EXPECT_TRUE(buffer_ops::copy(nullptr, nullptr, 0, kHost).is_ok());
  EXPECT_EQ(ours, old);
}

TEST(BufferOpsHost, ConvertFromFloatMatchesEveryDtype) {
  const size_t n = 777;
  const Bytes src = random_bytes(DType::kF32, n, 3);
  for (DType dt : kStorageDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    Bytes ours = random_bytes(dt, n, 4), old = ours;
    const auto* in = reinterpret_cast<const float*>(src.data());
    ASSERT_TRUE(buffer_ops::convert_from_float(in, ours.data(), dt, n, kHost).is_ok());
    convert_from_float(in, old.data(), dt, n);
    EXPECT_EQ(ours, old);
  }
}

TEST(BufferOpsHost, AddToFloatMatchesEveryDtype) {
  const size_t n = 513;
  for (DType dt : kStorageDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Bytes share = random_bytes(dt, n, 5);
    Bytes ours = random_bytes(DType::kF32, n, 6), old = ours;
    ASSERT_TRUE(
        buffer_ops::add_to_float(reinterpret_cast<float*>(ours.data()), share.data(), dt, n, kHost)
            .is_ok());
    add_to_float(reinterpret_cast<float*>(old.data()), share.data(), dt, n);
    EXPECT_EQ(ours, old);
    EXPECT_NE(ours, random_bytes(DType::kF32, n, 6));  // the sum did something
  }
}

TEST(BufferOpsHost, CopyGridRectMatchesEveryDtypePairWithOffsets) {
  uint64_t stream = 10;
  for (const RectCase& c : rect_cases()) {
    for (const DtypePair& dts : copy_dtype_pairs()) {
      SCOPED_TRACE(std::string(dtype_name(dts.src)) + " -> " + dtype_name(dts.dst) + ", rect " +
                   std::to_string(c.rows) + " x " + std::to_string(c.cols));
      const Bytes src = random_bytes(dts.src, grid_elems(c.src), stream++);
      Bytes ours = random_bytes(dts.dst, grid_elems(c.dst), stream++), old = ours;
      const ConstGrid in{src.data(), dts.src, c.src};
      ASSERT_TRUE(buffer_ops::copy_grid_rect(in, c.from, {ours.data(), dts.dst, c.dst}, c.to,
                                             c.rows, c.cols, kHost)
                      .is_ok());
      copy_grid_rect(in, c.from, {old.data(), dts.dst, c.dst}, c.to, c.rows, c.cols);
      EXPECT_EQ(ours, old);
    }
  }
}

TEST(BufferOpsHost, AddGridRectMatchesEveryShareDtypeWithOffsets) {
  uint64_t stream = 100;
  for (const RectCase& c : rect_cases()) {
    for (DType dt : kStorageDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + ", rect " + std::to_string(c.rows) + " x " +
                   std::to_string(c.cols));
      const Bytes src = random_bytes(dt, grid_elems(c.src), stream++);
      Bytes ours = random_bytes(DType::kF32, grid_elems(c.dst), stream++), old = ours;
      const ConstGrid in{src.data(), dt, c.src};
      ASSERT_TRUE(buffer_ops::add_grid_rect(in, c.from, {ours.data(), DType::kF32, c.dst}, c.to,
                                            c.rows, c.cols, kHost)
                      .is_ok());
      add_grid_rect(in, c.from, {old.data(), DType::kF32, c.dst}, c.to, c.rows, c.cols);
      EXPECT_EQ(ours, old);
    }
  }
}

TEST(BufferOpsHost, RefusesWhatTheHostFunctionsCannotDo) {
  float f[4] = {};
  double d[4] = {};
  EXPECT_EQ(buffer_ops::convert_from_float(f, d, DType::kF64, 4, kHost).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(buffer_ops::add_to_float(f, d, DType::kF64, 4, kHost).code(),
            StatusCode::kInvalidArgument);
  uint16_t h[4] = {};
  const GridShape shape{1, 2, 2, 1};
  // bf16 -> fp16 is not a conversion through fp32; a sum needs an fp32 destination.
  EXPECT_EQ(buffer_ops::copy_grid_rect({h, DType::kBF16, shape}, {0, 0}, {h, DType::kF16, shape},
                                       {0, 0}, 1, 1, kHost)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(buffer_ops::add_grid_rect({f, DType::kF32, shape}, {0, 0}, {h, DType::kBF16, shape},
                                      {0, 0}, 1, 1, kHost)
                .code(),
            StatusCode::kInvalidArgument);
}

#ifndef SEQPAR_HAVE_CUDA
TEST(BufferOpsHost, CudaTargetRefusedWithoutToolkit) {
  const KernelTarget cuda{Device::kCuda, nullptr};
  float f[4] = {};
  const Status s = buffer_ops::zero(f, sizeof(f), cuda);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("no CUDA toolkit"), std::string::npos) << s.message();
  EXPECT_EQ(buffer_ops::convert_from_float(f, f, DType::kF32, 4, cuda).code(),
            StatusCode::kUnsupported);
  WorkspaceBuffer buffer;
  EXPECT_EQ(buffer.allocate(64, Device::kCuda).code(), StatusCode::kUnsupported);
}
#endif

TEST(WorkspaceArenaHost, CarvesAWorkspaceBufferOnTheHost) {
  WorkspaceArena arena;
  float* a = nullptr;
  char* b = nullptr;
  void* empty = nullptr;
  arena.add(a, 10 * sizeof(float));
  arena.add(empty, 0);
  arena.add(b, 100);
  WorkspaceBuffer workspace;
  ASSERT_TRUE(arena.allocate(workspace, Device::kHost).is_ok());
  EXPECT_EQ(workspace.device(), Device::kHost);
  EXPECT_EQ(workspace.bytes(), arena.bytes());
  EXPECT_EQ(arena.bytes(), 64u + 128u);
  char* base = static_cast<char*>(workspace.data());
  EXPECT_EQ(static_cast<void*>(a), base);
  EXPECT_EQ(b, base + 64);
  EXPECT_EQ(empty, static_cast<void*>(base + 64));
  ASSERT_TRUE(buffer_ops::zero(workspace.data(), workspace.bytes(), kHost).is_ok());
  EXPECT_EQ(a[9], 0.0f);
}

}  // namespace
}  // namespace seqpar::test
