// SPDX-License-Identifier: Apache-2.0
/// @file Series expiry: kernel keys of series that have not changed for
/// `exporter.series_expiry`, or whose $pid label names a process that is gone,
/// are deleted from the aggregation maps (and so vanish from /metrics), their
/// metric's quota slot is given back, and each one is counted. Spans whose begin
/// is older than the expiry (the end never came) are deleted and counted too.
/// Only series with captured labels expire: a series whose labels are all fixed
/// is always exported, and never reset.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <span>
#include <vector>

#include "attach/plan.h"
#include "reader/map_reader.h"

namespace insa::collector {

/// What the sweep does with one kernel key.
enum class Verdict { Keep, Idle, DeadPid };

/// Pure decision for one key of series `s`: `last_ns` is its latest update
/// (CLOCK_MONOTONIC), `gauge` its value when it is a gauge, `alive` tells whether a
/// process exists. `expiry_ns` 0: idle series are kept. A series of a dead `$pid` goes
/// once it has not changed for `dead_grace_ns` (so scrapes after the exit still see its
/// final value), whatever `expiry_ns`.
Verdict judge(const plan::Series& s, const insa_key& key, uint64_t last_ns, int64_t gauge, uint64_t now_ns,
              int64_t expiry_ns, const std::function<bool(uint32_t)>& alive, int64_t dead_grace_ns = 0);

class Expiry {
 public:
  Expiry(const plan::Plan& plan, reader::MapFds fds, int64_t expiry_ns, int64_t dead_grace_ns = 0);

  /// A process exited (the kernel's exit events): its $pid series go at the next tick.
  void note_exit(uint32_t tgid);
  /// After a committed incremental reload: the engine's plan (which this sweep reads by
  /// reference) has new content on the same maps; `expiry_ns` is the new config's.
  void follow(int64_t expiry_ns, int64_t dead_grace_ns);
  /// Keys deleted by someone else (a reload's removed probes, Engine::delete_series): the
  /// collector forgets them too (a new generation). Not counted as expired.
  void forget_deleted(size_t keys);

  /// Called about once a second. Sweeps when the periodic sweep is due (every
  /// expiry/10, between 1 s and 60 s), or when a process whose PID labels a series
  /// exited (so such series go within a second). Returns the keys removed.
  size_t tick();
  /// Sweeps every map now. Returns the keys removed.
  size_t sweep();

  /// Keys removed so far, per metric (index == metric).
  std::vector<uint64_t> expired() const;
  /// Spans deleted because their end never came within the expiry (or their process died).
  uint64_t spans_expired() const { return spans_expired_.load(); }
  /// Idle series deleted just as an update arrived that the kernel had already put in a
  /// new key: the deleted copy's updates are lost (a race of microseconds, counted).
  uint64_t raced() const { return raced_.load(); }
  /// Changes whenever keys were removed: the collector then forgets them.
  uint64_t generation() const { return generation_.load(); }

  /// Sweep period for an expiry (expiry/10, clamped to [1 s, 60 s]; 60 s when 0).
  static uint64_t period_ns(int64_t expiry_ns);

 private:
  size_t sweep_map(int fd, int kind, uint64_t now, const std::function<bool(uint32_t)>& alive,
                   std::set<uint32_t>& pids);
  size_t sweep_spans(uint64_t now, const std::function<bool(uint32_t)>& alive);
  bool exited_pid_in_keys() const;

  const plan::Plan& plan_;
  reader::MapFds fds_;
  int64_t expiry_ns_;
  int64_t dead_grace_ns_;
  int ncpus_;
  bool pid_series_ = false;  ///< some series is labelled by $pid
  uint64_t next_sweep_ = 0;
  std::set<uint32_t> known_pids_;  ///< PIDs in keys at the last sweep
  std::set<uint32_t> exited_;      ///< exits since the last sweep
  std::vector<insa_key> keys_;
  std::vector<uint8_t> values_;
  mutable std::mutex mu_;  ///< guards expired_ (read by the scrape thread)
  std::vector<uint64_t> expired_;
  std::atomic<uint64_t> spans_expired_{0};
  std::atomic<uint64_t> raced_{0};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace insa::collector
