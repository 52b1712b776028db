#pragma once
// seqpar's C++ API: exact attention over a sequence split across ranks, for code that embeds
// seqpar as its attention backend.
//
// A Plan is made once per (problem, scheme, communicator), collectively, then forward() and
// backward() run many times on its preallocated workspace. Tensors are raw pointers to each
// rank's shard in the plan's layout (Layout: which global tokens a rank holds; shard() and
// unshard() copy between a global host tensor and a rank's shard):
//   q, out, dout, dq   (B, S_local, Hq, D)   storage dtype
//   k, v, dk, dv       (B, S_local, Hkv, D)  storage dtype
//   lse                (B, Hq, S_local)      float
// Host plans take host pointers; device plans (Device::kCuda) device pointers and the caller's
// cudaStream_t as PlanConfig::stream (a void*), on which a step only enqueues work.
//
// Communicators: make_threads_communicators / run_threads (ranks as threads of this process),
// make_mpi_communicator (seqpar/seqpar_mpi.hpp), make_nccl_communicator (seqpar/seqpar_nccl.hpp).
//
// Errors are Status values; nothing here throws (an allocation failure inside the standard
// library aside). The API is an inline layer over the C ABI of seqpar/seqpar.h, which is all
// libseqpar exports: no C++ type crosses the library boundary, so a program may use another
// standard library than the one libseqpar was built with. Its names live in the inline
// namespace seqpar::v0 (spelled seqpar::Plan etc.), apart from seqpar's internal code.
//
// A plan made once on every rank, then a training step on it (the loop only runs the plan):
// ```cpp
// #include <seqpar/seqpar.hpp>
//
// seqpar::StatusOr<seqpar::Plan> make_plan(seqpar::Communicator& comm) {
//   seqpar::PlanConfig config;
//   config.problem.seq = 4096;  // the whole sequence; this rank holds plan.local_seq() tokens
//   config.problem.heads_q = 8;
//   config.problem.heads_kv = 2;
//   config.problem.head_dim = 64;
//   config.problem.dtype = seqpar::DType::kBF16;
//   config.scheme = seqpar::SchemeKind::kZigzag;
//   return seqpar::Plan::create(config, comm);  // collective
// }
//
// seqpar::Status train_step(seqpar::Plan& plan, const void* q, const void* k, const void* v,
//                           const void* dout, void* out, float* lse, void* dq, void* dk,
//                           void* dv) {
//   seqpar::Status status = plan.forward({q, k, v, out, lse});
//   if (!status.is_ok()) return status;
//   return plan.backward({q, k, v, out, lse, dout, dq, dk, dv});
// }
// ```
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "seqpar/seqpar.h"

