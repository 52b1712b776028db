// Communicators the caller implements (seqpar_comm_from_callbacks, seqpar::CommBackend): every
// error path of the C entry point and of a table's callbacks, and single-rank forward + backward
// through both the C table and the C++ CommBackend, checked against the fp64 reference. The
// multi-rank path is tests/api/callback_comm_mpi.c (MPI behind the callbacks, under mpirun).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "api_reference.hpp"
#include "c_error_expect.hpp"
#include "seqpar/seqpar.hpp"

namespace {

size_t element_size(int32_t dtype) {
  switch (dtype) {
    case SEQPAR_DTYPE_BF16:
    case SEQPAR_DTYPE_F16:
      return 2;
    case SEQPAR_COMM_DTYPE_F64:
    case SEQPAR_COMM_DTYPE_I64:
      return 8;
    default:
      return 4;
  }
}

// One rank alone, over the C table: every operation is a local copy. `async` hands out a work
// handle per operation (wait frees it); the test checks every handle came back.
struct Loopback {
  bool async = false;
  const char* fail_op = nullptr;  // this op's callback fails with SEQPAR_COMM_ERROR
  bool never_completes = false;   // wait sleeps out its timeout and reports SEQPAR_TIMEOUT
  int outstanding = 0;
  int64_t last_timeout_ms = -1;
  int destroyed = 0;
  int posted = 0;
};

Loopback& state(void* user) { return *static_cast<Loopback*>(user); }

seqpar_status finish(void* user, const char* op, void** work) {
  Loopback& s = state(user);
  ++s.posted;
  *work = nullptr;
  if (s.fail_op != nullptr && std::strcmp(s.fail_op, op) == 0) {
    seqpar_set_last_error("the link is down");
    return SEQPAR_COMM_ERROR;
  }
  if (s.async || s.never_completes) {
    *work = new int(0);
    ++s.outstanding;
  }
  return SEQPAR_OK;
}

void copy(const void* from, void* to, size_t bytes) {
  if (bytes > 0 && from != to) std::memmove(to, from, bytes);
}

seqpar_status loop_exchange(void* user, const seqpar_p2p_op* ops, size_t count, void** work) {
  std::vector<const seqpar_p2p_op*> sends, recvs;
  for (size_t i = 0; i < count; ++i)
    (ops[i].kind == SEQPAR_P2P_SEND ? sends : recvs).push_back(&ops[i]);
  if (sends.size() != recvs.size()) {
    seqpar_set_last_error("unmatched self messages");
    return SEQPAR_INTERNAL;
  }
  for (size_t i = 0; i < sends.size(); ++i)
    copy(sends[i]->buffer, recvs[i]->buffer, recvs[i]->bytes);
  return finish(user, "exchange", work);
}
seqpar_status loop_all_to_all_v(void* user, const void* send, const size_t* send_bytes,
                                const size_t* send_offsets, void* recv, const size_t*,
                                const size_t* recv_offsets, void** work) {
  copy(static_cast<const char*>(send) + send_offsets[0], static_cast<char*>(recv) + recv_offsets[0],
       send_bytes[0]);
  return finish(user, "all_to_all_v", work);
}
seqpar_status loop_all_gather(void* user, const void* send, void* recv, size_t bytes, void** work) {
  copy(send, recv, bytes);
  return finish(user, "all_gather", work);
}
seqpar_status loop_reduce_scatter(void* user, const void* send, void* recv, size_t count,
                                  int32_t dtype, int32_t, void** work) {
  copy(send, recv, count * element_size(dtype));
  return finish(user, "reduce_scatter", work);
}
seqpar_status loop_all_reduce(void* user, const void* send, void* recv, size_t count, int32_t dtype,
                              int32_t, void** work) {
  copy(send, recv, count * element_size(dtype));
  return finish(user, "all_reduce", work);
}
seqpar_status loop_broadcast(void* user, void*, size_t, int, void** work) {
  return finish(user, "broadcast", work);
}
seqpar_status loop_barrier(void* user, void** work) { return finish(user, "barrier", work); }
seqpar_status loop_wait(void* user, void* work, int64_t timeout_ms) {
  Loopback& s = state(user);
  s.last_timeout_ms = timeout_ms;
  delete static_cast<int*>(work);
  --s.outstanding;
  if (s.never_completes) {
    std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
    seqpar_set_last_error("the peer never answered");
    return SEQPAR_TIMEOUT;
  }
  return SEQPAR_OK;
}
void loop_discard(void* user, void* work) {
  delete static_cast<int*>(work);
  --state(user).outstanding;
}
void loop_destroy(void* user) { ++state(user).destroyed; }

seqpar_comm_callbacks loopback_table() {
  seqpar_comm_callbacks t;
  std::memset(&t, 0, sizeof(t));
  t.struct_size = sizeof(t);
  t.exchange = loop_exchange;
  t.all_to_all_v = loop_all_to_all_v;
  t.all_gather = loop_all_gather;
  t.reduce_scatter = loop_reduce_scatter;
  t.all_reduce = loop_all_reduce;
  t.broadcast = loop_broadcast;
  t.barrier = loop_barrier;
  t.wait = loop_wait;
  t.discard = loop_discard;
  t.destroy = loop_destroy;
  return t;  // no split
}

seqpar_plan_config plan_config(int32_t scheme) {
  seqpar_plan_config config = valid_config();
  config.scheme = scheme;
  return config;
}

TEST(CallbackComm, RefusesBadArguments) {
  Loopback loop;
  seqpar_comm_callbacks table = loopback_table();
  seqpar_comm* comm = nullptr;
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(nullptr, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm),
                 SEQPAR_INVALID_ARGUMENT, "callbacks is null");
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&table, &loop, 0, 1, SEQPAR_DEVICE_HOST, nullptr),
                 SEQPAR_INVALID_ARGUMENT, "out is null");
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&table, &loop, 1, 1, SEQPAR_DEVICE_HOST, &comm),
                 SEQPAR_INVALID_ARGUMENT, "rank 1 of size 1");
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&table, &loop, 0, 0, SEQPAR_DEVICE_HOST, &comm),
                 SEQPAR_INVALID_ARGUMENT, "rank 0 of size 0");
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&table, &loop, -1, 2, SEQPAR_DEVICE_HOST, &comm),
                 SEQPAR_INVALID_ARGUMENT, "want 0 <= rank < size");
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&table, &loop, 0, 1, 7, &comm), SEQPAR_INVALID_ARGUMENT,
                 "device");

  seqpar_comm_callbacks old = table;
  old.struct_size = 0;
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&old, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm),
                 SEQPAR_INVALID_ARGUMENT, "struct_size = 0 is older than this library accepts");
  old.struct_size = sizeof(seqpar_comm_callbacks) - sizeof(void*);  // before `destroy`
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&old, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm),
                 SEQPAR_INVALID_ARGUMENT, "older than this library accepts");

  // A newer header's table: zero past the known functions is fine, anything else is refused.
  struct Newer {
    seqpar_comm_callbacks base;
    void (*future)(void*);
  } newer{table, nullptr};
  newer.base.struct_size = sizeof(Newer);
  newer.future = loop_destroy;
  EXPECT_C_ERROR(seqpar_comm_from_callbacks(&newer.base, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm),
                 SEQPAR_UNSUPPORTED, "does not know");
  newer.future = nullptr;
  ASSERT_EQ(seqpar_comm_from_callbacks(&newer.base, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm),
            SEQPAR_OK)
      << seqpar_last_error();
  seqpar_comm_destroy(comm);
  comm = nullptr;

  const std::vector<std::pair<std::string, void (*)(seqpar_comm_callbacks&)>> missing = {
      {"exchange", [](seqpar_comm_callbacks& t) { t.exchange = nullptr; }},
      {"all_to_all_v", [](seqpar_comm_callbacks& t) { t.all_to_all_v = nullptr; }},
      {"all_gather", [](seqpar_comm_callbacks& t) { t.all_gather = nullptr; }},
      {"reduce_scatter", [](seqpar_comm_callbacks& t) { t.reduce_scatter = nullptr; }},
      {"all_reduce", [](seqpar_comm_callbacks& t) { t.all_reduce = nullptr; }},
      {"broadcast", [](seqpar_comm_callbacks& t) { t.broadcast = nullptr; }},
      {"barrier", [](seqpar_comm_callbacks& t) { t.barrier = nullptr; }},
      {"wait", [](seqpar_comm_callbacks& t) { t.wait = nullptr; }},
  };
  for (const auto& [name, clear] : missing) {
    seqpar_comm_callbacks broken = table;
    clear(broken);
    EXPECT_C_ERROR(seqpar_comm_from_callbacks(&broken, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm),
                   SEQPAR_INVALID_ARGUMENT, "the required function " + name + " is NULL");
  }
  EXPECT_EQ(comm, nullptr);
  EXPECT_EQ(loop.destroyed, 1);  // only the one communicator made; never on failure
  EXPECT_EQ(loop.posted, 0);
}

