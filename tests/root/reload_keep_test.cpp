// SPDX-License-Identifier: Apache-2.0
// Reloads that keep what did not change (README, Reloads), against the real exporter:
// a worker calls a probed function at a steady rate for the whole test while the
// config is reloaded 50 times (the same config, an unrelated probe added and removed,
// another metric changed; over POST /-/reload and SIGHUP) under continuous scraping.
// The unchanged probe's counter never goes down and ends equal to the worker's own
// count exactly (no gap, no double count); the changed metric starts from zero each
// time; the removed probe's series are gone; the worker's restart counter is kept; no
// scrape fails; no fd, RSS or BPF program growth (bpftool prog list and the
// exporter's own BPF fds). Python probes keep counting exactly across reloads too.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>

#include "harness.h"

namespace insa::testing {
namespace {

constexpr int kPort = 19901;

struct TempDir {
  TempDir() {
    std::string t = "/tmp/insa-reload-keep-XXXXXX";
    path_ = mkdtemp(t.data());
  }
  ~TempDir() { (void)!system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }
  std::string path_;
};

/// The config of one step: the unchanged `calls` probe, the `gen` probe whose metric's
/// static label is the generation (changed by some reloads), and the unrelated `extra`
/// probe, stacked on the very function `calls` watches, when `extra`.
std::string config_text(int generation, bool extra) {
  const std::string worker = binary_dir() + "/tests/workers/request_worker";
  const std::string nopie = binary_dir() + "/tests/workers/request_worker_nopie";
  std::string t = R"(metrics:
  - name: insa_reload_calls_total
    type: counter
    help: Calls of handle_request by the long-running worker.
    labels: [status]
  - name: insa_reload_gen_calls_total
    type: counter
    help: Calls of the nopie worker, labelled with the config generation.
    labels: [generation]
  - name: insa_reload_extra_calls_total
    type: counter
    help: Calls seen by the probe that comes and goes.
    labels: [agent_type]
workers:
  - {name: reload_worker, type: request, binary: )" +
                  worker + R"(}
probes:
  - name: calls
    binary: )" + worker + R"(
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: error}
      - {else: success}
    metrics:
      - metric: insa_reload_calls_total
        labels: {status: $status}
  - name: gen
    binary: )" + nopie + R"(
    function: insa_demo::handle_request
    metrics:
      - metric: insa_reload_gen_calls_total
        labels: {generation: g)" +
                  std::to_string(generation) + R"(}
)";
  if (extra)
    t += R"(  - name: extra
    binary: )" + worker + R"(
    function: insa_demo::handle_request
    metrics:
      - metric: insa_reload_extra_calls_total
        labels: {agent_type: $arg2:str16}
)";
  return t;
}


/// Programs loaded on the host (`bpftool prog list`: one "ID: type ..." line each).
size_t bpftool_programs() {
  auto [st, out] = run_capture({"/usr/sbin/bpftool", "prog", "list"});
  EXPECT_EQ(st, 0) << out;
  static const std::regex head("^[0-9]+: ");
  size_t n = 0;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (std::regex_search(line, head)) ++n;
  return n;
}

/// Samples whose name and labels start with `prefix`.
Samples with_prefix(const Samples& s, const std::string& prefix) {
  Samples out;
  for (const auto& [k, v] : s)
    if (k.rfind(prefix, 0) == 0) out[k] = v;
  return out;
}

double sum_of(const Samples& s) {
  double t = 0;
  for (const auto& [k, v] : s) t += v;
  return t;
}

/// A request_worker running until SIGTERM, its ground truth written then.
struct Worker {
  Worker(const std::string& dir, const std::string& name) {
    log = dir + "/" + name + ".log";
    truth = dir + "/" + name + ".truth";
    child = Child::spawn({binary_dir() + "/tests/workers/request_worker", "--forever", "--rate", "150", "--threads",
                          "3", "--seed", "11", "--truth", truth},
                         log);
  }
  /// Its SIGTERM handler is installed once it says ready.
  bool wait_ready() {
    return eventually([&] { return slurp(log).find("ready") != std::string::npos; }, 10);
  }
  int stop() {
    child.signal(SIGTERM);
    return child.wait();
  }
  std::string log, truth;
  Child child;
};

