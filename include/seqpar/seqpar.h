#ifndef SEQPAR_SEQPAR_H
#define SEQPAR_SEQPAR_H
/* seqpar's C ABI (C11): exact attention over a sequence split across ranks.
 *
 * This is libseqpar.so's whole exported surface; the C++ API (seqpar/seqpar.hpp) is an inline
 * layer over it, so no C++ type or exception ever crosses the library boundary.
 *
 * Conventions:
 * - Every function that can fail returns a seqpar_status. On failure it also sets this thread's
 *   last-error message (seqpar_last_error()); outputs are then left untouched. No function
 *   throws, and bad values (null handles and out-pointers, unknown enum values, too-old structs,
 *   bad shapes) return a status rather than crash. A collective step that fails on one rank
 *   aborts the group so that no rank waits for it (SEQPAR_ABORTED on the others); with an MPI
 *   communicator that means MPI_Abort, which ends the job, as MPI has no other way to release
 *   ranks blocked in a collective. A handle used after it was destroyed is undefined.
 * - Handles are opaque; each *_create / *_from_* has a matching *_destroy (null is a no-op).
 * - Config structs start with `struct_size`: set it to sizeof(the struct) (the *_init functions
 *   do, for the caller's own header's size). Fields are only ever appended, and padding is
 *   spelled out as reserved fields (zero), so a library reads the fields a caller's header knew
 *   and takes the defaults for the rest; a struct smaller than the first published one, or
 *   implausibly large (over 4096 bytes: an uninitialised struct_size), is refused.
 * - Tensors are raw pointers in the plan's memory (host, or device for SEQPAR_DEVICE_CUDA plans)
 *   holding each rank's shard in the plan's layout:
 *     q, out, dout, dq   (B, S_local, Hq, D)   storage dtype
 *     k, v, dk, dv       (B, S_local, Hkv, D)  storage dtype
 *     lse                (B, Hq, S_local)      float
 *   with S_local = seqpar_layout_local_seq(layout, rank).
 * - Collective functions (plan creation, forward, backward, decode steps) must be called by every
 *   rank of the communicator, in the same order.
 *
 * Example: one training step on the ranks of an MPI communicator (compiled by a test):
 * ```c
 * #include <mpi.h>
 * #include <seqpar/seqpar.h>
 * #include <stdio.h>
 *
 * // Once, on every rank: the communicator (a collective MPI_Comm_dup) and the plan.
 * seqpar_status make_plan(MPI_Comm world, seqpar_comm** comm, seqpar_plan** plan) {
 *   seqpar_plan_config config;
 *   seqpar_status status = seqpar_plan_config_init(&config);  // struct_size and defaults
 *   config.seq = 4096;  // the whole sequence
 *   config.heads_q = 8;
 *   config.heads_kv = 2;
 *   config.head_dim = 64;
 *   config.dtype = SEQPAR_DTYPE_F32;
 *   config.scheme = SEQPAR_SCHEME_ZIGZAG;
 *   if (status == SEQPAR_OK) status = seqpar_comm_from_mpi_fortran(MPI_Comm_c2f(world), comm);
 *   if (status == SEQPAR_OK) status = seqpar_plan_create(&config, *comm, plan);  // collective
 *   if (status != SEQPAR_OK) fprintf(stderr, "seqpar: %s\n", seqpar_last_error());
 *   return status;
 * }
 *
 * // Every step: this rank's shards (shapes above), fp32; the plan only runs.
 * seqpar_status train_step(seqpar_plan* plan, const float* q, const float* k, const float* v,
 *                          const float* dout, float* out, float* lse, float* dq, float* dk,
 *                          float* dv) {
 *   seqpar_status status = seqpar_plan_forward(plan, q, k, v, out, lse);
 *   if (status == SEQPAR_OK)
 *     status = seqpar_plan_backward(plan, q, k, v, out, lse, dout, dq, dk, dv);
 *   if (status != SEQPAR_OK) fprintf(stderr, "seqpar: %s\n", seqpar_last_error());
 *   return status;
 * }
 * ```
 */
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(SEQPAR_BUILDING_LIBRARY)
#define SEQPAR_API __declspec(dllexport)
#else
#define SEQPAR_API __declspec(dllimport)
#endif
#else
#define SEQPAR_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version; seqpar_version_string() returns what the library was built as. */
#define SEQPAR_VERSION_MAJOR 0
#define SEQPAR_VERSION_MINOR 1
#define SEQPAR_VERSION_PATCH 0
#define SEQPAR_VERSION_STRING "0.1.0"
SEQPAR_API const char* seqpar_version_string(void);

