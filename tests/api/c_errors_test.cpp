// Every error path of the C ABI (include/seqpar/seqpar.h): null handles and out-pointers, too
// old or too new config structs, unknown enum values, bad shapes. Each returns a clear status
// and sets a last-error message naming the function and the rule; none crashes. Includes only
// the C header.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "c_error_expect.hpp"
#include "seqpar/seqpar.h"

namespace {

// A one-rank threads communicator, destroyed with the fixture.
class CErrors : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(seqpar_threads_group_create(1, SEQPAR_DEVICE_HOST, &comm_), SEQPAR_OK);
  }
  void TearDown() override { seqpar_comm_destroy(comm_); }
  seqpar_comm* comm_ = nullptr;
};

TEST(CAbi, VersionAndStatusNames) {
  EXPECT_STREQ(seqpar_version_string(), "0.1.0");
  EXPECT_STREQ(seqpar_status_name(SEQPAR_OK), "ok");
  EXPECT_STREQ(seqpar_status_name(SEQPAR_INVALID_ARGUMENT), "invalid_argument");
  EXPECT_STREQ(seqpar_status_name(static_cast<seqpar_status>(15)), "unknown");
  EXPECT_EQ(seqpar_dtype_size(SEQPAR_DTYPE_BF16), 2u);
  EXPECT_EQ(seqpar_dtype_size(42), 0u);
}

