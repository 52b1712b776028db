// seqpar._C: seqpar plans over a torch.distributed process group, for seqpar/_plans.py.
//   Plan(group_name, scheme, batch, seq, heads_q, heads_kv, head_dim, dtype, causal, scale,
//        ulysses_degree, ranks_per_node)                       collective
//     .forward(q, k, v, out, lse, check_finite)               collective
//     .backward(q, k, v, out, lse, dout, dq, dk, dv, check_finite)   collective
//     .local_seq(), .workspace_bytes()
//     .serves(group_name): whether the plan runs on that name's current process group
//   layout_positions(scheme, ranks, rank, seq, heads_q, heads_kv, ulysses_degree,
//                    ranks_per_node) -> int64 tensor
//   choose_scheme(ranks, batch, seq, heads_q, heads_kv, head_dim, dtype, causal, backward,
//                 ranks_per_node) -> (scheme, ulysses_degree)   seqpar's cost model, local
// Tensors are CPU tensors of the dtype the Python side checked; their shapes and contiguity are
// checked here. Every call into seqpar runs with the GIL released (plans are collective: a rank
// blocked in one must not hold the GIL).
#include <torch/extension.h>

#include <map>
#include <memory>
#include <mutex>
#include <seqpar/seqpar.hpp>
#include <stdexcept>
#include <string>
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>

#include "process_group_backend.hpp"

namespace seqpar_torch {
namespace {

// A failed Status as the Python exception its kind calls for.
[[noreturn]] void raise(const seqpar::Status& status, const std::string& where) {
  const std::string message = "seqpar " + where + ": " + status.to_string();
  if (status.code() == seqpar::StatusCode::kInvalidArgument ||
      status.code() == seqpar::StatusCode::kMismatch)
    throw std::invalid_argument(message);  // ValueError
  throw std::runtime_error(message);       // RuntimeError
}

seqpar::SchemeKind scheme_named(const std::string& name) {
  int32_t scheme = 0;
  if (seqpar_scheme_from_name(name.c_str(), &scheme) != SEQPAR_OK)
    throw std::invalid_argument("seqpar: unknown scheme '" + name + "'");
  return static_cast<seqpar::SchemeKind>(scheme);
}

seqpar::DType dtype_named(const std::string& name) {
  if (name == "f32") return seqpar::DType::kF32;
  if (name == "bf16") return seqpar::DType::kBF16;
  if (name == "f16") return seqpar::DType::kF16;
  throw std::invalid_argument("seqpar: unknown dtype '" + name + "'");
}

// One seqpar communicator per process group, shared by its plans (their messages' tags count
// on it). A name c10d gives again to a new group (after destroy_process_group and a new init)
// gets a new communicator.
struct GroupCommunicator {
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::shared_ptr<seqpar::Communicator> comm;
};

GroupCommunicator communicator_for(const std::string& group_name) {
  static std::mutex mutex;
  static auto* communicators = new std::map<std::string, GroupCommunicator>;  // never freed
  c10::intrusive_ptr<c10d::ProcessGroup> group = c10d::resolve_process_group(group_name);
  std::lock_guard<std::mutex> lock(mutex);
  auto found = communicators->find(group_name);
  if (found != communicators->end() && found->second.group.get() == group.get())
    return found->second;
  auto backend = std::make_unique<ProcessGroupBackend>(group);
  const int rank = backend->rank();
  const int size = backend->size();
  auto made = seqpar::make_callback_communicator(std::move(backend), rank, size);
  if (!made.is_ok()) raise(made.status(), "communicator over process group " + group_name);
  GroupCommunicator entry{group, std::make_shared<seqpar::Communicator>(std::move(made).value())};
  (*communicators)[group_name] = entry;
  return entry;
}

// Whether every rank of `group` passes each check: flags[i] becomes the minimum over the ranks
// (a blocking all-reduce).
void agree(const c10::intrusive_ptr<c10d::ProcessGroup>& group, std::vector<int>& flags) {
  at::Tensor t = at::tensor(flags, at::kInt);
  std::vector<at::Tensor> tensors{t};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MIN;
  group->allreduce(tensors, options)->wait();
  for (size_t i = 0; i < flags.size(); ++i) flags[i] = t[static_cast<int64_t>(i)].item<int>();
}

bool all_finite(std::initializer_list<const at::Tensor*> tensors) {
  for (const at::Tensor* t : tensors)
    if (!at::isfinite(*t).all().item<bool>()) return false;
  return true;
}

seqpar::PlanConfig config_for(const std::string& scheme, int64_t batch, int64_t seq,
                              int64_t heads_q, int64_t heads_kv, int64_t head_dim,
                              const std::string& dtype, bool causal, double scale,
                              int ulysses_degree, int ranks_per_node) {
  seqpar::PlanConfig config;
  config.problem.batch = batch;
  config.problem.seq = seq;
  config.problem.heads_q = heads_q;
  config.problem.heads_kv = heads_kv;
  config.problem.head_dim = head_dim;
  config.problem.mask = causal ? seqpar::MaskKind::kCausal : seqpar::MaskKind::kFull;
  config.problem.dtype = dtype_named(dtype);
  config.problem.softmax_scale = static_cast<float>(scale);
  config.scheme = scheme_named(scheme);
  config.device = seqpar::Device::kHost;
  config.ulysses_degree = ulysses_degree;
  config.ranks_per_node = ranks_per_node;
  config.check_finite = false;  // TorchPlan checks, on every rank together (see there)
  return config;
}

// A plan on one rank, and the checks that keep the ranks in step: before a step the ranks agree
// (one small all-reduce) that every rank's tensors have the plan's shapes and, with
// check_finite, are finite, so a bad input fails the step on every rank instead of leaving the
// others waiting in it; after a backward they agree on the gradients being finite.
class TorchPlan {
 public:
  TorchPlan(const std::string& group_name, const std::string& scheme, int64_t batch, int64_t seq,
            int64_t heads_q, int64_t heads_kv, int64_t head_dim, const std::string& dtype,
            bool causal, double scale, int ulysses_degree, int ranks_per_node)
      : group_(communicator_for(group_name)),
        scheme_(scheme),
        batch_(batch),
        heads_q_(heads_q),
        heads_kv_(heads_kv),
        head_dim_(head_dim) {
    const seqpar::PlanConfig config =
        config_for(scheme, batch, seq, heads_q, heads_kv, head_dim, dtype, causal, scale,
                   ulysses_degree, ranks_per_node);
    seqpar::StatusOr<seqpar::Plan> made = seqpar::Status(seqpar::StatusCode::kInternal, "unset");
    {
      pybind11::gil_scoped_release release;
      made = seqpar::Plan::create(config, *group_.comm);  // collective
    }
    if (!made.is_ok()) raise(made.status(), "plan (" + scheme + ")");
    plan_ = std::make_unique<seqpar::Plan>(std::move(made).value());
  }

