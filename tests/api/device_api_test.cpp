// Device plans through the public API (include/seqpar/seqpar.hpp): what an embedding program on
// a GPU does, on the threads backend (the CPU emulator of the GPU in CI, cuda_emu/; the GPU in a
// GPU round). Each rank makes its own cudaStream_t, cudaMallocs its shards, copies them up on its
// stream, runs forward + backward of a Device::kCuda plan with config.stream = that stream, asks
// finite_check_result(), copies the results back, and the unsharded O, LSE, dQ, dK, dV are
// checked against the fp64 reference within bf16's tolerance. A decoding step likewise, its KV
// cache filled through DecodePlan::cache() at DecodePlan::positions(). Skips without a device.
// Only the public headers, the CUDA runtime's and the test support's skip.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <seqpar/seqpar.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "api_reference.hpp"
#include "api_test_support.hpp"
#include "tests/support/cuda_visible.hpp"

namespace {

using api_test::SchemeCase;
using seqpar::DType;
using seqpar::SchemeKind;
using seqpar::Status;
using seqpar::StatusCode;

// ---- bf16 on the host: the API takes raw storage, so the test converts itself ----

uint16_t to_bf16(float x) {  // round to nearest even (inputs are finite)
  uint32_t bits = 0;
  std::memcpy(&bits, &x, sizeof(bits));
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float x = 0.0f;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

// n uniform values in [-1, 1), already rounded to bf16: the reference sees what the device sees.
std::vector<uint16_t> random_bf16(size_t n, unsigned seed) {
  const std::vector<float> values = api_test::random_values(n, seed);
  std::vector<uint16_t> out(n);
  std::transform(values.begin(), values.end(), out.begin(), to_bf16);
  return out;
}

std::vector<double> as_double(const std::vector<uint16_t>& x) {
  std::vector<double> out(x.size());
  std::transform(x.begin(), x.end(), out.begin(), [](uint16_t h) { return from_bf16(h); });
  return out;
}

std::vector<float> as_float(const std::vector<uint16_t>& x) {
  std::vector<float> out(x.size());
  std::transform(x.begin(), x.end(), out.begin(), from_bf16);
  return out;
}

// ---- CUDA calls as Statuses ----

Status cuda(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status::ok();
  return Status(StatusCode::kCudaError, std::string(what) + ": " + cudaGetErrorString(error));
}

#define RETURN_IF_ERROR(expr)             \
  do {                                    \
    const Status status_ = (expr);        \
    if (!status_.is_ok()) return status_; \
  } while (0)

#define CUDA_RETURN_IF_ERROR(call) RETURN_IF_ERROR(cuda((call), #call))

// One device allocation, freed with its owner (a rank's body).
class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory() {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
  }
  Status allocate(size_t bytes) { return cuda(cudaMalloc(&ptr_, bytes), "cudaMalloc"); }
  template <class T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
};

// A rank's stream, destroyed with it.
class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }
  Status create() {
    return cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

template <class T>
Status upload(const std::vector<T>& host, const DeviceMemory& device, cudaStream_t stream) {
  return cuda(cudaMemcpyAsync(device.get(), host.data(), host.size() * sizeof(T),
                              cudaMemcpyHostToDevice, stream),
              "cudaMemcpyAsync (up)");
}

template <class T>
Status download(const DeviceMemory& device, std::vector<T>& host, cudaStream_t stream) {
  return cuda(cudaMemcpyAsync(host.data(), device.get(), host.size() * sizeof(T),
                              cudaMemcpyDeviceToHost, stream),
              "cudaMemcpyAsync (down)");
}

// ---- training plans ----

class DeviceApiPlan : public testing::TestWithParam<SchemeCase> {};

TEST_P(DeviceApiPlan, ForwardBackwardMatchReference) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const SchemeCase c = GetParam();
  // Causal, bf16, B = 1, S = 32 P (S % 2P == 0 for zigzag and the hybrid's ring), Hq = 4 >= P
  // (Ulysses), GQA 2, D = 64.
  seqpar::PlanConfig config;
  config.problem.batch = 1;
  config.problem.seq = 32 * c.ranks;
  config.problem.heads_q = 4;
  config.problem.heads_kv = 2;
  config.problem.head_dim = 64;
  config.problem.mask = seqpar::MaskKind::kCausal;
  config.problem.dtype = DType::kBF16;
  config.scheme = c.scheme;
  config.device = seqpar::Device::kCuda;
  if (c.scheme == SchemeKind::kHybrid) config.ulysses_degree = 2;  // a 2 x 2 grid
  const auto& p = config.problem;

  // Global tensors: q, dout (B, S, Hq, D); k, v (B, S, Hkv, D); bf16.
  const size_t nq = static_cast<size_t>(p.batch * p.seq * p.heads_q * p.head_dim);
  const size_t nkv = static_cast<size_t>(p.batch * p.seq * p.heads_kv * p.head_dim);
  const size_t nlse = static_cast<size_t>(p.batch * p.heads_q * p.seq);
  const std::vector<uint16_t> q = random_bf16(nq, 21), k = random_bf16(nkv, 22),
                              v = random_bf16(nkv, 23), dout = random_bf16(nq, 24);
  const api_test::ReferenceResult ref =
      api_test::reference_attention(api_test::causal_reference_problem(p), as_double(q),
                                    as_double(k), as_double(v), as_double(dout));
  // The ranks' results, unsharded: out, dq (B, S, Hq, D); dk, dv (B, S, Hkv, D); lse (B, Hq, S).
  std::vector<uint16_t> out(nq), dq(nq), dk(nkv), dv(nkv);
  std::vector<float> lse(nlse);

  const Status status = seqpar::run_threads(
      c.ranks,
      [&](seqpar::Communicator& comm) -> Status {
        const int rank = comm.rank();
        Stream stream;
        RETURN_IF_ERROR(stream.create());
        seqpar::PlanConfig rank_config = config;
        rank_config.stream = stream.get();
        auto plan = seqpar::Plan::create(rank_config, comm);
        if (!plan.is_ok()) return plan.status();
        auto layout = plan->layout();
        if (!layout.is_ok()) return layout.status();

        // This rank's shards: q, dout, out, dq (B, S_local, Hq, D); k, v, dk, dv
        // (B, S_local, Hkv, D); lse (B, Hq, S_local).
        const int64_t local = plan->local_seq();
        const size_t row_q = seqpar::row_bytes(p.heads_q, p.head_dim, DType::kBF16);
        const size_t row_kv = seqpar::row_bytes(p.heads_kv, p.head_dim, DType::kBF16);
        const size_t lq = static_cast<size_t>(p.batch * local * p.heads_q * p.head_dim);
        const size_t lkv = static_cast<size_t>(p.batch * local * p.heads_kv * p.head_dim);
        const size_t llse = static_cast<size_t>(p.batch * p.heads_q * local);
        std::vector<uint16_t> hq(lq), hk(lkv), hv(lkv), hdout(lq), hout(lq), hdq(lq), hdk(lkv),
            hdv(lkv);
        std::vector<float> hlse(llse);
        RETURN_IF_ERROR(layout->shard(q.data(), rank, hq.data(), p.batch, row_q));
        RETURN_IF_ERROR(layout->shard(k.data(), rank, hk.data(), p.batch, row_kv));
        RETURN_IF_ERROR(layout->shard(v.data(), rank, hv.data(), p.batch, row_kv));
        RETURN_IF_ERROR(layout->shard(dout.data(), rank, hdout.data(), p.batch, row_q));

        DeviceMemory dq_in, dk_in, dv_in, ddout, dout_, dlse, ddq, ddk, ddv;
        for (auto [memory, bytes] :
             {std::tuple{&dq_in, lq * 2}, std::tuple{&dk_in, lkv * 2}, std::tuple{&dv_in, lkv * 2},
              std::tuple{&ddout, lq * 2}, std::tuple{&dout_, lq * 2},
              std::tuple{&dlse, llse * sizeof(float)}, std::tuple{&ddq, lq * 2},
              std::tuple{&ddk, lkv * 2}, std::tuple{&ddv, lkv * 2}}) {
          RETURN_IF_ERROR(memory->allocate(bytes));
        }
        RETURN_IF_ERROR(upload(hq, dq_in, stream.get()));
        RETURN_IF_ERROR(upload(hk, dk_in, stream.get()));
        RETURN_IF_ERROR(upload(hv, dv_in, stream.get()));
        RETURN_IF_ERROR(upload(hdout, ddout, stream.get()));

        RETURN_IF_ERROR(
            plan->forward({dq_in.get(), dk_in.get(), dv_in.get(), dout_.get(), dlse.get<float>()}));
        RETURN_IF_ERROR(
            plan->backward({dq_in.get(), dk_in.get(), dv_in.get(), dout_.get(), dlse.get<float>(),
                            ddout.get(), ddq.get(), ddk.get(), ddv.get()}));
        RETURN_IF_ERROR(plan->finite_check_result());

        RETURN_IF_ERROR(download(dout_, hout, stream.get()));
        RETURN_IF_ERROR(download(dlse, hlse, stream.get()));
        RETURN_IF_ERROR(download(ddq, hdq, stream.get()));
        RETURN_IF_ERROR(download(ddk, hdk, stream.get()));
        RETURN_IF_ERROR(download(ddv, hdv, stream.get()));
        CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream.get()));

        RETURN_IF_ERROR(layout->unshard(hout.data(), rank, out.data(), p.batch, row_q));
        RETURN_IF_ERROR(layout->unshard(hdq.data(), rank, dq.data(), p.batch, row_q));
        RETURN_IF_ERROR(layout->unshard(hdk.data(), rank, dk.data(), p.batch, row_kv));
        RETURN_IF_ERROR(layout->unshard(hdv.data(), rank, dv.data(), p.batch, row_kv));
        // lse (B, Hq, S_local) is B * Hq "batches" of one-float rows in the layout.
        return layout->unshard(hlse.data(), rank, lse.data(), p.batch * p.heads_q, sizeof(float));
      },
      seqpar::Device::kCuda);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_LT(api_test::relative_error(as_float(out), ref.out), 0.02);
  EXPECT_LT(api_test::relative_error(lse, ref.lse), 0.02);
  EXPECT_LT(api_test::relative_error(as_float(dq), ref.dq), 0.02);
  EXPECT_LT(api_test::relative_error(as_float(dk), ref.dk), 0.02);
  EXPECT_LT(api_test::relative_error(as_float(dv), ref.dv), 0.02);
}