TEST(CAbi, NullOutPointersAndHandles) {
  EXPECT_C_ERROR(seqpar_plan_config_init(nullptr), SEQPAR_INVALID_ARGUMENT, "config is null");
  EXPECT_C_ERROR(seqpar_decode_config_init(nullptr), SEQPAR_INVALID_ARGUMENT, "config is null");
  EXPECT_C_ERROR(seqpar_comm_from_mpi_fortran(0, nullptr), SEQPAR_INVALID_ARGUMENT, "out is null");
  EXPECT_C_ERROR(seqpar_comm_from_nccl(nullptr, nullptr, nullptr), SEQPAR_INVALID_ARGUMENT,
                 "out is null");
  seqpar_comm* comm = nullptr;
  EXPECT_C_ERROR(seqpar_comm_from_nccl(nullptr, nullptr, &comm), SEQPAR_INVALID_ARGUMENT,
                 "nccl_comm is null");
  EXPECT_C_ERROR(seqpar_threads_group_create(2, SEQPAR_DEVICE_HOST, nullptr),
                 SEQPAR_INVALID_ARGUMENT, "comms is null");
  EXPECT_C_ERROR(seqpar_run_threads(2, SEQPAR_DEVICE_HOST, nullptr, nullptr),
                 SEQPAR_INVALID_ARGUMENT, "body is null");
  int value = 0;
  EXPECT_C_ERROR(seqpar_comm_rank(nullptr, &value), SEQPAR_INVALID_ARGUMENT, "comm is null");
  EXPECT_C_ERROR(seqpar_comm_size(nullptr, &value), SEQPAR_INVALID_ARGUMENT, "comm is null");

  const seqpar_plan_config config = valid_config();
  seqpar_plan* plan = nullptr;
  EXPECT_C_ERROR(seqpar_plan_create(&config, nullptr, &plan), SEQPAR_INVALID_ARGUMENT,
                 "comm is null");
  EXPECT_C_ERROR(seqpar_plan_create(nullptr, nullptr, nullptr), SEQPAR_INVALID_ARGUMENT,
                 "out is null");
  float x = 0;
  EXPECT_C_ERROR(seqpar_plan_forward(nullptr, &x, &x, &x, &x, &x), SEQPAR_INVALID_ARGUMENT,
                 "seqpar_plan_forward: plan is null");
  EXPECT_C_ERROR(seqpar_plan_backward(nullptr, &x, &x, &x, &x, &x, &x, &x, &x, &x),
                 SEQPAR_INVALID_ARGUMENT, "seqpar_plan_backward: plan is null");
  EXPECT_C_ERROR(seqpar_plan_finite_check_result(nullptr), SEQPAR_INVALID_ARGUMENT, "plan is null");
  size_t bytes = 0;
  int64_t local = 0;
  EXPECT_C_ERROR(seqpar_plan_workspace_bytes(nullptr, &bytes), SEQPAR_INVALID_ARGUMENT,
                 "plan is null");
  EXPECT_C_ERROR(seqpar_plan_local_seq(nullptr, &local), SEQPAR_INVALID_ARGUMENT, "plan is null");
  seqpar_layout* layout = nullptr;
  EXPECT_C_ERROR(seqpar_plan_layout(nullptr, &layout), SEQPAR_INVALID_ARGUMENT, "plan is null");

  EXPECT_C_ERROR(seqpar_layout_create(&config, 2, nullptr), SEQPAR_INVALID_ARGUMENT, "out is null");
  EXPECT_C_ERROR(seqpar_plan_config_choose_scheme(nullptr, 2), SEQPAR_INVALID_ARGUMENT,
                 "config is null");
  int32_t kind = 0;
  EXPECT_C_ERROR(seqpar_layout_get_kind(nullptr, &kind), SEQPAR_INVALID_ARGUMENT, "layout is null");
  EXPECT_C_ERROR(seqpar_layout_ranks(nullptr, &value), SEQPAR_INVALID_ARGUMENT, "layout is null");
  EXPECT_C_ERROR(seqpar_layout_seq(nullptr, &local), SEQPAR_INVALID_ARGUMENT, "layout is null");
  EXPECT_C_ERROR(seqpar_layout_local_seq(nullptr, 0, &local), SEQPAR_INVALID_ARGUMENT,
                 "layout is null");
  EXPECT_C_ERROR(seqpar_layout_positions(nullptr, 0, &local, 1), SEQPAR_INVALID_ARGUMENT,
                 "layout is null");
  EXPECT_C_ERROR(seqpar_layout_shard(nullptr, 0, &x, &x, 1, 4), SEQPAR_INVALID_ARGUMENT,
                 "layout is null");
  EXPECT_C_ERROR(seqpar_layout_unshard(nullptr, 0, &x, &x, 1, 4), SEQPAR_INVALID_ARGUMENT,
                 "layout is null");

  seqpar_decode_config decode;
  ASSERT_EQ(seqpar_decode_config_init(&decode), SEQPAR_OK);
  seqpar_decode_plan* decode_plan = nullptr;
  EXPECT_C_ERROR(seqpar_decode_plan_create(&decode, nullptr, &decode_plan), SEQPAR_INVALID_ARGUMENT,
                 "comm is null");
  EXPECT_C_ERROR(seqpar_decode_plan_load_prompt(nullptr, &x, &x), SEQPAR_INVALID_ARGUMENT,
                 "plan is null");
  void* pointer = nullptr;
  EXPECT_C_ERROR(seqpar_decode_plan_cache(nullptr, &pointer, &pointer, &local, &local),
                 SEQPAR_INVALID_ARGUMENT, "plan is null");
  EXPECT_C_ERROR(seqpar_decode_plan_positions(nullptr, &local, 1), SEQPAR_INVALID_ARGUMENT,
                 "plan is null");
  EXPECT_C_ERROR(seqpar_decode_plan_append(nullptr, &x, &x, 1), SEQPAR_INVALID_ARGUMENT,
                 "plan is null");
  EXPECT_C_ERROR(seqpar_decode_plan_step(nullptr, &x, &x, &x), SEQPAR_INVALID_ARGUMENT,
                 "plan is null");
  EXPECT_C_ERROR(seqpar_decode_plan_workspace_bytes(nullptr, &bytes), SEQPAR_INVALID_ARGUMENT,
                 "plan is null");
  EXPECT_C_ERROR(seqpar_scheme_from_name(nullptr, &kind), SEQPAR_INVALID_ARGUMENT, "name is null");

  // Destroying null handles is a no-op.
  seqpar_comm_destroy(nullptr);
  seqpar_plan_destroy(nullptr);
  seqpar_layout_destroy(nullptr);
  seqpar_decode_plan_destroy(nullptr);
}

