// Shared Communicator checks (see comm_checks.hpp).
#include "comm_checks.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "comm_buffers.hpp"

namespace seqpar::testing {
namespace {

// Collects data errors and reports the first one (with a count) at the end of a check.
class Expectations {
 public:
  explicit Expectations(const Communicator& comm) : comm_(comm) {}

  template <class... Args>
  void expect(bool ok, const Args&... args) {
    if (ok) return;
    if (failures_ == 0) first_ = str_cat(args...);
    ++failures_;
  }

  Status status() const {
    if (failures_ == 0) return Status::ok();
    return Status(StatusCode::kInternal,
                  str_cat(comm_.backend_name(), " rank ", comm_.rank(), " of ", comm_.size(), ": ",
                          failures_, " wrong values; first: ", first_));
  }

 private:
  const Communicator& comm_;
  int failures_ = 0;
  std::string first_;
};

// Byte i of the message from `src` to `dst`.
uint8_t pattern(int src, int dst, size_t i) {
  return static_cast<uint8_t>(src * 31 + dst * 7 + static_cast<int>(i % 251) * 13 + 1);
}

void fill_pattern(std::vector<uint8_t>& buffer, size_t offset, size_t bytes, int src, int dst) {
  for (size_t i = 0; i < bytes; ++i) buffer[offset + i] = pattern(src, dst, i);
}

void expect_pattern(Expectations& e, const std::vector<uint8_t>& buffer, size_t offset,
                    size_t bytes, int src, int dst, const char* what) {
  for (size_t i = 0; i < bytes; ++i) {
    e.expect(buffer[offset + i] == pattern(src, dst, i), what, ": byte ", i, " from rank ", src,
             " is ", int{buffer[offset + i]}, ", expected ", int{pattern(src, dst, i)});
  }
}

// Element i of rank r's reduction input: small integers, exact in every dtype.
double input_value(int rank, size_t i) {
  return static_cast<double>((rank * 7 + static_cast<int>(i % 13) * 3) % 11) - 5.0;
}

void store_value(void* data, DType dtype, size_t i, double value) {
  switch (dtype) {
    case DType::kF64:
      static_cast<double*>(data)[i] = value;
      break;
    case DType::kI32:
      static_cast<int32_t*>(data)[i] = static_cast<int32_t>(value);
      break;
    case DType::kI64:
      static_cast<int64_t*>(data)[i] = static_cast<int64_t>(value);
      break;
    default:
      store_float(data, dtype, i, static_cast<float>(value));
      break;
  }
}

double load_value(const void* data, DType dtype, size_t i) {
  switch (dtype) {
    case DType::kF64:
      return static_cast<const double*>(data)[i];
    case DType::kI32:
      return static_cast<const int32_t*>(data)[i];
    case DType::kI64:
      return static_cast<double>(static_cast<const int64_t*>(data)[i]);
    default:
      return load_float(data, dtype, i);
  }
}

double expected_reduction(int ranks, size_t i, ReduceOp op) {
  double acc = input_value(0, i);
  for (int r = 1; r < ranks; ++r) {
    acc = op == ReduceOp::kSum ? acc + input_value(r, i) : std::max(acc, input_value(r, i));
  }
  return acc;
}

struct ReductionCase {
  DType dtype;
  ReduceOp op;
};
constexpr ReductionCase kReductionCases[] = {
    {DType::kF32, ReduceOp::kSum},  {DType::kF32, ReduceOp::kMax}, {DType::kF64, ReduceOp::kSum},
    {DType::kF64, ReduceOp::kMax},  {DType::kI64, ReduceOp::kSum}, {DType::kI64, ReduceOp::kMax},
    {DType::kBF16, ReduceOp::kSum}, {DType::kI32, ReduceOp::kMax}};

const char* op_name(ReduceOp op) { return op == ReduceOp::kSum ? "sum" : "max"; }

}  // namespace

Status check_exchange_ring(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const int next = (r + 1) % p;
  const int prev = (r + p - 1) % p;
  // Sizes differ per sender so a mismatched match would show.
  auto forward_bytes = [](int src) { return static_cast<size_t>(100 + 17 * src); };
  auto backward_bytes = [](int src) { return static_cast<size_t>(50 + 5 * src); };
  std::vector<uint8_t> send_fwd(forward_bytes(r)), send_bwd(backward_bytes(r));
  std::vector<uint8_t> recv_fwd(forward_bytes(prev)), recv_bwd(backward_bytes(next));
  fill_pattern(send_fwd, 0, send_fwd.size(), r, next);
  fill_pattern(send_bwd, 0, send_bwd.size(), r, prev + 1000);
  CommBuffers mem(comm);
  const P2POp ops[] = {P2POp::send(next, mem.place(send_fwd), send_fwd.size()),
                       P2POp::recv(prev, mem.place(recv_fwd), recv_fwd.size()),
                       P2POp::send(prev, mem.place(send_bwd), send_bwd.size()),
                       P2POp::recv(next, mem.place(recv_bwd), recv_bwd.size())};
  SEQPAR_RETURN_IF_ERROR(mem.status());
  SEQPAR_RETURN_IF_ERROR(comm.exchange(ops));
  SEQPAR_RETURN_IF_ERROR(mem.fetch());
  Expectations e(comm);
  expect_pattern(e, recv_fwd, 0, recv_fwd.size(), prev, r, "forward shift");
  expect_pattern(e, recv_bwd, 0, recv_bwd.size(), next, r + 1000, "backward shift");
  return e.status();
}

Status check_all_to_all_equal(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const size_t piece = 24;
  std::vector<uint8_t> send(piece * p), recv(piece * p, 0);
  for (int d = 0; d < p; ++d) fill_pattern(send, piece * d, piece, r, d);
  CommBuffers mem(comm);
  const uint8_t* send_at = mem.place(send);
  uint8_t* recv_at = mem.place(recv);
  SEQPAR_RETURN_IF_ERROR(mem.status());
  SEQPAR_RETURN_IF_ERROR(comm.all_to_all(send_at, recv_at, piece));
  SEQPAR_RETURN_IF_ERROR(mem.fetch());
  Expectations e(comm);
  for (int s = 0; s < p; ++s) expect_pattern(e, recv, piece * s, piece, s, r, "all_to_all");
  return e.status();
}

Status check_all_to_all_uneven(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  auto piece_bytes = [](int src, int dst) {
    return static_cast<size_t>(((src + 2 * dst) % 3) * 5);
  };
  std::vector<size_t> send_bytes(p), send_offsets(p), recv_bytes(p), recv_offsets(p);
  size_t send_total = 0, recv_total = 0;
  for (int q = 0; q < p; ++q) {  // pieces packed in reverse rank order with 3-byte gaps
    const int d = p - 1 - q;
    send_offsets[d] = send_total;
    send_bytes[d] = piece_bytes(r, d);
    send_total += send_bytes[d] + 3;
    recv_offsets[d] = recv_total;
    recv_bytes[d] = piece_bytes(d, r);
    recv_total += recv_bytes[d] + 3;
  }
  std::vector<uint8_t> send(send_total), recv(recv_total, 0);
  for (int d = 0; d < p; ++d) fill_pattern(send, send_offsets[d], send_bytes[d], r, d);
  CommBuffers mem(comm);
  const uint8_t* send_at = mem.place(send);
  uint8_t* recv_at = mem.place(recv);
  SEQPAR_RETURN_IF_ERROR(mem.status());
  SEQPAR_RETURN_IF_ERROR(
      comm.all_to_all_v(send_at, send_bytes, send_offsets, recv_at, recv_bytes, recv_offsets));
  SEQPAR_RETURN_IF_ERROR(mem.fetch());
  Expectations e(comm);
  for (int s = 0; s < p; ++s)
    expect_pattern(e, recv, recv_offsets[s], recv_bytes[s], s, r, "all_to_all_v");
  for (int s = 0; s < p; ++s)
    e.expect(recv[recv_offsets[s] + recv_bytes[s]] == 0,
             "all_to_all_v wrote into the gap after rank ", s);
  return e.status();
}

Status check_all_gather(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const size_t slice = 40;
  std::vector<uint8_t> send(slice), recv(slice * p, 0);
  fill_pattern(send, 0, slice, r, 0);
  // In place: the own slice of recv is the send buffer.
  std::vector<uint8_t> in_place(slice * p, 0);
  fill_pattern(in_place, slice * r, slice, r, 1);
  CommBuffers mem(comm);
  const uint8_t* send_at = mem.place(send);
  uint8_t* recv_at = mem.place(recv);
  uint8_t* in_place_at = mem.place(in_place);
  SEQPAR_RETURN_IF_ERROR(mem.status());
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(send_at, recv_at, slice));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(in_place_at + slice * r, in_place_at, slice));
  SEQPAR_RETURN_IF_ERROR(mem.fetch());
  Expectations e(comm);
  for (int s = 0; s < p; ++s) expect_pattern(e, recv, slice * s, slice, s, 0, "all_gather");
  for (int s = 0; s < p; ++s)
    expect_pattern(e, in_place, slice * s, slice, s, 1, "all_gather in place");
  return e.status();
}