namespace seqpar {
inline namespace v0 {

// The library's version, "0.1.0" (what libseqpar was built as).
inline const char* version() { return seqpar_version_string(); }

// ---- Status ----

enum class StatusCode : int {
  kOk = SEQPAR_OK,
  kInvalidArgument = SEQPAR_INVALID_ARGUMENT,  // a documented rule broken (shape, null, enum)
  kMismatch = SEQPAR_MISMATCH,                 // ranks disagree on the config
  kUnsupported = SEQPAR_UNSUPPORTED,           // valid, but not in this build or on this device
  kOutOfMemory = SEQPAR_OUT_OF_MEMORY,
  kTimeout = SEQPAR_TIMEOUT,
  kCommError = SEQPAR_COMM_ERROR,
  kAborted = SEQPAR_ABORTED,  // another rank failed and aborted the group
  kCudaError = SEQPAR_CUDA_ERROR,
  kNumericError = SEQPAR_NUMERIC_ERROR,
  kInternal = SEQPAR_INTERNAL,
};

// "ok", "invalid_argument", ...
inline const char* status_code_name(StatusCode code) {
  return seqpar_status_name(static_cast<seqpar_status>(code));
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: <message>", or "ok".
  std::string to_string() const {
    if (is_ok()) return "ok";
    return std::string(status_code_name(code_)) + ": " + message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status saying why there is none. value() on a failed one is undefined.
template <class T>
class [[nodiscard]] StatusOr {
 public:
  // An ok Status without a value is a caller's bug: it becomes kInternal, never a value-less
  // "ok" that would make value() undefined.
  StatusOr(Status status)  // NOLINT: implicit by design
      : status_(status.is_ok() ? Status(StatusCode::kInternal, "StatusOr made from an ok Status")
                               : std::move(status)) {}
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  bool is_ok() const { return status_.is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

namespace detail {
// A C status as a Status, with this thread's last-error message.
inline Status from_c(seqpar_status status) {
  if (status == SEQPAR_OK) return Status::ok();
  return Status(static_cast<StatusCode>(status), seqpar_last_error());
}
// Owns one C handle, destroyed by Destroy; move-only.
template <class Handle, void (*Destroy)(Handle*)>
class Owned {
 public:
  Owned() = default;
  explicit Owned(Handle* handle) : handle_(handle) {}
  Owned(Owned&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Owned& operator=(Owned&& other) noexcept {
    if (this != &other) {
      Destroy(handle_);
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { Destroy(handle_); }
  Handle* get() const { return handle_; }

 private:
  Handle* handle_ = nullptr;
};
}  // namespace detail

// ---- the problem and the plan's configuration ----

enum class DType : int {
  kF32 = SEQPAR_DTYPE_F32,
  kBF16 = SEQPAR_DTYPE_BF16,
  kF16 = SEQPAR_DTYPE_F16
};
enum class MaskKind : int { kFull = SEQPAR_MASK_FULL, kCausal = SEQPAR_MASK_CAUSAL };
enum class Device : int { kHost = SEQPAR_DEVICE_HOST, kCuda = SEQPAR_DEVICE_CUDA };
enum class SchemeKind : int {
  kRing = SEQPAR_SCHEME_RING,          // contiguous layout, any S >= P; causal work unbalanced
  kStriped = SEQPAR_SCHEME_STRIPED,    // striped layout
  kZigzag = SEQPAR_SCHEME_ZIGZAG,      // zigzag layout
  kLightSeq = SEQPAR_SCHEME_LIGHTSEQ,  // causal only
  kUlysses = SEQPAR_SCHEME_ULYSSES,    // heads all-to-all; contiguous layout
  kHybrid = SEQPAR_SCHEME_HYBRID,      // Ulysses in groups x a zigzag ring across them
  kTree = SEQPAR_SCHEME_TREE,
};
enum class DecoderKind : int { kTree = SEQPAR_DECODER_TREE, kRing = SEQPAR_DECODER_RING };
enum class LayoutKind : int {
  kContiguous = SEQPAR_LAYOUT_CONTIGUOUS,
  kStriped = SEQPAR_LAYOUT_STRIPED,
  kZigzag = SEQPAR_LAYOUT_ZIGZAG,
  kHybridZigzag = SEQPAR_LAYOUT_HYBRID_ZIGZAG,
};

// Bytes per element.
inline size_t dtype_size(DType dtype) { return seqpar_dtype_size(static_cast<int32_t>(dtype)); }
// Bytes of one token's row of a (B, S, H, D) tensor: H * D * dtype_size(dtype).
inline size_t row_bytes(int64_t heads, int64_t head_dim, DType dtype) {
  return static_cast<size_t>(heads * head_dim) * dtype_size(dtype);
}

// The global problem, the same on every rank.
struct AttentionProblem {
  int64_t batch = 1;
  int64_t seq = 0;       // S: the whole sequence
  int64_t heads_q = 0;   // Hq
  int64_t heads_kv = 0;  // Hkv; Hq % Hkv == 0
  int64_t head_dim = 0;  // D
  MaskKind mask = MaskKind::kCausal;
  DType dtype = DType::kBF16;  // storage of q, k, v, out, dout and the gradients
  float softmax_scale = 0.0f;  // 0: 1 / sqrt(D)
};

struct PlanConfig {
  AttentionProblem problem;
  SchemeKind scheme = SchemeKind::kZigzag;
  Device device = Device::kHost;  // where the tensors live and the kernels run
  void* stream = nullptr;         // the caller's cudaStream_t (device plans); not owned
  int ranks_per_node = 0;         // consecutive ranks sharing a node (0: all)
  int ulysses_degree = 0;         // hybrid's ranks per Ulysses group (0: chosen)
  bool check_finite = true;       // fail a step on NaN / Inf inputs or gradients
  bool backward = true;           // false: a forward-only plan (prefill, inference)
};

// Each rank's shards, in the plan's layout (shapes: the top of this file).
struct ForwardArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
};

struct BackwardArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* out = nullptr;   // forward's output
  const float* lse = nullptr;  // forward's LSE
  const void* dout = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
};

namespace detail {
inline seqpar_plan_config to_c(const PlanConfig& config) {
  seqpar_plan_config c;
  (void)seqpar_plan_config_init(&c);
  c.batch = config.problem.batch;
  c.seq = config.problem.seq;
  c.heads_q = config.problem.heads_q;
  c.heads_kv = config.problem.heads_kv;
  c.head_dim = config.problem.head_dim;
  c.mask = static_cast<int32_t>(config.problem.mask);
  c.dtype = static_cast<int32_t>(config.problem.dtype);
  c.softmax_scale = config.problem.softmax_scale;
  c.scheme = static_cast<int32_t>(config.scheme);
  c.device = static_cast<int32_t>(config.device);
  c.stream = config.stream;
  c.ranks_per_node = config.ranks_per_node;
  c.ulysses_degree = config.ulysses_degree;
  c.check_finite = config.check_finite ? 1 : 0;
  c.backward = config.backward ? 1 : 0;
  return c;
}
}  // namespace detail

// ---- communicators ----

// One rank's communicator. Adopted ones (MPI, NCCL, a threads group's) are owned and must
// outlive the plans made on them; the one run_threads lends to a rank lives for the call.
class Communicator {
 public:
  Communicator() = default;  // empty
  // Takes a C handle: owned (destroyed with this object) or lent.
  static Communicator adopt(seqpar_comm* handle) { return Communicator(handle, true); }
  static Communicator borrow(seqpar_comm* handle) { return Communicator(handle, false); }

  Communicator(Communicator&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), owned_(other.owned_) {}
  Communicator& operator=(Communicator&& other) noexcept {
    if (this != &other) {
      release();
      handle_ = std::exchange(other.handle_, nullptr);
      owned_ = other.owned_;
    }
    return *this;
  }
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator() { release(); }

  int rank() const {  // -1 for an empty communicator
    int rank = -1;
    return seqpar_comm_rank(handle_, &rank) == SEQPAR_OK ? rank : -1;
  }
  int size() const {  // 0 for an empty communicator
    int size = 0;
    return seqpar_comm_size(handle_, &size) == SEQPAR_OK ? size : 0;
  }
  seqpar_comm* handle() const { return handle_; }

 private:
  Communicator(seqpar_comm* handle, bool owned) : handle_(handle), owned_(owned) {}
  void release() {
    if (owned_) seqpar_comm_destroy(handle_);
    handle_ = nullptr;
  }
  seqpar_comm* handle_ = nullptr;
  bool owned_ = false;
};

// One communicator per rank of a new threads group; hand communicator r to the thread of rank r.
inline StatusOr<std::vector<Communicator>> make_threads_communicators(
    int ranks, Device device = Device::kHost) {
  if (ranks < 1) {
    return Status(StatusCode::kInvalidArgument, "make_threads_communicators: ranks < 1");
  }
  std::vector<seqpar_comm*> handles(static_cast<size_t>(ranks), nullptr);
  Status status = detail::from_c(
      seqpar_threads_group_create(ranks, static_cast<int32_t>(device), handles.data()));
  if (!status.is_ok()) return status;
  std::vector<Communicator> comms;
  comms.reserve(handles.size());
  for (seqpar_comm* handle : handles) comms.push_back(Communicator::adopt(handle));
  return comms;
}

namespace detail {
template <class Body>
seqpar_status run_rank_body(seqpar_comm* handle, void* user) noexcept {
  try {
    Communicator comm = Communicator::borrow(handle);
    const Status status = (*static_cast<Body*>(user))(comm);
    if (status.is_ok()) return SEQPAR_OK;
    seqpar_set_last_error(status.message().c_str());
    return static_cast<seqpar_status>(status.code());
  } catch (const std::exception& e) {
    seqpar_set_last_error(e.what());
  } catch (...) {
    seqpar_set_last_error("a rank's body threw");
  }
  return SEQPAR_INTERNAL;
}
}  // namespace detail

// Runs body(Communicator& of rank r) -> Status on `ranks` new threads and joins them. A failing
// (or throwing) rank aborts the group; the result is the first root-cause failure, its message
// naming the rank.
// ```cpp
// #include <seqpar/seqpar.hpp>
//
// seqpar::Status ranks_agree() {
//   return seqpar::run_threads(4, [](seqpar::Communicator& comm) {
//     return comm.size() == 4 ? seqpar::Status::ok()
//                             : seqpar::Status(seqpar::StatusCode::kInternal, "wrong size");
//   });
// }
// ```
template <class Body>
Status run_threads(int ranks, Body&& body, Device device = Device::kHost) {
  using BodyType = std::remove_reference_t<Body>;
  return detail::from_c(seqpar_run_threads(ranks, static_cast<int32_t>(device),
                                           &detail::run_rank_body<BodyType>,
                                           const_cast<void*>(static_cast<const void*>(&body))));
}

// ---- layouts ----

// Which global tokens each rank holds, and copies between a global host tensor and a rank's
// shard (host memory):
//   contiguous     rank r holds the r-th run of a balanced split of [0, S)
//   striped        rank r holds r, r+P, r+2P, ...                   (S % P == 0)
//   zigzag         chunks r and 2P-1-r of 2P equal chunks           (S % 2P == 0)
//   hybrid_zigzag  a U x R grid (U = ranks per Ulysses group): zigzag over the R groups, and a
//                  balanced split of each group's tokens over its U ranks. Every rank's shard
//                  holds all heads; the plan moves heads between a group's ranks itself.
// ```cpp
// #include <seqpar/seqpar.hpp>
// #include <vector>
//
// // global (B, S, Hq, D) fp32 -> rank r's shard (B, S_local, Hq, D) -> back.
// seqpar::Status round_trip(const seqpar::PlanConfig& config, int ranks, int rank,
//                           const std::vector<float>& global, std::vector<float>& again) {
//   auto layout = seqpar::Layout::for_config(config, ranks);
//   if (!layout.is_ok()) return layout.status();
//   const auto& p = config.problem;
//   const size_t row = seqpar::row_bytes(p.heads_q, p.head_dim, seqpar::DType::kF32);
//   std::vector<float> shard(static_cast<size_t>(p.batch * layout->local_seq(rank) *
//                                                p.heads_q * p.head_dim));
//   seqpar::Status status = layout->shard(global.data(), rank, shard.data(), p.batch, row);
//   if (!status.is_ok()) return status;
//   again.assign(global.size(), 0.0f);  // (B, S, Hq, D): unshard fills this rank's rows
//   return layout->unshard(shard.data(), rank, again.data(), p.batch, row);
// }
// ```
class Layout {
 public:
  // The layout a plan made from `config` would have on `ranks` ranks (no communication).
  static StatusOr<Layout> for_config(const PlanConfig& config, int ranks) {
    const seqpar_plan_config c = detail::to_c(config);
    seqpar_layout* handle = nullptr;
    Status status = detail::from_c(seqpar_layout_create(&c, ranks, &handle));
    if (!status.is_ok()) return status;
    return Layout(handle);
  }
  explicit Layout(seqpar_layout* adopted) : handle_(adopted) {}

  LayoutKind kind() const {
    int32_t kind = 0;
    (void)seqpar_layout_get_kind(handle_.get(), &kind);
    return static_cast<LayoutKind>(kind);
  }
  int64_t seq() const {
    int64_t seq = 0;
    (void)seqpar_layout_seq(handle_.get(), &seq);
    return seq;
  }
  int ranks() const {
    int ranks = 0;
    (void)seqpar_layout_ranks(handle_.get(), &ranks);
    return ranks;
  }
  // Tokens `rank` holds (0 for a rank outside [0, ranks())).
  int64_t local_seq(int rank) const {
    int64_t local = 0;
    return seqpar_layout_local_seq(handle_.get(), rank, &local) == SEQPAR_OK ? local : 0;
  }
  // The global positions of rank `rank`'s rows, in local order.
  StatusOr<std::vector<int64_t>> local_positions(int rank) const {
    std::vector<int64_t> positions(static_cast<size_t>(local_seq(rank)));
    Status status = detail::from_c(seqpar_layout_positions(handle_.get(), rank, positions.data(),
                                                           static_cast<int64_t>(positions.size())));
    if (!status.is_ok()) return status;
    return positions;
  }
  // global (B, S, row_bytes) -> shard (B, S_local, row_bytes) of rank `rank`; row_bytes is
  // H * D * element size (row_bytes()).
  Status shard(const void* global, int rank, void* shard, int64_t batch, size_t row_bytes) const {
    return detail::from_c(
        seqpar_layout_shard(handle_.get(), rank, global, shard, batch, row_bytes));
  }
  // shard (B, S_local, row_bytes) of rank `rank` -> its rows of global (B, S, row_bytes).
  Status unshard(const void* shard, int rank, void* global, int64_t batch, size_t row_bytes) const {
    return detail::from_c(
        seqpar_layout_unshard(handle_.get(), rank, shard, global, batch, row_bytes));
  }
  const seqpar_layout* handle() const { return handle_.get(); }

 private:
  detail::Owned<seqpar_layout, seqpar_layout_destroy> handle_;
};

// seqpar's cost model (what seqpar-run --scheme auto runs): sets config.scheme and
// config.ulysses_degree to the candidate predicted fastest for config's problem on `ranks` ranks,
// config.ranks_per_node per node. Host plans measure the CPU kernel's rate once and cache it;
// local, so let one rank choose and share the choice (seqpar.h:
// seqpar_plan_config_choose_scheme).
inline Status choose_scheme(PlanConfig& config, int ranks) {
  seqpar_plan_config c = detail::to_c(config);
  Status status = detail::from_c(seqpar_plan_config_choose_scheme(&c, ranks));
  if (!status.is_ok()) return status;
  config.scheme = static_cast<SchemeKind>(c.scheme);
  config.ulysses_degree = c.ulysses_degree;
  return Status::ok();
}

// ---- plans ----

// A training (or forward-only) plan on one rank. create, forward and backward are collective:
// every rank calls them, in the same order; any failure aborts the group, so no rank is left
// waiting. The communicator must outlive the plan.
class Plan {
 public:
  static StatusOr<Plan> create(const PlanConfig& config, Communicator& comm) {
    const seqpar_plan_config c = detail::to_c(config);
    seqpar_plan* handle = nullptr;
    Status status = detail::from_c(seqpar_plan_create(&c, comm.handle(), &handle));
    if (!status.is_ok()) return status;
    return Plan(handle);
  }

  Status forward(const ForwardArgs& a) {
    return detail::from_c(seqpar_plan_forward(handle_.get(), a.q, a.k, a.v, a.out, a.lse));
  }
  Status backward(const BackwardArgs& a) {
    return detail::from_c(
        seqpar_plan_backward(handle_.get(), a.q, a.k, a.v, a.out, a.lse, a.dout, a.dq, a.dk, a.dv));
  }
  // The finite check's verdict on every step so far (a device plan waits for its device).
  Status finite_check_result() {
    return detail::from_c(seqpar_plan_finite_check_result(handle_.get()));
  }
  size_t workspace_bytes() const {  // the plan's preallocated workspace
    size_t bytes = 0;
    (void)seqpar_plan_workspace_bytes(handle_.get(), &bytes);
    return bytes;
  }
  int64_t local_seq() const {  // S_local: this rank's tokens
    int64_t local = 0;
    (void)seqpar_plan_local_seq(handle_.get(), &local);
    return local;
  }
  StatusOr<Layout> layout() const {
    seqpar_layout* layout = nullptr;
    Status status = detail::from_c(seqpar_plan_layout(handle_.get(), &layout));
    if (!status.is_ok()) return status;
    return Layout(layout);
  }
  seqpar_plan* handle() const { return handle_.get(); }

 private:
  explicit Plan(seqpar_plan* handle) : handle_(handle) {}
  detail::Owned<seqpar_plan, seqpar_plan_destroy> handle_;
};

// ---- decoding ----

// What a DecodePlan is made for: a KV cache of a prompt of problem.seq tokens (S >= P) sharded
// over the ranks, and steps of q_len new tokens, replicated on every rank, attending causally
// (problem.mask is not used).
struct DecodeConfig {
  AttentionProblem problem;  // seq: the prompt's tokens
  int64_t q_len = 1;         // new tokens per step
  int64_t capacity = 0;      // the most tokens the cache will hold (0: seq + q_len)
  DecoderKind decoder = DecoderKind::kTree;
  Device device = Device::kHost;
  void* stream = nullptr;  // cudaStream_t for device plans
  int ranks_per_node = 0;
};

// This rank's cache storage: k, v (B, local_capacity, Hkv, D), the first local_length rows of
// each batch valid.
struct KvCacheView {
  void* k = nullptr;
  void* v = nullptr;
  int64_t local_capacity = 0;
  int64_t local_length = 0;
};

// Decoding on one rank: load the prompt's K, V, then per generated token append() the new
// tokens (every rank) and step() (collective).
// ```cpp
// #include <seqpar/seqpar.hpp>
//
// // k_prompt, v_prompt (B, S, Hkv, D); k_new, v_new (B, 1, Hkv, D); q, out (B, 1, Hq, D);
// // lse (B, Hq, 1); host memory, fp32.
// seqpar::Status decode_one(seqpar::Communicator& comm, const seqpar::AttentionProblem& prompt,
//                           const float* k_prompt, const float* v_prompt, const float* k_new,
//                           const float* v_new, const float* q, float* out, float* lse) {
//   seqpar::DecodeConfig config;
//   config.problem = prompt;
//   auto plan = seqpar::DecodePlan::create(config, comm);
//   if (!plan.is_ok()) return plan.status();
//   seqpar::Status status = plan->load_prompt(k_prompt, v_prompt);
//   if (status.is_ok()) status = plan->append(k_new, v_new, 1);
//   if (status.is_ok()) status = plan->step(q, out, lse);
//   return status;
// }
// ```
class DecodePlan {
 public:
  static StatusOr<DecodePlan> create(const DecodeConfig& config, Communicator& comm) {
    seqpar_decode_config c;
    (void)seqpar_decode_config_init(&c);
    c.batch = config.problem.batch;
    c.prompt = config.problem.seq;
    c.heads_q = config.problem.heads_q;
    c.heads_kv = config.problem.heads_kv;
    c.head_dim = config.problem.head_dim;
    c.dtype = static_cast<int32_t>(config.problem.dtype);
    c.softmax_scale = config.problem.softmax_scale;
    c.q_len = config.q_len;
    c.capacity = config.capacity;
    c.decoder = static_cast<int32_t>(config.decoder);
    c.device = static_cast<int32_t>(config.device);
    c.stream = config.stream;
    c.ranks_per_node = config.ranks_per_node;
    seqpar_decode_plan* handle = nullptr;
    Status status = detail::from_c(seqpar_decode_plan_create(&c, comm.handle(), &handle));
    if (!status.is_ok()) return status;
    return DecodePlan(handle);
  }

  // Host plans: this rank's rows of the whole prompt's k, v (B, S, Hkv, D), before any append.
  Status load_prompt(const void* k_prompt, const void* v_prompt) {
    return detail::from_c(seqpar_decode_plan_load_prompt(handle_.get(), k_prompt, v_prompt));
  }
  // n new tokens' k, v (B, n, Hkv, D), the same on every rank. Local.
  Status append(const void* k_new, const void* v_new, int64_t n) {
    return detail::from_c(seqpar_decode_plan_append(handle_.get(), k_new, v_new, n));
  }
  // q (B, q_len, Hq, D) -> out (B, q_len, Hq, D), lse (B, Hq, q_len), the same on every rank.
  Status step(const void* q, void* out, float* lse) {
    return detail::from_c(seqpar_decode_plan_step(handle_.get(), q, out, lse));
  }
  StatusOr<KvCacheView> cache() {
    KvCacheView view;
    Status status = detail::from_c(seqpar_decode_plan_cache(
        handle_.get(), &view.k, &view.v, &view.local_capacity, &view.local_length));
    if (!status.is_ok()) return status;
    return view;
  }
  // The global positions of this rank's cached tokens, in storage order.
  StatusOr<std::vector<int64_t>> positions() {
    StatusOr<KvCacheView> view = cache();
    if (!view.is_ok()) return view.status();
    std::vector<int64_t> positions(static_cast<size_t>(view->local_length));
    Status status = detail::from_c(seqpar_decode_plan_positions(
        handle_.get(), positions.data(), static_cast<int64_t>(positions.size())));
    if (!status.is_ok()) return status;
    return positions;
  }
  size_t workspace_bytes() const {
    size_t bytes = 0;
    (void)seqpar_decode_plan_workspace_bytes(handle_.get(), &bytes);
    return bytes;
  }
  seqpar_decode_plan* handle() const { return handle_.get(); }

 private:
  explicit DecodePlan(seqpar_decode_plan* handle) : handle_(handle) {}
  detail::Owned<seqpar_decode_plan, seqpar_decode_plan_destroy> handle_;
};

// ---- communicators the caller implements ----

// A read-only view of `size()` elements (std::span's part the backends need; the public headers
// stay C++17).
template <class T>
class Span {
 public:
  Span(const T* data, size_t size) : data_(data), size_(size) {}
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  const T& operator[](size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  const T* data_;
  size_t size_;
};

// A transport the caller implements, for make_callback_communicator: the C++ side of
// seqpar_comm_callbacks (seqpar/seqpar.h documents the contract: ops are issued in the same
// order on every rank; each either completes in the call (leaving *work null) or sets *work to a
// handle that wait() later completes; buffers stay untouched until then; calls come from the
// rank's own thread only). A failed Status's message becomes the failing seqpar call's error.
// dtype is a DType value or a seqpar_comm_dtype one; reductions in rank order are deterministic.
class CommBackend {
 public:
  using P2POp = seqpar_p2p_op;  // kind (SEQPAR_P2P_SEND / _RECV), peer, buffer, bytes
  enum class ReduceOp : int { kSum = SEQPAR_REDUCE_SUM, kMax = SEQPAR_REDUCE_MAX };
  // Where a split put this rank: the child's backend, this rank's rank in it and its size.
  struct Split {
    std::unique_ptr<CommBackend> backend;
    int rank = 0;
    int size = 0;
  };

  virtual ~CommBackend() = default;

  virtual Status exchange(Span<P2POp> ops, void** work) = 0;
  // Spans of size() entries: send_bytes[r] at send + send_offsets[r] go to rank r, and so on.
  virtual Status all_to_all_v(const void* send, Span<size_t> send_bytes, Span<size_t> send_offsets,
                              void* recv, Span<size_t> recv_bytes, Span<size_t> recv_offsets,
                              void** work) = 0;
  virtual Status all_gather(const void* send, void* recv, size_t bytes_per_rank, void** work) = 0;
  virtual Status reduce_scatter(const void* send, void* recv, size_t count_per_rank, int32_t dtype,
                                ReduceOp op, void** work) = 0;
  virtual Status all_reduce(const void* send, void* recv, size_t count, int32_t dtype, ReduceOp op,
                            void** work) = 0;
  virtual Status broadcast(void* buffer, size_t bytes, int root, void** work) = 0;
  virtual Status barrier(void** work) = 0;
  // Completes `work`, or fails (StatusCode::kTimeout after timeout_ms); done with it either way.
  virtual Status wait(void* work, int64_t timeout_ms) = 0;
  // Lets go of a handle seqpar will not wait for (its error paths only).
  virtual void discard(void* /*work*/) {}
  // Subgroups (hybrid; tree per node): override both. Without, those plans fail with
  // kUnsupported at creation.
  virtual bool can_split() const { return false; }
  virtual StatusOr<Split> split(int /*color*/, int /*key*/) {
    return Status(StatusCode::kUnsupported, "this CommBackend cannot split");
  }
  // Fails the whole group (called when a step fails on this rank); default: nothing.
  virtual void abort(const char* /*message*/) {}
  // Device backends: the cudaStream_t to order operations with; default: only nullptr.
  virtual Status set_stream(void* stream) {
    if (stream == nullptr) return Status::ok();
    return Status(StatusCode::kUnsupported, "this CommBackend follows the default stream only");
  }
  virtual void progress() {}
};

namespace detail {
inline seqpar_status comm_backend_result(const Status& status) {
  if (status.is_ok()) return SEQPAR_OK;
  seqpar_set_last_error(status.message().c_str());
  return static_cast<seqpar_status>(status.code());
}
// Runs a CommBackend call from a C trampoline: no exception crosses into the library.
template <class Call>
seqpar_status comm_backend_call(Call&& call) noexcept {
  try {
    return comm_backend_result(call());
  } catch (const std::exception& e) {
    seqpar_set_last_error(e.what());
  } catch (...) {
    seqpar_set_last_error("a CommBackend threw");
  }
  return SEQPAR_INTERNAL;
}
// The `user` of a CommBackend's table: the backend and its group's size.
struct CommBackendHolder {
  std::unique_ptr<CommBackend> backend;
  int size = 0;
};
inline CommBackend& as_backend(void* user) {
  return *static_cast<CommBackendHolder*>(user)->backend;
}

struct CommBackendTable {
  static seqpar_status exchange(void* user, const seqpar_p2p_op* ops, size_t count, void** work) {
    return comm_backend_call([&] { return as_backend(user).exchange({ops, count}, work); });
  }
  static seqpar_status all_to_all_v(void* user, const void* send, const size_t* send_bytes,
                                    const size_t* send_offsets, void* recv,
                                    const size_t* recv_bytes, const size_t* recv_offsets,
                                    void** work) {
    return comm_backend_call([&] {
      const auto n = static_cast<size_t>(static_cast<CommBackendHolder*>(user)->size);
      return as_backend(user).all_to_all_v(send, {send_bytes, n}, {send_offsets, n}, recv,
                                           {recv_bytes, n}, {recv_offsets, n}, work);
    });
  }
  static seqpar_status all_gather(void* user, const void* send, void* recv, size_t bytes_per_rank,
                                  void** work) {
    return comm_backend_call(
        [&] { return as_backend(user).all_gather(send, recv, bytes_per_rank, work); });
  }
  static seqpar_status reduce_scatter(void* user, const void* send, void* recv,
                                      size_t count_per_rank, int32_t dtype, int32_t op,
                                      void** work) {
    return comm_backend_call([&] {
      return as_backend(user).reduce_scatter(send, recv, count_per_rank, dtype,
                                             static_cast<CommBackend::ReduceOp>(op), work);
    });
  }
  static seqpar_status all_reduce(void* user, const void* send, void* recv, size_t count,
                                  int32_t dtype, int32_t op, void** work) {
    return comm_backend_call([&] {
      return as_backend(user).all_reduce(send, recv, count, dtype,
                                         static_cast<CommBackend::ReduceOp>(op), work);
    });
  }
  static seqpar_status broadcast(void* user, void* buffer, size_t bytes, int root, void** work) {
    return comm_backend_call([&] { return as_backend(user).broadcast(buffer, bytes, root, work); });
  }
  static seqpar_status barrier(void* user, void** work) {
    return comm_backend_call([&] { return as_backend(user).barrier(work); });
  }
  static seqpar_status wait(void* user, void* work, int64_t timeout_ms) {
    return comm_backend_call([&] { return as_backend(user).wait(work, timeout_ms); });
  }
  static void discard(void* user, void* work) {
    try {
      as_backend(user).discard(work);
    } catch (...) {  // nothing to report it to
    }
  }
  static seqpar_status split(void* user, int color, int key, seqpar_comm_callbacks* child,
                             void** child_user, int* child_rank, int* child_size) {
    return comm_backend_call([&] {
      StatusOr<CommBackend::Split> made = as_backend(user).split(color, key);
      if (!made.is_ok()) return made.status();
      if (!made->backend) return Status(StatusCode::kInternal, "CommBackend::split: no backend");
      *child = table_for(*made->backend);
      *child_rank = made->rank;
      *child_size = made->size;
      *child_user = new CommBackendHolder{std::move(made->backend), made->size};
      return Status::ok();
    });
  }
  static void abort(void* user, const char* message) {
    try {
      as_backend(user).abort(message);
    } catch (...) {
    }
  }
  static seqpar_status set_stream(void* user, void* stream) {
    return comm_backend_call([&] { return as_backend(user).set_stream(stream); });
  }
  static void progress(void* user) {
    try {
      as_backend(user).progress();
    } catch (...) {
    }
  }
  static void destroy(void* user) { delete static_cast<CommBackendHolder*>(user); }

  static seqpar_comm_callbacks table_for(const CommBackend& backend) {
    seqpar_comm_callbacks table{};
    table.struct_size = sizeof(seqpar_comm_callbacks);
    table.exchange = &exchange;
    table.all_to_all_v = &all_to_all_v;
    table.all_gather = &all_gather;
    table.reduce_scatter = &reduce_scatter;
    table.all_reduce = &all_reduce;
    table.broadcast = &broadcast;
    table.barrier = &barrier;
    table.wait = &wait;
    table.discard = &discard;
    table.split = backend.can_split() ? &split : nullptr;
    table.abort = &abort;
    table.set_stream = &set_stream;
    table.progress = &progress;
    table.destroy = &destroy;
    return table;
  }
};
}  // namespace detail

// A Communicator over `backend` (rank `rank` of `size`; its buffers in `device` memory), which it
// owns from then on. Plans made on it send every operation to the backend.
// ```cpp
// #include <seqpar/seqpar.hpp>
//
// #include <cstring>
// #include <memory>
//
// // One rank alone: every operation is a local copy, completed in the call.
// class LocalBackend : public seqpar::CommBackend {
//  public:
//   seqpar::Status exchange(seqpar::Span<P2POp> ops, void** work) override {
//     const void* sent = nullptr;  // a rank alone only sends to itself: pair sends with recvs
//     for (const P2POp& op : ops)
//       if (op.kind == SEQPAR_P2P_SEND) sent = op.buffer;
//     for (const P2POp& op : ops)
//       if (op.kind == SEQPAR_P2P_RECV && op.bytes > 0) std::memcpy(op.buffer, sent, op.bytes);
//     *work = nullptr;
//     return seqpar::Status::ok();
//   }
//   seqpar::Status all_to_all_v(const void* send, seqpar::Span<size_t> send_bytes,
//                               seqpar::Span<size_t> send_offsets, void* recv,
//                               seqpar::Span<size_t>, seqpar::Span<size_t> recv_offsets,
//                               void** work) override {
//     return copy(static_cast<const char*>(send) + send_offsets[0],
//                 static_cast<char*>(recv) + recv_offsets[0], send_bytes[0], work);
//   }
//   seqpar::Status all_gather(const void* send, void* recv, size_t bytes, void** work) override {
//     return copy(send, recv, bytes, work);
//   }
//   seqpar::Status reduce_scatter(const void* send, void* recv, size_t count, int32_t dtype,
//                                 ReduceOp, void** work) override {
//     return copy(send, recv, count * seqpar::dtype_size(static_cast<seqpar::DType>(dtype)),
//                 work);
//   }
//   seqpar::Status all_reduce(const void* send, void* recv, size_t count, int32_t dtype,
//                             ReduceOp, void** work) override {
//     return copy(send, recv, count * seqpar::dtype_size(static_cast<seqpar::DType>(dtype)),
//                 work);
//   }
//   seqpar::Status broadcast(void*, size_t, int, void** work) override {
//     return copy(nullptr, nullptr, 0, work);
//   }
//   seqpar::Status barrier(void** work) override { return copy(nullptr, nullptr, 0, work); }
//   seqpar::Status wait(void*, int64_t) override { return seqpar::Status::ok(); }
//
//  private:
//   static seqpar::Status copy(const void* from, void* to, size_t bytes, void** work) {
//     if (bytes > 0 && from != to) std::memmove(to, from, bytes);
//     *work = nullptr;
//     return seqpar::Status::ok();
//   }
// };
//
// seqpar::StatusOr<seqpar::Communicator> local_communicator() {
//   return seqpar::make_callback_communicator(std::make_unique<LocalBackend>(), 0, 1,
//                                             seqpar::Device::kHost);
// }
// ```
inline StatusOr<Communicator> make_callback_communicator(std::unique_ptr<CommBackend> backend,
                                                         int rank, int size,
                                                         Device device = Device::kHost) {
  if (!backend) return Status(StatusCode::kInvalidArgument, "make_callback_communicator: null");
  const seqpar_comm_callbacks table = detail::CommBackendTable::table_for(*backend);
  auto holder = std::make_unique<detail::CommBackendHolder>(
      detail::CommBackendHolder{std::move(backend), size});
  seqpar_comm* handle = nullptr;
  Status status = detail::from_c(seqpar_comm_from_callbacks(&table, holder.get(), rank, size,
                                                            static_cast<int32_t>(device), &handle));
  if (!status.is_ok()) return status;  // the library did not take it: holder frees it
  holder.release();                    // the communicator owns it now (destroy)
  return Communicator::adopt(handle);
}

}  // namespace v0
}  // namespace seqpar
