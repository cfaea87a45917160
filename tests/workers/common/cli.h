// SPDX-License-Identifier: Apache-2.0
/// @file cli.h
/// Minimal `--name value` / `--name=value` / `--flag` parsing and stop-signal handling shared
/// by the demo programs (they stay dependency-free so they build anywhere).
#pragma once

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>

namespace insa_demo {

/// Parsed command line; unknown options are an error naming the option.
class Args {
 public:
  /// `flags` take no value; `options` take one. Exits with code 2 on a usage error.
  Args(int argc, char** argv, const std::set<std::string>& options,
       const std::set<std::string>& flags, const char* usage) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::printf("%s", usage);
        std::exit(0);
      }
      if (a.rfind("--", 0) != 0) fail(argv[0], "unexpected argument '" + a + "'", usage);
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (flags.count(name)) {
        values_[name] = has_value ? value : "1";
      } else if (options.count(name)) {
        if (!has_value) {
          if (i + 1 >= argc) fail(argv[0], "option --" + name + " needs a value", usage);
          value = argv[++i];
        }
        values_[name] = value;
      } else {
        fail(argv[0], "unknown option --" + name, usage);
      }
    }
  }
  bool has(const std::string& n) const { return values_.count(n) != 0; }
  std::string str(const std::string& n, const std::string& def) const {
    auto it = values_.find(n);
    return it == values_.end() ? def : it->second;
  }
  long long num(const std::string& n, long long def) const {
    auto it = values_.find(n);
    if (it == values_.end()) return def;
    char* end = nullptr;
    long long v = std::strtoll(it->second.c_str(), &end, 10);
    if (!end || *end) {
      std::fprintf(stderr, "--%s: '%s' is not an integer\n", n.c_str(), it->second.c_str());
      std::exit(2);
    }
    return v;
  }
  double real(const std::string& n, double def) const {
    auto it = values_.find(n);
    if (it == values_.end()) return def;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    if (!end || *end) {
      std::fprintf(stderr, "--%s: '%s' is not a number\n", n.c_str(), it->second.c_str());
      std::exit(2);
    }
    return v;
  }

 private:
  [[noreturn]] static void fail(const char* prog, const std::string& msg, const char* usage) {
    std::fprintf(stderr, "%s: %s\n%s", prog, msg.c_str(), usage);
    std::exit(2);
  }
  std::map<std::string, std::string> values_;
};

/// Set by SIGTERM/SIGINT; loops poll it and wind down so the truth file is still written.
inline std::atomic<bool> g_stop{false};

inline void on_stop_signal(int) { g_stop.store(true); }

/// Installs the SIGTERM/SIGINT handler (no SA_RESTART so blocking calls return EINTR)
/// and ignores SIGPIPE (a peer that went away is an error return, not a crash).
inline void install_stop_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

/// Sleeps until `deadline` in short slices; returns false if a stop was requested first.
inline bool sleep_until_or_stop(std::chrono::steady_clock::time_point deadline) {
  while (!g_stop.load()) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return true;
    auto slice = std::min<std::chrono::steady_clock::duration>(deadline - now,
                                                               std::chrono::milliseconds(20));
    std::this_thread::sleep_for(slice);
  }
  return false;
}

/// Sleeps exactly `ms` milliseconds (a simulated unit of work; not cut short by a stop).
inline void work_for_ms(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace insa_demo