  // Whether this plan runs on `group_name`'s current process group.
  bool serves(const std::string& group_name) const {
    return c10d::is_process_group_registered(group_name) &&
           c10d::resolve_process_group(group_name).get() == group_.group.get();
  }

  void forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& out,
               at::Tensor& lse, bool check_finite) {
    const bool shapes = is_q(q) && is_kv(k) && is_kv(v) && is_q(out) && is_lse(lse);
    step_agreement("forward", shapes, !check_finite || !shapes || all_finite({&q, &k, &v}),
                   "q, k or v");
    seqpar::ForwardArgs args{q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(),
                             lse.data_ptr<float>()};
    run("forward", [&] { return plan_->forward(args); });
  }

  void backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout,
                at::Tensor& dq, at::Tensor& dk, at::Tensor& dv, bool check_finite) {
    const bool shapes = is_q(q) && is_kv(k) && is_kv(v) && is_q(out) && is_lse(lse) && is_q(dout) &&
                        is_q(dq) && is_kv(dk) && is_kv(dv);
    step_agreement("backward", shapes, !check_finite || !shapes || all_finite({&dout}),
                   "the output gradient");
    seqpar::BackwardArgs args{q.data_ptr(),   k.data_ptr(),          v.data_ptr(),
                              out.data_ptr(), lse.data_ptr<float>(), dout.data_ptr(),
                              dq.data_ptr(),  dk.data_ptr(),         dv.data_ptr()};
    run("backward", [&] { return plan_->backward(args); });
    if (check_finite) step_agreement("backward", true, all_finite({&dq, &dk, &dv}), "dq, dk or dv");
  }

  int64_t local_seq() const { return plan_->local_seq(); }
  int64_t workspace_bytes() const { return static_cast<int64_t>(plan_->workspace_bytes()); }

 private:
  bool sized(const at::Tensor& t, std::vector<int64_t> shape) const {
    return t.is_contiguous() && t.sizes().vec() == shape;
  }
  bool is_q(const at::Tensor& t) const {
    return sized(t, {batch_, plan_->local_seq(), heads_q_, head_dim_});
  }
  bool is_kv(const at::Tensor& t) const {
    return sized(t, {batch_, plan_->local_seq(), heads_kv_, head_dim_});
  }
  bool is_lse(const at::Tensor& t) const {
    return t.scalar_type() == at::kFloat && sized(t, {batch_, heads_q_, plan_->local_seq()});
  }

