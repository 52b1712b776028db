#pragma once
// OpPool and PooledOp: a backend communicator's free list of posted-op objects. A post takes an
// op from the pool and letting go of its Request gives it back, so once the pool holds as many
// ops as are ever in flight at once, posting and waiting allocate nothing. Each op keeps its
// containers between posts (cleared, capacity kept).
#include <memory>
#include <type_traits>
#include <vector>

#include "comm/communicator.hpp"

namespace seqpar {

class OpPool;

// A PendingOp that goes back to the pool that made it when released.
class PooledOp : public PendingOp {
 public:
  // recycle(), then back to the pool; deleted instead once the pool is gone (the Request
  // outlived its Communicator).
  void release() final;

 protected:
  // Withdraws the op (an unfinished one is abandoned first, so no peer touches its buffers
  // again) and clears its per-post state, keeping capacity. Returns false when the op must not
  // be reused because something outside our control may still use its memory (an MPI
  // collective that never completed); the pool then keeps it aside until it is destroyed.
  virtual bool recycle() = 0;

 private:
  friend class OpPool;
  OpPool* pool_ = nullptr;  // nullptr once the pool is gone
  bool in_use_ = false;     // held by a Request (or a blocking call) right now
};

// The ops of one type made for one communicator, used by that communicator's thread only.
class OpPool {
 public:
  OpPool() = default;
  OpPool(const OpPool&) = delete;
  OpPool& operator=(const OpPool&) = delete;
  // Deletes the ops at rest; ops still held by Requests are orphaned and delete themselves
  // when released.
  ~OpPool();

  // A free op, or a new one from `make()` (a std::unique_ptr<Op>). Every op of one pool must
  // have the same type Op. The op is in use until it is released.
  template <typename Op, typename Make>
  Op& acquire(Make&& make) {
    static_assert(std::is_base_of_v<PooledOp, Op>);
    PooledOp* op = nullptr;
    if (free_.empty()) {
      std::unique_ptr<Op> made = make();
      op = made.get();
      op->pool_ = this;
      owned_.push_back(std::move(made));
      free_.reserve(owned_.capacity());  // give_back then never allocates
    } else {
      op = free_.back();
      free_.pop_back();
    }
    op->in_use_ = true;
    return static_cast<Op&>(*op);
  }

 private:
  friend class PooledOp;
  void give_back(PooledOp& op, bool reusable);

  std::vector<std::unique_ptr<PooledOp>> owned_;
  std::vector<PooledOp*> free_;
};

}  // namespace seqpar
