// The C++ API (include/seqpar/seqpar.hpp) on the threads backend: forward + backward of every
// scheme against the fp64 reference, the layout helpers on every layout, DecodePlan, and errors
// as Status values. Includes only public headers (and the reference behind plain types).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <seqpar/seqpar.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api_reference.hpp"
#include "api_test_support.hpp"

namespace {

using api_test::as_double;
using api_test::random_values;
using api_test::SchemeCase;
using seqpar::DType;
using seqpar::SchemeKind;

seqpar::PlanConfig config_of(SchemeKind scheme, int64_t seq, int64_t hq, int64_t hkv) {
  seqpar::PlanConfig config;
  config.problem.batch = 2;
  config.problem.seq = seq;
  config.problem.heads_q = hq;
  config.problem.heads_kv = hkv;
  config.problem.head_dim = 16;
  config.problem.dtype = DType::kF32;
  config.scheme = scheme;
  return config;
}

TEST(CppApi, VersionIsTheProjectVersion) {
  EXPECT_STREQ(seqpar::version(), "0.1.0");
  EXPECT_STREQ(seqpar::version(), SEQPAR_VERSION_STRING);
}

class CppApiScheme : public testing::TestWithParam<SchemeCase> {};

// Every rank shards the global inputs with the plan's layout, runs forward + backward, and
// unshards its outputs into the shared global tensors (disjoint rows); lse is checked per rank
// through local_positions.
TEST_P(CppApiScheme, ForwardBackwardMatchReference) {
  const SchemeCase c = GetParam();
  seqpar::PlanConfig config = config_of(c.scheme, 8 * c.ranks, 4, 2);
  if (c.scheme == SchemeKind::kHybrid) config.ulysses_degree = 2;  // a true 2 x 2 grid
  const auto& p = config.problem;
  const size_t nq = static_cast<size_t>(p.batch * p.seq * p.heads_q * p.head_dim);
  const size_t nkv = static_cast<size_t>(p.batch * p.seq * p.heads_kv * p.head_dim);
  const std::vector<float> q = random_values(nq, 1), k = random_values(nkv, 2),
                           v = random_values(nkv, 3), dout = random_values(nq, 4);
  const api_test::ReferenceResult ref =
      api_test::reference_attention(api_test::causal_reference_problem(p), as_double(q),
                                    as_double(k), as_double(v), as_double(dout));
  std::vector<float> out(nq), dq(nq), dk(nkv), dv(nkv);
  std::vector<double> lse_error(static_cast<size_t>(c.ranks), 0.0);

  const seqpar::Status status = seqpar::run_threads(c.ranks, [&](seqpar::Communicator& comm) {
    const int rank = comm.rank();
    auto plan = seqpar::Plan::create(config, comm);
    if (!plan.is_ok()) return plan.status();
    auto layout = plan->layout();
    if (!layout.is_ok()) return layout.status();
    const int64_t local = plan->local_seq();
    if (local != layout->local_seq(rank)) {
      return seqpar::Status(seqpar::StatusCode::kInternal, "local_seq disagrees");
    }
    const size_t row_q = seqpar::row_bytes(p.heads_q, p.head_dim, DType::kF32);
    const size_t row_kv = seqpar::row_bytes(p.heads_kv, p.head_dim, DType::kF32);
    const size_t lq = static_cast<size_t>(p.batch * local * p.heads_q * p.head_dim);
    const size_t lkv = static_cast<size_t>(p.batch * local * p.heads_kv * p.head_dim);
    std::vector<float> sq(lq), sk(lkv), sv(lkv), sdout(lq), sout(lq), sdq(lq), sdk(lkv), sdv(lkv);
    std::vector<float> slse(static_cast<size_t>(p.batch * p.heads_q * local));
    for (auto [global, shard, row] :
         {std::tuple{&q, &sq, row_q}, std::tuple{&k, &sk, row_kv}, std::tuple{&v, &sv, row_kv},
          std::tuple{&dout, &sdout, row_q}}) {
      seqpar::Status s = layout->shard(global->data(), rank, shard->data(), p.batch, row);
      if (!s.is_ok()) return s;
    }
    seqpar::Status s = plan->forward({sq.data(), sk.data(), sv.data(), sout.data(), slse.data()});
    if (s.is_ok()) {
      s = plan->backward({sq.data(), sk.data(), sv.data(), sout.data(), slse.data(), sdout.data(),
                          sdq.data(), sdk.data(), sdv.data()});
    }
    if (!s.is_ok()) return s;
    for (auto [shard, global, row] :
         {std::tuple{&sout, &out, row_q}, std::tuple{&sdq, &dq, row_q},
          std::tuple{&sdk, &dk, row_kv}, std::tuple{&sdv, &dv, row_kv}}) {
      s = layout->unshard(shard->data(), rank, global->data(), p.batch, row);
      if (!s.is_ok()) return s;
    }
    auto positions = layout->local_positions(rank);
    if (!positions.is_ok()) return positions.status();
    for (int64_t bh = 0; bh < p.batch * p.heads_q; ++bh) {
      for (int64_t i = 0; i < local; ++i) {
        const double want = ref.lse[static_cast<size_t>(bh * p.seq + (*positions)[i])];
        const double got = slse[static_cast<size_t>(bh * local + i)];
        lse_error[rank] = std::max(lse_error[rank], std::abs(got - want));
      }
    }
    return seqpar::Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.to_string();
  EXPECT_LT(api_test::relative_error(out, ref.out), 1e-5);
  EXPECT_LT(api_test::relative_error(dq, ref.dq), 1e-5);
  EXPECT_LT(api_test::relative_error(dk, ref.dk), 1e-5);
  EXPECT_LT(api_test::relative_error(dv, ref.dv), 1e-5);
  EXPECT_LT(*std::max_element(lse_error.begin(), lse_error.end()), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(EveryScheme, CppApiScheme,
                         testing::Values(SchemeCase{SchemeKind::kRing, "ring", 2},
                                         SchemeCase{SchemeKind::kRing, "ring", 3},
                                         SchemeCase{SchemeKind::kStriped, "striped", 2},
                                         SchemeCase{SchemeKind::kZigzag, "zigzag", 2},
                                         SchemeCase{SchemeKind::kZigzag, "zigzag", 4},
                                         SchemeCase{SchemeKind::kLightSeq, "lightseq", 4},
                                         SchemeCase{SchemeKind::kUlysses, "ulysses", 2},
                                         SchemeCase{SchemeKind::kHybrid, "hybrid", 4},
                                         SchemeCase{SchemeKind::kTree, "tree", 3}),
                         api_test::scheme_case_name);

// The cost model through the API: the choice is a config the runtime accepts and runs.
TEST(CppApi, ChooseSchemePicksAConfigThePlanRuns) {
  // Device plans: the documented H100 node; nothing is measured.
  seqpar::PlanConfig device = config_of(SchemeKind::kRing, 64 * 1024, 32, 8);
  device.device = seqpar::Device::kCuda;
  device.problem.head_dim = 128;
  device.ranks_per_node = 4;
  const seqpar::Status chosen = seqpar::choose_scheme(device, 8);
  ASSERT_TRUE(chosen.is_ok()) << chosen.to_string();
  EXPECT_TRUE(seqpar::Layout::for_config(device, 8).is_ok());

  // Host plans: the CPU kernel's rate, measured into a cache of the test's own.
  const std::string cache = testing::TempDir() + "seqpar_choose_scheme_cache";
  ASSERT_EQ(setenv("SEQPAR_CACHE_DIR", cache.c_str(), 1), 0);
  seqpar::PlanConfig host = config_of(SchemeKind::kRing, 64, 4, 2);
  ASSERT_TRUE(seqpar::choose_scheme(host, 4).is_ok());
  seqpar::PlanConfig again = config_of(SchemeKind::kRing, 64, 4, 2);
  ASSERT_TRUE(seqpar::choose_scheme(again, 4).is_ok());  // from the cache: the same choice
  EXPECT_EQ(again.scheme, host.scheme);
  EXPECT_EQ(again.ulysses_degree, host.ulysses_degree);
  const seqpar::Status ran = seqpar::run_threads(4, [&](seqpar::Communicator& comm) {
    auto plan = seqpar::Plan::create(host, comm);
    return plan.is_ok() ? seqpar::Status::ok() : plan.status();
  });
  EXPECT_TRUE(ran.is_ok()) << ran.to_string();

  // Nothing fits: a statement of why, not a choice.
  seqpar::PlanConfig huge = config_of(SchemeKind::kRing, int64_t{1} << 30, 64, 8);
  huge.device = seqpar::Device::kCuda;
  huge.problem.head_dim = 128;
  const seqpar::Status refused = seqpar::choose_scheme(huge, 2);
  EXPECT_EQ(refused.code(), seqpar::StatusCode::kInvalidArgument) << refused.to_string();
  seqpar::PlanConfig split = config_of(SchemeKind::kRing, 64, 4, 2);
  split.ranks_per_node = 3;
  EXPECT_EQ(seqpar::choose_scheme(split, 4).code(), seqpar::StatusCode::kInvalidArgument);
  EXPECT_EQ(seqpar::choose_scheme(host, 0).code(), seqpar::StatusCode::kInvalidArgument);
}

// shard -> unshard restores a global tensor, and each shard row is the global row at its
// position; the ranks' positions cover [0, S) once.
struct LayoutCase {
  SchemeKind scheme;
  seqpar::LayoutKind kind;
  int ranks;
  int64_t seq;
  int ulysses_degree;
};

// Printed by its fields (gtest would print the struct's bytes, padding included, which differ
// between builds and end up in the registered test names).
void PrintTo(const LayoutCase& c, std::ostream* os) {
  *os << "layout " << static_cast<int>(c.kind) << ", P " << c.ranks << ", S " << c.seq << ", U "
      << c.ulysses_degree;
}

class CppApiLayout : public testing::TestWithParam<LayoutCase> {};

TEST_P(CppApiLayout, ShardUnshardRoundTrip) {
  const LayoutCase c = GetParam();
  seqpar::PlanConfig config = config_of(c.scheme, c.seq, 8, 8);
  config.ulysses_degree = c.ulysses_degree;
  auto layout = seqpar::Layout::for_config(config, c.ranks);
  ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
  EXPECT_EQ(layout->kind(), c.kind);
  EXPECT_EQ(layout->ranks(), c.ranks);
  EXPECT_EQ(layout->seq(), c.seq);
  const int64_t batch = 2, width = 3;  // rows of 3 floats
  const std::vector<float> global = random_values(static_cast<size_t>(batch * c.seq * width), 7);
  std::vector<float> again(global.size(), 0.0f);
  std::vector<int> seen(static_cast<size_t>(c.seq), 0);
  for (int rank = 0; rank < c.ranks; ++rank) {
    const int64_t local = layout->local_seq(rank);
    auto positions = layout->local_positions(rank);
    ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
    ASSERT_EQ(static_cast<int64_t>(positions->size()), local);
    std::vector<float> shard(static_cast<size_t>(batch * local * width));
    ASSERT_TRUE(
        layout->shard(global.data(), rank, shard.data(), batch, width * sizeof(float)).is_ok());
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < local; ++i) {
        const int64_t pos = (*positions)[i];
        ASSERT_EQ(std::memcmp(&shard[static_cast<size_t>((b * local + i) * width)],
                              &global[static_cast<size_t>((b * c.seq + pos) * width)],
                              width * sizeof(float)),
                  0)
            << "rank " << rank << " row " << i;
      }
    }
    for (int64_t pos : *positions) ++seen[static_cast<size_t>(pos)];
    ASSERT_TRUE(
        layout->unshard(shard.data(), rank, again.data(), batch, width * sizeof(float)).is_ok());
  }
  EXPECT_EQ(again, global);
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
}

INSTANTIATE_TEST_SUITE_P(
    EveryLayout, CppApiLayout,
    testing::Values(LayoutCase{SchemeKind::kRing, seqpar::LayoutKind::kContiguous, 3, 11, 0},
                    LayoutCase{SchemeKind::kUlysses, seqpar::LayoutKind::kContiguous, 4, 16, 0},
                    LayoutCase{SchemeKind::kStriped, seqpar::LayoutKind::kStriped, 4, 16, 0},
                    LayoutCase{SchemeKind::kZigzag, seqpar::LayoutKind::kZigzag, 4, 24, 0},
                    LayoutCase{SchemeKind::kHybrid, seqpar::LayoutKind::kHybridZigzag, 4, 16, 2},
                    LayoutCase{SchemeKind::kHybrid, seqpar::LayoutKind::kHybridZigzag, 8, 20, 4},
                    LayoutCase{SchemeKind::kHybrid, seqpar::LayoutKind::kHybridZigzag, 6, 12, 3}),
    [](const testing::TestParamInfo<LayoutCase>& param_info) {  // e.g. "layout2_P4_S24_U0"
      const LayoutCase& c = param_info.param;
      return "layout" + std::to_string(static_cast<int>(c.kind)) + "_P" + std::to_string(c.ranks) +
             "_S" + std::to_string(c.seq) + "_U" + std::to_string(c.ulysses_degree);
    });

TEST(CppApi, LayoutRefusesWhatThePlanWould) {
  auto layout = seqpar::Layout::for_config(config_of(SchemeKind::kZigzag, 10, 4, 2), 4);
  ASSERT_FALSE(layout.is_ok());
  EXPECT_EQ(layout.status().code(), seqpar::StatusCode::kInvalidArgument);
  EXPECT_NE(layout.status().message().find("zigzag"), std::string::npos)
      << layout.status().message();
  auto ok = seqpar::Layout::for_config(config_of(SchemeKind::kZigzag, 16, 4, 2), 4);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_FALSE(ok->shard(nullptr, 0, nullptr, 1, 4).is_ok());
  EXPECT_FALSE(ok->local_positions(4).is_ok());
}

// A decoding step through the API: the whole prompt loaded, q_len new tokens appended, the step
// against the reference of those queries over every cached token, on every rank.
TEST(CppApi, DecodePlanMatchesReference) {
  for (seqpar::DecoderKind decoder : {seqpar::DecoderKind::kTree, seqpar::DecoderKind::kRing}) {
    const int ranks = 3;
    seqpar::DecodeConfig config;
    config.problem = {1, 10, 4, 2, 16, seqpar::MaskKind::kCausal, DType::kF32, 0.0f};
    config.q_len = 2;
    config.decoder = decoder;
    const auto& p = config.problem;
    const int64_t n = config.q_len, total = p.seq + n;
    const size_t kv_row = static_cast<size_t>(p.heads_kv * p.head_dim);
    const size_t q_row = static_cast<size_t>(p.heads_q * p.head_dim);
    const std::vector<float> k_all = random_values(static_cast<size_t>(total) * kv_row, 11);
    const std::vector<float> v_all = random_values(static_cast<size_t>(total) * kv_row, 12);
    const std::vector<float> q = random_values(static_cast<size_t>(n) * q_row, 13);
    const api_test::DecodePositions pos = api_test::decode_positions(p.seq, n);
    const api_test::ReferenceResult ref =
        api_test::reference_decode(api_test::causal_reference_problem(p), as_double(q), pos.q_pos,
                                   as_double(k_all), as_double(v_all), pos.k_pos);
    std::vector<std::vector<float>> outs(ranks), lses(ranks);

    const seqpar::Status status = seqpar::run_threads(ranks, [&](seqpar::Communicator& comm) {
      auto plan = seqpar::DecodePlan::create(config, comm);
      if (!plan.is_ok()) return plan.status();
      // The prompt is the first S tokens of k_all, v_all (B = 1).
      seqpar::Status s = plan->load_prompt(k_all.data(), v_all.data());
      if (s.is_ok()) {
        s = plan->append(k_all.data() + p.seq * kv_row, v_all.data() + p.seq * kv_row, n);
      }
      auto positions = plan->positions();
      if (!positions.is_ok()) return positions.status();
      if (positions->empty()) return seqpar::Status(seqpar::StatusCode::kInternal, "no tokens");
      std::vector<float>& out = outs[comm.rank()];
      std::vector<float>& lse = lses[comm.rank()];
      out.resize(static_cast<size_t>(n) * q_row);
      lse.resize(static_cast<size_t>(p.heads_q * n));
      if (s.is_ok()) s = plan->step(q.data(), out.data(), lse.data());
      return s;
    });
    ASSERT_TRUE(status.is_ok()) << status.to_string();
    for (int r = 0; r < ranks; ++r) {
      EXPECT_LT(api_test::relative_error(outs[r], ref.out), 1e-5) << "rank " << r;
      EXPECT_LT(api_test::relative_error(lses[r], ref.lse), 1e-5) << "rank " << r;
    }
  }
}

TEST(CppApi, BadProblemsAreStatusesNamingTheRule) {
  const seqpar::Status status = seqpar::run_threads(2, [](seqpar::Communicator& comm) {
    auto plan = seqpar::Plan::create(config_of(SchemeKind::kZigzag, 16, 6, 4), comm);
    if (plan.is_ok()) return seqpar::Status(seqpar::StatusCode::kInternal, "made a plan");
    if (plan.status().code() != seqpar::StatusCode::kInvalidArgument) return plan.status();
    return seqpar::Status::ok();
  });
  EXPECT_TRUE(status.is_ok()) << status.to_string();
}

TEST(CppApi, FailingOrThrowingRanksReportTheirRank) {
  seqpar::Status failed = seqpar::run_threads(3, [](seqpar::Communicator& comm) {
    if (comm.rank() == 1)
      return seqpar::Status(seqpar::StatusCode::kNumericError, "rank body says no");
    return seqpar::Status::ok();
  });
  EXPECT_EQ(failed.code(), seqpar::StatusCode::kNumericError);
  EXPECT_NE(failed.message().find("rank 1"), std::string::npos) << failed.message();
  EXPECT_NE(failed.message().find("rank body says no"), std::string::npos) << failed.message();

  seqpar::Status threw = seqpar::run_threads(2, [](seqpar::Communicator&) -> seqpar::Status {
    throw std::runtime_error("thrown in a body");
  });
  EXPECT_EQ(threw.code(), seqpar::StatusCode::kInternal);
  EXPECT_NE(threw.message().find("thrown in a body"), std::string::npos) << threw.message();

  EXPECT_EQ(
      seqpar::run_threads(0, [](seqpar::Communicator&) { return seqpar::Status::ok(); }).code(),
      seqpar::StatusCode::kInvalidArgument);
}

TEST(CppApi, EmptyHandlesFailCleanly) {
  seqpar::Communicator empty;
  EXPECT_EQ(empty.rank(), -1);
  EXPECT_EQ(empty.size(), 0);
  auto plan = seqpar::Plan::create(config_of(SchemeKind::kRing, 8, 2, 2), empty);
  ASSERT_FALSE(plan.is_ok());
  EXPECT_NE(plan.status().message().find("comm is null"), std::string::npos)
      << plan.status().message();
}

// make_threads_communicators: the caller runs the ranks' threads itself.
TEST(CppApi, ThreadsCommunicatorsOnCallerThreads) {
  auto comms = seqpar::make_threads_communicators(2);
  ASSERT_TRUE(comms.is_ok()) << comms.status().to_string();
  ASSERT_EQ(comms->size(), 2u);
  const seqpar::PlanConfig config = config_of(SchemeKind::kZigzag, 16, 2, 2);
  std::vector<seqpar::Status> results(2);
  std::vector<size_t> workspace(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      seqpar::Communicator& comm = (*comms)[static_cast<size_t>(r)];
      auto plan = seqpar::Plan::create(config, comm);
      if (!plan.is_ok()) {
        results[r] = plan.status();
        return;
      }
      workspace[r] = plan->workspace_bytes();
      const size_t n = static_cast<size_t>(plan->local_seq() * 2 * 2 * 16);
      std::vector<float> q(n, 0.5f), out(n);
      std::vector<float> lse(static_cast<size_t>(plan->local_seq() * 2 * 2));
      results[r] = plan->forward({q.data(), q.data(), q.data(), out.data(), lse.data()});
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) EXPECT_TRUE(results[r].is_ok()) << results[r].to_string();
  EXPECT_GT(workspace[0], 0u);
}

}  // namespace
