// SPDX-License-Identifier: Apache-2.0
#include "process/lifecycle.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>

#include "common/privileges.h"
#include "process/containers.h"
#include "python/procs.h"

namespace insa::process {

std::string exit_reason(int status) {
  int sig = status & 0x7f;
  if (sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal_" + std::to_string(sig);
  }
  return "exit_code_" + std::to_string((status >> 8) & 0xff);
}

Lifecycle::Lifecycle(const std::vector<config::WorkerDef>& workers, const std::vector<std::string>& binaries) {
  for (size_t i = 0; i < workers.size(); ++i) {
    WorkerState w;
    w.name = workers[i].name;
    w.type = workers[i].type;
    w.binary = binaries[i];
    w.script = workers[i].script;
    has_scripts_ = has_scripts_ || !w.script.empty();
    workers_.push_back(std::move(w));
  }
}

int Lifecycle::match(const std::string& exe, const std::string& script) const {
  // A binary replaced on disk shows as "path (deleted)" for processes still running it.
  std::string_view e = exe;
  constexpr std::string_view deleted = " (deleted)";
  if (e.size() > deleted.size() && e.substr(e.size() - deleted.size()) == deleted) e.remove_suffix(deleted.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    const auto& w = workers_[i];
    if (w.script.empty() ? w.binary == e
                         : python::path_suffix_match(script, w.script) && (w.binary.empty() || w.binary == e))
      return static_cast<int>(i);
  }
  return -1;
}

namespace {

/// The main script of a Python process (`python3.11 dir/worker.py`), resolved against
/// its cwd; "" when the executable is not named python* or runs no script.
std::string python_script(const std::string& proc_dir, const std::string& exe) {
  std::string_view base = exe;
  if (auto s = base.rfind('/'); s != std::string_view::npos) base.remove_prefix(s + 1);
  if (base.substr(0, 6) != "python") return "";
  const std::vector<std::string> argv = read_cmdline(proc_dir);
  std::string script, module;
  if (!python::parse_cmdline(argv, &script, &module) || script.empty()) return "";
  if (script[0] == '/') return script;
  char cwd[4096];
  ssize_t n = readlink((proc_dir + "/cwd").c_str(), cwd, sizeof cwd - 1);
  return n > 0 ? std::string(cwd, n) + "/" + script : script;
}

}  // namespace

int Lifecycle::observe(uint32_t pid, const std::string& exe, const std::string& script) {
  std::lock_guard<std::mutex> lock(mu_);
  int i = match(exe, script);
  if (i < 0) return -1;
  auto& w = workers_[i];
  if (!w.pids.insert(pid).second) return i;
  if (!w.pending.empty()) {
    ++w.restarts[w.pending.front()];
    w.pending.pop_front();
  } else if (std::any_of(vanished_.begin(), vanished_.end(),
                         [&](const auto& v) { return v.second.first == size_t(i); })) {
    ++w.unclaimed_starts;  // its predecessor's exit event has not been read yet
  }
  return i;
}

void Lifecycle::started(uint32_t pid, uint64_t dev, uint64_t ino) {
  std::string exe;
  bool in_containers = false;  // a worker binary not on this host: a path inside containers
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& w : workers_) {
      struct stat st {};
      if (w.binary.empty()) continue;
      if (stat(w.binary.c_str(), &st) != 0) {
        in_containers = true;
      } else if (st.st_dev == dev && st.st_ino == ino) {
        exe = w.binary;
        break;
      }
    }
  }
  // The path as the process sees it (its mount namespace) names a container's worker.
  if (exe.empty() && in_containers) exe = process_exe(static_cast<int>(pid));
  if (!exe.empty()) observe(pid, exe);
}