TEST(CallbackComm, RankSizeAndDestroy) {
  Loopback loop;
  const seqpar_comm_callbacks table = loopback_table();
  seqpar_comm* comm = nullptr;
  ASSERT_EQ(seqpar_comm_from_callbacks(&table, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm), SEQPAR_OK);
  int rank = -1, size = -1;
  EXPECT_EQ(seqpar_comm_rank(comm, &rank), SEQPAR_OK);
  EXPECT_EQ(seqpar_comm_size(comm, &size), SEQPAR_OK);
  EXPECT_EQ(rank, 0);
  EXPECT_EQ(size, 1);
  EXPECT_EQ(loop.destroyed, 0);
  seqpar_comm_destroy(comm);
  EXPECT_EQ(loop.destroyed, 1);
}

TEST(CallbackComm, CallbackErrorPropagatesWithItsMessage) {
  for (const char* op : {"all_gather"}) {
    Loopback loop;
    loop.fail_op = op;
    const seqpar_comm_callbacks table = loopback_table();
    seqpar_comm* comm = nullptr;
    ASSERT_EQ(seqpar_comm_from_callbacks(&table, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm),
              SEQPAR_OK);
    const seqpar_plan_config config = plan_config(SEQPAR_SCHEME_ZIGZAG);
    seqpar_plan* plan = nullptr;
    EXPECT_C_ERROR(seqpar_plan_create(&config, comm, &plan), SEQPAR_COMM_ERROR,
                   "the all_gather callback failed: the link is down");
    EXPECT_EQ(plan, nullptr);
    seqpar_comm_destroy(comm);
  }
}

