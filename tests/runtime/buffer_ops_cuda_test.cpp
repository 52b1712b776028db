// buffer_ops on a CUDA target (device memory, a non-blocking stream) against the same op on a
// host target: zero, copy, convert_from_float and add_to_float in every storage dtype,
// copy_grid_rect for every supported dtype pair and add_grid_rect for every share dtype on
// rectangles with offsets on both sides (buffer_ops_cases.hpp); results bitwise equal (both
// sides round to nearest even and add in fp32). Also a WorkspaceArena carving device memory.
// Nothing synchronises inside the ops: the test synchronises the stream before reading back.
// Skips without a CUDA device (and in builds without the CUDA toolkit).
#include <gtest/gtest.h>

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>
#include <vector>

#include "buffer_ops_cases.hpp"
#include "core/device_buffer.hpp"
#include "runtime/buffer_ops.hpp"
#include "runtime/workspace_arena.hpp"

namespace seqpar::test {
namespace {

constexpr KernelTarget kHost{Device::kHost, nullptr};
using Bytes = std::vector<unsigned char>;

class BufferOpsCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) {
      GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none): the CUDA "
                      "buffer ops cannot run here";
    }
    ASSERT_TRUE(stream_.create().is_ok());
    target_ = {Device::kCuda, stream_.get()};
  }

  // A device copy of `host` (at least 16 bytes, so empty cases still get a pointer).
  DeviceBuffer upload(const Bytes& host) {
    DeviceBuffer d;
    EXPECT_TRUE(d.allocate(std::max<size_t>(host.size(), 16)).is_ok());
    EXPECT_EQ(cudaMemcpy(d.data(), host.data(), host.size(), cudaMemcpyHostToDevice), cudaSuccess);
    return d;
  }
  Bytes download(DeviceBuffer& d, size_t bytes) {
    Bytes host(bytes);
    EXPECT_EQ(cudaStreamSynchronize(stream_.get()), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(host.data(), d.data(), bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }

  CudaStream stream_;
  KernelTarget target_;
};

TEST_F(BufferOpsCuda, ZeroAndCopyMatchTheHost) {
  const Bytes src = random_bytes(DType::kF32, 1000, 1);
  Bytes host = random_bytes(DType::kF32, 1000, 2);
  DeviceBuffer d_src = upload(src), d_dst = upload(host);
  char* dst = static_cast<char*>(d_dst.data());
  ASSERT_TRUE(buffer_ops::zero(dst + 12, 400, target_).is_ok());
  ASSERT_TRUE(buffer_ops::zero(host.data() + 12, 400, kHost).is_ok());
  ASSERT_TRUE(
      buffer_ops::copy(dst + 100, static_cast<char*>(d_src.data()) + 36, 2000, target_).is_ok());
  ASSERT_TRUE(buffer_ops::copy(host.data() + 100, src.data() + 36, 2000, kHost).is_ok());
  ASSERT_TRUE(buffer_ops::zero(dst, 0, target_).is_ok());
  EXPECT_EQ(download(d_dst, host.size()), host);
}

TEST_F(BufferOpsCuda, ConvertFromFloatMatchesTheHostEveryDtype) {
  const size_t n = 100003;  // more than one block, not a multiple of it
  const Bytes src = random_bytes(DType::kF32, n, 3, 70000.0f);  // fp16 overflow and subnormals
  DeviceBuffer d_src = upload(src);
  for (DType dt : kStorageDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    Bytes host = random_bytes(dt, n, 4);
    DeviceBuffer d_dst = upload(host);
    ASSERT_TRUE(buffer_ops::convert_from_float(static_cast<const float*>(d_src.data()),
                                               d_dst.data(), dt, n, target_)
                    .is_ok());
    ASSERT_TRUE(buffer_ops::convert_from_float(reinterpret_cast<const float*>(src.data()),
                                               host.data(), dt, n, kHost)
                    .is_ok());
    EXPECT_EQ(download(d_dst, host.size()), host);
  }
}

TEST_F(BufferOpsCuda, AddToFloatMatchesTheHostEveryDtype) {
  const size_t n = 70001;
  for (DType dt : kStorageDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const Bytes share = random_bytes(dt, n, 5);
    Bytes host = random_bytes(DType::kF32, n, 6);
    DeviceBuffer d_share = upload(share), d_total = upload(host);
    ASSERT_TRUE(buffer_ops::add_to_float(static_cast<float*>(d_total.data()), d_share.data(), dt, n,
                                         target_)
                    .is_ok());
    ASSERT_TRUE(
        buffer_ops::add_to_float(reinterpret_cast<float*>(host.data()), share.data(), dt, n, kHost)
            .is_ok());
    EXPECT_EQ(download(d_total, host.size()), host);
  }
}

TEST_F(BufferOpsCuda, CopyGridRectMatchesTheHostEveryDtypePair) {
  uint64_t stream = 10;
  for (const RectCase& c : rect_cases()) {
    for (const DtypePair& dts : copy_dtype_pairs()) {
      SCOPED_TRACE(std::string(dtype_name(dts.src)) + " -> " + dtype_name(dts.dst) + ", rect " +
                   std::to_string(c.rows) + " x " + std::to_string(c.cols));
      const Bytes src = random_bytes(dts.src, grid_elems(c.src), stream++);
      Bytes host = random_bytes(dts.dst, grid_elems(c.dst), stream++);
      DeviceBuffer d_src = upload(src), d_dst = upload(host);
      ASSERT_TRUE(buffer_ops::copy_grid_rect({d_src.data(), dts.src, c.src}, c.from,
                                             {d_dst.data(), dts.dst, c.dst}, c.to, c.rows, c.cols,
                                             target_)
                      .is_ok());
      ASSERT_TRUE(buffer_ops::copy_grid_rect({src.data(), dts.src, c.src}, c.from,
                                             {host.data(), dts.dst, c.dst}, c.to, c.rows, c.cols,
                                             kHost)
                      .is_ok());
      EXPECT_EQ(download(d_dst, host.size()), host);
    }
  }
}

TEST_F(BufferOpsCuda, AddGridRectMatchesTheHostEveryShareDtype) {
  uint64_t stream = 100;
  for (const RectCase& c : rect_cases()) {
    for (DType dt : kStorageDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + ", rect " + std::to_string(c.rows) + " x " +
                   std::to_string(c.cols));
      const Bytes src = random_bytes(dt, grid_elems(c.src), stream++);
      Bytes host = random_bytes(DType::kF32, grid_elems(c.dst), stream++);
      DeviceBuffer d_src = upload(src), d_dst = upload(host);
      ASSERT_TRUE(buffer_ops::add_grid_rect({d_src.data(), dt, c.src}, c.from,
                                            {d_dst.data(), DType::kF32, c.dst}, c.to, c.rows,
                                            c.cols, target_)
                      .is_ok());
      ASSERT_TRUE(buffer_ops::add_grid_rect({src.data(), dt, c.src}, c.from,
                                            {host.data(), DType::kF32, c.dst}, c.to, c.rows, c.cols,
                                            kHost)
                      .is_ok());
      EXPECT_EQ(download(d_dst, host.size()), host);
    }
  }
}

