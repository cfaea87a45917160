// SPDX-License-Identifier: Apache-2.0
/// @file rng.h
/// Counter-based deterministic randomness: the n-th decision of a seeded workload is a pure
/// function of (seed, stream, n), so it does not depend on thread scheduling, on how many
/// events ran before, or on the standard library's distribution implementations.
#pragma once

#include <cstddef>
#include <cstdint>

namespace insa_demo {

/// splitmix64 finaliser (Steele, Lea, Flood 2014).
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Uniform value in [0, n) for decision `n_th` of `stream` under `seed`.
inline std::uint64_t pick(std::uint64_t seed, std::uint64_t stream, std::uint64_t n_th,
                          std::uint64_t n) {
  return mix64(mix64(seed ^ mix64(stream)) ^ n_th) % n;
}

/// Sequential generator for code that walks a schedule in order.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() { return mix64(state_++ * 0x2545f4914f6cdd1dULL); }
  /// Uniform in [0, n).
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  /// True with probability percent/100.
  bool chance(unsigned percent) { return below(100) < percent; }

 private:
  std::uint64_t state_;
};

}  // namespace insa_demo