const std::string kCalls = "insa_reload_calls_total{";
const std::string kEvents = "insa_exporter_probe_events_total{probe=\"calls\"}";
const std::string kRestarts = "insa_worker_restarts_total{worker_name=\"reload_worker\"";

TEST(ReloadKeep, UnchangedCounterExactAcrossFiftyReloads) {
  require_root();
  TempDir dir;
  const std::string cfg = dir.path() + "/probes.yaml";
  int generation = 0;
  // Loaded with the `extra` probe: the kernel series budget (its metric's share and
  // `other` key) is fixed at load, and holds the config with or without it, so adding
  // and removing it are incremental (README, Reloads). The warm reload removes it.
  bool extra = true;
  std::ofstream(cfg) << config_text(generation, extra);
  Exporter exp(cfg, kPort, {"--web.enable-lifecycle"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const pid_t pid = exp.child().pid();

  // A first worker instance, stopped, and a second: one restart the reloads must keep.
  Worker a(dir.path(), "a");
  ASSERT_TRUE(a.wait_ready()) << slurp(a.log);
  ASSERT_TRUE(eventually(
      [&] { return exp.scrape()["insa_worker_health_status{worker_name=\"reload_worker\",worker_type=\"request\"}"] == 1; },
      10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(a.stop(), 0) << slurp(a.log);
  Worker b(dir.path(), "b");
  ASSERT_TRUE(b.wait_ready()) << slurp(b.log);
  ASSERT_TRUE(eventually([&] { return sum_of(with_prefix(exp.scrape(), kRestarts)) == 1; }, 10)) << exp.log();
  const Samples restarts = with_prefix(exp.scrape(), kRestarts);

  // Warm: one reload before the baselines.
  extra = false;
  std::ofstream(cfg) << config_text(generation, extra);
  ASSERT_EQ(post_reload(kPort).substr(0, 17), "HTTP/1.1 200 OK\r\n");
  const size_t fds0 = count_entries("/proc/" + std::to_string(pid) + "/fd");
  const auto bpf0 = bpf_fds(pid);
  const size_t progs0 = bpftool_programs();
  const double rss0 = exp.scrape().at("process_resident_memory_bytes");

  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0}, failed{0}, went_down{0};
  std::thread scraper([&] {
    double last_calls = 0, last_events = 0;
    while (!stop) {
      auto [code, body] = http_get(kPort, "/metrics");
      ++scrapes;
      if (code != 200 || body.find(kEvents) == std::string::npos) {
        ++failed;
        continue;
      }
      const Samples s = parse_exposition(body);
      const double calls = sum_of(with_prefix(s, kCalls)), events = s.at(kEvents);
      if (calls < last_calls || events < last_events) {
        if (went_down == 0)
          ADD_FAILURE() << "went down: calls " << last_calls << " -> " << calls << ", events " << last_events << " -> "
                        << events << "\n"
                        << body;
        ++went_down;
      }
      last_calls = calls;
      last_events = events;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });

  auto count_loaded = [&] {
    const std::string l = exp.log();
    size_t n = 0;
    for (size_t at = l.find(cfg + " loaded"); at != std::string::npos; at = l.find(cfg + " loaded", at + 1)) ++n;
    return n;
  };
  const std::string gen_prefix = "insa_reload_gen_calls_total{";
  for (int i = 0; i < 50; ++i) {
    switch (i % 5) {
      case 1: extra = true; break;
      case 2: extra = false; break;
      case 3: ++generation; break;
      default: break;  // the same config
    }
    std::ofstream(cfg) << config_text(generation, extra);
    if (i % 5 == 4) {
      const size_t before = count_loaded();
      exp.child().signal(SIGHUP);
      ASSERT_TRUE(eventually([&] { return count_loaded() > before; }, 20)) << "SIGHUP reload " << i << "\n" << exp.log();
    } else {
      const std::string r = post_reload(kPort);
      ASSERT_EQ(r.substr(0, 17), "HTTP/1.1 200 OK\r\n") << "reload " << i << ": " << r;
    }
    Samples s = exp.scrape();
    EXPECT_EQ(s.count("insa_exporter_probe_attached{probe=\"extra\"}"), extra ? 1u : 0u) << "reload " << i;
    if (!extra) EXPECT_TRUE(with_prefix(s, "insa_reload_extra_calls_total{").empty()) << "reload " << i;
    if (i % 5 == 3) {
      // The changed metric starts from zero, its previous series gone; then counts exactly.
      const std::string key = gen_prefix + "generation=\"g" + std::to_string(generation) + "\"}";
      EXPECT_EQ(with_prefix(s, gen_prefix), (Samples{{key, 0}})) << "reload " << i << "\n"
                                                                 << http_get(kPort, "/metrics").second;
      auto [st, out] = run_capture(
          {binary_dir() + "/tests/workers/request_worker_nopie", "--requests", "2", "--seed", "3"});
      ASSERT_EQ(st, 0) << out;
      EXPECT_EQ(with_prefix(exp.scrape(), gen_prefix), (Samples{{key, 2}})) << "reload " << i;
    }
  }
  stop = true;
  scraper.join();
  EXPECT_EQ(exp.log().find("every probe starts again from zero"), std::string::npos) << exp.log();

  // The last change (generation 10) restarted the gen metric: it counts from zero.
  auto [st, out] =
      run_capture({binary_dir() + "/tests/workers/request_worker_nopie", "--requests", "7", "--seed", "3"});
  ASSERT_EQ(st, 0) << out;
  Samples s = exp.scrape();
  EXPECT_EQ(with_prefix(s, gen_prefix), (Samples{{gen_prefix + "generation=\"g10\"}", 9}}));
  EXPECT_TRUE(with_prefix(s, "insa_reload_extra_calls_total{").empty());
  EXPECT_EQ(s.count("insa_exporter_probe_attached{probe=\"extra\"}"), 0u);
  EXPECT_EQ(with_prefix(s, kRestarts), restarts);

  const size_t fds1 = count_entries("/proc/" + std::to_string(pid) + "/fd");
  const auto bpf1 = bpf_fds(pid);
  const size_t progs1 = bpftool_programs();
  const double rss1 = s.at("process_resident_memory_bytes");
  std::printf("[ figures  ] 50 reloads: %d scrapes, fds %zu -> %zu, host BPF programs %zu -> %zu, RSS %.1f -> %.1f MiB\n",
              scrapes.load(), fds0, fds1, progs0, progs1, rss0 / 1048576, rss1 / 1048576);
  EXPECT_EQ(failed.load(), 0) << "of " << scrapes.load();
  EXPECT_EQ(went_down.load(), 0) << "of " << scrapes.load() << " scrapes saw the unchanged counter go down";
  EXPECT_GT(scrapes.load(), 50);
  EXPECT_LE(fds1, fds0 + 2);  // a scrape connection may be open
  EXPECT_EQ(bpf1, bpf0);
  EXPECT_EQ(progs1, progs0);
  EXPECT_LT(rss1, rss0 + 16 * 1048576);

  // The worker's own count, exactly: every call of both instances, by outcome.
  ASSERT_EQ(b.stop(), 0) << slurp(b.log);
  const Truth truth = read_truth({a.truth, b.truth});
  double total = 0, errors = 0;
  for (const auto& [k, v] : truth.values) {
    if (k.rfind("insa_agent_requests_total{", 0) != 0) continue;
    total += v;
    if (k.find("status=\"error\"") != std::string::npos) errors += v;
  }
  ASSERT_GT(total, 300) << "the worker ran for the whole test";
  ASSERT_GT(errors, 0);
  s = exp.scrape();
  EXPECT_EQ(s[kCalls + "status=\"success\"}"], total - errors);
  EXPECT_EQ(s[kCalls + "status=\"error\"}"], errors);
  EXPECT_EQ(s.at(kEvents), total);
}

// A reload the loaded kernel series budget cannot hold (a metric added: metrics index the
// kernel's quotas) loads the new config whole: the log says why, and every series starts
// again from zero, then counts exactly.
TEST(ReloadKeep, MetricAddedReloadsWholeFromZeroAndSaysWhy) {
  require_root();
  constexpr int port = 19905;
  TempDir dir;
  const std::string nopie = binary_dir() + "/tests/workers/request_worker_nopie";
  const std::string base = R"(metrics:
  - name: insa_whole_calls_total
    type: counter
    help: Calls of the nopie worker.
)";
  const std::string probe = R"(probes:
  - name: calls
    binary: )" + nopie + R"(
    function: insa_demo::handle_request
    metrics:
      - metric: insa_whole_calls_total
)";
  const std::string cfg = dir.path() + "/probes.yaml";
  std::ofstream(cfg) << base << probe;
  Exporter exp(cfg, port, {"--web.enable-lifecycle"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto run = [&](int n) {
    auto [st, out] = run_capture({nopie, "--requests", std::to_string(n), "--seed", "3"});
    ASSERT_EQ(st, 0) << out;
  };
  run(3);
  ASSERT_EQ(exp.scrape().at("insa_whole_calls_total"), 3);
  // The same config: incremental, the counter continues.
  ASSERT_EQ(post_reload(port).substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(exp.scrape().at("insa_whole_calls_total"), 3);

  std::ofstream(cfg) << base << R"(  - name: insa_whole_added_total
    type: counter
    help: A metric added by the reload.
)" << probe << R"(      - metric: insa_whole_added_total
)";
  ASSERT_EQ(post_reload(port).substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_NE(exp.log().find("reload: every probe starts again from zero: the kernel series budget does not hold the "
                           "new config: metric 'insa_whole_added_total' was added"),
            std::string::npos)
      << exp.log();
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_whole_calls_total"), 0);
  EXPECT_EQ(s.at("insa_whole_added_total"), 0);
  EXPECT_EQ(s.at("insa_exporter_series_quota{metric=\"insa_whole_added_total\"}"), 1);
  run(2);
  s = exp.scrape();
  EXPECT_EQ(s.at("insa_whole_calls_total"), 2);
  EXPECT_EQ(s.at("insa_whole_added_total"), 2);
}

// A probe removed by an incremental reload: its kernel keys are deleted and each gives
// its metric's quota slot back (new label values then get series of their own, not
// `other`), without counting as expired; the series expiry follows the reloaded config.
TEST(ReloadKeep, RemovedProbeGivesItsQuotaBackAndExpiryFollows) {
  require_root();
  constexpr int port = 19904;
  TempDir dir;
  const std::string fixture = binary_dir() + "/tests/fixtures/fixture_labels";
  auto text = [&](bool second, const std::string& expiry) {
    std::string t = "exporter:\n  series_expiry: " + expiry + R"(
metrics:
  - name: fx_reload_names_total
    type: counter
    labels: [name]
    max_series: 8
probes:
)";
    for (const char* p : {"first", "second"}) {
      if (std::string(p) == "second" && !second) continue;
      t += std::string("  - name: ") + p + "\n    binary: " + fixture + R"(
    function: fx_label
    metrics:
      - metric: fx_reload_names_total
        labels: {name: $arg1:str16}
)";
    }
    return t;
  };
  auto run = [&](const std::string& n, const std::string& first) {
    auto [st, out] = run_capture({fixture, "distinct", n, first});
    ASSERT_EQ(st, 0) << out;
  };
  const std::string cfg = dir.path() + "/probes.yaml";
  std::ofstream(cfg) << text(true, "0");
  Exporter exp(cfg, port, {"--web.enable-lifecycle"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  // 4 names, each counted by both probes: 8 kernel keys, the quota is full.
  run("4", "0");
  Samples s = exp.scrape();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(s.at("fx_reload_names_total{name=\"name-" + std::to_string(i) + "\"}"), 2);
  EXPECT_EQ(s.count("fx_reload_names_total{name=\"other\"}"), 0u);

  std::ofstream(cfg) << text(false, "2s");
  ASSERT_EQ(post_reload(port).substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(exp.log().find("every probe starts again from zero"), std::string::npos) << exp.log();
  s = exp.scrape();
  // The second probe's keys are gone: each name shows the first probe's count.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(s.at("fx_reload_names_total{name=\"name-" + std::to_string(i) + "\"}"), 1);
  EXPECT_EQ(s.at("insa_exporter_map_entries{map=\"counters\"}"), 4);
  EXPECT_EQ(s.at("insa_exporter_series_expired_total{metric=\"fx_reload_names_total\"}"), 0);
  // Their 4 quota slots are free again: 4 new names get series of their own.
  run("4", "100");
  s = exp.scrape();
  for (int i = 100; i < 104; ++i)
    EXPECT_EQ(s.at("fx_reload_names_total{name=\"name-" + std::to_string(i) + "\"}"), 1) << i;
  EXPECT_EQ(s.count("fx_reload_names_total{name=\"other\"}"), 0u);
  EXPECT_EQ(s.at("insa_exporter_series_folded_total{metric=\"fx_reload_names_total\"}"), 0);
  // series_expiry 2s, from the reloaded config: the 8 idle series expire and are counted.
  ASSERT_TRUE(eventually(
      [&] { return exp.scrape().at("insa_exporter_series_expired_total{metric=\"fx_reload_names_total\"}") >= 8; },
      15))
      << exp.log();
  s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_series_expired_total{metric=\"fx_reload_names_total\"}"), 8);
  EXPECT_EQ(s.at("insa_exporter_map_entries{map=\"counters\"}"), 0);
  // The whole quota is free: 8 more names, no `other`.
  run("8", "200");
  s = exp.scrape();
  EXPECT_EQ(s.count("fx_reload_names_total{name=\"other\"}"), 0u);
  EXPECT_EQ(s.at("fx_reload_names_total{name=\"name-207\"}"), 1);
}

// A change the running BPF object cannot take (exporter.max_series sizes the maps at
// load) reloads whole, and says so: every probe counts again from zero, while the
// worker's restart counter still carries over.
TEST(ReloadKeep, MaxSeriesChangeReloadsWholeAndKeepsWorkerCounters) {
  require_root();
  constexpr int port = 19903;
  TempDir dir;
  const std::string cfg = dir.path() + "/probes.yaml";
  const std::string text = config_text(0, false);
  std::ofstream(cfg) << text;
  Exporter exp(cfg, port, {"--web.enable-lifecycle"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto run = [&](int n) {
    auto [st, out] = run_capture({binary_dir() + "/tests/workers/request_worker", "--requests", std::to_string(n),
                                  "--seed", "5"});
    ASSERT_EQ(st, 0) << out;
  };
  auto scrape = [&] { return parse_exposition(http_get(port, "/metrics").second); };
  run(5);
  run(4);  // a second instance: one restart
  ASSERT_TRUE(eventually([&] { return sum_of(with_prefix(scrape(), kRestarts)) == 1; }, 10)) << exp.log();
  EXPECT_EQ(scrape().at(kEvents), 9);
  std::ofstream(cfg) << "exporter:\n  max_series: 2048\n" << text;
  const std::string r = post_reload(port);
  ASSERT_EQ(r.substr(0, 17), "HTTP/1.1 200 OK\r\n") << r;
  EXPECT_NE(exp.log().find("reload: every probe starts again from zero: the kernel series budget does not hold the "
                           "new config: exporter.max_series changed"),
            std::string::npos)
      << exp.log();
  Samples s = scrape();
  EXPECT_EQ(s.at(kEvents), 0);
  EXPECT_TRUE(with_prefix(s, kCalls).empty());
  EXPECT_EQ(sum_of(with_prefix(s, kRestarts)), 1);
  run(3);
  ASSERT_TRUE(eventually([&] { return sum_of(with_prefix(scrape(), kRestarts)) == 2; }, 10)) << exp.log();
  s = scrape();
  EXPECT_EQ(s.at(kEvents), 3);
  EXPECT_EQ(sum_of(with_prefix(s, kCalls)), 3);
  EXPECT_EQ(s.at("insa_exporter_config_last_reload_successful"), 1);
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// A Python probe (CPython 3.11, hooked per process) keeps its hooks and values while
// the config is reloaded during the worker's run, unchanged or with a native probe
// added and removed: every counter equals the worker's own truth.
TEST(ReloadKeep, PythonProbeCountsExactlyAcrossReloads) {
  require_root();
  constexpr int port = 19902;
  const std::string python = "/usr/bin/python3.11";
  struct stat st {};
  ASSERT_EQ(stat(python.c_str(), &st), 0) << python << " is missing: the image's interpreter is part of this test";
  TempDir dir;
  std::string base = slurp(source_dir() + "/tests/root/configs/python.yaml");
  base = std::regex_replace(base, std::regex("source: \\.\\./\\.\\./fixtures/python/py_worker\\.py"),
                            "source: " + source_dir() + "/tests/fixtures/python/py_worker.py");
  const std::string native = "  - name: native\n    binary: " + binary_dir() +
                             "/tests/workers/request_worker\n    function: insa_demo::handle_request\n"
                             "    metrics:\n      - {metric: insa_py_unused_total}\n";
  const std::string cfg = dir.path() + "/probes.yaml";
  // Loaded with the native probe, so the series budget (insa_py_unused_total's quota of
  // fixed-label series) holds the config with or without it: every reload is incremental.
  std::ofstream(cfg) << base << native;
  const std::string go = dir.path() + "/go", truth = dir.path() + "/truth", wlog = dir.path() + "/worker.log";
  Child w = Child::spawn({python, source_dir() + "/tests/fixtures/python/py_worker.py", "--seed", "7", "--threads",
                          "2", "--requests", "30", "--rounds", "60", "--go", go, "--truth", truth},
                         wlog);
  ASSERT_TRUE(eventually([&] { return slurp(wlog).find("waiting for") != std::string::npos; }, 20)) << slurp(wlog);
  Exporter exp(cfg, port, {"--web.enable-lifecycle"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  ASSERT_TRUE(eventually([&] { return exp.scrape()["insa_exporter_probe_attached{probe=\"py_request\"}"] == 1; }, 10))
      << exp.log();
  std::ofstream(go) << "go\n";
  int reloads = 0;
  while (!file_exists(truth) || reloads < 3) {  // the worker writes its truth as it ends
    std::ofstream(cfg) << base << (reloads % 3 == 1 ? native : "");
    const std::string r = post_reload(port);
    ASSERT_EQ(r.substr(0, 17), "HTTP/1.1 200 OK\r\n") << r;
    ++reloads;
    ASSERT_LT(reloads, 400) << "the worker did not finish";
  }
  int status = w.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(wlog);
  EXPECT_EQ(exp.log().find("every probe starts again from zero"), std::string::npos) << exp.log();
  const Truth t = read_truth({truth});
  const Samples got = exp.scrape();
  size_t counters = 0;
  for (const auto& [series, want] : t.values) {
    if (series.rfind("insa_py_requests_total", 0) && series.rfind("insa_py_records_total", 0)) continue;
    ASSERT_TRUE(got.count(series)) << "missing " << series;
    EXPECT_EQ(got.at(series), want) << series << " after " << reloads << " reloads";
    ++counters;
  }
  EXPECT_GE(counters, 6u);
  std::printf("[ figures  ] python worker: %d reloads while it ran\n", reloads);
}

}  // namespace
}  // namespace insa::testing
