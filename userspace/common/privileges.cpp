// SPDX-License-Identifier: Apache-2.0
#include "common/privileges.h"

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

namespace insa::privileges {

namespace {

const char* cap_name(Cap c) {
  switch (c) {
    case kDacReadSearch: return "CAP_DAC_READ_SEARCH";
    case kSysPtrace: return "CAP_SYS_PTRACE";
    case kSysAdmin: return "CAP_SYS_ADMIN";
    case kSysResource: return "CAP_SYS_RESOURCE";
    case kPerfmon: return "CAP_PERFMON";
    case kBpf: return "CAP_BPF";
  }
  return "?";
}

std::string missing(uint64_t caps, std::initializer_list<Cap> want) {
  std::string out;
  for (Cap c : want) {
    if (holds(caps, c)) continue;
    if (!out.empty()) out += ", ";
    out += cap_name(c);
  }
  return out;
}

constexpr const char* kUnit = "deploy/systemd/insa-exporter.service";

}  // namespace

uint64_t effective() {
  std::ifstream st("/proc/thread-self/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  return 0;
}

std::string load_problem(uint64_t caps, unsigned euid) {
  if (euid == 0 || holds(caps, kSysAdmin)) return "";
  if (holds(caps, kBpf) && holds(caps, kPerfmon)) return "";
  return "not running as root and missing " + missing(caps, {kBpf, kPerfmon}) +
         ": run with sudo, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (see " +
         kUnit + ")";
}

std::string attach_hint(int err, uint64_t caps, unsigned euid) {
  if (err != EPERM && err != EACCES) return "";
  if (euid == 0 && holds(caps, kSysAdmin))
    return " (root with CAP_SYS_ADMIN was refused: a security module or a seccomp filter denies perf_event_open)";
  if (holds(caps, kPerfmon) && !holds(caps, kSysAdmin))
    return " (CAP_PERFMON is held, but this kernel refuses uprobe perf events without CAP_SYS_ADMIN: add CAP_SYS_ADMIN "
           "to AmbientCapabilities and CapabilityBoundingSet, see " +
           std::string(kUnit) + ")";
  const std::string m = missing(caps, {kPerfmon, kSysAdmin, kDacReadSearch});
  return " (missing " + m + ": run as root, or grant them, see " + kUnit + ")";
}

std::string proc_hint(uint64_t caps, unsigned euid) {
  if (euid == 0 || holds(caps, kSysPtrace)) return "";
  return ": the exporter lacks CAP_SYS_PTRACE, so it cannot read /proc/PID/exe of other users' processes (grant it, see " +
         std::string(kUnit) + ")";
}

}  // namespace insa::privileges