TEST(CallbackComm, SplitLessTableFailsHybridClearly) {
  Loopback loop;
  const seqpar_comm_callbacks table = loopback_table();
  seqpar_comm* comm = nullptr;
  ASSERT_EQ(seqpar_comm_from_callbacks(&table, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm), SEQPAR_OK);
  const seqpar_plan_config config = plan_config(SEQPAR_SCHEME_HYBRID);
  seqpar_plan* plan = nullptr;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm, &plan), SEQPAR_UNSUPPORTED,
                 "seqpar_comm_callbacks.split is NULL");
  EXPECT_EQ(plan, nullptr);
  seqpar_comm_destroy(comm);
  EXPECT_EQ(loop.outstanding, 0);
}

TEST(CallbackComm, WaitTimeoutIsSeqparTimeout) {
  setenv("SEQPAR_TIMEOUT_S", "0.2", 1);  // read when the communicator is made
  Loopback loop;
  loop.never_completes = true;
  const seqpar_comm_callbacks table = loopback_table();
  seqpar_comm* comm = nullptr;
  ASSERT_EQ(seqpar_comm_from_callbacks(&table, &loop, 0, 1, SEQPAR_DEVICE_HOST, &comm), SEQPAR_OK);
  unsetenv("SEQPAR_TIMEOUT_S");
  const seqpar_plan_config config = plan_config(SEQPAR_SCHEME_ZIGZAG);
  seqpar_plan* plan = nullptr;
  EXPECT_C_ERROR(seqpar_plan_create(&config, comm, &plan), SEQPAR_TIMEOUT, "timed out after");
  EXPECT_NE(std::string(seqpar_last_error()).find("the peer never answered"), std::string::npos);
  EXPECT_GE(loop.last_timeout_ms, 1);  // never 0, which transports read as "forever"
  EXPECT_LE(loop.last_timeout_ms, 200);
  EXPECT_EQ(loop.outstanding, 0);
  seqpar_comm_destroy(comm);
}