/* ---- status ---- */
typedef enum seqpar_status {
  SEQPAR_OK = 0,
  SEQPAR_INVALID_ARGUMENT = 1, /* a documented rule broken: null, shape, divisibility, enum */
  SEQPAR_MISMATCH = 2,         /* ranks disagree on the config */
  SEQPAR_UNSUPPORTED = 3,      /* valid, but not in this build or on this device */
  SEQPAR_OUT_OF_MEMORY = 4,
  SEQPAR_TIMEOUT = 5,
  SEQPAR_COMM_ERROR = 6,
  SEQPAR_ABORTED = 7, /* another rank failed and aborted the group */
  SEQPAR_CUDA_ERROR = 8,
  SEQPAR_NUMERIC_ERROR = 9,
  SEQPAR_INTERNAL = 10,
  SEQPAR_STATUS_MAX_ENUM = 0x7FFFFFFF /* keeps the enum 32 bits wide; never returned */
} seqpar_status;

/* "ok", "invalid_argument", ...; "unknown" for a value outside the enum. */
SEQPAR_API const char* seqpar_status_name(seqpar_status status);
/* The message of this thread's last failed call ("" when none has failed). Valid until this
 * thread's next seqpar call. */
SEQPAR_API const char* seqpar_last_error(void);
/* Sets this thread's last-error message: for a seqpar_run_threads body that fails by itself. */
SEQPAR_API void seqpar_set_last_error(const char* message);

/* ---- enums (stable values; config fields hold them as int32_t) ---- */
typedef enum seqpar_dtype {
  SEQPAR_DTYPE_F32 = 0,
  SEQPAR_DTYPE_BF16 = 1,
  SEQPAR_DTYPE_F16 = 2
} seqpar_dtype;
typedef enum seqpar_mask { SEQPAR_MASK_FULL = 0, SEQPAR_MASK_CAUSAL = 1 } seqpar_mask;
typedef enum seqpar_device { SEQPAR_DEVICE_HOST = 0, SEQPAR_DEVICE_CUDA = 1 } seqpar_device;
typedef enum seqpar_scheme {
  SEQPAR_SCHEME_RING = 0,
  SEQPAR_SCHEME_STRIPED = 1,
  SEQPAR_SCHEME_ZIGZAG = 2,
  SEQPAR_SCHEME_LIGHTSEQ = 3,
  SEQPAR_SCHEME_ULYSSES = 4,
  SEQPAR_SCHEME_HYBRID = 5,
  SEQPAR_SCHEME_TREE = 6
} seqpar_scheme;
typedef enum seqpar_decoder { SEQPAR_DECODER_TREE = 0, SEQPAR_DECODER_RING = 1 } seqpar_decoder;
typedef enum seqpar_layout_kind {
  SEQPAR_LAYOUT_CONTIGUOUS = 0,
  SEQPAR_LAYOUT_STRIPED = 1,
  SEQPAR_LAYOUT_ZIGZAG = 2,
  SEQPAR_LAYOUT_HYBRID_ZIGZAG = 3
} seqpar_layout_kind;

/* Bytes per element of a storage dtype (0 for an unknown value). */
SEQPAR_API size_t seqpar_dtype_size(int32_t dtype);
/* The scheme named `name` ("ring", "striped", "zigzag", "lightseq", "ulysses", "hybrid",
 * "tree"). */
SEQPAR_API seqpar_status seqpar_scheme_from_name(const char* name, int32_t* scheme);

/* ---- opaque handles ---- */
typedef struct seqpar_comm seqpar_comm;
typedef struct seqpar_plan seqpar_plan;
typedef struct seqpar_layout seqpar_layout;
typedef struct seqpar_decode_plan seqpar_decode_plan;

