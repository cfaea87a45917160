// SPDX-License-Identifier: Apache-2.0
/// @file request_plan.h
/// The seeded request schedule shared by request_worker and the platform workers: what
/// request `id` does is a pure function of (seed, id), so every process agrees on it.
#pragma once

#include <cstdint>

#include "common/rng.h"

namespace insa_demo {

/// What one request will do.
struct Plan {
  enum Kind { kSuccess, kError, kSlow } kind;
  long duration_ms;    ///< planned work: 2/10/40 (success), 2 (error), 150 (slow)
  long request_size;   ///< 60, 700, 3000 or 20000 bytes
  long response_size;  ///< 250, 1500, 7000 or 40000 bytes (returned unless error)
};

inline constexpr long kSuccessMs[] = {2, 10, 40};
inline constexpr long kErrorMs = 2;
inline constexpr long kSlowMs = 150;
inline constexpr long kRequestSizes[] = {60, 700, 3000, 20000};
inline constexpr long kResponseSizes[] = {250, 1500, 7000, 40000};

/// 75% success, 15% error, 10% slow.
inline Plan plan_for(std::uint64_t seed, long id) {
  Plan p{};
  std::uint64_t roll = pick(seed, 1, id, 100);
  p.kind = roll < 75 ? Plan::kSuccess : roll < 90 ? Plan::kError : Plan::kSlow;
  p.duration_ms = p.kind == Plan::kSuccess ? kSuccessMs[pick(seed, 2, id, 3)]
                  : p.kind == Plan::kError ? kErrorMs
                                           : kSlowMs;
  p.request_size = kRequestSizes[pick(seed, 3, id, 4)];
  p.response_size = kResponseSizes[pick(seed, 4, id, 4)];
  return p;
}

/// Status the probes.yaml rules give: return < 0 is error, else duration > 100 ms is timeout.
inline const char* status_of(const Plan& p) {
  return p.kind == Plan::kError ? "error" : p.kind == Plan::kSlow ? "timeout" : "success";
}

}  // namespace insa_demo