TEST_F(CErrors, StructSizeTooOldOrUnknownFieldsSet) {
  seqpar_plan_config config = valid_config();
  seqpar_plan* plan = nullptr;
  config.struct_size = 0;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT,
                 "struct_size = 0 is older than this library accepts");
  config.struct_size = sizeof(seqpar_plan_config) - 4;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT,
                 "older than this library accepts");
  EXPECT_EQ(plan, nullptr);

  // A caller built against a newer header: unknown trailing fields left zero are fine, set ones
  // are refused.
  struct Newer {
    seqpar_plan_config base;
    int64_t future_field;
  } newer{};
  newer.base = valid_config();
  newer.base.struct_size = sizeof(Newer);
  ASSERT_EQ(seqpar_plan_create(&newer.base, comm_, &plan), SEQPAR_OK) << seqpar_last_error();
  seqpar_plan_destroy(plan);
  plan = nullptr;
  newer.future_field = 1;
  EXPECT_C_ERROR(seqpar_plan_create(&newer.base, comm_, &plan), SEQPAR_UNSUPPORTED,
                 "does not know");

  seqpar_decode_config decode;
  ASSERT_EQ(seqpar_decode_config_init(&decode), SEQPAR_OK);
  decode.struct_size = 8;
  seqpar_decode_plan* decode_plan = nullptr;
  EXPECT_C_ERROR(seqpar_decode_plan_create(&decode, comm_, &decode_plan), SEQPAR_INVALID_ARGUMENT,
                 "seqpar_decode_config.struct_size = 8");
  seqpar_layout* layout = nullptr;
  config.struct_size = 3;
  EXPECT_C_ERROR(seqpar_layout_create(&config, 1, &layout), SEQPAR_INVALID_ARGUMENT,
                 "older than this library accepts");
}

TEST_F(CErrors, UnknownEnumValues) {
  seqpar_plan* plan = nullptr;
  seqpar_plan_config config = valid_config();
  config.scheme = 77;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT,
                 "unknown scheme value 77");
  config = valid_config();
  config.dtype = -1;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT,
                 "unknown dtype value -1");
  config = valid_config();
  config.mask = 5;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT,
                 "unknown mask value 5");
  config = valid_config();
  config.device = 9;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT,
                 "unknown device value 9");
  seqpar_decode_config decode;
  ASSERT_EQ(seqpar_decode_config_init(&decode), SEQPAR_OK);
  decode.prompt = 4;
  decode.heads_q = decode.heads_kv = 1;
  decode.head_dim = 16;
  decode.decoder = 3;
  seqpar_decode_plan* decode_plan = nullptr;
  EXPECT_C_ERROR(seqpar_decode_plan_create(&decode, comm_, &decode_plan), SEQPAR_INVALID_ARGUMENT,
                 "unknown decoder value 3");
  int32_t scheme = -1;
  EXPECT_C_ERROR(seqpar_scheme_from_name("spiral", &scheme), SEQPAR_INVALID_ARGUMENT,
                 "unknown scheme 'spiral'");
  EXPECT_C_ERROR(seqpar_threads_group_create(1, 7, &comm_), SEQPAR_INVALID_ARGUMENT,
                 "unknown device value 7");
  EXPECT_EQ(plan, nullptr);
  EXPECT_EQ(decode_plan, nullptr);
}

