// SPDX-License-Identifier: Apache-2.0
#include "process/containers.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <chrono>
#include <cstring>
#include <iterator>
#include <mutex>
#include <fstream>
#include <sstream>

namespace insa::process {
std::string read_link(const std::string& p) {
  char buf[4096];
  ssize_t n = readlink(p.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

std::vector<std::string> read_cmdline(const std::string& proc_dir) {
  std::ifstream in(proc_dir + "/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  for (size_t b = 0; b < raw.size();) {
    size_t e = raw.find('\0', b);
    if (e == std::string::npos) e = raw.size();
    argv.emplace_back(raw.substr(b, e - b));
    b = e + 1;
  }
  return argv;
}

namespace {


}  // namespace

std::string process_root(int pid, const std::string& proc_root) {
  const std::string dir = proc_root + "/" + std::to_string(pid);
  const std::string my_ns = read_link(proc_root + "/self/ns/mnt"), its_ns = read_link(dir + "/ns/mnt");
  const std::string its_root = read_link(dir + "/root");
  if ((!its_ns.empty() && !my_ns.empty() && its_ns != my_ns) || (!its_root.empty() && its_root != "/"))
    return dir + "/root";
  return "";
}

std::string process_exe(int pid, const std::string& proc_root) {
  std::string exe = read_link(proc_root + "/" + std::to_string(pid) + "/exe");
  constexpr const char* kDeleted = " (deleted)";
  if (exe.size() > 10 && exe.compare(exe.size() - 10, 10, kDeleted) == 0) exe.resize(exe.size() - 10);
  return exe;
}

std::string mapped_file(int pid, const std::function<bool(const std::string&)>& pred, const std::string& proc_root) {
  std::ifstream maps(proc_root + "/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (path.size() > 10 && path.compare(path.size() - 10, 10, " (deleted)") == 0) continue;
    if (pred(path)) return path;
  }
  return "";
}

bool is_library_file(const std::string& path, const std::string& soname) {
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.compare(0, soname.size(), soname) != 0) return false;
  if (base.size() == soname.size()) return true;
  // "libstdc++.so.6.0.30": only version digits and dots may follow.
  if (base[soname.size()] != '.') return false;
  for (size_t i = soname.size(); i < base.size(); ++i)
    if (base[i] != '.' && (base[i] < '0' || base[i] > '9')) return false;
  return true;
}

std::string find_library_in_root(const std::string& root, const std::string& soname) {
  // The directories Debian's, Fedora's and Alpine's loaders search by default.
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib",
                          "/lib", "/usr/local/lib"}) {
    const std::string p = root + dir + "/" + soname;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return p;
  }
  return "";
}

std::vector<ExeProcess> scan_executables(const std::string& proc_root) {
  std::vector<ExeProcess> out;
  DIR* d = opendir(proc_root.c_str());
  if (!d) return out;
  const int self = getpid();
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    ExeProcess p;
    p.pid = std::atoi(e->d_name);
    if (p.pid == self && proc_root == "/proc") continue;
    p.exe = process_exe(p.pid, proc_root);
    if (p.exe.empty()) continue;
    p.root = process_root(p.pid, proc_root);
    // The kernel's exe link stats the executed file itself; a plain symlink (a fake
    // proc root) through the process's root.
    struct stat st {};
    if (::stat((proc_root + "/" + e->d_name + "/exe").c_str(), &st) != 0 &&
        (p.root.empty() || ::stat(p.host_path().c_str(), &st) != 0))
      continue;
    p.dev = st.st_dev;
    p.ino = st.st_ino;
    out.push_back(std::move(p));
  }
  closedir(d);
  return out;
}

