/* seqpar_comm_from_callbacks with MPI behind the callbacks, under mpirun (np 2 and 4): forward +
 * backward of every scheme through the callback communicator, checked against an fp64 causal
 * attention computed here; then a table without split, which the schemes needing subgroups must
 * refuse with SEQPAR_UNSUPPORTED at plan creation. Exits non-zero on any failure. Only the C
 * header, MPI and the C standard library. */
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <seqpar/seqpar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kHeadsQ = 8, kHeadsKv = 4, kHeadDim = 16, kTokensPerRank = 16 };

/* ---- the callbacks: one MPI communicator per context ---- */

typedef struct mpi_user {
  MPI_Comm comm;
  int size;
  long posted; /* operations seqpar sent through this table */
} mpi_user;

/* A posted operation: its MPI requests and what must live until they complete. */
typedef struct mpi_work {
  int count;
  int* ints; /* all_to_all_v's counts and displacements */
  MPI_Request requests[];
} mpi_work;

static mpi_work* new_work(int requests) {
  mpi_work* w = malloc(sizeof(mpi_work) + (size_t)requests * sizeof(MPI_Request));
  if (w != NULL) {
    w->count = requests;
    w->ints = NULL;
    for (int i = 0; i < requests; ++i) w->requests[i] = MPI_REQUEST_NULL;
  }
  return w;
}

static seqpar_status fail(seqpar_status status, const char* message) {
  seqpar_set_last_error(message);
  return status;
}

static seqpar_status checked(int mpi_result, mpi_work* w, void** work) {
  if (mpi_result != MPI_SUCCESS) {
    free(w);
    return fail(SEQPAR_COMM_ERROR, "an MPI call failed");
  }
  *work = w;
  return SEQPAR_OK;
}

static int fits_int(size_t n) { return n <= (size_t)INT_MAX; }

static seqpar_status cb_exchange(void* user, const seqpar_p2p_op* ops, size_t count, void** work) {
  mpi_user* u = user;
  ++u->posted;
  mpi_work* w = new_work((int)count);
  if (w == NULL) return fail(SEQPAR_OUT_OF_MEMORY, "exchange: no memory");
  int result = MPI_SUCCESS;
  for (size_t i = 0; i < count && result == MPI_SUCCESS; ++i) {
    if (!fits_int(ops[i].bytes)) {
      free(w);
      return fail(SEQPAR_UNSUPPORTED, "exchange: a message above INT_MAX bytes");
    }
    if (ops[i].kind == SEQPAR_P2P_SEND)
      result = MPI_Isend(ops[i].buffer, (int)ops[i].bytes, MPI_BYTE, ops[i].peer, 0, u->comm,
                         &w->requests[i]);
    else
      result = MPI_Irecv(ops[i].buffer, (int)ops[i].bytes, MPI_BYTE, ops[i].peer, 0, u->comm,
                         &w->requests[i]);
  }
  return checked(result, w, work);
}

static seqpar_status cb_all_to_all_v(void* user, const void* send, const size_t* send_bytes,
                                     const size_t* send_offsets, void* recv,
                                     const size_t* recv_bytes, const size_t* recv_offsets,
                                     void** work) {
  mpi_user* u = user;
  ++u->posted;
  mpi_work* w = new_work(1);
  if (w == NULL) return fail(SEQPAR_OUT_OF_MEMORY, "all_to_all_v: no memory");
  w->ints = malloc(4 * (size_t)u->size * sizeof(int));
  if (w->ints == NULL) {
    free(w);
    return fail(SEQPAR_OUT_OF_MEMORY, "all_to_all_v: no memory");
  }
  const size_t* arrays[4] = {send_bytes, send_offsets, recv_bytes, recv_offsets};
  for (int a = 0; a < 4; ++a)
    for (int r = 0; r < u->size; ++r) {
      if (!fits_int(arrays[a][r])) {
        free(w->ints);
        free(w);
        return fail(SEQPAR_UNSUPPORTED, "all_to_all_v: a count above INT_MAX");
      }
      w->ints[a * u->size + r] = (int)arrays[a][r];
    }
  int* i = w->ints;
  const int n = u->size;
  const int result = MPI_Ialltoallv(send, i, i + n, MPI_BYTE, recv, i + 2 * n, i + 3 * n, MPI_BYTE,
                                    u->comm, &w->requests[0]);
  if (result != MPI_SUCCESS) free(w->ints);
  return checked(result, w, work);
}