// Every C scheme value names a registered scheme.
TEST(CAbi, EverySchemeValueIsRegistered) {
  const char* names[] = {"ring", "striped", "zigzag", "lightseq", "ulysses", "hybrid", "tree"};
  for (int32_t value = SEQPAR_SCHEME_RING; value <= SEQPAR_SCHEME_TREE; ++value) {
    int32_t parsed = -1;
    ASSERT_EQ(seqpar_scheme_from_name(names[value], &parsed), SEQPAR_OK) << seqpar_last_error();
    EXPECT_EQ(parsed, value);
    seqpar_plan_config config = valid_config();
    config.scheme = value;
    seqpar_layout* layout = nullptr;
    // Only the registry lookup is under test: any verdict but an unknown scheme is fine.
    const seqpar_status status = seqpar_layout_create(&config, 2, &layout);
    EXPECT_EQ(std::string(seqpar_last_error()).find("unknown scheme"), std::string::npos)
        << names[value] << ": " << seqpar_last_error();
    if (status == SEQPAR_OK) seqpar_layout_destroy(layout);
  }
}

TEST_F(CErrors, BadShapes) {
  seqpar_plan* plan = nullptr;
  seqpar_plan_config config = valid_config();
  config.heads_q = 6;
  config.heads_kv = 4;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT, "6");
  config = valid_config();
  config.seq = 0;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT, "seq");
  config = valid_config();
  config.head_dim = -3;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT, "");
  config = valid_config();
  config.seq = 10;  // zigzag on 4 ranks needs S % 8 == 0
  seqpar_layout* layout = nullptr;
  EXPECT_C_ERROR(seqpar_layout_create(&config, 4, &layout), SEQPAR_INVALID_ARGUMENT, "zigzag");
  config = valid_config();
  EXPECT_C_ERROR(seqpar_layout_create(&config, 0, &layout), SEQPAR_INVALID_ARGUMENT, "ranks = 0");
  EXPECT_EQ(plan, nullptr);
  EXPECT_EQ(layout, nullptr);

  ASSERT_EQ(seqpar_layout_create(&config, 2, &layout), SEQPAR_OK) << seqpar_last_error();
  int64_t local = 0;
  EXPECT_C_ERROR(seqpar_layout_local_seq(layout, 2, &local), SEQPAR_INVALID_ARGUMENT,
                 "rank 2 is outside [0, 2)");
  EXPECT_C_ERROR(seqpar_layout_local_seq(layout, -1, &local), SEQPAR_INVALID_ARGUMENT, "rank -1");
  std::vector<int64_t> positions(4);
  EXPECT_C_ERROR(seqpar_layout_positions(layout, 0, positions.data(), 4), SEQPAR_INVALID_ARGUMENT,
                 "capacity 4 < the 8 tokens");
  std::vector<float> global(64), shard(64);
  EXPECT_C_ERROR(seqpar_layout_shard(layout, 0, global.data(), shard.data(), 0, 4),
                 SEQPAR_INVALID_ARGUMENT, "batch = 0");
  EXPECT_C_ERROR(seqpar_layout_shard(layout, 0, nullptr, shard.data(), 1, 4),
                 SEQPAR_INVALID_ARGUMENT, "source tensor is null");
  EXPECT_C_ERROR(seqpar_layout_unshard(layout, 0, shard.data(), nullptr, 1, 4),
                 SEQPAR_INVALID_ARGUMENT, "destination tensor is null");
  EXPECT_C_ERROR(seqpar_layout_shard(layout, 0, global.data(), shard.data(), 1, 0),
                 SEQPAR_INVALID_ARGUMENT, "row_bytes = 0");
  EXPECT_C_ERROR(
      seqpar_layout_shard(layout, 0, global.data(), shard.data(), INT64_MAX / 2, 1 << 20),
      SEQPAR_INVALID_ARGUMENT, "overflows");
  seqpar_layout_destroy(layout);

  seqpar_decode_config decode;
  ASSERT_EQ(seqpar_decode_config_init(&decode), SEQPAR_OK);
  decode.prompt = 4;
  decode.heads_q = 3;
  decode.heads_kv = 2;
  decode.head_dim = 16;
  seqpar_decode_plan* decode_plan = nullptr;
  EXPECT_C_ERROR(seqpar_decode_plan_create(&decode, comm_, &decode_plan), SEQPAR_INVALID_ARGUMENT,
                 "");
  EXPECT_EQ(decode_plan, nullptr);
}

