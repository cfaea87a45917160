// SPDX-License-Identifier: Apache-2.0
/// @file Shared helpers of the root tests: run the real exporter and real
/// programs, scrape /metrics over HTTP, parse exposition text and the demo
/// programs' ground-truth files. Header-only so each test file stays standalone.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace insa::testing {

inline std::string source_dir() { return INSA_SOURCE_DIR; }
inline std::string binary_dir() { return INSA_BINARY_DIR; }

/// Root tests never skip: CI runs as root, so missing privilege is a failure.
inline void require_root() {
  ASSERT_EQ(geteuid(), 0u) << "root tests need root (CI runs them as root); run: sudo " << binary_dir()
                           << "/insa_root_tests";
}

/// A child process; killed (SIGKILL) and reaped on destruction if still running.
class Child {
 public:
  Child() = default;
  /// Starts argv[0] with args; stdout/stderr go to `log` (appended) when given.
  static Child spawn(const std::vector<std::string>& argv, const std::string& log = "") {
    Child c;
    c.pid_ = fork();
    if (c.pid_ == 0) {
      setpgid(0, 0);
      if (!log.empty()) {
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::vector<char*> a;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execv(a[0], a.data());
      _exit(127);
    }
    return c;
  }
  Child(Child&& o) noexcept : pid_(o.pid_), status_(o.status_) { o.pid_ = -1; }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(status_, o.status_);
    return *this;
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  /// Waits for exit; returns the wait status.
  int wait() {
    if (pid_ > 0) {
      waitpid(pid_, &status_, 0);
      pid_ = -1;
    }
    return status_;
  }
  void signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }
  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

/// Sends `request` as is to 127.0.0.1:port and returns the whole response (read to EOF);
/// "" when nothing listens.
inline std::string http_raw(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  (void)!write(fd, request.data(), request.size());
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  return resp;
}

/// Plain HTTP GET on 127.0.0.1; returns {status, body}; status 0 when unreachable.
inline std::pair<int, std::string> http_get(int port, const std::string& path) {
  const std::string resp =
      http_raw(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  auto sp = resp.find(' ');
  auto body = resp.find("\r\n\r\n");
  if (sp == std::string::npos || body == std::string::npos) return {0, ""};
  return {std::atoi(resp.c_str() + sp + 1), resp.substr(body + 4)};
}

/// Samples of an exposition text: "name{a=\"x\",b=\"y\"}" → value (labels as written).
using Samples = std::map<std::string, double>;

inline Samples parse_exposition(const std::string& text) {
  Samples out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    std::string v = line.substr(sp + 1);
    out[line.substr(0, sp)] = v == "+Inf" ? INFINITY : v == "-Inf" ? -INFINITY : std::stod(v);
  }
  return out;
}

/// Ground truth written by the demo programs (tests/workers/PROBES.md).
struct Truth {
  Samples values;                                        ///< counters and gauges
  std::map<std::string, std::vector<double>> observed;  ///< histogram samples by series
};

/// Reads and sums truth files (counters and observations add up across files).
inline Truth read_truth(const std::vector<std::string>& files) {
  Truth t;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      if (line.rfind("observe ", 0) == 0) {
        auto sp = line.rfind(' ');
        t.observed[line.substr(8, sp - 8)].push_back(std::stod(line.substr(sp + 1)));
        continue;
      }
      auto sp = line.rfind(' ');
      t.values[line.substr(0, sp)] += std::stod(line.substr(sp + 1));
    }
  }
  return t;
}

/// Expected cumulative bucket counts of `samples` for bounds `le` (+Inf appended).
inline std::vector<uint64_t> expected_buckets(const std::vector<double>& samples, const std::vector<double>& le) {
  std::vector<uint64_t> out(le.size() + 1, 0);
  for (double s : samples)
    for (size_t i = 0; i <= le.size(); ++i)
      if (i == le.size() || s <= le[i]) ++out[i];
  return out;
}