/* ---- communicators ---- */

/* Adopts an MPI communicator given as its Fortran handle: pass MPI_Comm_c2f(comm) (an MPI_Fint,
 * an int in every MPI the library supports), so this header needs no mpi.h and does not depend
 * on one MPI's C handle type. Collective (the communicator is duplicated, MPI_Comm_dup): make it
 * once, not per step. The MPI must be the one libseqpar was built with (two MPI libraries in one
 * process do not share handles), and stay initialised until the communicator and its plans are
 * destroyed. Host memory; SEQPAR_UNSUPPORTED in a build without MPI. */
SEQPAR_API seqpar_status seqpar_comm_from_mpi_fortran(int comm_f, seqpar_comm** out);
/* The same for `device` memory (SEQPAR_DEVICE_CUDA: device pointers, CUDA-aware or staged). */
SEQPAR_API seqpar_status seqpar_comm_from_mpi_fortran_device(int comm_f, int32_t device,
                                                             seqpar_comm** out);
/* Adopts an ncclComm_t and a cudaStream_t (both passed as pointers, neither owned): device
 * memory. SEQPAR_UNSUPPORTED in a build without NCCL. */
SEQPAR_API seqpar_status seqpar_comm_from_nccl(void* nccl_comm, void* cuda_stream,
                                               seqpar_comm** out);
/* A threads group of `ranks` ranks in this process: fills comms[0..ranks-1]; hand comms[r] to
 * the thread that runs rank r, and destroy each after every rank is done with it. */
SEQPAR_API seqpar_status seqpar_threads_group_create(int ranks, int32_t device,
                                                     seqpar_comm** comms);
/* Runs body(comm of rank r, user) on `ranks` new threads and joins them. The comm is the
 * library's, valid during the call only (destroy the plans made on it before the body returns).
 * A body that returns non-OK aborts the group (the others fail fast); the result is the first
 * root-cause failure, its message naming the rank (the failing thread's last error, see
 * seqpar_set_last_error). An aborted threads group stays aborted: make a new one. */
typedef seqpar_status (*seqpar_rank_body)(seqpar_comm* comm, void* user);
SEQPAR_API seqpar_status seqpar_run_threads(int ranks, int32_t device, seqpar_rank_body body,
                                            void* user);
/* Frees an adopted or threads-group communicator handle (plans made on it keep the communicator
 * itself until they are destroyed); null, or the comm lent to a seqpar_run_threads body, is left
 * alone. */
SEQPAR_API void seqpar_comm_destroy(seqpar_comm* comm);
SEQPAR_API seqpar_status seqpar_comm_rank(const seqpar_comm* comm, int* rank);
SEQPAR_API seqpar_status seqpar_comm_size(const seqpar_comm* comm, int* size);

/* ---- plans: training and prefill ---- */
typedef struct seqpar_plan_config {
  size_t struct_size; /* sizeof(seqpar_plan_config) */
  /* The global problem, the same on every rank. */
  int64_t batch;          /* B (default 1) */
  int64_t seq;            /* S, the whole sequence */
  int64_t heads_q;        /* Hq */
  int64_t heads_kv;       /* Hkv; Hq % Hkv == 0 */
  int64_t head_dim;       /* D */
  int32_t mask;           /* seqpar_mask (default causal) */
  int32_t dtype;          /* seqpar_dtype: storage of q, k, v, out, dout, grads (default bf16) */
  float softmax_scale;    /* 0: 1 / sqrt(D) */
  int32_t scheme;         /* seqpar_scheme (default zigzag) */
  int32_t device;         /* seqpar_device (default host) */
  int32_t reserved0;      /* zero */
  void* stream;           /* the caller's cudaStream_t for device plans; not owned */
  int32_t ranks_per_node; /* consecutive ranks sharing a node (0: all) */
  int32_t ulysses_degree; /* hybrid's ranks per Ulysses group (0: chosen) */
  int32_t check_finite;   /* nonzero: fail a step on NaN/Inf inputs or gradients (default 1) */
  int32_t backward;       /* zero: a forward-only plan (default 1) */
} seqpar_plan_config;