// A plan-level failure inside a step (a missing tensor) is a status; the group is aborted.
TEST_F(CErrors, MissingTensorsInASteps) {
  seqpar_plan_config config = valid_config();
  config.seq = 8;
  seqpar_plan* plan = nullptr;
  ASSERT_EQ(seqpar_plan_create(&config, comm_, &plan), SEQPAR_OK) << seqpar_last_error();
  int64_t local = 0;
  ASSERT_EQ(seqpar_plan_local_seq(plan, &local), SEQPAR_OK);
  EXPECT_EQ(local, 8);
  std::vector<float> x(static_cast<size_t>(local * 4 * 16), 0.25f);
  EXPECT_C_ERROR(seqpar_plan_forward(plan, x.data(), nullptr, x.data(), x.data(), x.data()),
                 SEQPAR_INVALID_ARGUMENT, "forward needs q, k, v, out and lse");
  seqpar_plan_destroy(plan);

  seqpar_decode_config decode;
  ASSERT_EQ(seqpar_decode_config_init(&decode), SEQPAR_OK);
  decode.prompt = 4;
  decode.heads_q = decode.heads_kv = 1;
  decode.head_dim = 16;
  decode.dtype = SEQPAR_DTYPE_F32;
  seqpar_comm* fresh = nullptr;  // the abort above ended the fixture's group
  ASSERT_EQ(seqpar_threads_group_create(1, SEQPAR_DEVICE_HOST, &fresh), SEQPAR_OK);
  seqpar_decode_plan* decode_plan = nullptr;
  ASSERT_EQ(seqpar_decode_plan_create(&decode, fresh, &decode_plan), SEQPAR_OK)
      << seqpar_last_error();
  int64_t positions[1];
  EXPECT_C_ERROR(seqpar_decode_plan_positions(decode_plan, positions, 1), SEQPAR_INVALID_ARGUMENT,
                 "capacity 1 < the 4 tokens");
  EXPECT_C_ERROR(seqpar_decode_plan_load_prompt(decode_plan, nullptr, x.data()),
                 SEQPAR_INVALID_ARGUMENT, "k_prompt is null");
  EXPECT_C_ERROR(seqpar_decode_plan_step(decode_plan, x.data(), x.data(), x.data()),
                 SEQPAR_INVALID_ARGUMENT, "appended");
  seqpar_decode_plan_destroy(decode_plan);
  seqpar_comm_destroy(fresh);
}

// The last error is per thread: a failure on one thread leaves another's message alone.
TEST(CAbi, LastErrorIsThreadLocal) {
  seqpar_set_last_error("");
  std::thread other([] {
    EXPECT_EQ(seqpar_plan_config_init(nullptr), SEQPAR_INVALID_ARGUMENT);
    EXPECT_STRNE(seqpar_last_error(), "");
  });
  other.join();
  EXPECT_STREQ(seqpar_last_error(), "");
}

// A C body's failure comes back with the rank and the body's message; a lent communicator
// survives a seqpar_comm_destroy from the body.
TEST(CAbi, RunThreadsReportsTheFailingRank) {
  const auto body = [](seqpar_comm* comm, void*) -> seqpar_status {
    int rank = -1;
    if (seqpar_comm_rank(comm, &rank) != SEQPAR_OK) return SEQPAR_INTERNAL;
    seqpar_comm_destroy(comm);  // lent: a no-op
    if (rank != 1) return SEQPAR_OK;
    seqpar_set_last_error("rank one refuses");
    return SEQPAR_NUMERIC_ERROR;
  };
  EXPECT_C_ERROR(seqpar_run_threads(2, SEQPAR_DEVICE_HOST, body, nullptr), SEQPAR_NUMERIC_ERROR,
                 "rank 1: rank one refuses");
  EXPECT_C_ERROR(seqpar_run_threads(0, SEQPAR_DEVICE_HOST, body, nullptr), SEQPAR_INVALID_ARGUMENT,
                 "ranks");
}

