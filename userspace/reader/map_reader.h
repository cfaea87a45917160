// SPDX-License-Identifier: Apache-2.0
/// @file Reads the kernel maps at scrape time: batch lookups, per-CPU values
/// summed, never read-then-delete. Decoding is a pure function of bytes so it
/// is tested on fixtures without BPF.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "reader/layout.h"

namespace insa::reader {

/// Everything one scrape needs from the kernel.
struct Snapshot {
  std::vector<std::pair<insa_key, insa_count>> counters;   ///< summed over CPUs (`last`: the latest)
  std::vector<std::pair<insa_key, insa_hist>> histograms;  ///< summed over CPUs (`last`: the latest)
  std::vector<std::pair<insa_key, insa_gauge>> gauges;
  std::vector<insa_probe_stats> stats;  ///< index == probe cookie, summed over CPUs
  std::vector<uint64_t> folded;         ///< index == metric: updates that went to `other`
  uint64_t lost[INSA_LOST_MAX] = {};    ///< index == enum insa_lost, summed over CPUs
  /// Kernel memory charged for each map now (the kernel's own figure: memlock in
  /// /proc/self/fdinfo), by map name.
  std::vector<std::pair<std::string, uint64_t>> map_bytes;
};

/// Descriptors of the maps of a loaded engine.
struct MapFds {
  int counters = -1, histograms = -1, gauges = -1, stats = -1, metric_stats = -1, lost = -1, spans = -1;
  uint32_t nprobes = 0, nmetrics = 0;
  insa_quota* quotas = nullptr;                  ///< the mmap-ed `quotas` array (nmetrics entries)
  std::vector<std::pair<std::string, int>> all;  ///< every map, by name (memory figures)
};

/// A key of `metric` that userspace deleted from an aggregation map (series expiry, a
/// reload's removed probes) gives its slot of the metric's quota back to the kernel's
/// count (`quotas`, shared with the BPF programs' atomics). `other` keys never took one.
void release_quota(const MapFds& fds, uint32_t metric, const insa_key& key);

/// Source of snapshots: the BPF maps in production, a fake in tests.
class MapReader {
 public:
  virtual ~MapReader() = default;
  virtual Result<void> read(Snapshot& out) = 0;
};

/// Bytes of one per-CPU value slot, as the kernel lays them out in batch results.
constexpr size_t percpu_stride(size_t value_size) { return (value_size + 7) & ~size_t{7}; }

/// Sums `ncpus` consecutive per-CPU insa_hist values (`last`: the latest).
insa_hist sum_hist(std::span<const uint8_t> bytes, int ncpus);
/// Sums `ncpus` consecutive per-CPU insa_count values (`last`: the latest).
insa_count sum_count(std::span<const uint8_t> bytes, int ncpus);
/// The `memlock:` figure of a /proc/PID/fdinfo/FD text (0 when absent).
uint64_t fdinfo_memlock(const std::string& fdinfo);
/// Sums `ncpus` consecutive per-CPU insa_probe_stats values.
insa_probe_stats sum_stats(std::span<const uint8_t> bytes, int ncpus);

/// Batch-reads a whole hash map into keys/values (buffers only grow; reused). `value_bytes`
/// is the size of one key's value (all CPUs for per-CPU maps). Returns the entries read.
Result<size_t> read_hash(int fd, size_t value_bytes, std::vector<insa_key>& keys, std::vector<uint8_t>& values);

/// Reads the maps of a loaded engine by fd.
class BpfMapReader : public MapReader {
 public:
  explicit BpfMapReader(MapFds fds);
  Result<void> read(Snapshot& out) override;

 private:
  MapFds fds_;
  int ncpus_;
  std::vector<insa_key> keys_;
  std::vector<uint8_t> values_;
};

}  // namespace insa::reader