/* Fills the first `struct_size` bytes of `config` with the defaults (zero past the fields this
 * library knows) and sets config->struct_size = struct_size. Call it through
 * seqpar_plan_config_init, which passes the caller's sizeof: a library newer than the caller's
 * header never writes past the caller's struct. */
SEQPAR_API seqpar_status seqpar_plan_config_init_sized(seqpar_plan_config* config,
                                                       size_t struct_size);
static inline seqpar_status seqpar_plan_config_init(seqpar_plan_config* config) {
  return seqpar_plan_config_init_sized(config, sizeof(seqpar_plan_config));
}

/* Collective over `comm`; the plan keeps the communicator alive (comm and plan may be destroyed
 * in either order). Ranks that disagree, a problem the scheme refuses, or a failed allocation on
 * any rank fail it on every rank. */
SEQPAR_API seqpar_status seqpar_plan_create(const seqpar_plan_config* config, seqpar_comm* comm,
                                            seqpar_plan** out);
SEQPAR_API void seqpar_plan_destroy(seqpar_plan* plan);
/* Collective; any failure aborts the group. Shapes: see the top of this file. */
SEQPAR_API seqpar_status seqpar_plan_forward(seqpar_plan* plan, const void* q, const void* k,
                                             const void* v, void* out, float* lse);
SEQPAR_API seqpar_status seqpar_plan_backward(seqpar_plan* plan, const void* q, const void* k,
                                              const void* v, const void* out, const float* lse,
                                              const void* dout, void* dq, void* dk, void* dv);
/* The finite check's verdict on every step so far (a device plan waits for its device). */
SEQPAR_API seqpar_status seqpar_plan_finite_check_result(seqpar_plan* plan);
SEQPAR_API seqpar_status seqpar_plan_workspace_bytes(const seqpar_plan* plan, size_t* bytes);
/* S_local of this rank. */
SEQPAR_API seqpar_status seqpar_plan_local_seq(const seqpar_plan* plan, int64_t* local_seq);
/* The plan's token layout, as a new layout handle (destroy it). */
SEQPAR_API seqpar_status seqpar_plan_layout(const seqpar_plan* plan, seqpar_layout** out);

/* seqpar's cost model (seqpar-run --scheme auto's): sets config->scheme and
 * config->ulysses_degree to the candidate predicted fastest for config's problem (and backward)
 * on `ranks` ranks, config->ranks_per_node consecutive ones per node (0: one node). Host plans:
 * CPU ranks, one host's links (100 Gb/s Ethernet between hosts), the host block kernel's rate
 * measured once (about a second) and cached ($SEQPAR_CACHE_DIR, else ~/.cache/seqpar); device
 * plans: the documented H100 figures (NVLink inside a node, 400 Gb/s InfiniBand between).
 * Local, no communication; a measured rate may differ between processes, so let one rank choose
 * and share the choice (seqpar-run broadcasts rank 0's). SEQPAR_INVALID_ARGUMENT when no scheme
 * can run the problem (the message lists each one's reason). */
SEQPAR_API seqpar_status seqpar_plan_config_choose_scheme(seqpar_plan_config* config, int ranks);

/* ---- layouts: which global tokens each rank holds ----
 *   contiguous     rank r holds the r-th run of a balanced split of [0, S)
 *   striped        rank r holds r, r+P, r+2P, ...                   (S % P == 0)
 *   zigzag         chunks r and 2P-1-r of 2P equal chunks           (S % 2P == 0)
 *   hybrid_zigzag  a U x R grid: zigzag over the R groups of U consecutive ranks, and a balanced
 *                  split of each group's tokens over its U ranks (every rank holds all heads;
 *                  the plan moves heads between the ranks of a group itself)
 * Shards are in local order: a rank's rows in increasing local index, positions as listed by
 * seqpar_layout_positions. */
/* The layout a plan made from `config` would use on `ranks` ranks (no communication). */
SEQPAR_API seqpar_status seqpar_layout_create(const seqpar_plan_config* config, int ranks,
                                              seqpar_layout** out);