Status check_reduce_scatter(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const size_t count = 37;
  Expectations e(comm);
  for (const ReductionCase& c : kReductionCases) {
    const size_t element = dtype_size(c.dtype);
    std::vector<uint8_t> send(count * p * element), recv(count * element, 0);
    for (size_t i = 0; i < count * p; ++i) store_value(send.data(), c.dtype, i, input_value(r, i));
    CommBuffers mem(comm);
    const uint8_t* send_at = mem.place(send);
    uint8_t* recv_at = mem.place(recv);
    SEQPAR_RETURN_IF_ERROR(mem.status());
    SEQPAR_RETURN_IF_ERROR(comm.reduce_scatter(send_at, recv_at, count, c.dtype, c.op));
    SEQPAR_RETURN_IF_ERROR(mem.fetch());
    for (size_t i = 0; i < count; ++i) {
      const double want = expected_reduction(p, r * count + i, c.op);
      const double got = load_value(recv.data(), c.dtype, i);
      e.expect(got == want, "reduce_scatter ", dtype_name(c.dtype), " ", op_name(c.op), " [", i,
               "] = ", got, ", expected ", want);
    }
  }
  return e.status();
}

Status check_all_reduce(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const size_t count = 53;  // not a multiple of the rank count
  Expectations e(comm);
  for (const ReductionCase& c : kReductionCases) {
    for (bool in_place : {false, true}) {
      const size_t element = dtype_size(c.dtype);
      std::vector<uint8_t> send(count * element), recv(count * element, 0);
      for (size_t i = 0; i < count; ++i) store_value(send.data(), c.dtype, i, input_value(r, i));
      CommBuffers mem(comm);
      uint8_t* send_at = mem.place(send);
      uint8_t* recv_at = mem.place(recv);
      SEQPAR_RETURN_IF_ERROR(mem.status());
      SEQPAR_RETURN_IF_ERROR(
          comm.all_reduce(send_at, in_place ? send_at : recv_at, count, c.dtype, c.op));
      SEQPAR_RETURN_IF_ERROR(mem.fetch());
      const void* out = in_place ? send.data() : recv.data();
      for (size_t i = 0; i < count; ++i) {
        const double want = expected_reduction(p, i, c.op);
        const double got = load_value(out, c.dtype, i);
        e.expect(got == want, "all_reduce ", in_place ? "in place " : "", dtype_name(c.dtype), " ",
                 op_name(c.op), " [", i, "] = ", got, ", expected ", want);
      }
    }
  }
  return e.status();
}

