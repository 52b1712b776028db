// One training step through seqpar's C++ API under mpirun, checked against a naive reference.
//
//   mpirun -np 4 ./example_cpp_mpi_train_step
//
// Adopts MPI_COMM_WORLD, makes a zigzag plan, takes each rank's shards of global random
// q, k, v, dout (B, S, H, D) with the plan's layout, runs forward + backward, gathers out, dq,
// dk, dv back (each rank writes its rows of a zeroed global tensor; a sum over ranks fills it)
// and compares them with an fp64 causal attention computed here. Prints PASS or FAIL; exits
// non-zero on failure. Only <seqpar/...>, MPI and the standard library.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <seqpar/seqpar.hpp>
#include <seqpar/seqpar_mpi.hpp>
#include <tuple>
#include <vector>

namespace {

constexpr int64_t kBatch = 1, kHeadsQ = 4, kHeadsKv = 2, kHeadDim = 16, kTokensPerRank = 16;

std::vector<float> random_tensor(int64_t seq, int64_t heads, unsigned seed) {
  std::mt19937 engine(seed);  // the same values on every rank
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> t(static_cast<size_t>(kBatch * seq * heads * kHeadDim));
  for (float& x : t) x = uniform(engine);
  return t;
}

// Causal attention and its gradients in fp64 over the whole (B, S, H, D) problem.
struct Reference {
  std::vector<double> out, dq, dk, dv;
};

Reference reference(int64_t seq, const std::vector<float>& q, const std::vector<float>& k,
                    const std::vector<float>& v, const std::vector<float>& dout) {
  const auto at = [seq](int64_t b, int64_t s, int64_t h, int64_t d, int64_t heads) {
    return static_cast<size_t>(((b * seq + s) * heads + h) * kHeadDim + d);
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadDim));
  Reference r{std::vector<double>(q.size()), std::vector<double>(q.size()),
              std::vector<double>(k.size()), std::vector<double>(v.size())};
  std::vector<double> p(static_cast<size_t>(seq));
  for (int64_t b = 0; b < kBatch; ++b) {
    for (int64_t h = 0; h < kHeadsQ; ++h) {
      const int64_t g = h / (kHeadsQ / kHeadsKv);  // the query head's KV head
      for (int64_t i = 0; i < seq; ++i) {
        double max = -INFINITY, sum = 0.0, delta = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0.0;
          for (int64_t d = 0; d < kHeadDim; ++d)
            s += double{q[at(b, i, h, d, kHeadsQ)]} * k[at(b, j, g, d, kHeadsKv)];
          p[j] = s * scale;
          max = std::max(max, p[j]);
        }
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(p[j] - max);
        for (int64_t j = 0; j <= i; ++j) p[j] = std::exp(p[j] - max) / sum;
        for (int64_t d = 0; d < kHeadDim; ++d) {
          double o = 0.0;
          for (int64_t j = 0; j <= i; ++j) o += p[j] * v[at(b, j, g, d, kHeadsKv)];
          r.out[at(b, i, h, d, kHeadsQ)] = o;
          delta += o * dout[at(b, i, h, d, kHeadsQ)];
        }
        // dS = P * (dO . V - delta); dQ = scale dS K; dK += scale dS^T Q; dV += P^T dO.
        for (int64_t j = 0; j <= i; ++j) {
          double dp = 0.0;
          for (int64_t d = 0; d < kHeadDim; ++d)
            dp += double{dout[at(b, i, h, d, kHeadsQ)]} * v[at(b, j, g, d, kHeadsKv)];
          const double ds = p[j] * (dp - delta);
          for (int64_t d = 0; d < kHeadDim; ++d) {
            r.dq[at(b, i, h, d, kHeadsQ)] += scale * ds * k[at(b, j, g, d, kHeadsKv)];
            r.dk[at(b, j, g, d, kHeadsKv)] += scale * ds * q[at(b, i, h, d, kHeadsQ)];
            r.dv[at(b, j, g, d, kHeadsKv)] += p[j] * dout[at(b, i, h, d, kHeadsQ)];
          }
        }
      }
    }
  }
  return r;
}

// ||x - ref|| / ||ref||.
double relative_error(const std::vector<float>& x, const std::vector<double>& ref) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff += (x[i] - ref[i]) * (x[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / (norm > 0.0 ? norm : 1.0));
}