SEQPAR_API void seqpar_layout_destroy(seqpar_layout* layout);
SEQPAR_API seqpar_status seqpar_layout_get_kind(const seqpar_layout* layout, int32_t* kind);
SEQPAR_API seqpar_status seqpar_layout_ranks(const seqpar_layout* layout, int* ranks);
SEQPAR_API seqpar_status seqpar_layout_seq(const seqpar_layout* layout, int64_t* seq);
SEQPAR_API seqpar_status seqpar_layout_local_seq(const seqpar_layout* layout, int rank,
                                                 int64_t* local_seq);
/* positions[0..local_seq) = the global token positions of rank `rank`'s rows, in local order;
 * `capacity` is the room in `positions` (>= local_seq). */
SEQPAR_API seqpar_status seqpar_layout_positions(const seqpar_layout* layout, int rank,
                                                 int64_t* positions, int64_t capacity);
/* Host memory. global (B, S, row_bytes) -> shard (B, S_local, row_bytes) of rank `rank`, and
 * back; row_bytes is H * D * element size (e.g. Hq * D * seqpar_dtype_size(dtype) for q). */
SEQPAR_API seqpar_status seqpar_layout_shard(const seqpar_layout* layout, int rank,
                                             const void* global, void* shard, int64_t batch,
                                             size_t row_bytes);
SEQPAR_API seqpar_status seqpar_layout_unshard(const seqpar_layout* layout, int rank,
                                               const void* shard, void* global, int64_t batch,
                                               size_t row_bytes);

/* ---- decoding: new tokens against a KV cache sharded over the ranks ---- */
typedef struct seqpar_decode_config {
  size_t struct_size; /* sizeof(seqpar_decode_config) */
  int64_t batch;      /* B (default 1) */
  int64_t prompt;     /* S: the prompt's tokens already in the cache (S >= P) */
  int64_t heads_q;
  int64_t heads_kv;
  int64_t head_dim;
  int32_t dtype;       /* seqpar_dtype (default bf16) */
  float softmax_scale; /* 0: 1 / sqrt(D) */
  int64_t q_len;       /* n: new tokens per step (default 1) */
  int64_t capacity;    /* the most tokens the cache will hold (0: prompt + q_len) */
  int32_t decoder;     /* seqpar_decoder (default tree) */
  int32_t device;      /* seqpar_device */
  void* stream;        /* cudaStream_t for device plans */
  int32_t ranks_per_node;
  int32_t reserved0; /* zero */
} seqpar_decode_config;

/* As seqpar_plan_config_init_sized / seqpar_plan_config_init. */
SEQPAR_API seqpar_status seqpar_decode_config_init_sized(seqpar_decode_config* config,
                                                         size_t struct_size);
static inline seqpar_status seqpar_decode_config_init(seqpar_decode_config* config) {
  return seqpar_decode_config_init_sized(config, sizeof(seqpar_decode_config));
}

/* Collective, as seqpar_plan_create. */
SEQPAR_API seqpar_status seqpar_decode_plan_create(const seqpar_decode_config* config,
                                                   seqpar_comm* comm, seqpar_decode_plan** out);
SEQPAR_API void seqpar_decode_plan_destroy(seqpar_decode_plan* plan);
/* Host plans: copies this rank's rows of the whole prompt's k, v (B, S, Hkv, D) into its cache
 * shard. (Device plans fill seqpar_decode_plan_cache's pointers at seqpar_decode_plan_positions'
 * tokens.) Local. */
SEQPAR_API seqpar_status seqpar_decode_plan_load_prompt(seqpar_decode_plan* plan,
                                                        const void* k_prompt, const void* v_prompt);
/* This rank's cache storage k, v (B, local_capacity, Hkv, D) and the rows it holds now. */
SEQPAR_API seqpar_status seqpar_decode_plan_cache(seqpar_decode_plan* plan, void** k, void** v,
                                                  int64_t* local_capacity, int64_t* local_length);
