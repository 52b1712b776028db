#pragma once
// Counter-based test data: the value of element `index` of tensor `stream` depends only on
// (seed, stream, index), so every rank builds its own shard of a global tensor, and the
// reference, without communication (as nccl-tests does).
#include <cstdint>

namespace seqpar {

inline uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [-1, 1), 24 random bits.
inline float uniform_pm1(uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t h = mix64(mix64(seed ^ mix64(stream)) ^ index);
  return static_cast<float>(static_cast<double>(h >> 40) / 8388608.0 - 1.0);
}

}  // namespace seqpar
