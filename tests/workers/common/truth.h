// SPDX-License-Identifier: Apache-2.0
/// @file truth.h
/// Ground truth a demo program keeps about itself and writes when it exits.
///
/// Format (one fact per line, sorted, so the same seed gives the same file):
///   # comment lines start with '#'
///   insa_cache_hits_total{cache_type="orchestrator"} 37                  counter or gauge
///   observe insa_agent_request_duration_seconds{agent_type="x"} 0.007   one histogram sample
/// Counter lines appear only for label sets that occurred (a missing series means 0). Gauge
/// lines are the final value at exit and always appear. Histogram samples are the intended
/// value (e.g. the planned sleep), so each lands well inside one bucket.
///
/// This is the program's own bookkeeping for tests; it is not metrics code and no probe reads it.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace insa_demo {

/// Label set as ordered (name, value) pairs, written in the given order.
using Labels = std::vector<std::pair<std::string, std::string>>;

/// `name{a="x",b="y"}` with Prometheus escaping of label values.
inline std::string series(const std::string& name, const Labels& labels) {
  std::string s = name;
  if (labels.empty()) return s;
  s += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) s += ',';
    first = false;
    s += k;
    s += "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') s += '\\';
      if (c == '\n') {
        s += "\\n";
        continue;
      }
      s += c;
    }
    s += '"';
  }
  s += '}';
  return s;
}

/// Shortest decimal that round-trips, e.g. 0.007 or 20000.
inline std::string number(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// Thread-safe accumulator of counters, gauges and histogram samples.
class Truth {
 public:
  void add(const std::string& name, const Labels& labels, long long delta = 1) {
    std::lock_guard lock(mu_);
    counters_[series(name, labels)] += delta;
  }
  void set(const std::string& name, const Labels& labels, double value) {
    std::lock_guard lock(mu_);
    gauges_[series(name, labels)] = value;
  }
  void gauge_add(const std::string& name, const Labels& labels, double delta) {
    std::lock_guard lock(mu_);
    gauges_[series(name, labels)] += delta;
  }
  void observe(const std::string& name, const Labels& labels, double value) {
    std::lock_guard lock(mu_);
    samples_.push_back("observe " + series(name, labels) + " " + number(value));
  }
  void comment(const std::string& text) {
    std::lock_guard lock(mu_);
    comments_.push_back("# " + text);
  }
  long long counter(const std::string& name, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto it = counters_.find(series(name, labels));
    return it == counters_.end() ? 0 : it->second;
  }

  /// Writes to `path` + ".tmp" then renames, so a reader never sees half a file.
  /// Returns false (errno set) on failure. An empty path writes nothing.
  bool write(const std::string& path) {
    if (path.empty()) return true;
    std::lock_guard lock(mu_);
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) return false;
    for (const auto& c : comments_) std::fprintf(f, "%s\n", c.c_str());
    for (const auto& [k, v] : counters_)
      if (v != 0) std::fprintf(f, "%s %lld\n", k.c_str(), v);
    for (const auto& [k, v] : gauges_) std::fprintf(f, "%s %s\n", k.c_str(), number(v).c_str());
    std::vector<std::string> sorted = samples_;
    std::sort(sorted.begin(), sorted.end());
    for (const auto& s : sorted) std::fprintf(f, "%s\n", s.c_str());
    bool ok = std::fflush(f) == 0;
    ok = (std::fclose(f) == 0) && ok;
    return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
  }

 private:
  std::mutex mu_;
  std::map<std::string, long long> counters_;
  std::map<std::string, double> gauges_;
  std::vector<std::string> samples_;
  std::vector<std::string> comments_;
};

}  // namespace insa_demo