/* positions[0..local_length) = the global positions of this rank's cached tokens. */
SEQPAR_API seqpar_status seqpar_decode_plan_positions(const seqpar_decode_plan* plan,
                                                      int64_t* positions, int64_t capacity);
/* Appends n new tokens: k_new, v_new (B, n, Hkv, D), the same on every rank. Local. */
SEQPAR_API seqpar_status seqpar_decode_plan_append(seqpar_decode_plan* plan, const void* k_new,
                                                   const void* v_new, int64_t n);
/* Attends q (B, q_len, Hq, D), replicated, to the whole cache: out (B, q_len, Hq, D) and lse
 * (B, Hq, q_len), the same on every rank. Collective; exactly q_len tokens must have been
 * appended since the previous step. */
SEQPAR_API seqpar_status seqpar_decode_plan_step(seqpar_decode_plan* plan, const void* q, void* out,
                                                 float* lse);
SEQPAR_API seqpar_status seqpar_decode_plan_workspace_bytes(const seqpar_decode_plan* plan,
                                                            size_t* bytes);

/* ---- communicators the caller implements ----
 * seqpar_comm_from_callbacks makes a communicator whose every operation goes to a table of
 * functions the caller implements (e.g. over torch.distributed, or any transport). Each rank
 * makes its own, over its own `user` context. Contract:
 * - Ordering: seqpar issues operations in the same order on every rank of the group, as MPI and
 *   NCCL expect: collectives are matched by call order; point-to-point messages between one pair
 *   of ranks are matched in the order they were posted (MPI's non-overtaking rule).
 * - Posting: each operation callback either completes the operation before returning (then sets
 *   *work = NULL) or posts it and sets *work to an opaque handle of its own. seqpar hands every
 *   non-NULL handle back exactly once: to `wait`, which completes it or fails and in both cases
 *   is done with the handle (frees it); or, when seqpar lets go of an operation without waiting
 *   (only on its error paths), to `discard` if set (else the handle is dropped). Buffers stay
 *   untouched by seqpar until wait returns; a callback must not touch them after.
 * - wait(user, work, timeout_ms) waits at most timeout_ms (>= 1, never a "forever" 0: seqpar's
 *   comm timeout, SEQPAR_TIMEOUT_S, less the time already spent) and reports running out as
 *   SEQPAR_TIMEOUT.
 * - Errors: a callback returns a seqpar_status; on failure it may call seqpar_set_last_error
 *   with a message first, which becomes part of the failing seqpar call's last error.
 * - Threads: nothing need be thread-safe. Every call comes from the thread that runs the rank
 *   (the one calling seqpar_plan_* on this communicator), never concurrently.
 * - Memory: buffers are host pointers, or device pointers when `device` is SEQPAR_DEVICE_CUDA;
 *   then operations are ordered with the CUDA stream passed to set_stream (see seqpar_comm: an
 *   operation starts after the work enqueued on it so far; after wait, the stream's later work
 *   sees the result).
 * - Sizes: byte counts for the data movers; element counts + element type for reductions. */
typedef enum seqpar_p2p_kind { SEQPAR_P2P_SEND = 0, SEQPAR_P2P_RECV = 1 } seqpar_p2p_kind;
/* One send or receive of a grouped point-to-point exchange. */
typedef struct seqpar_p2p_op {
  int32_t kind; /* seqpar_p2p_kind */
  int32_t peer; /* a rank of this communicator (may be this rank: a self copy) */
  void* buffer; /* read only for sends */
  size_t bytes; /* 0 still matches a 0-byte message */
} seqpar_p2p_op;
typedef enum seqpar_reduce_op { SEQPAR_REDUCE_SUM = 0, SEQPAR_REDUCE_MAX = 1 } seqpar_reduce_op;
/* Reductions' element types: a seqpar_dtype value, or one of these (seqpar reduces fp32 today;
 * a table may refuse other types with SEQPAR_UNSUPPORTED). */
typedef enum seqpar_comm_dtype {
  SEQPAR_COMM_DTYPE_F64 = 3,
  SEQPAR_COMM_DTYPE_I32 = 4,
  SEQPAR_COMM_DTYPE_I64 = 5
} seqpar_comm_dtype;

