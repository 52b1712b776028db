// CUDA block kernels (attention/cuda/) vs the fp64 reference, through the dispatch with a CUDA
// target: forward (out, lse) and backward (dq, dk, dv) for bf16 and fp16, head dims 64 and 128,
// causal and full masks, GQA (Hq/Hkv = 1, 4) and MQA, uneven lengths, offset and striped affine
// maps and a zigzag index map (positions in device memory), accumulate mode on top of a first
// block, the merge and delta kernels, and a block whose pairs the mask drops entirely.
// Overwritten outputs are NaN-poisoned before each run; accumulated gradients start from random
// values that are subtracted afterwards. Every kernel here is deterministic (no atomics), so a
// second run on the same inputs must give bitwise-equal results.
// Skips without a CUDA device (and in builds without the CUDA toolkit).
#include <gtest/gtest.h>

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention/dispatch.hpp"
#include "attention_test_util.hpp"
#include "core/device_buffer.hpp"

namespace seqpar::test {
namespace {

constexpr float kInitialGradAmp = 0.5f;
constexpr double kGradRmsFloor = 3e-2;
constexpr double kDkFloorOfDv = 3e-2;

// Relative L2 tolerances of the tensor-core kernels: 16-bit P and dS operands.
double gpu_tolerance(DType dtype) { return dtype == DType::kBF16 ? 2e-2 : 5e-3; }

// A device copy of a host vector, and back.
struct DeviceArray {
  DeviceBuffer buffer;
  size_t bytes = 0;
  void* data() { return buffer.data(); }
  float* floats() { return static_cast<float*>(buffer.data()); }
};

void upload(DeviceArray& d, const void* host, size_t bytes) {
  ASSERT_TRUE(d.buffer.allocate(std::max<size_t>(bytes, 16)).is_ok());
  d.bytes = bytes;
  if (bytes > 0) {
    ASSERT_EQ(cudaMemcpy(d.data(), host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
}

template <class T>
void upload_vector(DeviceArray& d, const std::vector<T>& host) {
  upload(d, host.data(), host.size() * sizeof(T));
}

template <class T>
std::vector<T> download(DeviceArray& d) {
  std::vector<T> host(d.bytes / sizeof(T));
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(host.data(), d.data(), d.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

// q/k/v/dout and the index maps of a Problem, on the device.
struct DeviceProblem {
  DeviceArray q, k, v, dout, q_index, k_index;

  void upload_from(const Problem& pr) {
    upload_vector(q, pr.q.bytes);
    upload_vector(k, pr.k.bytes);
    upload_vector(v, pr.v.bytes);
    upload_vector(dout, pr.dout.bytes);
    upload_vector(q_index, pr.q_pos);
    upload_vector(k_index, pr.k_pos);
  }
  // The problem's maps with index arrays pointing at the device copies.
  PositionMap map(const PositionMap& host_map, DeviceArray& index) {
    return host_map.index != nullptr
               ? PositionMap::indexed(static_cast<const int64_t*>(index.data()))
               : host_map;
  }
  BlockForwardParams forward(const Problem& pr, float* out, float* lse, bool accumulate) {
    BlockForwardParams p = pr.forward_params(out, lse, accumulate);
    p.q = q.data();
    p.k = k.data();
    p.v = v.data();
    p.q_pos = map(p.q_pos, q_index);
    p.k_pos = map(p.k_pos, k_index);
    return p;
  }
  BlockBackwardParams backward(const Problem& pr, const float* lse, const float* delta, float* dq,
                               float* dk, float* dv) {
    BlockBackwardParams p = pr.backward_params(lse, delta, dq, dk, dv);
    p.q = q.data();
    p.k = k.data();
    p.v = v.data();
    p.dout = dout.data();
    p.q_pos = map(p.q_pos, q_index);
    p.k_pos = map(p.k_pos, k_index);
    return p;
  }
};

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) {
      GTEST_SKIP() << "no CUDA device visible (cudaGetDeviceCount reports none): the CUDA "
                      "kernel tests need a GPU";
    }
  }
  const KernelTarget target_{Device::kCuda, nullptr};  // the default stream
};

std::string describe(const Case& c) {
  return str_cat("B=", c.batch, " Sq=", c.seq_q, " Sk=", c.seq_k, " Hq=", c.heads_q,
                 " Hkv=", c.heads_kv, " D=", c.head_dim, " mask=", mask_name(c.mask),
                 " dtype=", dtype_name(c.dtype), " qmap=", static_cast<int>(c.q_map.kind), "/",
                 c.q_map.offset, "/", c.q_map.stride, " kmap=", static_cast<int>(c.k_map.kind), "/",
                 c.k_map.offset, "/", c.k_map.stride);
}

// Forward outputs vs the reference: out by relative L2, lse -inf exactly where the reference
// row has no kept key, finite lse by relative L2.
void expect_forward_close(const std::vector<float>& out, const std::vector<float>& lse,
                          const ReferenceResult& ref, double tol) {
  ASSERT_TRUE(all_finite(out));
  EXPECT_LE(relative_l2(out, ref.out), tol) << "out";
  std::vector<float> lse_finite;
  std::vector<double> ref_finite;
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) {
      ASSERT_EQ(lse[i], -INFINITY) << "row " << i << " has no kept key";
    } else {
      ASSERT_TRUE(std::isfinite(lse[i])) << "lse row " << i;
      lse_finite.push_back(lse[i]);
      ref_finite.push_back(ref.lse[i]);
    }
  }
  EXPECT_LE(relative_l2(lse_finite, ref_finite), tol) << "lse";
}

// ---- the case list ----

MapSpec contiguous(int64_t offset) { return {MapKind::kContiguous, offset, 1, 0}; }
MapSpec striped(int64_t offset, int64_t ranks) { return {MapKind::kStrided, offset, ranks, 0}; }
MapSpec zigzag(int64_t rank, int64_t ranks, int64_t chunk) {
  return {MapKind::kZigzag, rank * chunk, 1, (2 * ranks - 1 - rank) * chunk};
}

std::vector<Case> kernel_cases() {
  std::vector<Case> cases;
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    for (int64_t d : {64, 128}) {
      for (MaskKind mask : {MaskKind::kCausal, MaskKind::kFull}) {
        // Same block, GQA 4, uneven lengths (not multiples of the 64 tile).
        cases.push_back({1, 150, 150, 8, 2, d, mask, dtype, contiguous(0), contiguous(0)});
        // Sq != Sk, a later query block against an earlier key block (offsets), MHA, batch 2.
        cases.push_back({2, 77, 200, 2, 2, d, mask, dtype, contiguous(130), contiguous(0)});
        // MQA, striped over 4 ranks (affine, stride 4) with different offsets.
        cases.push_back({1, 97, 131, 6, 1, d, mask, dtype, striped(1, 4), striped(3, 4)});
        // Zigzag index maps (rank 1 of 4, chunks of 40) against rank 2's, GQA 4.
        cases.push_back({1, 80, 80, 4, 1, d, mask, dtype, zigzag(1, 4, 40), zigzag(2, 4, 40)});
      }
    }
  }
  return cases;
}

class CudaKernelCaseTest : public CudaTest, public ::testing::WithParamInterface<int> {};

TEST_P(CudaKernelCaseTest, ForwardMatchesReferenceAndRepeats) {
  const Case c = kernel_cases()[static_cast<size_t>(GetParam())];
  SCOPED_TRACE(describe(c));
  const Problem pr = make_problem(c, 1000 + static_cast<uint64_t>(GetParam()));
  const ReferenceResult ref = reference_results(pr);
  DeviceProblem dev;
  dev.upload_from(pr);

  const std::vector<float> out_nan(static_cast<size_t>(pr.q_elems()), kNaN);     // (B, Sq, Hq, D)
  const std::vector<float> lse_nan(static_cast<size_t>(pr.stat_elems()), kNaN);  // (B, Hq, Sq)
  std::vector<float> first_out, first_lse;
  for (int run = 0; run < 2; ++run) {
    DeviceArray out, lse;
    upload_vector(out, out_nan);
    upload_vector(lse, lse_nan);
    ASSERT_TRUE(
        run_block_forward(dev.forward(pr, out.floats(), lse.floats(), false), target_).is_ok());
    const std::vector<float> h_out = download<float>(out);
    const std::vector<float> h_lse = download<float>(lse);
    if (run == 0) {
      expect_forward_close(h_out, h_lse, ref, gpu_tolerance(c.dtype));
      first_out = h_out;
      first_lse = h_lse;
    } else {
      EXPECT_EQ(std::memcmp(h_out.data(), first_out.data(), h_out.size() * sizeof(float)), 0)
          << "out differs between two runs on the same inputs";
      EXPECT_EQ(std::memcmp(h_lse.data(), first_lse.data(), h_lse.size() * sizeof(float)), 0)
          << "lse differs between two runs on the same inputs";
    }
  }
}

TEST_P(CudaKernelCaseTest, BackwardMatchesReferenceAndRepeats) {
  const Case c = kernel_cases()[static_cast<size_t>(GetParam())];
  SCOPED_TRACE(describe(c));
  const Problem pr = make_problem(c, 2000 + static_cast<uint64_t>(GetParam()));
  const ReferenceResult ref = reference_results(pr);
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t nk = static_cast<size_t>(pr.k_elems());
  std::vector<double> ref_dq(nq), ref_dk(nk), ref_dv(nk);
  reference_backward(pr.reference(), pr.dout.values.data(), ref.lse.data(), ref.delta.data(),
                     ref_dq.data(), ref_dk.data(), ref_dv.data());
  DeviceProblem dev;
  dev.upload_from(pr);
  DeviceArray lse, delta;
  upload_vector(lse, std::vector<float>(ref.lse.begin(), ref.lse.end()));
  upload_vector(delta, std::vector<float>(ref.delta.begin(), ref.delta.end()));

  // Gradients are accumulated (+=): they start from random values, subtracted afterwards.
  const Stored dq0 = random_stored(99, 1, pr.q_elems(), DType::kF32, kInitialGradAmp);
  const Stored dk0 = random_stored(99, 2, pr.k_elems(), DType::kF32, kInitialGradAmp);
  const Stored dv0 = random_stored(99, 3, pr.k_elems(), DType::kF32, kInitialGradAmp);
  std::vector<float> first_dq, first_dk, first_dv;
  for (int run = 0; run < 2; ++run) {
    DeviceArray dq, dk, dv;
    upload(dq, dq0.bytes.data(), dq0.bytes.size());
    upload(dk, dk0.bytes.data(), dk0.bytes.size());
    upload(dv, dv0.bytes.data(), dv0.bytes.size());
    ASSERT_TRUE(run_block_backward(dev.backward(pr, lse.floats(), delta.floats(), dq.floats(),
                                                dk.floats(), dv.floats()),
                                   target_)
                    .is_ok());
    const std::vector<float> h_dq = download<float>(dq);
    const std::vector<float> h_dk = download<float>(dk);
    const std::vector<float> h_dv = download<float>(dv);
    if (run == 1) {
      EXPECT_EQ(h_dq, first_dq) << "dq differs between two runs on the same inputs";
      EXPECT_EQ(h_dk, first_dk) << "dk differs between two runs on the same inputs";
      EXPECT_EQ(h_dv, first_dv) << "dv differs between two runs on the same inputs";
      break;
    }
    first_dq = h_dq;
    first_dk = h_dk;
    first_dv = h_dv;
    ASSERT_TRUE(all_finite(h_dq) && all_finite(h_dk) && all_finite(h_dv));
    auto added = [](const std::vector<float>& x, const Stored& x0) {
      std::vector<double> d(x.size());
      for (size_t i = 0; i < x.size(); ++i) d[i] = static_cast<double>(x[i]) - x0.values[i];
      return d;
    };
    // As in the CPU kernel test: dq and dk errors against at least a floor (they can vanish by
    // cancellation), dv by plain relative L2.
    auto floored_error = [](const std::vector<double>& x, const std::vector<double>& want,
                            double floor) {
      const double scale = std::max(l2_norm(want), floor);
      return scale > 0.0 ? l2_distance(x, want) / scale : l2_distance(x, want);
    };
    const double tol = gpu_tolerance(c.dtype);
    const double dq_floor = kGradRmsFloor * std::sqrt(static_cast<double>(ref_dq.size()));
    EXPECT_LE(floored_error(added(h_dq, dq0), ref_dq, dq_floor), tol) << "dq";
    EXPECT_LE(floored_error(added(h_dk, dk0), ref_dk, kDkFloorOfDv * l2_norm(ref_dv)), tol) << "dk";
    EXPECT_LE(relative_l2(added(h_dv, dv0), ref_dv), tol) << "dv";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaKernelCaseTest,
                         ::testing::Range(0, static_cast<int>(kernel_cases().size())));

// ---- accumulate, merge and delta: one query block against keys split in two blocks ----

// The whole problem (all keys) and its two key blocks as separate problems over the same data.
struct SplitProblem {
  Problem whole, first, second;
};

SplitProblem split_keys(const Case& c, int64_t split, uint64_t seed) {
  SplitProblem s;
  s.whole = make_problem(c, seed);
  auto part = [&](int64_t k0, int64_t nk) {
    Problem p = s.whole;
    p.c.seq_k = nk;
    p.k_pos.assign(s.whole.k_pos.begin() + k0, s.whole.k_pos.begin() + k0 + nk);
    p.c.k_map.offset = s.whole.c.k_map.offset + k0;  // contiguous key maps only
    const size_t row = static_cast<size_t>(c.heads_kv * c.head_dim);
    const size_t es = dtype_size(c.dtype);
    auto slice = [&](const Stored& t) {
      Stored r;
      r.bytes.assign(t.bytes.begin() + static_cast<std::ptrdiff_t>(k0 * row * es),
                     t.bytes.begin() + static_cast<std::ptrdiff_t>((k0 + nk) * row * es));
      r.values.assign(t.values.begin() + static_cast<std::ptrdiff_t>(k0 * row),
                      t.values.begin() + static_cast<std::ptrdiff_t>((k0 + nk) * row));
      return r;
    };
    p.k = slice(s.whole.k);
    p.v = slice(s.whole.v);
    return p;
  };
  s.first = part(0, split);
  s.second = part(split, c.seq_k - split);
  return s;
}

TEST_F(CudaTest, AccumulateAndMergeEqualTheWholeBlock) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    for (MaskKind mask : {MaskKind::kCausal, MaskKind::kFull}) {
      // batch 1: split_keys slices K/V by rows, so B must be 1.
      const Case c{1, 100, 170, 8, 2, 64, mask, dtype, contiguous(70), contiguous(0)};
      SCOPED_TRACE(describe(c));
      const SplitProblem sp = split_keys(c, 90, 31);
      const ReferenceResult ref = reference_results(sp.whole);
      DeviceProblem first, second;
      first.upload_from(sp.first);
      second.upload_from(sp.second);
      const std::vector<float> out_nan(static_cast<size_t>(sp.whole.q_elems()), kNaN);
      const std::vector<float> lse_nan(static_cast<size_t>(sp.whole.stat_elems()), kNaN);

      // Accumulate: the first block overwrites, the second merges into it.
      DeviceArray out, lse;
      upload_vector(out, out_nan);
      upload_vector(lse, lse_nan);
      ASSERT_TRUE(
          run_block_forward(first.forward(sp.first, out.floats(), lse.floats(), false), target_)
              .is_ok());
      ASSERT_TRUE(
          run_block_forward(second.forward(sp.second, out.floats(), lse.floats(), true), target_)
              .is_ok());
      expect_forward_close(download<float>(out), download<float>(lse), ref, gpu_tolerance(dtype));

      // Merge: each block alone, then run_merge_partials.
      DeviceArray out2, lse2;
      upload_vector(out, out_nan);
      upload_vector(lse, lse_nan);
      upload_vector(out2, out_nan);
      upload_vector(lse2, lse_nan);
      ASSERT_TRUE(
          run_block_forward(first.forward(sp.first, out.floats(), lse.floats(), false), target_)
              .is_ok());
      ASSERT_TRUE(
          run_block_forward(second.forward(sp.second, out2.floats(), lse2.floats(), false), target_)
              .is_ok());
      ASSERT_TRUE(run_merge_partials(out.floats(), lse.floats(), out2.floats(), lse2.floats(),
                                     c.batch, c.seq_q, c.heads_q, c.head_dim, target_)
                      .is_ok());
      expect_forward_close(download<float>(out), download<float>(lse), ref, gpu_tolerance(dtype));

      // Delta of the merged output (stored in the storage dtype, as the runtime holds it).
      const std::vector<float> merged = download<float>(out);
      std::vector<unsigned char> merged_stored(merged.size() * dtype_size(dtype));
      std::vector<double> merged_values(merged.size());
      for (size_t i = 0; i < merged.size(); ++i) {
        store_float(merged_stored.data(), dtype, i, merged[i]);
        merged_values[i] = load_float(merged_stored.data(), dtype, i);
      }
      std::vector<double> want(static_cast<size_t>(sp.whole.stat_elems()));
      reference_delta(sp.whole.dout.values.data(), merged_values.data(), c.batch, c.seq_q,
                      c.heads_q, c.head_dim, want.data());
      DeviceArray out_stored, delta;
      upload_vector(out_stored, merged_stored);
      upload_vector(delta, lse_nan);
      ASSERT_TRUE(run_attention_delta(out_stored.data(), first.dout.data(), dtype, c.batch, c.seq_q,
                                      c.heads_q, c.head_dim, delta.floats(), target_)
                      .is_ok());
      const std::vector<float> got = download<float>(delta);
      ASSERT_TRUE(all_finite(got));
      EXPECT_LE(relative_l2(got, want), 1e-5) << "delta (fp32 sums of the same stored values)";
    }
  }
}

