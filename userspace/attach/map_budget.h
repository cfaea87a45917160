// SPDX-License-Identifier: Apache-2.0
/// @file The kernel memory budget of a plan: how `exporter.max_series` is shared
/// among the metrics (one quota of kernel keys each, so one metric's cardinality
/// never takes another's room), how many entries each aggregation map gets, and
/// what those maps may cost in kernel memory at the machine's CPU count. Pure:
/// `check` prints it, the engine sizes the maps from it before load, the
/// collector exports it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace insa::config {
struct Config;
}

namespace insa::plan {

struct Plan;

/// The aggregation maps, one per kind of value (bpf/insa_probes.bpf.c).
enum class MapKind { Counters = 0, Histograms = 1, Gauges = 2 };
inline constexpr size_t kMapKinds = 3;
const char* map_name(MapKind k);

/// One metric's share.
struct MetricQuota {
  /// Keys the metric may hold in its map; a new key beyond it goes to `other`.
  uint32_t quota = 0;
  /// `other` keys reserved beyond the quota (one per series with captured labels, per
  /// status when it has a $status label).
  uint32_t other_keys = 0;
  /// Some label is captured from the process ($argN, $pid, ...): the metric's keys are
  /// not known in advance. Otherwise quota is exactly the keys it can have.
  bool captured = false;
  MapKind map = MapKind::Counters;
};

struct MapBudget {
  std::vector<MetricQuota> metrics;         ///< index == metric
  uint32_t entries[kMapKinds] = {1, 1, 1};  ///< max_entries of each map (at least 1)
};

/// Shares `cfg.max_series` among the metrics of `plan`: metrics whose labels are all
/// static or $status get exactly the keys they can have; the rest is split evenly
/// among metrics with captured labels. Fails (one line, at max_series) when the budget
/// cannot give each such metric at least kMinQuota keys.
Result<MapBudget> compute_budget(const config::Config& cfg, const Plan& plan);
inline constexpr uint32_t kMinQuota = 8;

/// A BPF hash map's shape, for the memory estimate.
struct HashShape {
  uint32_t max_entries = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  bool percpu = false;
};

/// Kernel memory of a run-time allocated (BPF_F_NO_PREALLOC) hash map holding
/// `entries` elements on a machine with `ncpus` possible CPUs, as the kernel charges
/// it (kernel/bpf/hashtab.c, htab_map_mem_usage): the bucket array, then per element
/// the htab_elem header (48 bytes), the key, and the value (per-CPU: a pointer plus
/// one 8-byte-rounded copy per possible CPU), plus the allocator's list nodes. The
/// fixed struct is counted as kHashMapFixedBytes.
uint64_t hash_map_bytes(const HashShape& shape, uint64_t entries, int ncpus);
/// Bytes charged per element (see hash_map_bytes).
uint64_t hash_map_elem_bytes(const HashShape& shape, int ncpus);
inline constexpr uint64_t kHashMapFixedBytes = 1024;

/// Shapes of the three aggregation maps under a budget.
HashShape map_shape(MapKind k, const MapBudget& b);

/// "1.5 MiB": for `check` and logs.
std::string human_bytes(uint64_t bytes);

}  // namespace insa::plan
