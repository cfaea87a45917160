// SPDX-License-Identifier: Apache-2.0
/// @file The process_* families every Prometheus exporter serves (names, units and
/// help as the Go client's process collector), read from /proc at scrape time.
#pragma once

#include <sys/types.h>

#include <string>

#include "collector/collector.h"
#include "common/result.h"

namespace insa::collector {

struct ProcessStats {
  double cpu_seconds = 0;  ///< user + system
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double start_time_seconds = 0;  ///< since the Unix epoch
  double open_fds = 0;
  double max_fds = 0;            ///< soft RLIMIT_NOFILE
  double virtual_max_bytes = 0;  ///< soft RLIMIT_AS (-1 when unlimited, as Go)
};

/// Reads /proc/self/{stat,fd} and /proc/stat (btime).
Result<ProcessStats> read_process_stats();

/// A FamilySource adding process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_virtual_memory_max_bytes, process_open_fds,
/// process_max_fds and process_start_time_seconds.
FamilySource process_metrics_source();

}  // namespace insa::collector
