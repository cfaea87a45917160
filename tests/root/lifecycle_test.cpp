// SPDX-License-Identifier: Apache-2.0
// Root tests of process lifecycle (issue 4): insa_worker_health_status and
// insa_worker_restarts_total from the `workers:` list, a worker started after the exporter
// is attached automatically, and a binary replaced on disk (new inode) is attached again.
//
// Each test runs private copies of the worker binaries in its own /tmp directory, so
// processes other sessions start from build/tests/workers are neither counted nor seen.
#include <sys/stat.h>

#include <filesystem>
#include <functional>

#include "harness.h"

namespace insa::testing {
namespace {
namespace fs = std::filesystem;

std::string workers_dir() { return binary_dir() + "/tests/workers"; }

/// A fresh private directory /tmp/insa-lifecycle-<port>, removed when the test passed.
class TempDir {
 public:
  explicit TempDir(int port) : path_("/tmp/insa-lifecycle-" + std::to_string(port)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    if (!::testing::Test::HasFailure()) fs::remove_all(path_);
  }
  const std::string& path() const { return path_; }
  std::string copy(const std::string& name) const {
    fs::copy_file(workers_dir() + "/" + name, path_ + "/" + name);
    return path_ + "/" + name;
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ + "/" + name) << text;
    return path_ + "/" + name;
  }

 private:
  std::string path_;
};

/// Scrapes until `pred` holds (every 100 ms); returns the last scrape. Lifecycle state
/// comes from a /proc scan every second and exit events, so 5 s is ample.
Samples scrape_until(const Exporter& exp, const std::function<bool(const Samples&)>& pred, double seconds = 5) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  Samples s = exp.scrape();
  while (!pred(s) && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    s = exp.scrape();
  }
  return s;
}

double value(const Samples& s, const std::string& key) { return s.count(key) ? s.at(key) : -1; }

/// Series of the restarts family: "{worker_name=..,reason=..}" → value.
Samples restarts_of(const Samples& s) {
  Samples out;
  const std::string f = "insa_worker_restarts_total{";
  for (auto it = s.lower_bound(f); it != s.end() && it->first.compare(0, f.size(), f) == 0; ++it) out.insert(*it);
  return out;
}

const std::string kSizingHealth = "insa_worker_health_status{worker_name=\"sizing_agent_worker\",worker_type=\"sizing\"}";
const std::string kBusHealth = "insa_worker_health_status{worker_name=\"agent_message_bus\",worker_type=\"bus\"}";

std::string restarts_key(const std::string& worker, const std::string& reason) {
  return "insa_worker_restarts_total{worker_name=\"" + worker + "\",reason=\"" + reason + "\"}";
}