static seqpar_status cb_all_gather(void* user, const void* send, void* recv, size_t bytes,
                                   void** work) {
  mpi_user* u = user;
  ++u->posted;
  if (!fits_int(bytes)) return fail(SEQPAR_UNSUPPORTED, "all_gather: above INT_MAX bytes");
  int rank = 0;
  MPI_Comm_rank(u->comm, &rank);
  const int in_place = send == (const char*)recv + (size_t)rank * bytes;
  mpi_work* w = new_work(1);
  if (w == NULL) return fail(SEQPAR_OUT_OF_MEMORY, "all_gather: no memory");
  return checked(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, (int)bytes, MPI_BYTE, recv,
                                (int)bytes, MPI_BYTE, u->comm, &w->requests[0]),
                 w, work);
}

static int mpi_type(int32_t dtype, MPI_Datatype* type) {
  switch (dtype) {
    case SEQPAR_DTYPE_F32:
      *type = MPI_FLOAT;
      return 1;
    case SEQPAR_COMM_DTYPE_F64:
      *type = MPI_DOUBLE;
      return 1;
    case SEQPAR_COMM_DTYPE_I32:
      *type = MPI_INT32_T;
      return 1;
    case SEQPAR_COMM_DTYPE_I64:
      *type = MPI_INT64_T;
      return 1;
    default:
      return 0; /* bf16 / fp16: not in this table */
  }
}

static seqpar_status cb_reduce_scatter(void* user, const void* send, void* recv, size_t count,
                                       int32_t dtype, int32_t op, void** work) {
  mpi_user* u = user;
  ++u->posted;
  MPI_Datatype type;
  if (!mpi_type(dtype, &type)) return fail(SEQPAR_UNSUPPORTED, "reduce_scatter: dtype");
  if (!fits_int(count)) return fail(SEQPAR_UNSUPPORTED, "reduce_scatter: count above INT_MAX");
  mpi_work* w = new_work(1);
  if (w == NULL) return fail(SEQPAR_OUT_OF_MEMORY, "reduce_scatter: no memory");
  return checked(MPI_Ireduce_scatter_block(send == recv ? MPI_IN_PLACE : send, recv, (int)count,
                                           type, op == SEQPAR_REDUCE_MAX ? MPI_MAX : MPI_SUM,
                                           u->comm, &w->requests[0]),
                 w, work);
}

static seqpar_status cb_all_reduce(void* user, const void* send, void* recv, size_t count,
                                   int32_t dtype, int32_t op, void** work) {
  mpi_user* u = user;
  ++u->posted;
  MPI_Datatype type;
  if (!mpi_type(dtype, &type)) return fail(SEQPAR_UNSUPPORTED, "all_reduce: dtype");
  if (!fits_int(count)) return fail(SEQPAR_UNSUPPORTED, "all_reduce: count above INT_MAX");
  mpi_work* w = new_work(1);
  if (w == NULL) return fail(SEQPAR_OUT_OF_MEMORY, "all_reduce: no memory");
  return checked(
      MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv, (int)count, type,
                     op == SEQPAR_REDUCE_MAX ? MPI_MAX : MPI_SUM, u->comm, &w->requests[0]),
      w, work);
}

static seqpar_status cb_broadcast(void* user, void* buffer, size_t bytes, int root, void** work) {
  mpi_user* u = user;
  ++u->posted;
  if (!fits_int(bytes)) return fail(SEQPAR_UNSUPPORTED, "broadcast: above INT_MAX bytes");
  mpi_work* w = new_work(1);
  if (w == NULL) return fail(SEQPAR_OUT_OF_MEMORY, "broadcast: no memory");
  return checked(MPI_Ibcast(buffer, (int)bytes, MPI_BYTE, root, u->comm, &w->requests[0]), w, work);
}

