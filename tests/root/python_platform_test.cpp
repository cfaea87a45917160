// SPDX-License-Identifier: Apache-2.0
// Root test of issue 10: the Python demo platform (tests/workers/python: bus, two agents,
// orchestrator, Python's sqlite3) runs a fixed seeded workload on Debian's
// /usr/bin/python3.11 under the exporter configured by the top-level probes-python.yaml.
// Every one of the 30 seed families must equal the processes' own ground truth: counters
// exactly, histogram counts exactly with each planned value in its bucket, gauges exactly
// at the end, worker health while running and after exit, restarts after a scheduled exit
// and after a SIGKILL. The workers' deterministic output is the same with and without the
// exporter.
//
// Isolation: other sessions may run the same scripts on this machine. The test runs private
// copies of the scripts and rewrites probes-python.yaml's `script:` (path-component
// suffixes) to their absolute paths, so only this test's processes match.
#include <sys/utsname.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>

#include "config/config.h"
#include "harness.h"
#include "platform_check.h"

namespace insa::testing {
namespace {
namespace fs = std::filesystem;

constexpr int kPort = 19430;
constexpr const char* kPython = "/usr/bin/python3.11";
/// Every process (restarts too) waits this long before its first work: the exporter hooks
/// a Python process started after it at its process scan, which took up to 4.4 s on a loaded
/// machine (see the README's Python platform section).
constexpr const char* kStartDelayMs = "7000";

const std::vector<std::pair<std::string, std::string>> kWorkers{{"agent_message_bus", "bus"},
                                                                {"sizing_agent_worker", "sizing"},
                                                                {"crm_agent_worker", "crm"},
                                                                {"orchestrator_agent_optimized", "orchestrator"}};

/// Truth lines of a file without comments (which carry the pid).
std::string truth_body(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string line, out;
  while (std::getline(in, line))
    if (!line.empty() && line[0] != '#') out += line + "\n";
  return out;
}

class PythonPlatform : public ::testing::Test {
 protected:
  void SetUp() override {
    require_root();
    ASSERT_TRUE(fs::exists(kPython)) << kPython << " is missing: Debian's python3.11 is part of this test "
                                     << "(tests/install-deps.sh installs it)";
    // Short paths: a Python probe matches a file path of at most 63 bytes.
    work_ = "/tmp/insa-pyp-" + std::to_string(kPort);
    fs::remove_all(work_);
    scripts_ = work_ + "/s";
    fs::create_directories(scripts_);
    for (const auto& e : fs::directory_iterator(source_dir() + "/tests/workers/python"))
      if (e.path().extension() == ".py")
        fs::copy_file(e.path(), scripts_ + "/" + e.path().filename().string());
    std::string cfg = read_file(source_dir() + "/probes-python.yaml");
    ASSERT_NE(cfg.find("source: tests/workers/python/"), std::string::npos);
    replace_all(cfg, "source: tests/workers/python/", "source: " + scripts_ + "/");
    replace_all(cfg, "script: ", "script: " + scripts_ + "/");
    config_ = work_ + "/probes-python.yaml";
    std::ofstream(config_) << cfg;
    auto parsed = config::load_config(config_);
    ASSERT_TRUE(parsed) << parsed.error().message;
    cfg_ = std::move(*parsed);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(work_);
  }

  /// run_platform.sh MODE with the private scripts; SCHED_RR where allowed (as the C++
  /// platform test: planned sleeps then end on time on a loaded machine).
  Child platform(const std::string& mode, const std::string& run_dir, std::vector<std::string> args,
                 const std::string& log) {
    std::vector<std::string> argv{source_dir() + "/tests/workers/run_platform.sh", mode, "--run-dir", run_dir, "--script-dir",
                                  scripts_, "--python", kPython};
    argv.insert(argv.end(), args.begin(), args.end());
    if (auto [rt, out] = run_capture({"/usr/bin/chrt", "-r", "10", "/bin/true"}); WIFEXITED(rt) && WEXITSTATUS(rt) == 0)
      argv.insert(argv.begin(), {"/usr/bin/chrt", "-r", "10"});
    return Child::spawn(argv, log);
  }

  const config::MetricDef& metric(const std::string& name) const {
    const auto* m = cfg_.metric(name);
    EXPECT_NE(m, nullptr) << name << " not declared in probes-python.yaml";
    static const config::MetricDef none;
    return m ? *m : none;
  }

