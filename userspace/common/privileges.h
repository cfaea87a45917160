// SPDX-License-Identifier: Apache-2.0
/// @file What the calling thread may do, and what to tell a user whose kernel
/// refused: one place for every "permission denied" message of the agent.
#pragma once

#include <cstdint>
#include <string>

namespace insa::privileges {

/// Capability numbers (linux/capability.h) the agent cares about.
enum Cap : int {
  kDacReadSearch = 2,
  kSysPtrace = 19,
  kSysAdmin = 21,
  kSysResource = 24,
  kPerfmon = 38,
  kBpf = 39,
};

/// Effective capability set of the calling thread (capabilities are per thread).
uint64_t effective();

/// True when `caps` holds capability `c`.
inline bool holds(uint64_t caps, Cap c) { return (caps >> c) & 1; }

/// "" when a process with effective set `caps` (and uid `euid`) can load BPF at all,
/// else one line saying what is missing and what to do.
std::string load_problem(uint64_t caps, unsigned euid);

/// Suffix for an attach (perf_event_open) failure with errno `err`, given the
/// thread's effective set: names the capabilities missing, or, when the thread
/// already holds CAP_PERFMON but not CAP_SYS_ADMIN, says that this kernel wants
/// CAP_SYS_ADMIN for uprobe events. "" for errors unrelated to privileges.
std::string attach_hint(int err, uint64_t caps, unsigned euid);

/// Suffix for a /proc/PID/{exe,maps,root} read denied to the agent.
std::string proc_hint(uint64_t caps, unsigned euid);

}  // namespace insa::privileges
