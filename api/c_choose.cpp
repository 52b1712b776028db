// The C ABI's scheme choice: seqpar's cost model (model/) on a topology built from the config,
// as seqpar-run --scheme auto does for its own runs.
#include "api/c_api_support.hpp"
#include "model/calibration.hpp"
#include "model/scheme_choice.hpp"
#include "model/topology.hpp"
#include "runtime/scheme_kind.hpp"

namespace seqpar::c_api {
namespace {

// `ranks` ranks, `ranks_per_node` (0: all) consecutive ones per node. Host plans: CPU ranks with
// one host's links (and 100 Gb/s Ethernet between hosts); device plans: the documented H100
// node (NVLink inside, 400 Gb/s InfiniBand between nodes).
StatusOr<Topology> topology_for(const PlanConfig& config, int ranks) {
  const int per_node = config.ranks_per_node > 0 ? config.ranks_per_node : ranks;
  if (per_node > ranks || ranks % per_node != 0) {
    return Status(StatusCode::kInvalidArgument,
                  str_cat("seqpar_plan_config_choose_scheme: ranks_per_node = ", per_node,
                          " does not divide the ", ranks, " ranks"));
  }
  Topology t = default_topology();
  if (config.device == Device::kHost) {
    t.device_name = "cpu";
    t.device_memory_bytes = 0;
    t.intra = default_link(LinkKind::kHost);
    t.inter = default_link(LinkKind::kEth100);
  }
  t.nodes = ranks / per_node;
  t.ranks_per_node = per_node;
  t.source = "seqpar_plan_config_choose_scheme";
  SEQPAR_RETURN_IF_ERROR(validate_topology(t));
  return t;
}

}  // namespace
}  // namespace seqpar::c_api

extern "C" {

seqpar_status seqpar_plan_config_choose_scheme(seqpar_plan_config* config, int ranks) {
  constexpr const char* kFunction = "seqpar_plan_config_choose_scheme";
  return seqpar::c_api::c_call(kFunction, [&]() -> seqpar::Status {
    using namespace seqpar;
    SEQPAR_ASSIGN_OR_RETURN(PlanConfig plan_config, c_api::plan_config_from_c(config, kFunction));
    if (ranks < 1) {
      return Status(StatusCode::kInvalidArgument,
                    str_cat(kFunction, ": ranks = ", ranks, " (need >= 1)"));
    }
    ModelInputs inputs;
    SEQPAR_ASSIGN_OR_RETURN(inputs.topology, c_api::topology_for(plan_config, ranks));
    if (plan_config.device == Device::kHost) {
      CalibrationOptions calibration;
      calibration.head_dim = plan_config.problem.head_dim;
      calibration.dtype = plan_config.problem.dtype;
      SEQPAR_ASSIGN_OR_RETURN(inputs.rate, load_or_calibrate(calibration));
    } else {
      inputs.rate = default_h100_rate(plan_config.problem.head_dim);
    }
    inputs.problem = plan_config.problem;
    inputs.backward = plan_config.backward;
    inputs.phase = Phase::kTrain;
    SEQPAR_ASSIGN_OR_RETURN(const SchemeChoice choice, choose_scheme(inputs));
    apply_choice(choice.best(), plan_config);
    const int32_t scheme = c_api::scheme_to_c(plan_config.scheme);
    if (scheme < 0) {
      return Status(StatusCode::kInternal,
                    str_cat(kFunction, ": the model chose ", scheme_name(plan_config.scheme),
                            ", which the C ABI does not name"));
    }
    config->scheme = scheme;
    config->ulysses_degree = plan_config.ulysses_degree;
    return Status::ok();
  });
}

}  // extern "C"