// ---- single-rank forward + backward, checked against the reference ----

std::vector<float> random_values(size_t n, unsigned seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> values(n);
  for (float& x : values) x = uniform(engine);
  return values;
}

// Runs forward + backward of `config` on one rank and returns the largest relative error of
// out, dq, dk, dv and the lse's largest absolute error.
double one_rank_error(seqpar::Communicator& comm, const seqpar::PlanConfig& config) {
  const auto& p = config.problem;
  const size_t nq = static_cast<size_t>(p.batch * p.seq * p.heads_q * p.head_dim);
  const size_t nkv = static_cast<size_t>(p.batch * p.seq * p.heads_kv * p.head_dim);
  const std::vector<float> q = random_values(nq, 1), k = random_values(nkv, 2),
                           v = random_values(nkv, 3), dout = random_values(nq, 4);
  auto as_double = [](const std::vector<float>& x) {
    return std::vector<double>(x.begin(), x.end());
  };
  const api_test::ReferenceResult ref =
      api_test::reference_attention({p.batch, p.seq, p.heads_q, p.heads_kv, p.head_dim, true, 0.0},
                                    as_double(q), as_double(k), as_double(v), as_double(dout));
  auto plan = seqpar::Plan::create(config, comm);
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  if (!plan.is_ok()) return 1.0;
  auto layout = plan->layout();
  EXPECT_TRUE(layout.is_ok());
  const size_t row_q = seqpar::row_bytes(p.heads_q, p.head_dim, seqpar::DType::kF32);
  const size_t row_kv = seqpar::row_bytes(p.heads_kv, p.head_dim, seqpar::DType::kF32);
  std::vector<float> sq(nq), sk(nkv), sv(nkv), sdout(nq), sout(nq), sdq(nq), sdk(nkv), sdv(nkv);
  std::vector<float> lse(static_cast<size_t>(p.batch * p.heads_q * p.seq));
  for (auto [global, shard, row] : {std::tuple{&q, &sq, row_q}, std::tuple{&k, &sk, row_kv},
                                    std::tuple{&v, &sv, row_kv}, std::tuple{&dout, &sdout, row_q}})
    EXPECT_TRUE(layout->shard(global->data(), 0, shard->data(), p.batch, row).is_ok());
  seqpar::Status s = plan->forward({sq.data(), sk.data(), sv.data(), sout.data(), lse.data()});
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  s = plan->backward({sq.data(), sk.data(), sv.data(), sout.data(), lse.data(), sdout.data(),
                      sdq.data(), sdk.data(), sdv.data()});
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  std::vector<float> out(nq), dq(nq), dk(nkv), dv(nkv);
  for (auto [shard, global, row] : {std::tuple{&sout, &out, row_q}, std::tuple{&sdq, &dq, row_q},
                                    std::tuple{&sdk, &dk, row_kv}, std::tuple{&sdv, &dv, row_kv}})
    EXPECT_TRUE(layout->unshard(shard->data(), 0, global->data(), p.batch, row).is_ok());
  auto positions = layout->local_positions(0);
  double lse_error = 0.0;
  for (int64_t bh = 0; bh < p.batch * p.heads_q; ++bh)
    for (int64_t i = 0; i < p.seq; ++i)
      lse_error = std::max(
          lse_error,
          std::abs(
              lse[static_cast<size_t>(bh * p.seq + i)] -
              ref.lse[static_cast<size_t>(bh * p.seq + (*positions)[static_cast<size_t>(i)])]));
  return std::max({api_test::relative_error(out, ref.out), api_test::relative_error(dq, ref.dq),
                   api_test::relative_error(dk, ref.dk), api_test::relative_error(dv, ref.dv),
                   lse_error});
}

