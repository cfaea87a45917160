// SPDX-License-Identifier: Apache-2.0
// Operational endpoints the deployment relies on (landing page, /-/healthy,
// /-/ready) and reload on SIGHUP, against the real exporter.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "harness.h"

namespace insa::testing {
namespace {

TEST(Endpoints, LandingHealthyReady) {
  require_root();
  Exporter exp(source_dir() + "/tests/root/configs/request.yaml", 19361);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  EXPECT_EQ(http_get(exp.port(), "/-/healthy"), std::make_pair(200, std::string("OK\n")));
  EXPECT_EQ(http_get(exp.port(), "/-/ready"), std::make_pair(200, std::string("Ready\n")));
  auto [code, page] = http_get(exp.port(), "/");
  EXPECT_EQ(code, 200);
  EXPECT_NE(page.find("<h1>insa-exporter 0.1.0</h1>"), std::string::npos) << page;
  EXPECT_NE(page.find("<a href=\"/metrics\">/metrics</a>"), std::string::npos);
  // One table row per probe with attach state and event count.
  EXPECT_NE(page.find("<tr><td>request</td><td>" + binary_dir() + "/tests/workers/request_worker</td>"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("</td><td>1</td><td>yes</td><td>0</td><td>0</td>"), std::string::npos) << page;
  EXPECT_EQ(http_get(exp.port(), "/nope").first, 404);
}

TEST(Endpoints, ReloadOnSighupKeepsServing) {
  require_root();
  Exporter exp(source_dir() + "/tests/root/configs/request.yaml", 19362);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  exp.child().signal(SIGHUP);
  // Ready again after the reload, probes attached again, and counting.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({binary_dir() + "/tests/workers/request_worker", "--seed", "5", "--requests", "10"});
  ASSERT_EQ(st, 0) << out;
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_probe_attached{probe=\"request\"}"), 1);
  EXPECT_EQ(s.at("insa_exporter_probe_events_total{probe=\"request\"}"), 10);
  EXPECT_NE(exp.log().find("SIGHUP: reloading"), std::string::npos);
}

namespace fs = std::filesystem;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A probe that cannot attach (its PID is a zombie: it exists at `check`, but the kernel
// refuses a probe on a process that has exited) keeps /-/ready at 503, naming the probe;
// /metrics serves the probes that are attached and says which are not.
TEST(Endpoints, ReadyOnlyWhenEveryProbeIsAttached) {
  require_root();
  const std::string dir = "/tmp/insa-endpoints-ready";
  fs::remove_all(dir);
  fs::create_directories(dir);
  pid_t zombie = fork();
  if (zombie == 0) _exit(0);
  // Not reaped until the end of the test: a zombie, in /proc but without an mm.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string bin = binary_dir() + "/tests/fixtures/fixture_c_pie_O2";
  const std::string config = dir + "/ready.yaml";
  write_text(config, "metrics:\n  - name: calls_total\n    type: counter\n    labels: [probe]\nprobes:\n"
                     "  - name: live\n    binary: " + bin + "\n    function: several_returns\n"
                     "    metrics: [{metric: calls_total, labels: {probe: live}}]\n"
                     "  - name: gone\n    binary: " + bin + "\n    pid: " + std::to_string(zombie) +
                     "\n    function: several_returns\n"
                     "    metrics: [{metric: calls_total, labels: {probe: gone}}]\n");
  Exporter exp(config, 19363);
  std::pair<int, std::string> ready;
  for (int i = 0; i < 200; ++i) {
    ready = http_get(exp.port(), "/-/ready");
    if (ready.second.rfind("Not ready: 1 of 2", 0) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(ready.first, 503);
  EXPECT_EQ(ready.second.rfind("Not ready: 1 of 2 probes not attached\n  gone: " + config + ":10:5: probe 'gone': cannot attach entry to " + bin +
                                        " at 0x", 0),
            0u)
      << ready.second << exp.log();
  EXPECT_EQ(std::count(ready.second.begin(), ready.second.end(), '\n'), 2) << ready.second;
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_probe_attached{probe=\"live\"}"), 1);
  EXPECT_EQ(s.at("insa_exporter_probe_attached{probe=\"gone\"}"), 0);
  auto [st, out] = run_capture({bin, "returns", "5"});
  ASSERT_EQ(st, 0) << out;
  EXPECT_EQ(exp.scrape().at("calls_total{probe=\"live\"}"), 5);
  waitpid(zombie, nullptr, 0);
  fs::remove_all(dir);
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

// Links on a replaced binary stay while a process runs the old file (it is still
// measured) and are released once none does: replacing a binary many times does not
// grow the exporter's descriptors.
TEST(Endpoints, LinksOfReplacedBinariesReleasedWhenNoProcessRunsThem) {
  require_root();
  const std::string dir = "/tmp/insa-endpoints-retired";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string src = binary_dir() + "/tests/fixtures/fixture_c_pie_O2";
  const std::string bin = dir + "/worker";
  fs::copy_file(src, bin);
  const std::string config = dir + "/retired.yaml";
  write_text(config, "metrics:\n  - name: calls_total\n    type: counter\nprobes:\n"
                     "  - name: blocked\n    binary: " + bin + "\n    function: blocked_call\n"
                     "    metrics: [{metric: calls_total}]\n"
                     "  - name: returns\n    binary: " + bin + "\n    function: several_returns\n"
                     "    metrics: [{metric: calls_total, when: exit}]\n");
  Exporter exp(config, 19364);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const pid_t ep = exp.child().pid();
  // The scans open /proc files for an instant: the smallest of several readings.
  auto steady_fds = [&] {
    size_t m = open_fds(ep);
    for (int i = 0; i < 20; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      m = std::min(m, open_fds(ep));
    }
    return m;
  };
  const size_t base = steady_fds();

  // A process of the first file, blocked in a probed call for the whole test.
  Child old = Child::spawn({bin, "block", "1"}, dir + "/old.out");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto replace = [&](int k) {
    fs::copy_file(src, bin + ".new");
    fs::rename(bin + ".new", bin);
    for (int i = 0; i < 100 && count_of(exp.log(), "' was replaced; attaching again") < size_t(2 * k); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_EQ(count_of(exp.log(), "' was replaced; attaching again"), size_t(2 * k)) << exp.log();
  };
  auto settle = [&](size_t want) {
    for (int i = 0; i < 50 && open_fds(ep) != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return open_fds(ep);
  };
  replace(1);
  // The old file's links stay: its process is still running.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const size_t with_old = steady_fds();
  EXPECT_GT(with_old, base);
  // Files no process ran: their links go at once, so 10 more replacements cost nothing.
  for (int k = 2; k <= 11; ++k) replace(k);
  EXPECT_EQ(settle(with_old), with_old) << exp.log();
  // The old process ends: its file's links go too, back to the start.
  old.signal(SIGKILL);
  old.wait();
  EXPECT_EQ(settle(base), base) << exp.log();
  EXPECT_NE(exp.log().find("no process runs the replaced " + bin), std::string::npos);
  // And the current file is still measured.
  auto [st, out] = run_capture({bin, "returns", "7"});
  ASSERT_EQ(st, 0) << out;
  // (plus the old process's one call of blocked_call)
  EXPECT_EQ(exp.scrape().at("calls_total"), 7 + 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace insa::testing
