// validate_block_params names the broken rule; the dispatch runs host targets on the CPU
// kernels; CUDA targets are refused with kUnsupported in builds without the CUDA toolkit, and
// for fp32 storage (which the CUDA kernels do not take) in builds with it.
#include <gtest/gtest.h>

#include <vector>

#include "attention/cpu_block_attention.hpp"
#include "attention/dispatch.hpp"
#include "attention_test_util.hpp"

namespace seqpar::test {
namespace {

const Case kSmall{1,
                  9,
                  11,
                  4,
                  2,
                  16,
                  MaskKind::kCausal,
                  DType::kF32,
                  {MapKind::kContiguous, 5, 1, 0},
                  {MapKind::kContiguous, 0, 1, 0}};

TEST(AttentionValidate, RejectsBrokenRules) {
  const Problem pr = make_problem(kSmall, 51);
  std::vector<float> out(static_cast<size_t>(pr.q_elems())),
      lse(static_cast<size_t>(pr.stat_elems()));
  const BlockForwardParams good = pr.forward_params(out.data(), lse.data(), false);
  EXPECT_TRUE(validate_block_params(good).is_ok());

  BlockForwardParams p = good;
  p.shape.heads_q = 3;
  Status s = validate_block_params(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("multiple of kv heads"), std::string::npos) << s.message();

  p = good;
  p.k = nullptr;
  EXPECT_EQ(validate_block_params(p).code(), StatusCode::kInvalidArgument);
  p = good;
  p.dtype = DType::kF64;
  EXPECT_EQ(validate_block_params(p).code(), StatusCode::kInvalidArgument);
  p = good;
  p.shape.head_dim = 0;
  EXPECT_EQ(validate_block_params(p).code(), StatusCode::kInvalidArgument);

  std::vector<float> delta(lse.size()), dq(out.size()), dk(static_cast<size_t>(pr.k_elems()));
  BlockBackwardParams bp =
      pr.backward_params(lse.data(), delta.data(), dq.data(), dk.data(), nullptr);
  s = validate_block_params(bp);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("dk and dv together"), std::string::npos) << s.message();
  bp.dk = nullptr;
  EXPECT_TRUE(validate_block_params(bp).is_ok());
  bp.lse = nullptr;
  EXPECT_EQ(validate_block_params(bp).code(), StatusCode::kInvalidArgument);
}

// A forward-only plan carves only the forward kernel's scratch: that size is enough (the kernel
// writes nothing past it and gives the same bits as with its own scratch), and for GQA it is
// smaller than the size backward needs.
TEST(AttentionDispatch, ForwardOnlyScratchIsEnoughForForwardAndSmaller) {
  Case c = kSmall;
  c.seq_q = 70;
  c.seq_k = 90;
  c.heads_q = 8;
  c.heads_kv = 2;
  c.head_dim = 64;
  const Problem pr = make_problem(c, 53);
  const size_t forward_bytes = block_kernel_scratch_bytes(pr.shape(), KernelTarget{}, false);
  const size_t training_bytes = block_kernel_scratch_bytes(pr.shape(), KernelTarget{}, true);
  EXPECT_EQ(forward_bytes, cpu_block_scratch_floats(pr.shape(), false) * sizeof(float));
  EXPECT_LT(forward_bytes, training_bytes);
  constexpr float kGuard = -12345.0f;
  constexpr size_t kGuardFloats = 1024;
  std::vector<float> scratch(forward_bytes / sizeof(float) + kGuardFloats, kGuard);
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t ns = static_cast<size_t>(pr.stat_elems());
  std::vector<float> out(nq), lse(ns), out_own(nq), lse_own(ns);
  BlockForwardParams p = pr.forward_params(out.data(), lse.data(), false);
  p.scratch = scratch.data();
  ASSERT_TRUE(run_block_forward(p, KernelTarget{}).is_ok());
  cpu_block_forward(pr.forward_params(out_own.data(), lse_own.data(), false));
  EXPECT_EQ(out, out_own);
  EXPECT_EQ(lse, lse_own);
  for (size_t i = forward_bytes / sizeof(float); i < scratch.size(); ++i) {
    ASSERT_EQ(scratch[i], kGuard) << "the forward kernel wrote past its scratch at float " << i;
  }
}

// The CPU kernels call the progress hook between tiles (once per query tile forward, once per
// key tile backward, for every batch and kv head) and give the same bits with it as without.
TEST(AttentionDispatch, CpuKernelsCallTheProgressHookBetweenTiles) {
  Case c = kSmall;
  c.seq_q = 150;
  c.seq_k = 140;
  const Problem pr = make_problem(c, 54);
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t ns = static_cast<size_t>(pr.stat_elems());
  int calls = 0;
  const KernelProgressHook count{[](void* n) { ++*static_cast<int*>(n); }, &calls};
  std::vector<float> out(nq), lse(ns), out_plain(nq), lse_plain(ns);
  BlockForwardParams f = pr.forward_params(out.data(), lse.data(), false);
  f.progress = count;
  ASSERT_TRUE(run_block_forward(f, KernelTarget{}).is_ok());
  ASSERT_TRUE(run_block_forward(pr.forward_params(out_plain.data(), lse_plain.data(), false),
                                KernelTarget{})
                  .is_ok());
  EXPECT_EQ(out, out_plain);
  EXPECT_EQ(lse, lse_plain);
  const int forward_calls = calls;
  EXPECT_GE(forward_calls, static_cast<int>(c.batch * c.heads_kv) * 2) << "150 queries: 2+ tiles";

  std::vector<float> delta(ns);
  cpu_attention_delta(out.data(), pr.dout.data(), DType::kF32, c.batch, c.seq_q, c.heads_q,
                      c.head_dim, delta.data());
  std::vector<float> dq(nq, 0.0f), dq_plain(nq, 0.0f);
  BlockBackwardParams b = pr.backward_params(lse.data(), delta.data(), dq.data(), nullptr, nullptr);
  b.progress = count;
  ASSERT_TRUE(run_block_backward(b, KernelTarget{}).is_ok());
  ASSERT_TRUE(run_block_backward(
                  pr.backward_params(lse.data(), delta.data(), dq_plain.data(), nullptr, nullptr),
                  KernelTarget{})
                  .is_ok());
  EXPECT_EQ(dq, dq_plain);
  EXPECT_GE(calls - forward_calls, static_cast<int>(c.batch * c.heads_kv) * 2) << "140 keys";
}

TEST(AttentionDispatch, HostRunsCpuKernelsAndCudaIsUnsupported) {
  const Problem pr = make_problem(kSmall, 52);
  const size_t nq = static_cast<size_t>(pr.q_elems());
  const size_t ns = static_cast<size_t>(pr.stat_elems());
  std::vector<float> out(nq, kNaN), lse(ns, kNaN), out_direct(nq, kNaN), lse_direct(ns, kNaN);
  ASSERT_TRUE(
      run_block_forward(pr.forward_params(out.data(), lse.data(), false), KernelTarget{}).is_ok());
  cpu_block_forward(pr.forward_params(out_direct.data(), lse_direct.data(), false));
  EXPECT_EQ(out, out_direct);
  EXPECT_EQ(lse, lse_direct);

  std::vector<float> delta(ns, kNaN), delta_direct(ns, kNaN);
  ASSERT_TRUE(run_attention_delta(out.data(), pr.dout.data(), DType::kF32, 1, kSmall.seq_q,
                                  kSmall.heads_q, kSmall.head_dim, delta.data(), KernelTarget{})
                  .is_ok());
  cpu_attention_delta(out.data(), pr.dout.data(), DType::kF32, 1, kSmall.seq_q, kSmall.heads_q,
                      kSmall.head_dim, delta_direct.data());
  EXPECT_EQ(delta, delta_direct);

  std::vector<float> dq(nq, 0.0f), dq_direct(nq, 0.0f);
  ASSERT_TRUE(
      run_block_backward(pr.backward_params(lse.data(), delta.data(), dq.data(), nullptr, nullptr),
                         KernelTarget{})
          .is_ok());
  cpu_block_backward(
      pr.backward_params(lse.data(), delta.data(), dq_direct.data(), nullptr, nullptr));
  EXPECT_EQ(dq, dq_direct);

  std::vector<float> merged = out, merged_lse = lse;
  ASSERT_TRUE(run_merge_partials(merged.data(), merged_lse.data(), out.data(), lse.data(), 1,
                                 kSmall.seq_q, kSmall.heads_q, kSmall.head_dim, KernelTarget{})
                  .is_ok());

  const KernelTarget cuda{Device::kCuda, nullptr};
#ifdef SEQPAR_HAVE_CUDA
  // CUDA builds: the CUDA kernels refuse fp32 storage (this problem's) before touching memory.
  const Status s = run_block_forward(pr.forward_params(out.data(), lse.data(), false), cuda);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("bf16 or fp16"), std::string::npos) << s.message();
  EXPECT_EQ(run_block_backward(
                pr.backward_params(lse.data(), delta.data(), dq.data(), nullptr, nullptr), cuda)
                .code(),
            StatusCode::kUnsupported);
#else
  const Status s = run_block_forward(pr.forward_params(out.data(), lse.data(), false), cuda);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("CUDA attention kernels are not built"), std::string::npos)
      << s.message();
  EXPECT_EQ(run_block_backward(
                pr.backward_params(lse.data(), delta.data(), dq.data(), nullptr, nullptr), cuda)
                .code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(run_attention_delta(out.data(), pr.dout.data(), DType::kF32, 1, kSmall.seq_q,
                                kSmall.heads_q, kSmall.head_dim, delta.data(), cuda)
                .code(),
            StatusCode::kUnsupported);
  EXPECT_EQ(run_merge_partials(merged.data(), merged_lse.data(), out.data(), lse.data(), 1,
                               kSmall.seq_q, kSmall.heads_q, kSmall.head_dim, cuda)
                .code(),
            StatusCode::kUnsupported);
#endif
}

}  // namespace
}  // namespace seqpar::test
