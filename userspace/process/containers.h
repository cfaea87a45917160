// SPDX-License-Identifier: Apache-2.0
/// @file Processes seen from the exporter when they run in containers: which file a
/// process executes (its own view of the path, /proc/PID/exe) and how the exporter
/// reaches that file (through /proc/PID/root when the process has another mount
/// namespace or root). Everything reads a proc root so tests can use a fake one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"

namespace insa::process {

/// "PROC/PID/root" when the process sees other files than the exporter (another mount
/// namespace, or a chroot), else "". The kernel resolves that link in the process's own
/// namespace, so "PROC/PID/root" + a path of the process's view opens the process's file.
std::string process_root(int pid, const std::string& proc_root = "/proc");
/// The target of a symbolic link ("" when it cannot be read), e.g. /proc/PID/exe.
std::string read_link(const std::string& path);
/// The arguments of the process whose /proc directory is `proc_dir` (NUL-separated
/// /proc/PID/cmdline split; empty when unreadable).
std::vector<std::string> read_cmdline(const std::string& proc_dir);

/// The executable as the process sees it (readlink of PROC/PID/exe, without the
/// " (deleted)" of a replaced file); "" when it cannot be read (kernel thread, gone).
std::string process_exe(int pid, const std::string& proc_root = "/proc");

/// The first file mapped by the process (PROC/PID/maps) whose path, as the process sees
/// it, satisfies `pred`; "" when none.
std::string mapped_file(int pid, const std::function<bool(const std::string&)>& pred,
                        const std::string& proc_root = "/proc");

/// True when the process maps a file whose name is `soname` or a versioned form of it
/// ("libstdc++.so.6" matches ".../libstdc++.so.6" and ".../libstdc++.so.6.0.30").
bool is_library_file(const std::string& path, const std::string& soname);

/// `soname` as the dynamic loader finds it in the standard directories of `root` ("" for
/// the exporter's own root, or "PROC/PID/root"); returns the path to open from the
/// exporter ("" when absent). For a process that has not mapped the library yet.
std::string find_library_in_root(const std::string& root, const std::string& soname);

/// One process and the file it executes.
struct ExeProcess {
  int pid = 0;
  std::string exe;   ///< its own view (process_exe)
  std::string root;  ///< process_root
  uint64_t dev = 0, ino = 0;  ///< of the executed file (stat of PROC/PID/exe)
  /// The executed file opened from the exporter: root + exe.
  std::string host_path() const { return root + exe; }
};

/// Every process with a readable executable, the exporter itself excluded.
std::vector<ExeProcess> scan_executables(const std::string& proc_root = "/proc");

/// What a process's cgroup says about its container.
struct CgroupInfo {
  std::string path;          ///< the cgroup path the identity came from ("" if none)
  std::string runtime;       ///< "docker", "containerd", "crio", "podman", or "" (unknown)
  std::string container_id;  ///< 64 hex digits, "" when the process is in no container
  std::string pod_uid;       ///< Kubernetes pod UID (dashes), "" outside Kubernetes
};

/// Parses the text of /proc/PID/cgroup: cgroup v2 ("0::/path") or v1
/// ("N:controllers:/path", the first hierarchy whose path names a container), with the
/// layouts of podman (libpod-ID, cgroupfs and systemd), docker (docker/ID,
/// docker-ID.scope), containerd (cri-containerd-ID.scope, kubepods/.../podUID/ID) and
/// CRI-O (crio-ID.scope; its conmon's crio-conmon-ID.scope is no container).
CgroupInfo parse_cgroup(const std::string& text);

/// parse_cgroup of PROC/PID/cgroup.
CgroupInfo process_cgroup(int pid, const std::string& proc_root = "/proc");

/// Kubernetes names of a pod's container, from the kubelet's log directories:
/// LOGS/pods/<namespace>_<pod>_<uid>/<container>/ and the links
/// LOGS/containers/<pod>_<namespace>_<container>-<id>.log.
struct PodIdentity {
  std::string namespace_, pod, container;
};
/// Empty fields when not found. `logs_root` is /var/log on a node.
PodIdentity pod_identity(const std::string& pod_uid, const std::string& container_id,
                         const std::string& logs_root = "/var/log");

/// The `container`, `pod` and `namespace` label values of a process ("" outside one).
/// In a Kubernetes pod: the pod's container name, pod and namespace (pod_identity). Else
/// the runtime's container name: podman's (its conmon parent's `-n NAME`) or docker's
/// (`/var/lib/docker/containers/ID/config.v2.json`), else the id's first 12 digits.
struct ContainerLabels {
  std::string container, pod, namespace_;
  bool operator==(const ContainerLabels&) const = default;
};
ContainerLabels resolve_container_labels(int pid, const std::string& proc_root = "/proc",
                                         const std::string& logs_root = "/var/log",
                                         const std::string& docker_root = "/var/lib/docker");

/// container_labels: resolve_container_labels of a host PID, cached by (PID, start time)
/// so a series first read after its process exited still gets its container: entries
/// of processes gone stay kProcessLabelsKeep. remember_container_labels fills the cache
/// while the process runs (the engine calls it for every process it attaches).
ContainerLabels container_labels(int pid);
void remember_container_labels(int pid);
/// The kubelet's log root for the above (exporter.pod_logs_root).
void set_pod_logs_root(const std::string& root);

/// Does a process running `exe` (its own view) in container `c` with labels `l` match a
/// probe's `select:`? Every given key must match (shell globs); `container` matches the
/// name or an id prefix of 12+ digits. A process in no container matches only a selector
/// of `executable` alone.
bool selector_matches(const config::Selector& sel, const CgroupInfo& c, const ContainerLabels& l,
                      const std::string& exe);

}  // namespace insa::process