void Lifecycle::scan(const std::string& proc_root) {
  DIR* d = opendir(proc_root.c_str());
  if (!d) return;
  struct Found {
    uint32_t first;
    std::string exe, script;
  };
  std::vector<Found> found;
  size_t denied = 0;
  std::string denied_pids;  // the first few, for the log
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char buf[4096];
    std::string link = proc_root + "/" + e->d_name + "/exe";
    ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
    if (n < 0 && errno == EACCES && ++denied <= 3) denied_pids += std::string(denied > 1 ? ", " : "") + e->d_name;
    if (n <= 0) continue;
    std::string exe(buf, n);
    std::string script = has_scripts_ ? python_script(proc_root + "/" + e->d_name, exe) : "";
    found.push_back({static_cast<uint32_t>(std::strtoul(e->d_name, nullptr, 10)), std::move(exe), std::move(script)});
  }
  closedir(d);
  if (denied > 0 && !denied_logged_) {
    // Health would read 0 for workers run by other users: say why, once. (With
    // CAP_SYS_PTRACE a denial is the kernel's own business, e.g. a sandbox's PID 1.)
    denied_logged_ = true;
    const std::string hint = privileges::proc_hint(privileges::effective(), geteuid());
    if (!hint.empty())
      spdlog::warn("worker lifecycle: /proc/PID/exe of {} processes is unreadable (pid {}{}){}", denied, denied_pids,
                   denied > 3 ? ", ..." : "", hint);
  }
  // Processes gone without an exit event: either their event is still in the
  // ring buffer (read between scans) or they ended before the exporter watched.
  // Drop them now (health is 0 at once) and remember them for a while, so a
  // late exit event still counts.
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < workers_.size(); ++i) {
      auto& w = workers_[i];
      for (auto it = w.pids.begin(); it != w.pids.end();) {
        bool alive = std::any_of(found.begin(), found.end(), [&](const auto& f) { return f.first == *it; });
        if (alive) {
          ++it;
        } else {
          vanished_[*it] = {i, now};
          it = w.pids.erase(it);
        }
      }
    }
    expire_vanished();
  }
  // Then the running ones, so a successor of a vanished pid is seen as one.
  for (const auto& f : found) observe(f.first, f.exe, f.script);
}

void Lifecycle::expire_vanished() {
  const auto limit = std::chrono::steady_clock::now() - std::chrono::seconds(30);
  for (auto it = vanished_.begin(); it != vanished_.end();)
    it = it->second.second < limit ? vanished_.erase(it) : std::next(it);
  for (size_t i = 0; i < workers_.size(); ++i)
    if (std::none_of(vanished_.begin(), vanished_.end(), [&](const auto& v) { return v.second.first == i; }))
      workers_[i].unclaimed_starts = 0;
}

void Lifecycle::exited(uint32_t pid, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : workers_)
    if (w.pids.erase(pid)) w.pending.push_back(exit_reason(status));
  auto v = vanished_.find(pid);
  if (v == vanished_.end()) return;
  auto& w = workers_[v->second.first];
  vanished_.erase(v);
  if (w.unclaimed_starts > 0) {
    --w.unclaimed_starts;
    ++w.restarts[exit_reason(status)];
  } else {
    w.pending.push_back(exit_reason(status));
  }
}

void Lifecycle::adopt(const Lifecycle& old) {
  std::scoped_lock lock(mu_, old.mu_);
  std::map<size_t, size_t> index;  // old worker → this worker
  for (size_t i = 0; i < workers_.size(); ++i) {
    auto& w = workers_[i];
    for (size_t o = 0; o < old.workers_.size(); ++o) {
      const auto& ow = old.workers_[o];
      if (ow.name == w.name && ow.type == w.type && ow.binary == w.binary && ow.script == w.script) {
        w = ow;
        index[o] = i;
        break;
      }
    }
  }
  for (const auto& [pid, v] : old.vanished_)
    if (auto it = index.find(v.first); it != index.end()) vanished_[pid] = {it->second, v.second};
}

std::vector<WorkerState> Lifecycle::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return workers_;
}

void Lifecycle::collect(std::vector<prometheus::MetricFamily>& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (workers_.empty()) return;
  prometheus::MetricFamily health{"insa_worker_health_status",
                                  "1 while a process of the worker runs, 0 once it exited.",
                                  prometheus::MetricType::Gauge,
                                  {}};
  prometheus::MetricFamily restarts{"insa_worker_restarts_total",
                                    "Worker restarts by how the previous "
                                    "instance ended (exit_code_N or SIGNAME).",
                                    prometheus::MetricType::Counter,
                                    {}};
  for (const auto& w : workers_) {
    prometheus::ClientMetric h;
    h.label = {{"worker_name", w.name}, {"worker_type", w.type}};
    h.gauge.value = w.pids.empty() ? 0 : 1;
    health.metric.push_back(std::move(h));
    for (const auto& [reason, n] : w.restarts) {
      prometheus::ClientMetric r;
      r.label = {{"worker_name", w.name}, {"reason", reason}};
      r.counter.value = static_cast<double>(n);
      restarts.metric.push_back(std::move(r));
    }
  }
  out.push_back(std::move(health));
  out.push_back(std::move(restarts));
}

}  // namespace insa::process