TEST_F(BufferOpsCuda, WorkspaceArenaCarvesDeviceMemory) {
  WorkspaceArena arena;
  float* a = nullptr;
  float* b = nullptr;
  arena.add(a, 10 * sizeof(float));
  arena.add(b, 100 * sizeof(float));
  WorkspaceBuffer workspace;
  ASSERT_TRUE(arena.allocate(workspace, Device::kCuda).is_ok());
  EXPECT_EQ(workspace.device(), Device::kCuda);
  EXPECT_EQ(workspace.bytes(), arena.bytes());
  cudaPointerAttributes attributes{};
  ASSERT_EQ(cudaPointerGetAttributes(&attributes, b), cudaSuccess);
  EXPECT_EQ(attributes.type, cudaMemoryTypeDevice);
  EXPECT_EQ(static_cast<void*>(a), workspace.data());
  ASSERT_TRUE(buffer_ops::zero(workspace.data(), workspace.bytes(), target_).is_ok());
  EXPECT_EQ(cudaStreamSynchronize(stream_.get()), cudaSuccess);
}

}  // namespace
}  // namespace seqpar::test

#else
TEST(BufferOpsCuda, SkippedWithoutCudaToolkit) {
  GTEST_SKIP() << "built without the CUDA toolkit (SEQPAR_HAVE_CUDA off): no CUDA buffer ops";
}
#endif