// Health 1 while running and 0 after exit (the series stays); restarts counted with the
// reason the previous instance ended: SIGKILL, then a clean exit with code 3; a final
// clean stop is not a restart.
TEST(Lifecycle, HealthAndRestartReasonsExact) {
  require_root();
  const int port = 19420;
  TempDir dir(port);
  const std::string bus = dir.copy("agent_message_bus");
  const std::string sizing = dir.copy("sizing_agent_worker");
  dir.copy("libinsa_bus.so");
  const std::string config = dir.write("lifecycle.yaml", R"(
metrics:
  - {name: insa_worker_queue_size, type: gauge, labels: [worker_name]}
workers:
  - {name: agent_message_bus, type: bus, binary: ./agent_message_bus}
  - {name: sizing_agent_worker, type: sizing, binary: ./sizing_agent_worker}
probes:
  - name: sizing_queue_size
    binary: ./sizing_agent_worker
    function: insa_demo::worker_queue_size
    metrics:
      - {metric: insa_worker_queue_size, set: $arg2, labels: {worker_name: $arg1:str32}}
)");
  Exporter exp(config, port);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();

  // Before any process: both series exist at 0, no restarts.
  Samples s = exp.scrape();
  EXPECT_EQ(value(s, kBusHealth), 0);
  EXPECT_EQ(value(s, kSizingHealth), 0);
  EXPECT_TRUE(restarts_of(s).empty());

  const std::string run = dir.path() + "/run";
  fs::create_directories(run);
  const std::string log = dir.path() + "/workers.log";
  auto start_sizing = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{"/usr/bin/env", "LD_LIBRARY_PATH=" + dir.path(), sizing, "--run-dir", run};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Child::spawn(argv, log);
  };
  Child b = Child::spawn({bus, "--run-dir", run}, log);
  Child w1 = start_sizing({});
  s = scrape_until(exp, [&](const Samples& x) { return value(x, kSizingHealth) == 1 && value(x, kBusHealth) == 1; });
  ASSERT_EQ(value(s, kBusHealth), 1) << exp.log();
  ASSERT_EQ(value(s, kSizingHealth), 1) << exp.log();

  // 1. SIGKILL: health 0; not yet a restart (no new instance).
  w1.signal(SIGKILL);
  w1.wait();
  s = scrape_until(exp, [&](const Samples& x) { return value(x, kSizingHealth) == 0; });
  EXPECT_EQ(value(s, kSizingHealth), 0);
  EXPECT_EQ(value(s, kBusHealth), 1);
  EXPECT_TRUE(restarts_of(s).empty());

  // 2. A new instance: one restart, reason SIGKILL. It exits cleanly with code 3 after 2.5 s.
  Child w2 = start_sizing({"--exit-after-s", "2.5", "--exit-code", "3"});
  s = scrape_until(exp, [&](const Samples& x) { return value(x, kSizingHealth) == 1; });
  EXPECT_EQ(value(s, kSizingHealth), 1);
  EXPECT_EQ(restarts_of(s), (Samples{{restarts_key("sizing_agent_worker", "SIGKILL"), 1}}));
  int st = w2.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 3) << "status " << st;
  s = scrape_until(exp, [&](const Samples& x) { return value(x, kSizingHealth) == 0; });
  EXPECT_EQ(value(s, kSizingHealth), 0);

  // 3. The next instance: a restart with reason exit_code_3.
  Child w3 = start_sizing({});
  s = scrape_until(exp, [&](const Samples& x) { return value(x, kSizingHealth) == 1; });
  EXPECT_EQ(value(s, kSizingHealth), 1);
  EXPECT_EQ(restarts_of(s), (Samples{{restarts_key("sizing_agent_worker", "SIGKILL"), 1},
                                     {restarts_key("sizing_agent_worker", "exit_code_3"), 1}}));

  // 4. Stopped cleanly (SIGTERM → exit 0) and not started again: health 0, no new restart.
  // Health is 1 as soon as the process exists; give it time to install its SIGTERM handler.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  w3.signal(SIGTERM);
  st = w3.wait();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  b.signal(SIGTERM);
  b.wait();
  s = scrape_until(exp, [&](const Samples& x) { return value(x, kSizingHealth) == 0 && value(x, kBusHealth) == 0; });
  EXPECT_EQ(value(s, kSizingHealth), 0);
  EXPECT_EQ(value(s, kBusHealth), 0);
  EXPECT_EQ(restarts_of(s), (Samples{{restarts_key("sizing_agent_worker", "SIGKILL"), 1},
                                     {restarts_key("sizing_agent_worker", "exit_code_3"), 1}}));
  // The probe on the same binary saw all three instances publish their local queue.
  EXPECT_EQ(value(s, "insa_worker_queue_size{worker_name=\"sizing_agent_worker\"}"), 0);
  if (HasFailure()) ADD_FAILURE() << exp.log();
}

/// Probes and workers over one private request_worker. Status: error when it returns < 0,
/// success otherwise (no duration rule, so the counts do not depend on the machine's load).
std::string request_config() {
  return R"(
metrics:
  - {name: insa_agent_requests_total, type: counter, labels: [agent_type, status]}
  - {name: insa_worker_active_requests, type: gauge, labels: [worker_name]}
workers:
  - {name: request_worker, type: request, binary: ./request_worker}
probes:
  - name: request
    binary: ./request_worker
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: error}
      - {else: success}
    metrics:
      - metric: insa_agent_requests_total
        labels: {agent_type: $arg2:str32, status: $status}
      - metric: insa_worker_active_requests
        inflight: true
        labels: {worker_name: request_worker}
)";
}

/// Runs the request_worker at `bin` to completion; returns its truth (requests by status).
Truth run_requests(const std::string& bin, const std::string& agent, int requests, int start_delay_ms,
                   const std::string& truth_file) {
  std::remove(truth_file.c_str());
  auto [st, out] = run_capture({bin, "--seed", "21", "--requests", std::to_string(requests), "--threads", "2",
                                "--agent", agent, "--start-delay-ms", std::to_string(start_delay_ms), "--truth",
                                truth_file});
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  return read_truth({truth_file});
}

/// Expected insa_agent_requests_total for `agent`: the truth's timeout counts as success here.
Samples expected_requests(const Truth& t, const std::string& agent) {
  Samples out;
  const std::string a = "insa_agent_requests_total{agent_type=\"" + agent + "\",status=\"";
  auto get = [&](const char* st) { return t.values.count(a + st + "\"}") ? t.values.at(a + st + "\"}") : 0; };
  out[a + "success\"}"] = get("success") + get("timeout");
  out[a + "error\"}"] = get("error");
  return out;
}