Status check_broadcast(Communicator& comm) {
  const int r = comm.rank();
  const size_t bytes = 33;
  Expectations e(comm);
  for (int root = 0; root < comm.size(); ++root) {
    std::vector<uint8_t> buffer(bytes, 0);
    if (r == root) fill_pattern(buffer, 0, bytes, root, 7);
    CommBuffers mem(comm);
    uint8_t* buffer_at = mem.place(buffer);
    SEQPAR_RETURN_IF_ERROR(mem.status());
    SEQPAR_RETURN_IF_ERROR(comm.broadcast(buffer_at, bytes, root));
    SEQPAR_RETURN_IF_ERROR(mem.fetch());
    expect_pattern(e, buffer, 0, bytes, root, 7, "broadcast");
  }
  return e.status();
}

Status check_barrier(Communicator& comm) {
  for (int i = 0; i < 3; ++i) SEQPAR_RETURN_IF_ERROR(comm.barrier());
  return Status::ok();
}

Status check_split(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  Expectations e(comm);
  // Parity groups, ordered by rank.
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> parity, comm.split(r % 2, r));
  const int parity_size = (p - r % 2 + 1) / 2;
  e.expect(parity->size() == parity_size, "parity group size ", parity->size(), ", expected ",
           parity_size);
  e.expect(parity->rank() == r / 2, "parity group rank ", parity->rank(), ", expected ", r / 2);
  e.expect(parity->timeout() == comm.timeout(), "child does not share the timeout");
  e.expect(parity->stream() == comm.stream(), "child does not follow the parent's stream");
  std::vector<int64_t> members(static_cast<size_t>(parity->size()), -1);
  int64_t me = r;
  {
    CommBuffers mem(*parity);
    const int64_t* me_at = mem.place(me);
    int64_t* members_at = mem.place(members);
    SEQPAR_RETURN_IF_ERROR(mem.status());
    SEQPAR_RETURN_IF_ERROR(parity->all_gather(me_at, members_at, sizeof(me)));
    SEQPAR_RETURN_IF_ERROR(mem.fetch());
  }
  for (int i = 0; i < parity->size(); ++i)
    e.expect(members[i] == 2 * i + r % 2, "parity group member ", i, " is world rank ", members[i]);
  // Pairs, ordered by descending rank (key = -rank).
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> pair, comm.split(r / 2, -r));
  const int base = 2 * (r / 2);
  const int pair_size = std::min(2, p - base);
  e.expect(pair->size() == pair_size, "pair size ", pair->size(), ", expected ", pair_size);
  e.expect(pair->rank() == base + pair_size - 1 - r, "pair rank ", pair->rank());
  int64_t sum = r;
  {
    CommBuffers mem(*pair);
    int64_t* sum_at = mem.place(sum);
    SEQPAR_RETURN_IF_ERROR(mem.status());
    SEQPAR_RETURN_IF_ERROR(pair->all_reduce(sum_at, sum_at, 1, DType::kI64, ReduceOp::kSum));
    SEQPAR_RETURN_IF_ERROR(mem.fetch());
  }
  e.expect(sum == (pair_size == 2 ? 2 * base + 1 : base), "pair sum of ranks ", sum);
  // A collective on the parent between two on the children keeps them apart.
  SEQPAR_RETURN_IF_ERROR(comm.barrier());
  int64_t parity_max = r;
  {
    CommBuffers mem(*parity);
    int64_t* max_at = mem.place(parity_max);
    SEQPAR_RETURN_IF_ERROR(mem.status());
    SEQPAR_RETURN_IF_ERROR(parity->all_reduce(max_at, max_at, 1, DType::kI64, ReduceOp::kMax));
    SEQPAR_RETURN_IF_ERROR(mem.fetch());
  }
  const int64_t largest = p - 1 - ((p - 1) % 2 != r % 2 ? 1 : 0);
  e.expect(parity_max == largest, "parity max rank ", parity_max, ", expected ", largest);
  // A split of a child.
  SEQPAR_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> single, parity->split(parity->rank(), 0));
  e.expect(single->size() == 1 && single->rank() == 0, "split into singletons");
  SEQPAR_RETURN_IF_ERROR(single->barrier());
  return e.status();
}