/// Formats a bucket bound the way the exposition shows it ("0.005", "50", "+Inf").
inline std::string le_str(double b) {
  if (std::isinf(b)) return "+Inf";
  std::ostringstream o;
  o << b;
  return o.str();
}

/// The exporter under test, on its own port, with its log in a temp file.
class Exporter {
 public:
  /// `wrapper`: a command that runs the exporter (e.g. setpriv with other credentials).
  Exporter(const std::string& config, int port, const std::vector<std::string>& extra_args = {},
           const std::vector<std::string>& wrapper = {})
      : port_(port) {
    log_ = "/tmp/insa-root-exporter-" + std::to_string(port) + ".log";
    std::remove(log_.c_str());
    std::vector<std::string> argv = wrapper;
    for (const std::string& a : {binary_dir() + "/insa-exporter", std::string("--config.file"), config,
                                 std::string("--web.listen-address"), "127.0.0.1:" + std::to_string(port),
                                 std::string("--log.level"), std::string("debug")})
      argv.push_back(a);
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    child_ = Child::spawn(argv, log_);
  }
  /// An exporter built with -DINSA_SANITIZE=thread (build-tsan) reports data races in
  /// its log: any report fails the test that ran it.
  ~Exporter() {
    const std::string l = log();
    if (l.find("WARNING: ThreadSanitizer") != std::string::npos) ADD_FAILURE() << "ThreadSanitizer in the exporter:\n" << l;
  }
  Exporter(Exporter&&) = default;
  /// Waits until /-/ready answers 200; false after `seconds`.
  bool wait_ready(int seconds = 20) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (http_get(port_, "/-/ready").first == 200) return true;
      if (!child_.running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  Samples scrape() const { return parse_exposition(http_get(port_, "/metrics").second); }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  int port() const { return port_; }
  Child& child() { return child_; }

 private:
  int port_;
  std::string log_;
  Child child_;
};

/// A whole file ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// POST /-/reload (the exporter runs with --web.enable-lifecycle); the whole response.
inline std::string post_reload(int port) {
  return http_raw(port, "POST /-/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

/// Entries of a directory (e.g. /proc/PID/fd), "." and ".." left out.
inline size_t count_entries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

/// A process's fds that are BPF programs, maps or links (anon_inode:bpf-prog, ...), by
/// kind: bpftool here cannot say which process holds a program, and other tests load BPF too.
inline std::map<std::string, size_t> bpf_fds(pid_t pid) {
  std::map<std::string, size_t> n;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char buf[256];
      ssize_t len = readlink((dir + "/" + e->d_name).c_str(), buf, sizeof buf - 1);
      if (len <= 0) continue;
      std::string target(buf, static_cast<size_t>(len));
      if (target.rfind("anon_inode:bpf", 0) == 0) ++n[target];
    }
    closedir(d);
  }
  return n;
}

/// tests/root/configs/request.yaml with its paths into the build tree made absolute, so a
/// copy works from any directory.
inline std::string request_yaml() {
  std::string text = slurp(source_dir() + "/tests/root/configs/request.yaml");
  const std::string rel = "../../../build/";
  for (auto at = text.find(rel); at != std::string::npos; at = text.find(rel, at))
    text.replace(at, rel.size(), binary_dir() + "/");
  return text;
}

/// Waits until `pred` holds (true) or `seconds` pass (false).
template <typename F>
bool eventually(F pred, int seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

/// Runs a program to completion; returns {wait status, stdout}.
inline std::pair<int, std::string> run_capture(const std::vector<std::string>& argv) {
  std::string out_file = "/tmp/insa-root-out-" + std::to_string(getpid()) + ".txt";
  std::remove(out_file.c_str());
  Child c = Child::spawn(argv, out_file);
  int st = c.wait();
  std::ifstream in(out_file);
  std::stringstream s;
  s << in.rdbuf();
  std::remove(out_file.c_str());
  return {st, s.str()};
}

}  // namespace insa::testing
