// SPDX-License-Identifier: Apache-2.0
/// @file Reads the kernel maps at scrape time: batch lookups, per-CPU values
/// summed, never read-then-delete. Decoding is a pure function of bytes so it
/// is tested on fixtures without BPF.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/result.h"
#include "reader/layout.h"

namespace insa::reader {

/// Everything one scrape needs from the kernel.
struct Snapshot {
  std::vector<std::pair<insa_key, insa_hist>> counters;  ///< summed over CPUs
  std::vector<std::pair<insa_key, int64_t>> gauges;
  std::vector<insa_probe_stats> stats;  ///< index == probe cookie, summed over CPUs
};

/// Source of snapshots: the BPF maps in production, a fake in tests.
class MapReader {
 public:
  virtual ~MapReader() = default;
  virtual Result<void> read(Snapshot& out) = 0;
};

/// Bytes of one per-CPU value slot, as the kernel lays them out in batch results.
constexpr size_t percpu_stride(size_t value_size) { return (value_size + 7) & ~size_t{7}; }

/// Sums `ncpus` consecutive per-CPU insa_hist values.
insa_hist sum_hist(std::span<const uint8_t> bytes, int ncpus);
/// Sums `ncpus` consecutive per-CPU insa_probe_stats values.
insa_probe_stats sum_stats(std::span<const uint8_t> bytes, int ncpus);

/// Reads the maps of a loaded engine by fd.
class BpfMapReader : public MapReader {
 public:
  BpfMapReader(int counters_fd, int gauges_fd, int stats_fd, uint32_t nprobes);
  Result<void> read(Snapshot& out) override;

 private:
  int counters_fd_, gauges_fd_, stats_fd_;
  uint32_t nprobes_;
  int ncpus_;
  std::vector<insa_key> keys_;
  std::vector<uint8_t> values_;
};

}  // namespace insa::reader
