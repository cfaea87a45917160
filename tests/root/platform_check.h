// SPDX-License-Identifier: Apache-2.0
/// @file platform_check.h
/// Shared by the platform tests (C++ platform: platform_test.cpp, Python platform:
/// python_platform_test.cpp): the seed's 30 families, reading the platform's truth files
/// and picking series out of a scrape.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iostream>
#include <fstream>
#include <set>
#include <sstream>

#include "harness.h"

namespace insa::testing {

/// The seed catalogue: family → type. Label names are checked through the series keys,
/// which the truth files write in the seed's label order.
inline const std::map<std::string, std::string> kSeedFamilies{
    {"insa_agent_requests_total", "counter"},
    {"insa_agent_request_duration_seconds", "histogram"},
    {"insa_agent_request_size_bytes", "histogram"},
    {"insa_agent_response_size_bytes", "histogram"},
    {"insa_cache_hits_total", "counter"},
    {"insa_cache_misses_total", "counter"},
    {"insa_cache_size_entries", "gauge"},
    {"insa_cache_evictions_total", "counter"},
    {"insa_message_bus_messages_total", "counter"},
    {"insa_message_bus_queue_depth", "gauge"},
    {"insa_message_bus_processing_duration_seconds", "histogram"},
    {"insa_worker_health_status", "gauge"},
    {"insa_worker_active_requests", "gauge"},
    {"insa_worker_queue_size", "gauge"},
    {"insa_worker_restarts_total", "counter"},
    {"insa_retry_attempts_total", "counter"},
    {"insa_retry_success_total", "counter"},
    {"insa_circuit_breaker_state", "gauge"},
    {"insa_circuit_breaker_transitions_total", "counter"},
    {"insa_dead_letter_queue_size", "gauge"},
    {"insa_dead_letter_replay_total", "counter"},
    {"insa_database_operations_total", "counter"},
    {"insa_database_operation_duration_seconds", "histogram"},
    {"insa_database_connection_pool_size", "gauge"},
    {"insa_database_errors_total", "counter"},
    {"insa_active_sessions_total", "gauge"},
    {"insa_session_duration_seconds", "histogram"},
    {"insa_session_messages_total", "counter"},
    {"insa_session_cleanup_total", "counter"},
    {"insa_system_info", "gauge"},
};

/// Series of one family: "name{labels}" (or "name") → value.
inline Samples family_of(const Samples& s, const std::string& name) {
  Samples out;
  for (auto it = s.lower_bound(name); it != s.end() && it->first.compare(0, name.size(), name) == 0; ++it)
    if (it->first.size() == name.size() || it->first[name.size()] == '{') out.insert(*it);
  return out;
}

/// "name{a=\"x\"}" → "a=\"x\"" (empty for a series without labels).
inline std::string labels_of(const std::string& key) {
  auto b = key.find('{');
  return b == std::string::npos ? "" : key.substr(b + 1, key.size() - b - 2);
}

inline std::string with_suffix(const std::string& family, const std::string& suffix, const std::string& labels) {
  return family + suffix + (labels.empty() ? "" : "{" + labels + "}");
}

/// Cumulative bucket counts of one histogram series, by `le` parsed as a number (the
/// exposition may spell a bound 1e+05 or 100000); +Inf last.
inline std::map<double, double> buckets_of(const Samples& got, const std::string& family, const std::string& labels) {
  std::map<double, double> out;
  const std::string prefix = family + "_bucket{" + (labels.empty() ? "" : labels + ",") + "le=\"";
  for (auto it = got.lower_bound(prefix); it != got.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    std::string le = it->first.substr(prefix.size());
    le = le.substr(0, le.find('"'));
    out[le == "+Inf" ? INFINITY : std::stod(le)] = it->second;
  }
  return out;
}

/// Timed samples may end later than planned when the machine is busy, never earlier: a
/// sleep lasts at least its time and the kernel measures from inside the call. Up to this
/// many samples of one series may land in a later bucket than planned (reported, not
/// failed); the platform runs SCHED_RR, so in practice this is 0.
inline constexpr double kLateAllowance = 2;

/// True once `c` has exited; does not reap it, so Child::wait() still gets the status.
inline bool exited(const Child& c) {
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(c.pid()), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0;
}

/// Kills a process group on scope exit (run_platform.sh and the workers it started).
struct GroupKiller {
  pid_t pgid;
  ~GroupKiller() {
    if (pgid > 0) kill(-pgid, SIGKILL);
  }
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

/// The workload's truth: counters and samples summed over every file; gauges from the
/// last instance of the program that owns them (files read in instance order).
struct PlatformTruth {
  Truth sum;
  Samples final_gauges;
};

inline PlatformTruth read_platform_truth(const std::string& dir, const std::set<std::string>& gauges) {
  std::vector<std::string> files;
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".truth") files.push_back(e.path().string());
  // <program>.<n>.truth: numeric instance order within a program.
  std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
    auto split = [](const std::string& f) {
      auto stem = fs::path(f).stem().string();  // program.n
      auto dot = stem.rfind('.');
      long n = dot == std::string::npos ? 0 : std::strtol(stem.c_str() + dot + 1, nullptr, 10);
      return std::make_pair(stem.substr(0, dot), n);
    };
    return split(a) < split(b);
  });
  PlatformTruth t;
  t.sum = read_truth(files);
  for (const auto& f : files)
    for (const auto& [k, v] : read_truth({f}).values)
      if (gauges.count(k.substr(0, k.find('{')))) t.final_gauges[k] = v;
  return t;
}

