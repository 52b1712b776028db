// OpPool and PooledOp: giving ops back, and orphaning the ones still held when the pool goes.
#include "comm/op_pool.hpp"

namespace seqpar {

void PooledOp::release() {
  const bool reusable = recycle();
  if (pool_ == nullptr) {
    delete this;
    return;
  }
  pool_->give_back(*this, reusable);
}

void OpPool::give_back(PooledOp& op, bool reusable) {
  op.in_use_ = false;
  if (reusable) free_.push_back(&op);
}

OpPool::~OpPool() {
  for (std::unique_ptr<PooledOp>& op : owned_) {
    if (!op->in_use_) continue;
    op->pool_ = nullptr;
    static_cast<void>(op.release());  // its Request deletes it
  }
}

}  // namespace seqpar