TEST(CAbi, MpiAndNcclWithoutTheirRuntime) {
  // Not under mpirun and MPI never initialised: a clear refusal, not a crash.
  seqpar_comm* comm = nullptr;
  const seqpar_status status = seqpar_comm_from_mpi_fortran(0, &comm);
  EXPECT_NE(status, SEQPAR_OK);
  EXPECT_STRNE(seqpar_last_error(), "");
  EXPECT_EQ(comm, nullptr);
}

// A library never writes past the caller's struct: init fills exactly struct_size bytes, its
// defaults for the fields it knows and zeros past them.
TEST(CAbiVersioning, InitWritesOnlyTheCallersStruct) {
  constexpr size_t kFirstPublished = 96;                         // seqpar_plan_config of 0.1
  std::vector<unsigned char> older(kFirstPublished + 32, 0xAB);  // the caller's struct, a canary
  auto* config = reinterpret_cast<seqpar_plan_config*>(older.data());
  ASSERT_EQ(seqpar_plan_config_init_sized(config, kFirstPublished), SEQPAR_OK);
  EXPECT_EQ(config->struct_size, kFirstPublished);
  for (size_t i = kFirstPublished; i < older.size(); ++i) EXPECT_EQ(older[i], 0xAB) << i;

  std::vector<unsigned char> newer(kFirstPublished + 32, 0xAB);  // a newer header's bigger struct
  auto* big = reinterpret_cast<seqpar_plan_config*>(newer.data());
  ASSERT_EQ(seqpar_plan_config_init_sized(big, newer.size()), SEQPAR_OK);
  EXPECT_EQ(big->struct_size, newer.size());
  EXPECT_EQ(big->scheme, SEQPAR_SCHEME_ZIGZAG);
  for (size_t i = kFirstPublished; i < newer.size(); ++i) EXPECT_EQ(newer[i], 0) << i;

  EXPECT_C_ERROR(seqpar_plan_config_init_sized(config, 40), SEQPAR_INVALID_ARGUMENT,
                 "struct_size 40");
  EXPECT_C_ERROR(seqpar_decode_config_init_sized(nullptr, 96), SEQPAR_INVALID_ARGUMENT,
                 "config is null");
}

// An uninitialised struct_size is refused before any byte past the library's struct is read.
TEST_F(CErrors, AnImplausibleStructSizeIsRefused) {
  seqpar_plan_config config = valid_config();
  config.struct_size = size_t{1} << 40;
  seqpar_plan* plan = nullptr;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm_, &plan), SEQPAR_INVALID_ARGUMENT,
                 "is not a struct size");
  EXPECT_EQ(plan, nullptr);
}

// The plan keeps its communicator: the handles may be destroyed in either order.
TEST(CAbiLifetime, APlanOutlivesItsCommunicatorHandle) {
  seqpar_comm* comm = nullptr;
  ASSERT_EQ(seqpar_threads_group_create(1, SEQPAR_DEVICE_HOST, &comm), SEQPAR_OK);
  const seqpar_plan_config config = valid_config();  // B=1, S=16, Hq=4, Hkv=2, D=16, fp32
  seqpar_plan* plan = nullptr;
  ASSERT_EQ(seqpar_plan_create(&config, comm, &plan), SEQPAR_OK) << seqpar_last_error();
  seqpar_comm_destroy(comm);
  std::vector<float> q(16 * 4 * 16, 0.25f), kv(16 * 2 * 16, 0.5f), out(q.size()), lse(4 * 16);
  EXPECT_EQ(seqpar_plan_forward(plan, q.data(), kv.data(), kv.data(), out.data(), lse.data()),
            SEQPAR_OK)
      << seqpar_last_error();
  EXPECT_FLOAT_EQ(out[0], 0.5f);  // every value is 0.5: the softmax average of equal rows
  seqpar_plan_destroy(plan);
}

}  // namespace