/* Blocking, to show that form: completes in the call and leaves *work NULL. */
static seqpar_status cb_barrier(void* user, void** work) {
  mpi_user* u = user;
  ++u->posted;
  *work = NULL;
  return MPI_Barrier(u->comm) == MPI_SUCCESS ? SEQPAR_OK : fail(SEQPAR_COMM_ERROR, "barrier");
}

static seqpar_status cb_wait(void* user, void* work, int64_t timeout_ms) {
  (void)user;
  mpi_work* w = work;
  const double start = MPI_Wtime();
  int done = 0;
  while (!done) {
    if (MPI_Testall(w->count, w->requests, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
      return fail(SEQPAR_COMM_ERROR, "MPI_Testall failed");
    if (!done && (MPI_Wtime() - start) * 1000.0 > (double)timeout_ms)
      /* MPI still owns the requests and buffers: the handle is leaked (the job ends anyway). */
      return fail(SEQPAR_TIMEOUT, "MPI requests still pending");
  }
  free(w->ints);
  free(w);
  return SEQPAR_OK;
}

static void cb_abort(void* user, const char* message) {
  (void)user;
  fprintf(stderr, "aborting the job: %s\n", message);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

static void cb_progress(void* user) {
  int flag = 0;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, ((mpi_user*)user)->comm, &flag, MPI_STATUS_IGNORE);
}

static void cb_destroy(void* user) {
  mpi_user* u = user;
  MPI_Comm_free(&u->comm);
  free(u);
}

static mpi_user* new_user(MPI_Comm owned) {
  mpi_user* u = calloc(1, sizeof(mpi_user));
  if (u == NULL) return NULL;
  u->comm = owned;
  MPI_Comm_size(owned, &u->size);
  return u;
}

static seqpar_status cb_split(void* user, int color, int key, seqpar_comm_callbacks* child,
                              void** child_user, int* child_rank, int* child_size);

static seqpar_comm_callbacks make_table(int with_split) {
  seqpar_comm_callbacks t;
  memset(&t, 0, sizeof(t));
  t.struct_size = sizeof(t);
  t.exchange = cb_exchange;
  t.all_to_all_v = cb_all_to_all_v;
  t.all_gather = cb_all_gather;
  t.reduce_scatter = cb_reduce_scatter;
  t.all_reduce = cb_all_reduce;
  t.broadcast = cb_broadcast;
  t.barrier = cb_barrier;
  t.wait = cb_wait;
  t.split = with_split ? cb_split : NULL;
  t.abort = cb_abort;
  t.progress = cb_progress;
  t.destroy = cb_destroy;
  return t;
}

static seqpar_status cb_split(void* user, int color, int key, seqpar_comm_callbacks* child,
                              void** child_user, int* child_rank, int* child_size) {
  mpi_user* u = user;
  MPI_Comm comm = MPI_COMM_NULL;
  if (MPI_Comm_split(u->comm, color, key, &comm) != MPI_SUCCESS)
    return fail(SEQPAR_COMM_ERROR, "MPI_Comm_split failed");
  mpi_user* c = new_user(comm);
  if (c == NULL) return fail(SEQPAR_OUT_OF_MEMORY, "split: no memory");
  *child = make_table(1);
  *child_user = c;
  MPI_Comm_rank(comm, child_rank);
  *child_size = c->size;
  return SEQPAR_OK;
}

/* ---- the check ---- */

static float next_value(unsigned long long* state) {
  *state = *state * 2862933555777941757ULL + 3037000493ULL;
  return (float)((double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void fill(float* t, size_t n, unsigned long long seed) {
  for (size_t i = 0; i < n; ++i) t[i] = next_value(&seed);
}

/* Row s, head h of a (1, S, H, D) tensor. */
#define ROW(t, s, h, heads) ((t) + ((size_t)(s) * (heads) + (size_t)(h)) * kHeadDim)

/* Causal attention in fp64, batch 1: out, dq (S, Hq, D), dk, dv (S, Hkv, D), lse (Hq, S). */
static void reference(long seq, const float* q, const float* k, const float* v, const float* dout,
                      double* out, double* lse, double* dq, double* dk, double* dv) {
  const double scale = 1.0 / sqrt((double)kHeadDim);
  double* p = malloc((size_t)seq * sizeof(double));
  for (int h = 0; h < kHeadsQ; ++h) {
    const int g = h / (kHeadsQ / kHeadsKv);
    for (long i = 0; i < seq; ++i) {
      const float* qi = ROW(q, i, h, kHeadsQ);
      const float* doi = ROW(dout, i, h, kHeadsQ);
      double top = -INFINITY, sum = 0.0, delta = 0.0;
      for (long j = 0; j <= i; ++j) {
        double s = 0.0;
        for (int d = 0; d < kHeadDim; ++d) s += (double)qi[d] * ROW(k, j, g, kHeadsKv)[d];
        p[j] = s * scale;
        top = p[j] > top ? p[j] : top;
      }
      for (long j = 0; j <= i; ++j) sum += exp(p[j] - top);
      lse[(size_t)h * (size_t)seq + (size_t)i] = top + log(sum);
      for (long j = 0; j <= i; ++j) p[j] = exp(p[j] - top) / sum;
      double* oi = ROW(out, i, h, kHeadsQ);
      for (int d = 0; d < kHeadDim; ++d) {
        for (long j = 0; j <= i; ++j) oi[d] += p[j] * ROW(v, j, g, kHeadsKv)[d];
        delta += oi[d] * doi[d];
      }
      for (long j = 0; j <= i; ++j) {
        double dp = 0.0;
        for (int d = 0; d < kHeadDim; ++d) dp += (double)doi[d] * ROW(v, j, g, kHeadsKv)[d];
        const double ds = p[j] * (dp - delta) * scale;
        for (int d = 0; d < kHeadDim; ++d) {
          ROW(dq, i, h, kHeadsQ)[d] += ds * ROW(k, j, g, kHeadsKv)[d];
          ROW(dk, j, g, kHeadsKv)[d] += ds * qi[d];
          ROW(dv, j, g, kHeadsKv)[d] += p[j] * doi[d];
        }
      }
    }
  }
  free(p);
}

static double relative_error(const float* x, const double* ref, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    diff += (x[i] - ref[i]) * (x[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return sqrt(diff / (norm > 0.0 ? norm : 1.0));
}

static int g_rank = 0;

#define CHECK(call)                                                                        \
  do {                                                                                     \
    seqpar_status status_ = (call);                                                        \
    if (status_ != SEQPAR_OK) {                                                            \
      fprintf(stderr, "rank %d: %s: %s: %s\n", g_rank, #call, seqpar_status_name(status_), \
              seqpar_last_error());                                                        \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                        \
    }                                                                                      \
  } while (0)

/* This rank's shard into a zeroed global tensor, summed over the ranks. */
static void gather(const seqpar_layout* layout, const float* shard, float* global, size_t n,
                   int heads) {
  memset(global, 0, n * sizeof(float));
  CHECK(seqpar_layout_unshard(layout, g_rank, shard, global, 1,
                              (size_t)heads * kHeadDim * sizeof(float)));
  MPI_Allreduce(MPI_IN_PLACE, global, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static seqpar_comm* callback_comm(int with_split, mpi_user** user_out) {
  MPI_Comm dup = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &dup);
  mpi_user* user = new_user(dup);
  const seqpar_comm_callbacks table = make_table(with_split);
  int ranks = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  seqpar_comm* comm = NULL;
  CHECK(seqpar_comm_from_callbacks(&table, user, g_rank, ranks, SEQPAR_DEVICE_HOST, &comm));
  *user_out = user;
  return comm;
}

static seqpar_plan_config config_for(int32_t scheme, long seq, int ranks_per_node) {
  seqpar_plan_config config;
  CHECK(seqpar_plan_config_init(&config));
  config.seq = seq;
  config.heads_q = kHeadsQ;
  config.heads_kv = kHeadsKv;
  config.head_dim = kHeadDim;
  config.mask = SEQPAR_MASK_CAUSAL;
  config.dtype = SEQPAR_DTYPE_F32;
  config.scheme = scheme;
  config.ranks_per_node = ranks_per_node;
  if (scheme == SEQPAR_SCHEME_HYBRID) config.ulysses_degree = 2;
  return config;
}

/* Forward + backward of one scheme through the callbacks; 1 when within tolerance. */
static int run_scheme(const char* name, int ranks_per_node, long seq, const float* q,
                      const float* k, const float* v, const float* dout, const double* ref_out,
                      const double* ref_lse, const double* ref_dq, const double* ref_dk,
                      const double* ref_dv) {
  mpi_user* user = NULL;
  seqpar_comm* comm = callback_comm(1, &user);
  int32_t scheme = 0;
  CHECK(seqpar_scheme_from_name(name, &scheme));
  const seqpar_plan_config config = config_for(scheme, seq, ranks_per_node);
  seqpar_plan* plan = NULL;
  CHECK(seqpar_plan_create(&config, comm, &plan));
  seqpar_layout* layout = NULL;
  CHECK(seqpar_plan_layout(plan, &layout));
  int64_t local = 0;
  CHECK(seqpar_plan_local_seq(plan, &local));
  const size_t nq = (size_t)seq * kHeadsQ * kHeadDim, nkv = (size_t)seq * kHeadsKv * kHeadDim;
  const size_t lq = (size_t)local * kHeadsQ * kHeadDim, lkv = (size_t)local * kHeadsKv * kHeadDim;
  const size_t row_q = kHeadsQ * kHeadDim * sizeof(float),
               row_kv = kHeadsKv * kHeadDim * sizeof(float);
  float* buf = malloc((5 * lq + 5 * lkv + (size_t)kHeadsQ * (size_t)local) * sizeof(float));
  float *sq = buf, *sdout = sq + lq, *sout = sdout + lq, *sdq = sout + lq, *sk = sdq + lq;
  float *sv = sk + lkv, *sdk = sv + lkv, *sdv = sdk + lkv, *slse = sdv + lkv;
  CHECK(seqpar_layout_shard(layout, g_rank, q, sq, 1, row_q));
  CHECK(seqpar_layout_shard(layout, g_rank, k, sk, 1, row_kv));
  CHECK(seqpar_layout_shard(layout, g_rank, v, sv, 1, row_kv));
  CHECK(seqpar_layout_shard(layout, g_rank, dout, sdout, 1, row_q));
  const long posted_before = user->posted;
  CHECK(seqpar_plan_forward(plan, sq, sk, sv, sout, slse));
  CHECK(seqpar_plan_backward(plan, sq, sk, sv, sout, slse, sdout, sdq, sdk, sdv));
  const long posted = user->posted - posted_before;

  float* global = malloc(nq * sizeof(float));
  double errors[6] = {0};
  gather(layout, sout, global, nq, kHeadsQ);
  errors[0] = relative_error(global, ref_out, nq);
  gather(layout, sdq, global, nq, kHeadsQ);
  errors[1] = relative_error(global, ref_dq, nq);
  gather(layout, sdk, global, nkv, kHeadsKv);
  errors[2] = relative_error(global, ref_dk, nkv);
  gather(layout, sdv, global, nkv, kHeadsKv);
  errors[3] = relative_error(global, ref_dv, nkv);
  int64_t* positions = malloc((size_t)local * sizeof(int64_t));
  CHECK(seqpar_layout_positions(layout, g_rank, positions, local));
  for (int h = 0; h < kHeadsQ; ++h)
    for (int64_t i = 0; i < local; ++i) {
      const double e = fabs(slse[(size_t)h * (size_t)local + (size_t)i] -
                            ref_lse[(size_t)h * (size_t)seq + (size_t)positions[i]]);
      errors[4] = e > errors[4] ? e : errors[4];
    }
  /* Hybrid's and tree-per-node's traffic goes to the split children's tables: count the root
   * table only where no child exists. */
  errors[5] = posted > 0 || scheme == SEQPAR_SCHEME_HYBRID || ranks_per_node > 0 ? 0.0 : 1.0;
  MPI_Allreduce(MPI_IN_PLACE, errors, 6, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  int passed = errors[5] == 0.0;
  for (int i = 0; i < 5; ++i) passed = passed && errors[i] < 1e-4;
  if (g_rank == 0)
    printf("%-9s rpn %d: out %.1e lse %.1e dq %.1e dk %.1e dv %.1e, %ld ops posted: %s\n", name,
           ranks_per_node, errors[0], errors[4], errors[1], errors[2], errors[3], posted,
           passed ? "ok" : "FAIL");
  free(positions);
  free(global);
  free(buf);
  seqpar_layout_destroy(layout);
  seqpar_plan_destroy(plan);
  seqpar_comm_destroy(comm);
  return passed;
}

/* A table without split: plans needing subgroups fail with SEQPAR_UNSUPPORTED on every rank. */
static int split_less_refused(const char* name, int ranks_per_node, long seq) {
  mpi_user* user = NULL;
  seqpar_comm* comm = callback_comm(0, &user);
  int32_t scheme = 0;
  CHECK(seqpar_scheme_from_name(name, &scheme));
  const seqpar_plan_config config = config_for(scheme, seq, ranks_per_node);
  seqpar_plan* plan = NULL;
  const seqpar_status status = seqpar_plan_create(&config, comm, &plan);
  int ok = status == SEQPAR_UNSUPPORTED && plan == NULL &&
           strstr(seqpar_last_error(), "seqpar_comm_callbacks.split is NULL") != NULL;
  if (!ok)
    fprintf(stderr, "rank %d: %s without split: %s: %s\n", g_rank, name, seqpar_status_name(status),
            seqpar_last_error());
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (g_rank == 0)
    printf("%-9s rpn %d without split: refused: %s\n", name, ranks_per_node, ok ? "ok" : "FAIL");
  seqpar_plan_destroy(plan);
  seqpar_comm_destroy(comm);
  return ok;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const long seq = (long)kTokensPerRank * ranks;
  const size_t nq = (size_t)seq * kHeadsQ * kHeadDim, nkv = (size_t)seq * kHeadsKv * kHeadDim;
  float* q = malloc(nq * sizeof(float));
  float* k = malloc(nkv * sizeof(float));
  float* v = malloc(nkv * sizeof(float));
  float* dout = malloc(nq * sizeof(float));
  fill(q, nq, 11);
  fill(k, nkv, 12);
  fill(v, nkv, 13);
  fill(dout, nq, 14);
  double* ref_out = calloc(nq, sizeof(double));
  double* ref_dq = calloc(nq, sizeof(double));
  double* ref_dk = calloc(nkv, sizeof(double));
  double* ref_dv = calloc(nkv, sizeof(double));
  double* ref_lse = calloc((size_t)kHeadsQ * (size_t)seq, sizeof(double));
  reference(seq, q, k, v, dout, ref_out, ref_lse, ref_dq, ref_dk, ref_dv);

  const char* schemes[] = {"ring", "striped", "zigzag", "ulysses", "lightseq", "tree", "hybrid"};
  int passed = 1;
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); ++i)
    passed &=
        run_scheme(schemes[i], 0, seq, q, k, v, dout, ref_out, ref_lse, ref_dq, ref_dk, ref_dv);
  /* The tree's two-level combine (node and cross communicators, both split off). */
  if (ranks > 2)
    passed &= run_scheme("tree", 2, seq, q, k, v, dout, ref_out, ref_lse, ref_dq, ref_dk, ref_dv);
  passed &= split_less_refused("hybrid", 0, seq);
  if (ranks > 2) passed &= split_less_refused("tree", 2, seq);

  if (g_rank == 0)
    printf("callback communicator over MPI, %d ranks: %s\n", ranks, passed ? "PASS" : "FAIL");
  free(q);
  free(k);
  free(v);
  free(dout);
  free(ref_out);
  free(ref_dq);
  free(ref_dk);
  free(ref_dv);
  free(ref_lse);
  MPI_Finalize();
  return passed ? 0 : 1;
}