Status check_nonblocking(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const int next = (r + 1) % p;
  const int prev = (r + p - 1) % p;
  const size_t bytes = 64;
  std::vector<uint8_t> fwd_send(bytes), fwd_recv(bytes), bwd_send(bytes), bwd_recv(bytes);
  std::vector<uint8_t> gather_send(bytes), gather_recv(bytes * p);
  fill_pattern(fwd_send, 0, bytes, r, next);
  fill_pattern(bwd_send, 0, bytes, r, prev + 500);
  fill_pattern(gather_send, 0, bytes, r, 3);
  int64_t sum = r + 1;
  CommBuffers mem(comm);
  int64_t* sum_at = mem.place(sum);
  const uint8_t* gather_send_at = mem.place(gather_send);
  uint8_t* gather_recv_at = mem.place(gather_recv);
  Request forward, gather, backward, reduce;
  const P2POp fwd_ops[] = {P2POp::send(next, mem.place(fwd_send), bytes),
                           P2POp::recv(prev, mem.place(fwd_recv), bytes)};
  const P2POp bwd_ops[] = {P2POp::send(prev, mem.place(bwd_send), bytes),
                           P2POp::recv(next, mem.place(bwd_recv), bytes)};
  SEQPAR_RETURN_IF_ERROR(mem.status());
  SEQPAR_RETURN_IF_ERROR(comm.start_exchange(fwd_ops, forward));
  SEQPAR_RETURN_IF_ERROR(comm.start_all_gather(gather_send_at, gather_recv_at, bytes, gather));
  SEQPAR_RETURN_IF_ERROR(comm.start_exchange(bwd_ops, backward));
  SEQPAR_RETURN_IF_ERROR(
      comm.start_all_reduce(sum_at, sum_at, 1, DType::kI64, ReduceOp::kSum, reduce));
  // Even ranks wait in posting order, odd ranks in reverse.
  Request* order[] = {&forward, &gather, &backward, &reduce};
  if (r % 2 == 1) std::swap(order[0], order[3]), std::swap(order[1], order[2]);
  for (Request* request : order) SEQPAR_RETURN_IF_ERROR(comm.wait(*request));
  SEQPAR_RETURN_IF_ERROR(mem.fetch());
  Expectations e(comm);
  e.expect(!forward.pending() && !reduce.pending(), "requests still pending after wait");
  expect_pattern(e, fwd_recv, 0, bytes, prev, r, "non-blocking forward");
  expect_pattern(e, bwd_recv, 0, bytes, next, r + 500, "non-blocking backward");
  for (int s = 0; s < p; ++s)
    expect_pattern(e, gather_recv, bytes * s, bytes, s, 3, "non-blocking all_gather");
  e.expect(sum == static_cast<int64_t>(p) * (p + 1) / 2, "non-blocking all_reduce sum ", sum);
  Request empty;
  SEQPAR_RETURN_IF_ERROR(comm.wait(empty));
  return e.status();
}