// Each rank's rows of a zeroed global tensor, summed over the ranks: the whole tensor. Every
// rank joins the sum even when its own unshard failed, so no rank is left waiting in it.
seqpar::StatusOr<std::vector<float>> gather(const seqpar::Layout& layout, int rank,
                                            const std::vector<float>& shard, int64_t heads) {
  std::vector<float> global(static_cast<size_t>(kBatch * layout.seq() * heads * kHeadDim), 0.0f);
  const seqpar::Status status =
      layout.unshard(shard.data(), rank, global.data(), kBatch,
                     seqpar::row_bytes(heads, kHeadDim, seqpar::DType::kF32));
  MPI_Allreduce(MPI_IN_PLACE, global.data(), static_cast<int>(global.size()), MPI_FLOAT, MPI_SUM,
                MPI_COMM_WORLD);
  if (!status.is_ok()) return status;
  return global;
}

seqpar::Status run(int rank, int ranks, bool& passed) {
  const int64_t seq = kTokensPerRank * ranks;
  const std::vector<float> q = random_tensor(seq, kHeadsQ, 1), k = random_tensor(seq, kHeadsKv, 2),
                           v = random_tensor(seq, kHeadsKv, 3),
                           dout = random_tensor(seq, kHeadsQ, 4);

  auto comm = seqpar::make_mpi_communicator(MPI_COMM_WORLD);
  if (!comm.is_ok()) return comm.status();
  seqpar::PlanConfig config;
  config.problem = {
      kBatch, seq, kHeadsQ, kHeadsKv, kHeadDim, seqpar::MaskKind::kCausal, seqpar::DType::kF32,
      0.0f};
  config.scheme = seqpar::SchemeKind::kZigzag;
  auto plan = seqpar::Plan::create(config, *comm);
  if (!plan.is_ok()) return plan.status();
  auto layout = plan->layout();
  if (!layout.is_ok()) return layout.status();

  // This rank's shards (B, S_local, H, D) of the global tensors, and its outputs.
  const int64_t local = plan->local_seq();
  const auto shard_of = [&](const std::vector<float>& global, int64_t heads,
                            std::vector<float>& shard) {
    shard.resize(static_cast<size_t>(kBatch * local * heads * kHeadDim));
    return layout->shard(global.data(), rank, shard.data(), kBatch,
                         seqpar::row_bytes(heads, kHeadDim, seqpar::DType::kF32));
  };
  std::vector<float> sq, sk, sv, sdout;
  for (auto [global, heads, shard] :
       {std::tuple{&q, kHeadsQ, &sq}, std::tuple{&k, kHeadsKv, &sk}, std::tuple{&v, kHeadsKv, &sv},
        std::tuple{&dout, kHeadsQ, &sdout}}) {
    const seqpar::Status status = shard_of(*global, heads, *shard);
    if (!status.is_ok()) return status;
  }
  std::vector<float> out(sq.size()), dq(sq.size()), dk(sk.size()), dv(sv.size());
  std::vector<float> lse(static_cast<size_t>(kBatch * kHeadsQ * local));

  seqpar::Status status = plan->forward({sq.data(), sk.data(), sv.data(), out.data(), lse.data()});
  if (!status.is_ok()) return status;
  status = plan->backward({sq.data(), sk.data(), sv.data(), out.data(), lse.data(), sdout.data(),
                           dq.data(), dk.data(), dv.data()});
  if (!status.is_ok()) return status;

  const Reference ref = reference(seq, q, k, v, dout);
  double errors[4] = {};
  const std::vector<float>* shards[4] = {&out, &dq, &dk, &dv};
  const std::vector<double>* refs[4] = {&ref.out, &ref.dq, &ref.dk, &ref.dv};
  const int64_t heads[4] = {kHeadsQ, kHeadsQ, kHeadsKv, kHeadsKv};
  for (int t = 0; t < 4; ++t) {
    auto global = gather(*layout, rank, *shards[t], heads[t]);
    if (!global.is_ok()) return global.status();
    errors[t] = relative_error(*global, *refs[t]);
  }
  const double tolerance = 1e-4;  // fp32 storage and accumulation
  passed = errors[0] < tolerance && errors[1] < tolerance && errors[2] < tolerance &&
           errors[3] < tolerance;
  if (rank == 0) {
    std::printf("seqpar %s, C++ API, zigzag on %d ranks: out %.2e dq %.2e dk %.2e dv %.2e: %s\n",
                seqpar::version(), ranks, errors[0], errors[1], errors[2], errors[3],
                passed ? "PASS" : "FAIL");
  }
  return seqpar::Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  bool passed = false;
  const seqpar::Status status = run(rank, ranks, passed);  // its communicator freed before Finalize
  if (!status.is_ok()) std::fprintf(stderr, "rank %d: %s\n", rank, status.to_string().c_str());
  MPI_Finalize();
  return status.is_ok() && passed ? 0 : 1;
}
