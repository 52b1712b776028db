/* One training step through seqpar's C ABI under mpirun, checked against a naive reference.
 *
 *   mpirun -np 4 ./example_c_mpi_train_step [scheme]     (scheme: zigzag by default)
 *
 * Every rank builds the same global random q, k, v, dout (B, S, H, D), takes its shards with the
 * plan's layout, runs forward + backward, and the shards of out, dq, dk, dv are gathered back
 * (each rank writes its rows of a zeroed global tensor; a sum over ranks fills it) and compared
 * with an fp64 causal attention computed here. Prints PASS or FAIL; exits non-zero on failure.
 * Only <seqpar/seqpar.h>, MPI and the C standard library. */
#include <math.h>
#include <mpi.h>
#include <seqpar/seqpar.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kBatch = 1, kHeadsQ = 4, kHeadsKv = 2, kHeadDim = 16, kTokensPerRank = 16 };

/* A fixed pseudo-random sequence in [-1, 1), the same on every rank. */
static float next_value(unsigned long long* state) {
  *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)((double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static float* random_tensor(size_t n, unsigned long long seed) {
  float* t = malloc(n * sizeof(float));
  for (size_t i = 0; t && i < n; ++i) t[i] = next_value(&seed);
  return t;
}

/* Element (b, s, h, d) of a (B, S, H, D) tensor. */
static size_t at(long b, long s, long h, long d, long seq, long heads) {
  return (size_t)(((b * seq + s) * heads + h) * kHeadDim + d);
}

/* Causal attention and its gradients in fp64, the whole problem: out, dq (B, S, Hq, D),
 * dk, dv (B, S, Hkv, D), lse (B, Hq, S). */
static void reference(long seq, const float* q, const float* k, const float* v, const float* dout,
                      double* out, double* lse, double* dq, double* dk, double* dv) {
  const double scale = 1.0 / sqrt((double)kHeadDim);
  double* p = malloc((size_t)seq * sizeof(double));
  for (long b = 0; b < kBatch; ++b) {
    for (long h = 0; h < kHeadsQ; ++h) {
      const long g = h / (kHeadsQ / kHeadsKv); /* the query head's KV head */
      for (long i = 0; i < seq; ++i) {
        double max = -INFINITY, sum = 0.0, delta = 0.0;
        for (long j = 0; j <= i; ++j) {
          double s = 0.0;
          for (long d = 0; d < kHeadDim; ++d)
            s += (double)q[at(b, i, h, d, seq, kHeadsQ)] * k[at(b, j, g, d, seq, kHeadsKv)];
          p[j] = s * scale;
          if (p[j] > max) max = p[j];
        }
        for (long j = 0; j <= i; ++j) sum += exp(p[j] - max);
        lse[(b * kHeadsQ + h) * seq + i] = max + log(sum);
        for (long j = 0; j <= i; ++j) p[j] = exp(p[j] - max) / sum;
        for (long d = 0; d < kHeadDim; ++d) {
          double o = 0.0;
          for (long j = 0; j <= i; ++j) o += p[j] * v[at(b, j, g, d, seq, kHeadsKv)];
          out[at(b, i, h, d, seq, kHeadsQ)] = o;
          delta += o * dout[at(b, i, h, d, seq, kHeadsQ)];
        }
        /* dS = P * (dO . V - delta); dQ = scale dS K; dK += scale dS^T Q; dV += P^T dO. */
        for (long j = 0; j <= i; ++j) {
          double dp = 0.0;
          for (long d = 0; d < kHeadDim; ++d)
            dp += (double)dout[at(b, i, h, d, seq, kHeadsQ)] * v[at(b, j, g, d, seq, kHeadsKv)];
          const double ds = p[j] * (dp - delta);
          for (long d = 0; d < kHeadDim; ++d) {
            dq[at(b, i, h, d, seq, kHeadsQ)] += scale * ds * k[at(b, j, g, d, seq, kHeadsKv)];
            dk[at(b, j, g, d, seq, kHeadsKv)] += scale * ds * q[at(b, i, h, d, seq, kHeadsQ)];
            dv[at(b, j, g, d, seq, kHeadsKv)] += p[j] * dout[at(b, i, h, d, seq, kHeadsQ)];
          }
        }
      }
    }
  }
  free(p);
}

/* ||x - ref|| / ||ref||. */
static double relative_error(const float* x, const double* ref, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    diff += (x[i] - ref[i]) * (x[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return sqrt(diff / (norm > 0.0 ? norm : 1.0));
}

#define CHECK(call)                                                                             \
  do {                                                                                          \
    seqpar_status status_ = (call);                                                             \
    if (status_ != SEQPAR_OK) {                                                                 \
      fprintf(stderr, "rank %d: %s failed: %s: %s\n", rank, #call, seqpar_status_name(status_), \
              seqpar_last_error());                                                             \
      MPI_Abort(MPI_COMM_WORLD, 1);                                                             \
    }                                                                                           \
  } while (0)

/* Writes this rank's shard into a zeroed global tensor and sums it over the ranks: every rank
 * then holds the whole tensor (each row comes from exactly one rank). */
static void gather(const seqpar_layout* layout, int rank, const float* shard, float* global,
                   size_t global_count, long heads) {
  memset(global, 0, global_count * sizeof(float));
  CHECK(seqpar_layout_unshard(layout, rank, shard, global, kBatch,
                              (size_t)(heads * kHeadDim) * sizeof(float)));
  MPI_Allreduce(MPI_IN_PLACE, global, (int)global_count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const char* scheme_name = argc > 1 ? argv[1] : "zigzag";

  const long seq = (long)kTokensPerRank * ranks;
  const size_t nq = (size_t)(kBatch * seq * kHeadsQ * kHeadDim);
  const size_t nkv = (size_t)(kBatch * seq * kHeadsKv * kHeadDim);
  float* q = random_tensor(nq, 1);
  float* k = random_tensor(nkv, 2);
  float* v = random_tensor(nkv, 3);
  float* dout = random_tensor(nq, 4);

  seqpar_comm* comm = NULL;
  CHECK(seqpar_comm_from_mpi_fortran(MPI_Comm_c2f(MPI_COMM_WORLD), &comm));
  seqpar_plan_config config;
  CHECK(seqpar_plan_config_init(&config));
  config.batch = kBatch;
  config.seq = seq;
  config.heads_q = kHeadsQ;
  config.heads_kv = kHeadsKv;
  config.head_dim = kHeadDim;
  config.mask = SEQPAR_MASK_CAUSAL;
  config.dtype = SEQPAR_DTYPE_F32;
  CHECK(seqpar_scheme_from_name(scheme_name, &config.scheme));
  seqpar_plan* plan = NULL;
  CHECK(seqpar_plan_create(&config, comm, &plan));
  seqpar_layout* layout = NULL;
  CHECK(seqpar_plan_layout(plan, &layout));

  /* This rank's shards: (B, S_local, H, D), lse (B, Hq, S_local). */
  int64_t local = 0;
  CHECK(seqpar_layout_local_seq(layout, rank, &local));
  const size_t lq = (size_t)(kBatch * local * kHeadsQ * kHeadDim);
  const size_t lkv = (size_t)(kBatch * local * kHeadsKv * kHeadDim);
  const size_t row_q = (size_t)(kHeadsQ * kHeadDim) * sizeof(float);
  const size_t row_kv = (size_t)(kHeadsKv * kHeadDim) * sizeof(float);
  float* sq = malloc(lq * sizeof(float));
  float* sk = malloc(lkv * sizeof(float));
  float* sv = malloc(lkv * sizeof(float));
  float* sdout = malloc(lq * sizeof(float));
  float* sout = malloc(lq * sizeof(float));
  float* slse = malloc((size_t)(kBatch * kHeadsQ * local) * sizeof(float));
  float* sdq = malloc(lq * sizeof(float));
  float* sdk = malloc(lkv * sizeof(float));
  float* sdv = malloc(lkv * sizeof(float));
  CHECK(seqpar_layout_shard(layout, rank, q, sq, kBatch, row_q));
  CHECK(seqpar_layout_shard(layout, rank, k, sk, kBatch, row_kv));
  CHECK(seqpar_layout_shard(layout, rank, v, sv, kBatch, row_kv));
  CHECK(seqpar_layout_shard(layout, rank, dout, sdout, kBatch, row_q));

  CHECK(seqpar_plan_forward(plan, sq, sk, sv, sout, slse));
  CHECK(seqpar_plan_backward(plan, sq, sk, sv, sout, slse, sdout, sdq, sdk, sdv));

  double* ref_out = calloc(nq, sizeof(double));
  double* ref_lse = calloc((size_t)(kBatch * kHeadsQ * seq), sizeof(double));
  double* ref_dq = calloc(nq, sizeof(double));
  double* ref_dk = calloc(nkv, sizeof(double));
  double* ref_dv = calloc(nkv, sizeof(double));
  reference(seq, q, k, v, dout, ref_out, ref_lse, ref_dq, ref_dk, ref_dv);

  float* global_q = malloc(nq * sizeof(float));
  float* global_kv = malloc(nkv * sizeof(float));
  double errors[5];
  gather(layout, rank, sout, global_q, nq, kHeadsQ);
  errors[0] = relative_error(global_q, ref_out, nq);
  gather(layout, rank, sdq, global_q, nq, kHeadsQ);
  errors[1] = relative_error(global_q, ref_dq, nq);
  gather(layout, rank, sdk, global_kv, nkv, kHeadsKv);
  errors[2] = relative_error(global_kv, ref_dk, nkv);
  gather(layout, rank, sdv, global_kv, nkv, kHeadsKv);
  errors[3] = relative_error(global_kv, ref_dv, nkv);
  /* lse stays per rank: its row i is global position positions[i]. */
  int64_t* positions = malloc((size_t)local * sizeof(int64_t));
  CHECK(seqpar_layout_positions(layout, rank, positions, local));
  errors[4] = 0.0;
  for (long b = 0; b < kBatch; ++b)
    for (long h = 0; h < kHeadsQ; ++h)
      for (long i = 0; i < local; ++i) {
        const double want = ref_lse[(b * kHeadsQ + h) * seq + positions[i]];
        const double got = slse[(b * kHeadsQ + h) * local + i];
        if (fabs(got - want) > errors[4]) errors[4] = fabs(got - want);
      }
  MPI_Allreduce(MPI_IN_PLACE, errors, 5, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);

  const double tolerance = 1e-4; /* fp32 storage, fp32 accumulation */
  int passed = 1;
  for (int i = 0; i < 5; ++i) passed = passed && errors[i] < tolerance;
  if (rank == 0) {
    printf("seqpar %s, C ABI, %s on %d ranks: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e: %s\n",
           seqpar_version_string(), scheme_name, ranks, errors[0], errors[4], errors[1], errors[2],
           errors[3], passed ? "PASS" : "FAIL");
  }

  free(positions);
  free(global_q);
  free(global_kv);
  free(ref_out);
  free(ref_lse);
  free(ref_dq);
  free(ref_dk);
  free(ref_dv);
  free(sq);
  free(sk);
  free(sv);
  free(sdout);
  free(sout);
  free(slse);
  free(sdq);
  free(sdk);
  free(sdv);
  free(q);
  free(k);
  free(v);
  free(dout);
  seqpar_layout_destroy(layout);
  seqpar_plan_destroy(plan);
  seqpar_comm_destroy(comm);
  MPI_Finalize();
  return passed ? 0 : 1;
}