// A block whose pairs the causal mask drops entirely (every key after every query): forward
// overwrite gives out 0 and lse -inf exactly, accumulate leaves the running result bitwise as
// it was, backward adds exactly nothing.
TEST_F(CudaTest, FullyMaskedBlockIsExact) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    for (int64_t d : {64, 128}) {
      const Case c{1, 70, 90, 4, 2, d, MaskKind::kCausal, dtype, contiguous(0), contiguous(500)};
      SCOPED_TRACE(describe(c));
      const Problem pr = make_problem(c, 77);
      DeviceProblem dev;
      dev.upload_from(pr);
      const size_t nq = static_cast<size_t>(pr.q_elems());
      const size_t ns = static_cast<size_t>(pr.stat_elems());
      DeviceArray out, lse;
      upload_vector(out, std::vector<float>(nq, kNaN));
      upload_vector(lse, std::vector<float>(ns, kNaN));
      ASSERT_TRUE(
          run_block_forward(dev.forward(pr, out.floats(), lse.floats(), false), target_).is_ok());
      for (float x : download<float>(out)) ASSERT_EQ(x, 0.0f);
      for (float x : download<float>(lse)) ASSERT_EQ(x, -INFINITY);

      const Stored running = random_stored(5, 1, pr.q_elems(), DType::kF32, 1.0f);
      const Stored running_lse = random_stored(5, 2, pr.stat_elems(), DType::kF32, 3.0f);
      upload(out, running.bytes.data(), running.bytes.size());
      upload(lse, running_lse.bytes.data(), running_lse.bytes.size());
      ASSERT_TRUE(
          run_block_forward(dev.forward(pr, out.floats(), lse.floats(), true), target_).is_ok());
      EXPECT_EQ(
          std::memcmp(download<float>(out).data(), running.bytes.data(), running.bytes.size()), 0);
      EXPECT_EQ(std::memcmp(download<float>(lse).data(), running_lse.bytes.data(),
                            running_lse.bytes.size()),
                0);

      // Backward with the running lse as the "final" one (finite rows): still nothing to add.
      DeviceArray delta, dq, dk, dv;
      upload(delta, running_lse.bytes.data(), running_lse.bytes.size());
      const Stored g0 = random_stored(6, 1, pr.q_elems(), DType::kF32, 1.0f);
      const Stored k0 = random_stored(6, 2, pr.k_elems(), DType::kF32, 1.0f);
      upload(dq, g0.bytes.data(), g0.bytes.size());
      upload(dk, k0.bytes.data(), k0.bytes.size());
      upload(dv, k0.bytes.data(), k0.bytes.size());
      ASSERT_TRUE(run_block_backward(dev.backward(pr, lse.floats(), delta.floats(), dq.floats(),
                                                  dk.floats(), dv.floats()),
                                     target_)
                      .is_ok());
      EXPECT_EQ(std::memcmp(download<float>(dq).data(), g0.bytes.data(), g0.bytes.size()), 0);
      EXPECT_EQ(std::memcmp(download<float>(dk).data(), k0.bytes.data(), k0.bytes.size()), 0);
      EXPECT_EQ(std::memcmp(download<float>(dv).data(), k0.bytes.data(), k0.bytes.size()), 0);
    }
  }
}

