// The finite check of a step's inputs and gradients, on the host and on the device (see
// finite_check.hpp).
#include "runtime/finite_check.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <thread>

#ifdef SEQPAR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.hpp"
#include "core/device_buffer.hpp"
#include "runtime/cuda/finite_check_launch.hpp"
#endif

namespace seqpar {

Status non_finite_error(const char* what, DType dtype, size_t n, uint64_t count, uint64_t first,
                        const std::string& when) {
  return SEQPAR_FAIL(StatusCode::kInvalidArgument, what, " holds ", count,
                     " non-finite value(s) (NaN or Inf), the first at element ", first, " of ", n,
                     " (", dtype_name(dtype), ")", when,
                     ": bad input, or an overflow of the storage dtype (PlanConfig::check_finite "
                     "= false skips this check)");
}

Status require_finite(const void* data, DType dtype, size_t n, const char* what) {
  size_t bad = 0;
  size_t first = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(load_float(data, dtype, i))) {
      if (bad == 0) first = i;
      ++bad;
    }
  }
  return bad == 0 ? Status::ok() : non_finite_error(what, dtype, n, bad, first, "");
}

#ifdef SEQPAR_HAVE_CUDA

namespace cfc = cuda_finite_check;

struct DeviceFiniteCheck::Impl {
  cudaStream_t stream = nullptr;
  DType dtype = DType::kF32;
  std::array<CheckedTensor, cfc::kMaxChecked> tensors{};
  int checked = 0;
  // Device: [StepRecords | Report]; the host copies of the Report are pinned so that the copies
  // into them are asynchronous. Steps alternate between the two (see finite_check.hpp).
  static constexpr int kSlots = 2;
  DeviceBuffer device;
  PinnedHostBuffer host_copies;          // (kSlots) reports
  cfc::Report* host = nullptr;           // host_copies' reports
  std::array<CudaEvent, kSlots> copied;  // copied[i]: recorded after each copy into host[i]
  int next_slot = 0;                     // the host copy the next end_step writes
  int last_slot = -1;                    // the one the last end_step wrote (-1: none yet)
  uint64_t step = 0;
  DeviceFiniteCheck::StepKind kind = DeviceFiniteCheck::StepKind::kForward;
  Status verdict;  // sticky once it fails

  cfc::StepRecords* records() { return static_cast<cfc::StepRecords*>(device.data()); }
  cfc::Report* report() {
    return reinterpret_cast<cfc::Report*>(static_cast<char*>(device.data()) +
                                          sizeof(cfc::StepRecords));
  }
  ~Impl() {
    // The last copies into `host` may still be in flight.
    for (CudaEvent& event : copied) {
      if (event.get() != nullptr) (void)cudaEventSynchronize(event.get());
    }
  }
};

StatusOr<std::unique_ptr<DeviceFiniteCheck>> DeviceFiniteCheck::create(
    void* stream, DType dtype, std::span<const CheckedTensor> tensors) {
  SEQPAR_REQUIRE(tensors.size() <= static_cast<size_t>(cfc::kMaxChecked), StatusCode::kInternal,
                 "the device finite check holds ", cfc::kMaxChecked, " tensors, not ",
                 tensors.size());
  std::unique_ptr<DeviceFiniteCheck> check(new DeviceFiniteCheck());
  check->impl_ = std::make_unique<Impl>();
  Impl& m = *check->impl_;
  m.stream = static_cast<cudaStream_t>(stream);
  m.dtype = dtype;
  m.checked = static_cast<int>(tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) m.tensors[t] = tensors[t];
  SEQPAR_RETURN_IF_ERROR(m.device.allocate(sizeof(cfc::StepRecords) + sizeof(cfc::Report)));
  SEQPAR_RETURN_IF_ERROR(m.host_copies.reserve(Impl::kSlots * sizeof(cfc::Report)));
  m.host = reinterpret_cast<cfc::Report*>(m.host_copies.data());
  std::memset(m.host, 0, Impl::kSlots * sizeof(cfc::Report));  // clean until copies land
  for (CudaEvent& event : m.copied) SEQPAR_RETURN_IF_ERROR(event.create(false));
  // The report starts clean; stream-ordered before every step's latch.
  SEQPAR_CUDA_CHECK(cudaMemsetAsync(m.report(), 0, sizeof(cfc::Report), m.stream));
  return check;
}

DeviceFiniteCheck::~DeviceFiniteCheck() = default;

Status DeviceFiniteCheck::read_report(int slot) {
  Impl& m = *impl_;
  cfc::Report report;
  std::memcpy(&report, m.host + slot, sizeof(report));
  if (report.step == 0) return Status::ok();
  for (int t = 0; t < m.checked; ++t) {
    const unsigned long long count = report.records.count[t];
    if (count == 0) continue;
    const CheckedTensor& tensor = m.tensors[static_cast<size_t>(t)];
    const char* pass =
        report.pass == static_cast<uint64_t>(StepKind::kBackward) ? "backward" : "forward";
    m.verdict = non_finite_error(tensor.what, m.dtype, tensor.n, count, report.records.first[t],
                                 str_cat(", in this plan's step ", report.step, " (its ", pass,
                                         "), found on the device and reported after that step"));
    return m.verdict;
  }
  return SEQPAR_FAIL(StatusCode::kInternal, "the device finite check latched step ", report.step,
                     " with no tensor's count set");
}