Status check_stats(Communicator& comm) {
  const int p = comm.size();
  const int r = comm.rank();
  const int64_t others = p - 1;
  comm.reset_stats();
  // exchange: 10 bytes forward and 20 backward, twice; self messages (P == 1) are not counted.
  std::vector<uint8_t> a(10), b(20), c(10), d(20);
  std::vector<uint8_t> send(16 * p), recv(16 * p);
  std::vector<float> floats(4 * p, 1.0f), reduced(4 * p);
  CommBuffers mem(comm);
  uint8_t* send_at = mem.place(send);
  uint8_t* recv_at = mem.place(recv);
  float* floats_at = mem.place(floats);
  float* reduced_at = mem.place(reduced);
  const P2POp ops[] = {
      P2POp::send((r + 1) % p, mem.place(a), 10), P2POp::recv((r + p - 1) % p, mem.place(c), 10),
      P2POp::send((r + p - 1) % p, mem.place(b), 20), P2POp::recv((r + 1) % p, mem.place(d), 20)};
  SEQPAR_RETURN_IF_ERROR(mem.status());
  SEQPAR_RETURN_IF_ERROR(comm.exchange(ops));
  SEQPAR_RETURN_IF_ERROR(comm.exchange(ops));
  SEQPAR_RETURN_IF_ERROR(comm.all_to_all(send_at, recv_at, 16));
  SEQPAR_RETURN_IF_ERROR(comm.all_gather(send_at, recv_at, 16));
  SEQPAR_RETURN_IF_ERROR(
      comm.reduce_scatter(floats_at, reduced_at, 4, DType::kF32, ReduceOp::kSum));
  SEQPAR_RETURN_IF_ERROR(comm.all_reduce(floats_at, reduced_at, 3, DType::kF32, ReduceOp::kMax));
  SEQPAR_RETURN_IF_ERROR(comm.broadcast(send_at, 8, 0));
  SEQPAR_RETURN_IF_ERROR(comm.barrier());
  SEQPAR_RETURN_IF_ERROR(mem.fetch());

  Expectations e(comm);
  const CommStats& stats = comm.stats();
  auto expect_op = [&](CommOp op, int64_t calls, int64_t bytes) {
    e.expect(stats[op].calls == calls, comm_op_name(op), " calls ", stats[op].calls, ", expected ",
             calls);
    e.expect(stats[op].bytes_sent == bytes, comm_op_name(op), " bytes ", stats[op].bytes_sent,
             ", expected ", bytes);
  };
  expect_op(CommOp::kExchange, 2, p > 1 ? 2 * 30 : 0);
  expect_op(CommOp::kAllToAll, 1, others * 16);
  expect_op(CommOp::kAllGather, 1, others * 16);
  expect_op(CommOp::kReduceScatter, 1, others * 4 * 4);
  expect_op(CommOp::kAllReduce, 1, p > 1 ? 3 * 4 : 0);
  expect_op(CommOp::kBroadcast, 1, r == 0 ? others * 8 : 0);
  expect_op(CommOp::kBarrier, 1, 0);
  e.expect(stats.total_calls() == 8, "total calls ", stats.total_calls());
  const int64_t total = (p > 1 ? 60 + 12 : 0) + others * (16 + 16 + 16) + (r == 0 ? others * 8 : 0);
  e.expect(stats.total_bytes_sent() == total, "total bytes ", stats.total_bytes_sent(),
           ", expected ", total);
  comm.reset_stats();
  e.expect(comm.stats().total_calls() == 0, "reset_stats left calls");
  return e.status();
}

}  // namespace seqpar::testing