seqpar::PlanConfig cpp_config(seqpar::SchemeKind scheme) {
  seqpar::PlanConfig config;
  config.problem.batch = 2;
  config.problem.seq = 16;
  config.problem.heads_q = 4;
  config.problem.heads_kv = 2;
  config.problem.head_dim = 16;
  config.problem.dtype = seqpar::DType::kF32;
  config.scheme = scheme;
  return config;
}

TEST(CallbackComm, CTableRunsEverySplitFreeSchemeOnOneRank) {
  for (int32_t scheme : {SEQPAR_SCHEME_RING, SEQPAR_SCHEME_STRIPED, SEQPAR_SCHEME_ZIGZAG,
                         SEQPAR_SCHEME_ULYSSES, SEQPAR_SCHEME_LIGHTSEQ, SEQPAR_SCHEME_TREE}) {
    for (bool async : {false, true}) {
      Loopback loop;
      loop.async = async;
      const seqpar_comm_callbacks table = loopback_table();
      seqpar_comm* handle = nullptr;
      ASSERT_EQ(seqpar_comm_from_callbacks(&table, &loop, 0, 1, SEQPAR_DEVICE_HOST, &handle),
                SEQPAR_OK);
      {
        seqpar::Communicator comm = seqpar::Communicator::adopt(handle);
        EXPECT_LT(one_rank_error(comm, cpp_config(static_cast<seqpar::SchemeKind>(scheme))), 1e-5)
            << "scheme " << scheme;
      }
      EXPECT_GT(loop.posted, 0);
      EXPECT_EQ(loop.outstanding, 0) << "every work handle goes back to wait or discard";
      EXPECT_EQ(loop.destroyed, 1);
    }
  }
}

// The C++ layer: a CommBackend that copies locally, with a split that makes another one.
class LocalBackend : public seqpar::CommBackend {
 public:
  explicit LocalBackend(int* alive) : alive_(alive) { ++*alive_; }
  ~LocalBackend() override { --*alive_; }

  seqpar::Status exchange(seqpar::Span<P2POp> ops, void** work) override {
    return from(loop_exchange(&loop_, ops.data(), ops.size(), work));
  }
  seqpar::Status all_to_all_v(const void* send, seqpar::Span<size_t> send_bytes,
                              seqpar::Span<size_t> send_offsets, void* recv,
                              seqpar::Span<size_t> recv_bytes, seqpar::Span<size_t> recv_offsets,
                              void** work) override {
    if (send_bytes.size() != 1 || recv_bytes.size() != 1)
      return seqpar::Status(seqpar::StatusCode::kInternal, "spans of the wrong size");
    return from(loop_all_to_all_v(&loop_, send, send_bytes.data(), send_offsets.data(), recv,
                                  recv_bytes.data(), recv_offsets.data(), work));
  }
  seqpar::Status all_gather(const void* send, void* recv, size_t bytes, void** work) override {
    return from(loop_all_gather(&loop_, send, recv, bytes, work));
  }
  seqpar::Status reduce_scatter(const void* send, void* recv, size_t count, int32_t dtype,
                                ReduceOp op, void** work) override {
    return from(
        loop_reduce_scatter(&loop_, send, recv, count, dtype, static_cast<int32_t>(op), work));
  }
  seqpar::Status all_reduce(const void* send, void* recv, size_t count, int32_t dtype, ReduceOp op,
                            void** work) override {
    return from(loop_all_reduce(&loop_, send, recv, count, dtype, static_cast<int32_t>(op), work));
  }
  seqpar::Status broadcast(void* buffer, size_t bytes, int root, void** work) override {
    return from(loop_broadcast(&loop_, buffer, bytes, root, work));
  }
  seqpar::Status barrier(void** work) override { return from(loop_barrier(&loop_, work)); }
  seqpar::Status wait(void* work, int64_t timeout_ms) override {
    return from(loop_wait(&loop_, work, timeout_ms));
  }
  void discard(void* work) override { loop_discard(&loop_, work); }
  bool can_split() const override { return true; }
  seqpar::StatusOr<Split> split(int, int) override {
    ++splits;
    return Split{std::make_unique<LocalBackend>(alive_), 0, 1};
  }