// Partly masked rows next to kept ones: some query rows see no key (lse -inf, out 0) while
// others do, inside one tile.
TEST_F(CudaTest, RowsWithoutKeysInsideATile) {
  const Case c{1, 64, 64, 2, 1, 64, MaskKind::kCausal, DType::kBF16, contiguous(0), contiguous(20)};
  const Problem pr = make_problem(c, 91);
  const ReferenceResult ref = reference_results(pr);
  DeviceProblem dev;
  dev.upload_from(pr);
  DeviceArray out, lse;
  upload_vector(out, std::vector<float>(static_cast<size_t>(pr.q_elems()), kNaN));
  upload_vector(lse, std::vector<float>(static_cast<size_t>(pr.stat_elems()), kNaN));
  ASSERT_TRUE(
      run_block_forward(dev.forward(pr, out.floats(), lse.floats(), false), target_).is_ok());
  expect_forward_close(download<float>(out), download<float>(lse), ref, gpu_tolerance(c.dtype));
}

// What the CUDA kernels refuse, by name, before touching any memory.
TEST_F(CudaTest, RefusesUnsupportedDtypeAndHeadDim) {
  const Case c{1, 8, 8, 2, 1, 96, MaskKind::kFull, DType::kBF16, contiguous(0), contiguous(0)};
  const Problem pr = make_problem(c, 3);
  BlockForwardParams p = pr.forward_params(nullptr, nullptr, false);
  Status s = run_block_forward(p, target_);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("head_dim 64 and 128"), std::string::npos) << s.message();
  p.shape.head_dim = 64;
  p.dtype = DType::kF32;
  s = run_block_forward(p, target_);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("bf16 or fp16"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace seqpar::test

#else  // no CUDA toolkit in this build

TEST(CudaKernels, SkippedWithoutCudaToolkit) {
  GTEST_SKIP() << "built without the CUDA toolkit (SEQPAR_HAVE_CUDA off): no CUDA kernels";
}

#endif