Status DeviceFiniteCheck::poll() {
  Impl& m = *impl_;
  if (!m.verdict.is_ok()) return m.verdict;
  // Either finished copy will do: each holds the first failing step's report, latched on the
  // device, once there is one. An event's query covers its latest record, so a finished copy
  // has no other copy into it in flight.
  for (int slot = 0; slot < Impl::kSlots; ++slot) {
    const cudaError_t done = cudaEventQuery(m.copied[static_cast<size_t>(slot)].get());
    if (done == cudaErrorNotReady) continue;  // no news there yet; asked again next step
    SEQPAR_CUDA_CHECK(done);
    SEQPAR_RETURN_IF_ERROR(read_report(slot));
  }
  return Status::ok();
}

Status DeviceFiniteCheck::wait(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  if (!m.verdict.is_ok()) return m.verdict;
  if (m.last_slot < 0) return Status::ok();  // no step yet
  cudaEvent_t last = m.copied[static_cast<size_t>(m.last_slot)].get();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  cudaError_t done = cudaEventQuery(last);
  while (done == cudaErrorNotReady) {
    SEQPAR_REQUIRE(std::chrono::steady_clock::now() < deadline, StatusCode::kTimeout,
                   "the device did not finish step ", m.step, "'s finite check report within ",
                   timeout.count(), " ms (is its stream waiting on a failed peer?)");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    done = cudaEventQuery(last);
  }
  SEQPAR_CUDA_CHECK(done);
  SEQPAR_CUDA_CHECK(cudaEventSynchronize(last));  // finished: returns at once, and says so
  return read_report(m.last_slot);
}

Status DeviceFiniteCheck::begin_step(uint64_t step, StepKind kind) {
  Impl& m = *impl_;
  m.step = step;
  m.kind = kind;
  cfc::StepRecords* r = m.records();
  SEQPAR_CUDA_CHECK(cudaMemsetAsync(r->count, 0, sizeof(r->count), m.stream));
  SEQPAR_CUDA_CHECK(cudaMemsetAsync(r->first, 0xff, sizeof(r->first), m.stream));  // none
  return Status::ok();
}

Status DeviceFiniteCheck::count(int tensor, const void* data) {
  Impl& m = *impl_;
  SEQPAR_REQUIRE(tensor >= 0 && tensor < m.checked, StatusCode::kInternal, "finite check tensor ",
                 tensor, " of ", m.checked);
  cfc::StepRecords* r = m.records();
  const cfc::CountArgs args{data, m.dtype,
                            static_cast<int64_t>(m.tensors[static_cast<size_t>(tensor)].n),
                            &r->count[tensor], &r->first[tensor]};
  SEQPAR_CUDA_CHECK(cfc::launch_count_non_finite(args, m.stream));
  return Status::ok();
}

Status DeviceFiniteCheck::end_step() {
  Impl& m = *impl_;
  const cfc::LatchArgs latch{m.records(), m.report(), m.checked, m.step,
                             static_cast<unsigned long long>(m.kind)};
  SEQPAR_CUDA_CHECK(cfc::launch_latch_first_failure(latch, m.stream));
  const int slot = m.next_slot;
  SEQPAR_CUDA_CHECK(cudaMemcpyAsync(m.host + slot, m.report(), sizeof(cfc::Report),
                                    cudaMemcpyDeviceToHost, m.stream));
  SEQPAR_CUDA_CHECK(cudaEventRecord(m.copied[static_cast<size_t>(slot)].get(), m.stream));
  m.last_slot = slot;
  m.next_slot = (slot + 1) % Impl::kSlots;
  return Status::ok();
}

#else  // no CUDA toolkit

struct DeviceFiniteCheck::Impl {};

StatusOr<std::unique_ptr<DeviceFiniteCheck>> DeviceFiniteCheck::create(
    void*, DType, std::span<const CheckedTensor>) {
  return SEQPAR_FAIL(StatusCode::kUnsupported,
                     "the finite check of device tensors: this build has no CUDA toolkit");
}
DeviceFiniteCheck::~DeviceFiniteCheck() = default;
Status DeviceFiniteCheck::read_report(int) { return Status::ok(); }
Status DeviceFiniteCheck::poll() { return Status::ok(); }
Status DeviceFiniteCheck::wait(std::chrono::milliseconds) { return Status::ok(); }
Status DeviceFiniteCheck::begin_step(uint64_t, StepKind) { return Status::ok(); }
Status DeviceFiniteCheck::count(int, const void*) { return Status::ok(); }
Status DeviceFiniteCheck::end_step() { return Status::ok(); }

#endif

}  // namespace seqpar