  int splits = 0;
  Loopback loop_{true};  // async: handles go through wait

 private:
  static seqpar::Status from(seqpar_status status) {
    if (status == SEQPAR_OK) return seqpar::Status::ok();
    return seqpar::Status(static_cast<seqpar::StatusCode>(status), seqpar_last_error());
  }
  int* alive_;
};

TEST(CallbackComm, CommBackendRunsEverySchemeOnOneRank) {
  for (seqpar::SchemeKind scheme :
       {seqpar::SchemeKind::kRing, seqpar::SchemeKind::kStriped, seqpar::SchemeKind::kZigzag,
        seqpar::SchemeKind::kUlysses, seqpar::SchemeKind::kLightSeq, seqpar::SchemeKind::kTree,
        seqpar::SchemeKind::kHybrid}) {
    int alive = 0;
    auto backend = std::make_unique<LocalBackend>(&alive);
    LocalBackend* raw = backend.get();
    {
      auto comm = seqpar::make_callback_communicator(std::move(backend), 0, 1);
      ASSERT_TRUE(comm.is_ok()) << comm.status().to_string();
      EXPECT_EQ(comm->rank(), 0);
      EXPECT_EQ(comm->size(), 1);
      EXPECT_LT(one_rank_error(*comm, cpp_config(scheme)), 1e-5)
          << "scheme " << static_cast<int>(scheme);
      if (scheme == seqpar::SchemeKind::kHybrid) {
        EXPECT_EQ(raw->splits, 2);
      }
      EXPECT_GT(raw->loop_.posted, 0);
      EXPECT_EQ(raw->loop_.outstanding, 0);
    }
    EXPECT_EQ(alive, 0) << "the communicator and its split children delete their backends";
  }
}

TEST(CallbackComm, CommBackendErrors) {
  EXPECT_EQ(seqpar::make_callback_communicator(nullptr, 0, 1).status().code(),
            seqpar::StatusCode::kInvalidArgument);
  int alive = 0;
  auto bad_rank = seqpar::make_callback_communicator(std::make_unique<LocalBackend>(&alive), 3, 2);
  EXPECT_EQ(bad_rank.status().code(), seqpar::StatusCode::kInvalidArgument);
  EXPECT_EQ(alive, 0) << "a refused backend is deleted by the C++ layer";
  // A backend's failed Status reaches the caller with its message.
  auto backend = std::make_unique<LocalBackend>(&alive);
  backend->loop_.fail_op = "all_gather";
  auto comm = seqpar::make_callback_communicator(std::move(backend), 0, 1);
  ASSERT_TRUE(comm.is_ok());
  auto plan = seqpar::Plan::create(cpp_config(seqpar::SchemeKind::kZigzag), *comm);
  EXPECT_EQ(plan.status().code(), seqpar::StatusCode::kCommError);
  EXPECT_NE(plan.status().message().find("the link is down"), std::string::npos)
      << plan.status().message();
}

}  // namespace