/// How a histogram's buckets are checked against its truth samples.
enum class BucketCheck {
  CountOnly,  ///< measured-only values: the exact count
  Exact,      ///< planned values (sizes): every bucket exactly
  Timed,      ///< planned times: a sample may land in a later bucket (busy machine), never earlier
};

/// Asserts one histogram family: the same label sets as the truth, exact counts, and the
/// buckets as `how` says.
inline void check_histogram(const Samples& got, const std::map<std::string, std::vector<double>>& observed,
                            const std::string& name, const std::vector<double>& le,
                            const std::function<BucketCheck(const std::string&)>& how) {
  ASSERT_FALSE(le.empty()) << name;
  std::set<std::string> want_series, have_series;
  for (const auto& [k, samples] : observed)
    if (k.compare(0, name.size(), name) == 0 && (k.size() == name.size() || k[name.size()] == '{'))
      want_series.insert(labels_of(k));
  for (const auto& [k, v] : family_of(got, name + "_count")) have_series.insert(labels_of(k));
  EXPECT_FALSE(want_series.empty()) << "the workload never exercised " << name;
  EXPECT_EQ(have_series, want_series) << name;
  for (const auto& labels : want_series) {
    const std::vector<double>& samples = observed.at(with_suffix(name, "", labels));
    const std::string count_key = with_suffix(name, "_count", labels);
    ASSERT_TRUE(got.count(count_key)) << count_key;
    EXPECT_EQ(got.at(count_key), samples.size()) << count_key;
    const BucketCheck c = how(labels);
    if (c == BucketCheck::CountOnly) continue;
    auto want = expected_buckets(samples, le);
    auto have = buckets_of(got, name, labels);
    ASSERT_EQ(have.size(), le.size() + 1) << name << "{" << labels << "}: bounds differ from the config";
    double late = 0;
    size_t i = 0;
    for (const auto& [bound, n] : have) {
      const std::string at = name + "{" + labels + "} le=" + le_str(bound);
      EXPECT_EQ(bound, i < le.size() ? le[i] : INFINITY) << at;
      if (c == BucketCheck::Exact) {
        EXPECT_EQ(n, want[i]) << at;
      } else {
        EXPECT_LE(n, want[i]) << at << ": a sample measured shorter than planned";
        late = std::max(late, want[i] - n);
      }
      ++i;
    }
    EXPECT_LE(late, kLateAllowance) << name << "{" << labels << "}: samples far later than planned";
    if (late > 0)
      std::cerr << "note: " << late << " sample(s) of " << name << "{" << labels << "} ended later than planned\n";
  }
}

}  // namespace insa::testing