namespace {

bool is_hex64(const std::string& s, size_t at) {
  if (s.size() < at + 64) return false;
  for (size_t i = at; i < at + 64; ++i)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return s.size() == at + 64 || !((s[at + 64] >= '0' && s[at + 64] <= '9') || (s[at + 64] >= 'a' && s[at + 64] <= 'f'));
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

/// The container identity of one cgroup path ("" id when none).
CgroupInfo parse_path(const std::string& path) {
  CgroupInfo c;
  const auto parts = split(path, '/');
  for (size_t k = 0; k < parts.size(); ++k) {
    std::string p = parts[k];
    // Pod: "pod<uid>" (cgroupfs) or "kubepods[-qos]-pod<uid with _>.slice" (systemd).
    if (p.size() > 6 && p.compare(p.size() - 6, 6, ".slice") == 0) {
      auto pos = p.rfind("-pod");
      if (pos != std::string::npos && p.rfind("kubepods", 0) == 0) {
        c.pod_uid = p.substr(pos + 4, p.size() - 6 - pos - 4);
        for (auto& ch : c.pod_uid)
          if (ch == '_') ch = '-';
      }
      continue;
    }
    if (p.rfind("pod", 0) == 0 && p.size() == 3 + 36 && k > 0) {
      c.pod_uid = p.substr(3);
      continue;
    }
    if (p.size() > 6 && p.compare(p.size() - 6, 6, ".scope") == 0) p.resize(p.size() - 6);
    struct Prefix {
      const char* text;
      const char* runtime;
    };
    for (const auto& pre : {Prefix{"cri-containerd-", "containerd"}, Prefix{"crio-", "crio"},
                            Prefix{"docker-", "docker"}, Prefix{"libpod-", "podman"}, Prefix{"", ""}}) {
      const size_t n = std::strlen(pre.text);
      if (p.compare(0, n, pre.text) != 0 || !is_hex64(p, n) || p.size() != n + 64) continue;
      c.container_id = p.substr(n);
      c.runtime = pre.runtime;
      if (c.runtime.empty() && k > 0 && parts[k - 1] == "docker") c.runtime = "docker";
      break;
    }
  }
  if (c.container_id.empty()) return CgroupInfo{};
  c.path = path;
  return c;
}

}  // namespace

CgroupInfo parse_cgroup(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  CgroupInfo v1;
  while (std::getline(in, line)) {
    auto a = line.find(':');
    if (a == std::string::npos) continue;
    auto b = line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    CgroupInfo c = parse_path(path);
    if (c.container_id.empty()) continue;
    if (line.compare(0, a, "0") == 0 && controllers.empty()) return c;  // cgroup v2: the one hierarchy
    if (v1.container_id.empty()) v1 = c;
  }
  return v1;
}

CgroupInfo process_cgroup(int pid, const std::string& proc_root) {
  std::ifstream f(proc_root + "/" + std::to_string(pid) + "/cgroup");
  std::stringstream s;
  s << f.rdbuf();
  return parse_cgroup(s.str());
}

PodIdentity pod_identity(const std::string& pod_uid, const std::string& container_id, const std::string& logs_root) {
  PodIdentity id;
  if (pod_uid.empty()) return id;
  std::string pod_dir;
  if (DIR* d = opendir((logs_root + "/pods").c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;  // <namespace>_<pod>_<uid>
      const std::string suffix = "_" + pod_uid;
      if (n.size() <= suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
      const std::string nspod = n.substr(0, n.size() - suffix.size());
      auto us = nspod.find('_');
      if (us == std::string::npos) continue;
      id.namespace_ = nspod.substr(0, us);
      id.pod = nspod.substr(us + 1);
      pod_dir = logs_root + "/pods/" + n;
      break;
    }
    closedir(d);
  }
  if (pod_dir.empty()) return id;
  // The container: its log link names the id; else the pod's only container directory.
  if (!container_id.empty())
    if (DIR* d = opendir((logs_root + "/containers").c_str())) {
      const std::string prefix = id.pod + "_" + id.namespace_ + "_", suffix = "-" + container_id + ".log";
      while (dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n.size() > prefix.size() + suffix.size() && n.compare(0, prefix.size(), prefix) == 0 &&
            n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
          id.container = n.substr(prefix.size(), n.size() - prefix.size() - suffix.size());
          break;
        }
      }
      closedir(d);
    }
  if (id.container.empty())
    if (DIR* d = opendir(pod_dir.c_str())) {
      std::vector<std::string> dirs;
      while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') dirs.push_back(e->d_name);
      closedir(d);
      if (dirs.size() == 1) id.container = dirs[0];
    }
  return id;
}

namespace {

/// Field `n` (1-based, as in proc(5)) of PROC/PID/stat; "" when gone.
std::string stat_field(int pid, int n, const std::string& proc_root) {
  std::ifstream f(proc_root + "/" + std::to_string(pid) + "/stat");
  std::string all;
  std::getline(f, all);
  auto close = all.rfind(')');  // comm may hold spaces and parentheses
  if (close == std::string::npos) return "";
  std::istringstream in(all.substr(close + 2));
  std::string v;
  for (int i = 3; i <= n && (in >> v); ++i) {
  }
  return v;
}

std::vector<std::string> cmdline(int pid, const std::string& proc_root) {
  return read_cmdline(proc_root + "/" + std::to_string(pid));
}

}  // namespace

ContainerLabels resolve_container_labels(int pid, const std::string& proc_root, const std::string& logs_root,
                                         const std::string& docker_root) {
  ContainerLabels l;
  const CgroupInfo c = process_cgroup(pid, proc_root);
  if (c.container_id.empty()) return l;
  if (!c.pod_uid.empty()) {
    const PodIdentity id = pod_identity(c.pod_uid, c.container_id, logs_root);
    l.pod = id.pod;
    l.namespace_ = id.namespace_;
    l.container = id.container;
  }
  if (l.container.empty() && c.runtime == "podman") {
    // podman's monitor, conmon, is the container process's parent: `conmon ... -n NAME`.
    const int ppid = std::atoi(stat_field(pid, 4, proc_root).c_str());
    const auto argv = ppid > 0 ? cmdline(ppid, proc_root) : std::vector<std::string>{};
    if (!argv.empty() && argv[0].size() >= 6 && argv[0].compare(argv[0].size() - 6, 6, "conmon") == 0)
      for (size_t i = 1; i + 1 < argv.size(); ++i)
        if (argv[i] == "-n" || argv[i] == "--name") l.container = argv[i + 1];
  }
  if (l.container.empty() && c.runtime == "docker") {
    std::ifstream f(docker_root + "/containers/" + c.container_id + "/config.v2.json");
    std::string json((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string key = "\"Name\":\"/";
    if (auto at = json.find(key); at != std::string::npos) {
      auto end = json.find('"', at + key.size());
      if (end != std::string::npos) l.container = json.substr(at + key.size(), end - at - key.size());
    }
  }
  if (l.container.empty()) l.container = c.container_id.substr(0, 12);
  return l;
}

namespace {

constexpr auto kProcessLabelsKeep = std::chrono::minutes(10);

struct LabelCache {
  std::mutex mu;
  std::string logs_root = "/var/log";
  struct Entry {
    std::string start;  ///< start time (proc(5) stat field 22): tells a reused PID apart
    ContainerLabels labels;
    std::chrono::steady_clock::time_point alive;  ///< last seen running
  };
  std::map<int, Entry> by_pid;
  std::chrono::steady_clock::time_point swept;
};

LabelCache& cache() {
  static LabelCache c;
  return c;
}

}  // namespace

void set_pod_logs_root(const std::string& root) {
  std::lock_guard<std::mutex> lock(cache().mu);
  cache().logs_root = root;
}

ContainerLabels container_labels(int pid) {
  auto& c = cache();
  const std::string start = stat_field(pid, 22, "/proc");
  const auto now = std::chrono::steady_clock::now();
  std::string logs;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (now - c.swept > std::chrono::minutes(1)) {
      c.swept = now;
      for (auto it = c.by_pid.begin(); it != c.by_pid.end();)
        it = now - it->second.alive > kProcessLabelsKeep ? c.by_pid.erase(it) : std::next(it);
    }
    auto it = c.by_pid.find(pid);
    if (it != c.by_pid.end() && (start.empty() || start == it->second.start)) {
      if (!start.empty()) it->second.alive = now;
      return it->second.labels;
    }
    if (start.empty()) return {};  // gone before it was ever seen
    logs = c.logs_root;
  }
  ContainerLabels l = resolve_container_labels(pid, "/proc", logs);
  std::lock_guard<std::mutex> lock(c.mu);
  c.by_pid[pid] = {start, l, now};
  return l;
}

void remember_container_labels(int pid) { (void)container_labels(pid); }

bool selector_matches(const config::Selector& sel, const CgroupInfo& c, const ContainerLabels& l,
                      const std::string& exe) {
  auto glob = [](const std::string& pattern, const std::string& v) {
    return pattern.empty() || fnmatch(pattern.c_str(), v.c_str(), 0) == 0;
  };
  if (!glob(sel.executable, exe)) return false;
  const bool in_container = !sel.container.empty() || !sel.cgroup.empty() || !sel.namespace_.empty() ||
                            !sel.pod.empty();
  if (!in_container) return true;
  if (c.container_id.empty()) return false;
  const bool id = sel.container.size() >= 12 && c.container_id.compare(0, sel.container.size(), sel.container) == 0;
  return (id || glob(sel.container, l.container)) && glob(sel.cgroup, c.path) && glob(sel.namespace_, l.namespace_) &&
         glob(sel.pod, l.pod);
}

}  // namespace insa::process