typedef struct seqpar_comm_callbacks seqpar_comm_callbacks;
struct seqpar_comm_callbacks {
  size_t struct_size; /* sizeof(seqpar_comm_callbacks) */
  /* ---- required ---- */
  /* Posts `count` sends and receives together (their order in `ops` does not matter). */
  seqpar_status (*exchange)(void* user, const seqpar_p2p_op* ops, size_t count, void** work);
  /* send_bytes[r] bytes at send + send_offsets[r] go to rank r; recv_bytes[r] bytes from rank r
   * land at recv + recv_offsets[r]. The arrays have `size` entries and live until wait. */
  seqpar_status (*all_to_all_v)(void* user, const void* send, const size_t* send_bytes,
                                const size_t* send_offsets, void* recv, const size_t* recv_bytes,
                                const size_t* recv_offsets, void** work);
  /* recv holds `size` slices of bytes_per_rank, in rank order. send may be recv's own slice. */
  seqpar_status (*all_gather)(void* user, const void* send, void* recv, size_t bytes_per_rank,
                              void** work);
  /* send holds `size` slices of count_per_rank elements; rank r gets the reduction of slice r.
   * dtype: see seqpar_comm_dtype; op: seqpar_reduce_op. */
  seqpar_status (*reduce_scatter)(void* user, const void* send, void* recv, size_t count_per_rank,
                                  int32_t dtype, int32_t op, void** work);
  /* In place when send == recv. Results must be the same on every rank. */
  seqpar_status (*all_reduce)(void* user, const void* send, void* recv, size_t count, int32_t dtype,
                              int32_t op, void** work);
  seqpar_status (*broadcast)(void* user, void* buffer, size_t bytes, int root, void** work);
  seqpar_status (*barrier)(void* user, void** work);
  /* Completes a posted operation, or fails (SEQPAR_TIMEOUT after timeout_ms). */
  seqpar_status (*wait)(void* user, void* work, int64_t timeout_ms);
  /* ---- optional (NULL: as described) ---- */
  /* Lets go of a handle seqpar will not wait for (error paths). NULL: the handle is dropped. */
  void (*discard)(void* user, void* work);
  /* Collective: a communicator over the ranks passing the same color (>= 0), ordered by (key,
   * this rank). Fills *child_callbacks (seqpar zeroes it and sets its struct_size first),
   * *child_user and this rank's place in the child; the child is destroyed through its own
   * table's destroy. NULL: split is unsupported, and plans that need subgroups (hybrid; tree
   * with 1 < ranks_per_node < size) fail at creation with SEQPAR_UNSUPPORTED. */
  seqpar_status (*split)(void* user, int color, int key, seqpar_comm_callbacks* child_callbacks,
                         void** child_user, int* child_rank, int* child_size);
  /* Fails the whole group so no peer hangs (e.g. abort the process group, or the job); called
   * when a plan step fails on this rank. NULL: peers find out through their own timeouts. */
  void (*abort)(void* user, const char* message);
  /* Device communicators: the cudaStream_t later operations are ordered with. NULL: only the
   * legacy default stream (NULL) is accepted. */
  seqpar_status (*set_stream)(void* user, void* stream);
  /* Lets posted operations move forward (called between kernel tiles). NULL: nothing. */
  void (*progress)(void* user);
  /* Called once when the communicator is destroyed (seqpar_comm_destroy, or a split child's
   * end). NULL: `user` stays the caller's. */
  void (*destroy)(void* user);
};

/* A communicator of rank `rank` of `size` over the caller's `callbacks` (copied: the table may
 * go once this returns) and `user`. device: seqpar_device of the buffers. The table is checked:
 * struct_size (older tables are refused), every required function, 0 <= rank < size. On
 * failure nothing is kept and destroy is not called. */
SEQPAR_API seqpar_status seqpar_comm_from_callbacks(const seqpar_comm_callbacks* callbacks,
                                                    void* user, int rank, int size, int32_t device,
                                                    seqpar_comm** out);

#ifdef __cplusplus
}
#endif

#endif /* SEQPAR_SEQPAR_H */
