// SPDX-License-Identifier: Apache-2.0
/// @file Process lifecycle of the configured workers: health (a matching
/// process runs) and restarts with the reason the previous instance ended.
///
/// Method: a /proc scan (1 s) finds processes whose executable is a worker's
/// binary (or, for a Python worker, a `python*` executable whose main script on the
/// command line ends with the worker's `script`), including ones started after the exporter; the kernel's
/// sched_process_exit tracepoint reports every exit with its wait status, so
/// the reason (exit code or signal) is exact even for non-child processes,
/// which /proc alone cannot give.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace insa::process {

struct WorkerState {
  std::string name, type, binary;  ///< binary: absolute path ("" for a Python worker on any interpreter)
  std::string script;              ///< Python main script path suffix ("" for a native worker)
  std::set<uint32_t> pids;
  std::deque<std::string> pending;  ///< exits waiting for a new instance, oldest first
  /// Instances started after an instance vanished from /proc whose exit event had not
  /// been read yet: the late exit event counts as their restart.
  uint32_t unclaimed_starts = 0;
  std::map<std::string, uint64_t> restarts;  ///< reason → count
};

/// "SIGKILL" for a signal, "exit_code_3" for an exit code (wait status encoding).
std::string exit_reason(int wait_status);

class Lifecycle {
 public:
  /// `binaries[i]` is the resolved path of cfg.workers[i].
  Lifecycle(const std::vector<config::WorkerDef>& workers, const std::vector<std::string>& binaries);

  /// Records that `pid` runs `exe` (readlink of /proc/PID/exe) with `script` as its Python
  /// main script (resolved against its cwd; "" when not Python). Returns the worker index or -1.
  int observe(uint32_t pid, const std::string& exe, const std::string& script = "");
  /// Scans /proc (or `proc_root` in tests) for worker processes.
  void scan(const std::string& proc_root = "/proc");
  /// A process exec'd the file (dev, ino): counts as a start when that file is a
  /// worker's binary, even if the process is gone before the next scan.
  void started(uint32_t pid, uint64_t dev, uint64_t ino);
  /// A process exited with a wait status.
  void exited(uint32_t pid, int wait_status);

  /// A reload: takes over the state (processes, pending exits, restart counts) of every
  /// worker of `old` with the same name, type, binary and script, so its health and
  /// restart counter continue.
  void adopt(const Lifecycle& old);

  /// insa_worker_health_status and insa_worker_restarts_total.
  void collect(std::vector<prometheus::MetricFamily>& out) const;
  std::vector<WorkerState> snapshot() const;

 private:
  int match(const std::string& exe, const std::string& script) const;
  bool has_scripts_ = false;
  bool denied_logged_ = false;  ///< unreadable /proc/PID/exe reported once
  void expire_vanished();
  mutable std::mutex mu_;
  std::vector<WorkerState> workers_;
  /// Pids the scan no longer found, whose exit event may still be on its way (the
  /// ring buffer is read between scans): pid → (worker index, when it vanished).
  std::map<uint32_t, std::pair<size_t, std::chrono::steady_clock::time_point>> vanished_;
};

}  // namespace insa::process