  // Every rank learns whether any rank's tensors are misshapen or non-finite, and all raise.
  void step_agreement(const char* step, bool shapes_ok, bool finite_ok, const char* what) {
    std::vector<int> flags{shapes_ok ? 1 : 0, finite_ok ? 1 : 0};
    {
      pybind11::gil_scoped_release release;
      agree(group_.group, flags);
    }
    const std::string at = "seqpar.torch.attention " + std::string(step) + " (" + scheme_ +
                           ", rank " + std::to_string(group_.comm->rank()) + "): ";
    if (flags[0] == 0) {
      throw std::invalid_argument(
          at + (shapes_ok ? "another rank's tensors do not have its plan's shapes"
                          : "this rank's tensors do not have the plan's shapes (its shard holds " +
                                std::to_string(plan_->local_seq()) +
                                " tokens: shard with the scheme's layout; pass seq_len for "
                                "uneven shards)"));
    }
    if (flags[1] == 0) {
      throw std::invalid_argument(at +
                                  (finite_ok
                                       ? "another rank's " + std::string(what) + " holds NaN or Inf"
                                       : std::string(what) + " holds NaN or Inf on this rank") +
                                  " (check_finite=False lets them through)");
    }
  }

  template <class Call>
  void run(const char* step, Call&& call) {
    seqpar::Status status;
    {
      pybind11::gil_scoped_release release;
      status = call();
    }
    if (!status.is_ok()) raise(status, step);
  }

  GroupCommunicator group_;
  std::string scheme_;
  int64_t batch_, heads_q_, heads_kv_, head_dim_;
  std::unique_ptr<seqpar::Plan> plan_;
};

at::Tensor layout_positions(const std::string& scheme, int ranks, int rank, int64_t seq,
                            int64_t heads_q, int64_t heads_kv, int ulysses_degree,
                            int ranks_per_node) {
  const seqpar::PlanConfig config = config_for(scheme, 1, seq, heads_q, heads_kv, 1, "f32", true,
                                               0.0, ulysses_degree, ranks_per_node);
  auto layout = seqpar::Layout::for_config(config, ranks);
  if (!layout.is_ok()) raise(layout.status(), "layout (" + scheme + ")");
  if (rank < 0 || rank >= ranks)
    throw std::invalid_argument("seqpar: rank " + std::to_string(rank) + " outside [0, " +
                                std::to_string(ranks) + ")");
  auto positions = layout->local_positions(rank);
  if (!positions.is_ok()) raise(positions.status(), "layout positions");
  at::Tensor out = at::empty({static_cast<int64_t>(positions->size())}, at::kLong);
  std::copy(positions->begin(), positions->end(), out.data_ptr<int64_t>());
  return out;
}

// seqpar's cost model for a host problem on `ranks` ranks: (scheme name, hybrid's U or 0).
std::pair<std::string, int> choose_scheme(int ranks, int64_t batch, int64_t seq, int64_t heads_q,
                                          int64_t heads_kv, int64_t head_dim,
                                          const std::string& dtype, bool causal, bool backward,
                                          int ranks_per_node) {
  seqpar::PlanConfig config = config_for("zigzag", batch, seq, heads_q, heads_kv, head_dim, dtype,
                                         causal, 0.0, 0, ranks_per_node);
  config.backward = backward;
  seqpar::Status status;
  {
    pybind11::gil_scoped_release release;  // may measure the CPU kernel (about a second)
    status = seqpar::choose_scheme(config, ranks);
  }
  if (!status.is_ok()) raise(status, "choose_scheme");
  const char* names[] = {"ring", "striped", "zigzag", "lightseq", "ulysses", "hybrid", "tree"};
  const auto index = static_cast<size_t>(config.scheme);
  if (index >= std::size(names)) throw std::runtime_error("seqpar choose_scheme: unknown scheme");
  return {names[index], config.ulysses_degree};
}

}  // namespace
}  // namespace seqpar_torch

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using seqpar_torch::TorchPlan;
  m.doc() = "seqpar plans over a torch.distributed process group (use seqpar.torch)";
  pybind11::class_<TorchPlan>(m, "Plan")
      .def(pybind11::init<const std::string&, const std::string&, int64_t, int64_t, int64_t,
                          int64_t, int64_t, const std::string&, bool, double, int, int>())
      .def("serves", &TorchPlan::serves)
      .def("forward", &TorchPlan::forward)
      .def("backward", &TorchPlan::backward)
      .def("local_seq", &TorchPlan::local_seq)
      .def("workspace_bytes", &TorchPlan::workspace_bytes);
  m.def("layout_positions", &seqpar_torch::layout_positions);
  m.def("choose_scheme", &seqpar_torch::choose_scheme);
  m.def("version", [] { return std::string(seqpar_version_string()); });
}