  void dump_exporter_log(const Exporter& exp) {
    std::istringstream in(exp.log());
    std::string line, kept;
    while (std::getline(in, line))
      if (line.find("debug libbpf") == std::string::npos) kept += line + "\n";
    ADD_FAILURE() << "exporter log (without libbpf debug lines):\n" << kept.substr(0, 20000);
  }

  std::string work_, scripts_, config_;
  config::Config cfg_;
};

/// Waits until the exporter serves /metrics. Not /-/ready: that stays 503 until every probe
/// is attached, and a Python probe attaches when a process of its script runs.
bool wait_serving(Exporter& exp, int seconds = 20) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (http_get(exp.port(), "/metrics").first == 200) return true;
    if (!exp.child().running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

/// Waits for `c` to exit (at most `seconds`); true if it did.
bool wait_exit(const Child& c, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!exited(c) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return exited(c);
}

TEST_F(PythonPlatform, AllThirtyFamiliesEqualGroundTruthAndOutputUnchanged) {
  // Fixed workload: 900 queries at 60/s (both outage windows, breaker trips, DLQ replays,
  // TTL and capacity evictions, config_reload broadcasts, constraint and missing-table SQL
  // errors), and the scheduled restart of crm_agent_worker (exit code 3 after 3 s of work;
  // its successor waits the start delay too, while tasks queue up on the bus, so the
  // orchestrator lingers 5 s for the queues to drain).
  const std::vector<std::string> workload{"--seed", "5", "--requests", "900", "--rate", "60", "--restart-after", "3",
                                          "--start-delay-ms", kStartDelayMs, "--linger-ms", "5000"};

  // ---- the same workload without the exporter: the reference output ----
  const std::string bare = work_ + "/bare";
  {
    Child p = platform("test", bare, workload, work_ + "/bare.log");
    GroupKiller killer{p.pid()};
    ASSERT_TRUE(wait_exit(p, 180)) << "platform without exporter did not finish\n" << read_file(work_ + "/bare.log");
    int st = p.wait();
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(work_ + "/bare.log");
  }

  Exporter exp(config_, kPort);
  ASSERT_TRUE(wait_serving(exp)) << exp.log();
  const std::string run = work_ + "/run";
  const std::string platform_log = work_ + "/platform.log";
  Child p = platform("test", run, workload, platform_log);
  GroupKiller killer{p.pid()};

  // Health while running: every worker is 1 in some scrape.
  bool all_healthy = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (!exited(p) && std::chrono::steady_clock::now() < deadline) {
    if (!all_healthy) {
      Samples s = exp.scrape();
      all_healthy = std::all_of(kWorkers.begin(), kWorkers.end(), [&](const auto& w) {
        return s["insa_worker_health_status{worker_name=\"" + w.first + "\",worker_type=\"" + w.second + "\"}"] == 1;
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(exited(p)) << "platform did not finish in 180 s\n" << read_file(platform_log);
  int st = p.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(platform_log);
  EXPECT_TRUE(all_healthy) << "no scrape showed all four Python workers healthy while the platform ran";

  // ---- worker output unchanged: the deterministic processes' truth (orchestrator: cache,
  // retries, breaker, DLQ, messages; sizing agent: requests and messages; bus: queues) is
  // identical with and without the exporter, and every process ended as expected ----
  for (const std::string f : {"orchestrator_agent_optimized.1.truth", "sizing_agent_worker.1.truth",
                              "agent_message_bus.1.truth", "launcher.truth"})
    EXPECT_EQ(truth_body(run + "/truth/" + f), truth_body(bare + "/truth/" + f)) << f;

  // After exit: health 0 once the exit events are read (the series stay).
  Samples got;
  for (int i = 0; i < 50; ++i) {
    got = exp.scrape();
    auto h = family_of(got, "insa_worker_health_status");
    if (h.size() == kWorkers.size() && std::all_of(h.begin(), h.end(), [](const auto& kv) { return kv.second == 0; }))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string text = http_get(kPort, "/metrics").second;
  got = parse_exposition(text);

  std::set<std::string> gauge_families;
  for (const auto& [n, type] : kSeedFamilies)
    if (type == "gauge") gauge_families.insert(n);
  PlatformTruth t = read_platform_truth(run + "/truth", gauge_families);
  ASSERT_FALSE(t.sum.values.empty()) << "no truth files in " << run << "/truth";

  // ---- every seed family is exported with the seed's type ----
  for (const auto& [name, type] : kSeedFamilies)
    EXPECT_NE(text.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name << " " << type;

  // ---- health: one series per worker, 0 after exit ----
  for (const auto& [name, type] : kWorkers) {
    std::string key = "insa_worker_health_status{worker_name=\"" + name + "\",worker_type=\"" + type + "\"}";
    ASSERT_TRUE(got.count(key)) << key << "\n" << text;
    EXPECT_EQ(got.at(key), 0) << key;
  }
  EXPECT_EQ(family_of(got, "insa_worker_health_status").size(), kWorkers.size());

  // ---- counters: exactly the truth (restarts: launcher.truth, run_platform.sh's count) ----
  for (const auto& [name, type] : kSeedFamilies) {
    if (type != "counter") continue;
    Samples want = family_of(t.sum.values, name);
    Samples have = family_of(got, name);
    EXPECT_FALSE(want.empty()) << "the workload never exercised " << name;
    for (const auto& [k, v] : want) {
      ASSERT_TRUE(have.count(k)) << "missing " << k;
      // `timeout` is decided by the measured duration (> 100 ms; planned 150 ms slow, at
      // most 40 ms otherwise): a busy machine can only turn a success into a timeout.
      if (name == "insa_agent_requests_total" && k.find("status=\"timeout\"") != std::string::npos) {
        EXPECT_GE(have.at(k), v) << k;
        EXPECT_LE(have.at(k), v + kLateAllowance) << k;
        continue;
      }
      if (name == "insa_agent_requests_total" && k.find("status=\"success\"") != std::string::npos) {
        std::string tk = k;
        replace_all(tk, "\"success\"", "\"timeout\"");
        double moved = (have.count(tk) ? have.at(tk) : 0) - (want.count(tk) ? want.at(tk) : 0);
        EXPECT_EQ(have.at(k) + moved, v) << k;
        continue;
      }
      EXPECT_EQ(have.at(k), v) << k;
    }
    for (const auto& [k, v] : have)
      if (!want.count(k)) EXPECT_EQ(v, 0) << k << " is not in the truth";
  }
  // The scheduled restart happened and was seen with its reason.
  EXPECT_EQ(got["insa_worker_restarts_total{worker_name=\"crm_agent_worker\",reason=\"exit_code_3\"}"], 1);

  // ---- gauges: final values (every process ended; the last instance owns its series) ----
  for (const auto& name : gauge_families) {
    if (name == "insa_worker_health_status" || name == "insa_system_info") continue;
    Samples want = family_of(t.final_gauges, name);
    Samples have = family_of(got, name);
    EXPECT_FALSE(want.empty()) << "no truth for " << name;
    EXPECT_EQ(have, want) << name;
  }
  EXPECT_EQ(got.at("insa_active_sessions_total"), 0);
  EXPECT_EQ(got.at("insa_worker_active_requests{worker_name=\"crm_agent_worker\"}"), 0);
  EXPECT_EQ(got.at("insa_worker_active_requests{worker_name=\"sizing_agent_worker\"}"), 0);

  // ---- insa_system_info: static config plus the host's platform ----
  utsname u{};
  uname(&u);
  std::string sys = u.sysname;
  std::transform(sys.begin(), sys.end(), sys.begin(), [](unsigned char c) { return std::tolower(c); });
  EXPECT_EQ(family_of(got, "insa_system_info"),
            (Samples{{"insa_system_info{version=\"0.1.0\",environment=\"demo\",platform=\"" + sys + "-" + u.machine + "\"}",
                      1}}));

  // ---- histograms ----
  auto exact = [](const std::string&) { return BucketCheck::Exact; };
  auto timed = [](const std::string&) { return BucketCheck::Timed; };
  auto count_only = [](const std::string&) { return BucketCheck::CountOnly; };
  auto le = [&](const std::string& n) { return metric(n).buckets; };
  check_histogram(got, t.sum.observed, "insa_agent_request_duration_seconds",
                  le("insa_agent_request_duration_seconds"), timed);
  check_histogram(got, t.sum.observed, "insa_agent_request_size_bytes", le("insa_agent_request_size_bytes"), exact);
  // A failed request raises and is left out by the update's `if: exception == None`.
  check_histogram(got, t.sum.observed, "insa_agent_response_size_bytes", le("insa_agent_response_size_bytes"),
                  exact);
  check_histogram(got, t.sum.observed, "insa_message_bus_processing_duration_seconds",
                  le("insa_message_bus_processing_duration_seconds"), timed);
  // Only the report query has a planned duration (30 ms); the others are measured: count.
  check_histogram(got, t.sum.observed, "insa_database_operation_duration_seconds",
                  le("insa_database_operation_duration_seconds"), [](const std::string& l) {
                    return l == "operation=\"select\",table=\"deals\"" ? BucketCheck::Timed : BucketCheck::CountOnly;
                  });
  check_histogram(got, t.sum.observed, "insa_session_duration_seconds", le("insa_session_duration_seconds"),
                  count_only);

  // ---- the exporter's own view: every probe attached and used ----
  for (const auto& pr : cfg_.probes) {
    const std::string l = "{probe=\"" + pr.name + "\"}";
    EXPECT_EQ(got["insa_exporter_probe_attached" + l], 1) << pr.name;
    EXPECT_GT(got["insa_exporter_probe_events_total" + l], 0) << pr.name;
  }
  EXPECT_EQ(got["insa_exporter_label_overflow_total{metric=\"insa_database_operations_total\"}"], 0);
  if (HasFailure()) dump_exporter_log(exp);
}

// A Python worker killed by SIGKILL: run_platform.sh restarts it; the exporter shows the
// restart with reason SIGKILL, the worker healthy again, and the same restart count as the
// supervisor's own record.
TEST_F(PythonPlatform, KilledWorkerRestartCountedAndHealthy) {
  Exporter exp(config_, kPort + 1);
  ASSERT_TRUE(wait_serving(exp)) << exp.log();
  const std::string run = work_ + "/demo";
  Child p = platform("demo", run, {"--seed", "3", "--rate", "20", "--restart-after", "0"}, work_ + "/demo.log");
  GroupKiller killer{p.pid()};
  const std::string sizing_health = "insa_worker_health_status{worker_name=\"sizing_agent_worker\",worker_type=\"sizing\"}";
  const std::string killed = "insa_worker_restarts_total{worker_name=\"sizing_agent_worker\",reason=\"SIGKILL\"}";

  auto wait_for = [&](const std::function<bool(Samples&)>& ok, int seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      Samples s = exp.scrape();
      if (ok(s)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  ASSERT_TRUE(wait_for(
      [&](Samples& s) {
        return std::all_of(kWorkers.begin(), kWorkers.end(), [&](const auto& w) {
          return s["insa_worker_health_status{worker_name=\"" + w.first + "\",worker_type=\"" + w.second + "\"}"] == 1;
        });
      },
      30))
      << "the Python workers never all showed healthy\n" << read_file(work_ + "/demo.log");
  EXPECT_EQ(exp.scrape()[killed], 0);

  pid_t victim = std::stoi(read_file(run + "/sizing_agent_worker.pid"));
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  EXPECT_TRUE(wait_for([&](Samples& s) { return s[killed] == 1 && s[sizing_health] == 1; }, 20))
      << "no restart with reason SIGKILL and healthy successor seen\n" << read_file(work_ + "/demo.log");
  std::this_thread::sleep_for(std::chrono::seconds(2));

  // Stop the platform; the supervisor's record equals the exporter's count, and every
  // worker is 0 once its process is gone.
  ASSERT_EQ(run_capture({source_dir() + "/tests/workers/run_platform.sh", "stop", "--run-dir", run}).first, 0);
  ASSERT_TRUE(wait_exit(p, 30)) << read_file(work_ + "/demo.log");
  p.wait();
  Truth launcher = read_truth({run + "/truth/launcher.truth"});
  EXPECT_EQ(family_of(launcher.values, "insa_worker_restarts_total"), (Samples{{killed, 1}}));
  EXPECT_TRUE(wait_for(
      [&](Samples& s) {
        auto h = family_of(s, "insa_worker_health_status");
        return h.size() == kWorkers.size() &&
               std::all_of(h.begin(), h.end(), [](const auto& kv) { return kv.second == 0; });
      },
      10));
  Samples got = exp.scrape();
  EXPECT_EQ(family_of(got, "insa_worker_restarts_total"), (Samples{{killed, 1}}));
  if (HasFailure()) dump_exporter_log(exp);
}

}  // namespace
}  // namespace insa::testing