INSTANTIATE_TEST_SUITE_P(Schemes, DeviceApiPlan,
                         testing::Values(SchemeCase{SchemeKind::kZigzag, "zigzag", 2},
                                         SchemeCase{SchemeKind::kZigzag, "zigzag", 4},
                                         SchemeCase{SchemeKind::kUlysses, "ulysses", 2},
                                         SchemeCase{SchemeKind::kUlysses, "ulysses", 4},
                                         SchemeCase{SchemeKind::kHybrid, "hybrid", 4}),
                         api_test::scheme_case_name);

// ---- decoding ----

// A device DecodePlan: each rank fills its KV cache (device memory the plan owns) with the
// prompt's rows at DecodePlan::positions(), appends q_len new tokens from device memory and
// steps; every rank's out and lse against the reference of those queries over every token.
TEST(DeviceApiDecode, StepMatchesReference) {
  SEQPAR_SKIP_WITHOUT_CUDA_DEVICE();
  const int ranks = 2;
  seqpar::DecodeConfig config;
  config.problem.batch = 1;
  config.problem.seq = 40;  // the prompt's tokens, sharded over the ranks
  config.problem.heads_q = 4;
  config.problem.heads_kv = 2;
  config.problem.head_dim = 64;
  config.problem.dtype = DType::kBF16;
  config.q_len = 2;
  config.decoder = seqpar::DecoderKind::kTree;
  config.device = seqpar::Device::kCuda;
  const auto& p = config.problem;
  const int64_t n = config.q_len, total = p.seq + n;
  const size_t kv_row = static_cast<size_t>(p.heads_kv * p.head_dim);  // elements of a token
  const size_t q_row = static_cast<size_t>(p.heads_q * p.head_dim);
  // k_all, v_all (B, S + n, Hkv, D): the prompt, then the new tokens; q (B, n, Hq, D).
  const std::vector<uint16_t> k_all = random_bf16(static_cast<size_t>(total) * kv_row, 31);
  const std::vector<uint16_t> v_all = random_bf16(static_cast<size_t>(total) * kv_row, 32);
  const std::vector<uint16_t> q = random_bf16(static_cast<size_t>(n) * q_row, 33);
  const api_test::DecodePositions pos = api_test::decode_positions(p.seq, n);
  const api_test::ReferenceResult ref =
      api_test::reference_decode(api_test::causal_reference_problem(p), as_double(q), pos.q_pos,
                                 as_double(k_all), as_double(v_all), pos.k_pos);
  // Every rank's out (B, n, Hq, D) and lse (B, Hq, n).
  std::vector<std::vector<uint16_t>> outs(ranks);
  std::vector<std::vector<float>> lses(ranks);

  const Status status = seqpar::run_threads(
      ranks,
      [&](seqpar::Communicator& comm) -> Status {
        Stream stream;
        RETURN_IF_ERROR(stream.create());
        seqpar::DecodeConfig rank_config = config;
        rank_config.stream = stream.get();
        auto plan = seqpar::DecodePlan::create(rank_config, comm);
        if (!plan.is_ok()) return plan.status();
        auto cache = plan->cache();  // k, v (B, local_capacity, Hkv, D) on the device
        if (!cache.is_ok()) return cache.status();
        auto positions = plan->positions();  // the prompt tokens this rank holds
        if (!positions.is_ok()) return positions.status();
        if (positions->empty()) return Status(StatusCode::kInternal, "no prompt tokens here");
        const size_t row_bytes = kv_row * 2;
        for (size_t i = 0; i < positions->size(); ++i) {  // B = 1: row i of the cache
          const size_t from = static_cast<size_t>((*positions)[i]) * kv_row;
          CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(static_cast<char*>(cache->k) + i * row_bytes,
                                               k_all.data() + from, row_bytes,
                                               cudaMemcpyHostToDevice, stream.get()));
          CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(static_cast<char*>(cache->v) + i * row_bytes,
                                               v_all.data() + from, row_bytes,
                                               cudaMemcpyHostToDevice, stream.get()));
        }
        // The new tokens' k, v (B, n, Hkv, D), q (B, n, Hq, D); out, lse as above.
        const size_t new_elems = static_cast<size_t>(n) * kv_row;
        DeviceMemory k_new, v_new, dq_in, dout_, dlse;
        RETURN_IF_ERROR(k_new.allocate(new_elems * 2));
        RETURN_IF_ERROR(v_new.allocate(new_elems * 2));
        RETURN_IF_ERROR(dq_in.allocate(q.size() * 2));
        RETURN_IF_ERROR(dout_.allocate(q.size() * 2));
        RETURN_IF_ERROR(dlse.allocate(static_cast<size_t>(p.heads_q * n) * sizeof(float)));
        const size_t prompt_elems = static_cast<size_t>(p.seq) * kv_row;
        CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(k_new.get(), k_all.data() + prompt_elems,
                                             new_elems * 2, cudaMemcpyHostToDevice, stream.get()));
        CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(v_new.get(), v_all.data() + prompt_elems,
                                             new_elems * 2, cudaMemcpyHostToDevice, stream.get()));
        RETURN_IF_ERROR(upload(q, dq_in, stream.get()));

        RETURN_IF_ERROR(plan->append(k_new.get(), v_new.get(), n));
        RETURN_IF_ERROR(plan->step(dq_in.get(), dout_.get(), dlse.get<float>()));

        std::vector<uint16_t>& out = outs[static_cast<size_t>(comm.rank())];
        std::vector<float>& lse = lses[static_cast<size_t>(comm.rank())];
        out.resize(q.size());
        lse.resize(static_cast<size_t>(p.heads_q * n));
        RETURN_IF_ERROR(download(dout_, out, stream.get()));
        RETURN_IF_ERROR(download(dlse, lse, stream.get()));
        CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream.get()));
        return Status::ok();
      },
      seqpar::Device::kCuda);
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  for (int r = 0; r < ranks; ++r) {
    EXPECT_LT(api_test::relative_error(as_float(outs[r]), ref.out), 0.02) << "rank " << r;
    EXPECT_LT(api_test::relative_error(lses[r], ref.lse), 0.02) << "rank " << r;
  }
}

}  // namespace