// The exporter starts first, with no process of the binary running; a worker started later
// is attached automatically (uprobes follow the file) and every call is counted.
TEST(Lifecycle, WorkerStartedAfterExporterCountedExactly) {
  require_root();
  const int port = 19421;
  TempDir dir(port);
  const std::string bin = dir.copy("request_worker");
  Exporter exp(dir.write("request.yaml", request_config()), port);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const std::string health = "insa_worker_health_status{worker_name=\"request_worker\",worker_type=\"request\"}";
  EXPECT_EQ(value(exp.scrape(), health), 0);

  // Runs ~2 s (plus a 1.5 s start delay) so the lifecycle scan sees it alive.
  Child w = Child::spawn({bin, "--seed", "21", "--requests", "120", "--threads", "2", "--rate", "40", "--agent",
                          "late_agent", "--start-delay-ms", "1500", "--truth", dir.path() + "/late.truth"},
                         dir.path() + "/worker.log");
  Samples s = scrape_until(exp, [&](const Samples& x) { return value(x, health) == 1; });
  EXPECT_EQ(value(s, health), 1);
  int st = w.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  Truth t = read_truth({dir.path() + "/late.truth"});
  s = scrape_until(exp, [&](const Samples& x) { return value(x, health) == 0; });
  EXPECT_EQ(value(s, health), 0);
  double total = 0;
  for (const auto& [k, v] : expected_requests(t, "late_agent")) {
    EXPECT_EQ(value(s, k), v) << k;
    total += v;
  }
  EXPECT_EQ(total, 120);
  EXPECT_EQ(value(s, "insa_worker_active_requests{worker_name=\"request_worker\"}"), 0);
  EXPECT_EQ(value(s, "insa_exporter_probe_events_total{probe=\"request\"}"), 120);
  // A clean exit and no new instance: no restart.
  EXPECT_TRUE(restarts_of(s).empty());
  if (HasFailure()) ADD_FAILURE() << exp.log();
}

// The binary is replaced on disk (a new file renamed over it: new inode, as package
// managers and deploys do). A process started from the new file right after the
// replacement makes its calls 5 s later; all of them must be counted, so the exporter
// attached the new inode within 5 s.
TEST(Lifecycle, ReplacedBinaryAttachedAgainWithinFiveSeconds) {
  require_root();
  const int port = 19422;
  TempDir dir(port);
  const std::string bin = dir.copy("request_worker");
  Exporter exp(dir.write("request.yaml", request_config()), port);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();

  // The original file: counted.
  Truth t1 = run_requests(bin, "replace_agent", 30, 0, dir.path() + "/1.truth");
  Samples s = exp.scrape();
  for (const auto& [k, v] : expected_requests(t1, "replace_agent")) EXPECT_EQ(value(s, k), v) << k;

  // Replace: copy to a temporary name, rename over the original.
  struct stat before {};
  ASSERT_EQ(stat(bin.c_str(), &before), 0);
  fs::copy_file(workers_dir() + "/request_worker", bin + ".new");
  fs::rename(bin + ".new", bin);
  struct stat after {};
  ASSERT_EQ(stat(bin.c_str(), &after), 0);
  ASSERT_NE(before.st_ino, after.st_ino);

  // Started at once from the new inode; its first call comes 5 s later.
  Truth t2 = run_requests(bin, "replace_agent", 40, 5000, dir.path() + "/2.truth");
  s = exp.scrape();
  Samples want = expected_requests(t1, "replace_agent");
  for (const auto& [k, v] : expected_requests(t2, "replace_agent")) want[k] += v;
  double total = 0;
  for (const auto& [k, v] : want) {
    EXPECT_EQ(value(s, k), v) << k;
    total += v;
  }
  EXPECT_EQ(total, 70);
  EXPECT_EQ(value(s, "insa_exporter_probe_attached{probe=\"request\"}"), 1);
  EXPECT_NE(exp.log().find("was replaced; attaching again"), std::string::npos);
  if (HasFailure()) ADD_FAILURE() << exp.log();
}

// Workers that live a few milliseconds, far less than the 1 s /proc scan: the exec
// tracepoint still sees each start, so every successor counts a restart with the exact
// reason its predecessor ended.
TEST(Lifecycle, ShortLivedWorkersCountAsStartedAndRestarted) {
  require_root();
  const int port = 19423;
  TempDir dir(port);
  const std::string bin = dir.path() + "/short_worker";
  fs::copy_file(binary_dir() + "/tests/fixtures/fixture_c_pie_O2", bin);
  Exporter exp(dir.write("short.yaml", "metrics:\n  - {name: unused_total, type: counter}\n"
                                       "workers:\n  - {name: short_worker, type: batch, binary: ./short_worker}\n"
                                       "probes: []\n"),
               port);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  // Exit codes 0, 2 (usage error), 0, 2, 0: four restarts, two of each reason.
  for (int i = 0; i < 5; ++i) {
    auto [st, out] = run_capture(i % 2 ? std::vector<std::string>{bin} : std::vector<std::string>{bin, "returns", "1"});
    ASSERT_TRUE(WIFEXITED(st)) << out;
    ASSERT_EQ(WEXITSTATUS(st), i % 2 ? 2 : 0) << out;
  }
  const Samples want{{restarts_key("short_worker", "exit_code_0"), 2}, {restarts_key("short_worker", "exit_code_2"), 2}};
  Samples s = scrape_until(exp, [&](const Samples& x) { return restarts_of(x) == want; });
  EXPECT_EQ(restarts_of(s), want) << exp.log();
  EXPECT_EQ(value(s, "insa_worker_health_status{worker_name=\"short_worker\",worker_type=\"batch\"}"), 0);
  if (HasFailure()) ADD_FAILURE() << exp.log();
}

}  // namespace
}  // namespace insa::testing
