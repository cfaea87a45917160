// SPDX-License-Identifier: Apache-2.0
// Kernel memory under labels of unbounded cardinality, attached for real to
// tests/fixtures/fixture_labels: each metric keeps to its own series quota (the
// rest is counted, call by call, in its `other` series), the maps stay the same
// size, idle series and those of dead processes are removed and counted, and
// silent losses (unreadable strings, a full ring buffer) are counted.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <bpf/libbpf.h>

#include "attach/map_budget.h"
#include "harness.h"
#include "insa_shared.h"

namespace insa::testing {
namespace {

std::string write_config(const std::string& name, const std::string& text) {
  std::string path = "/tmp/insa-series-" + std::to_string(getpid()) + "-" + name + ".yaml";
  std::ofstream(path) << text;
  return path;
}

std::string fixture() { return binary_dir() + "/tests/fixtures/fixture_labels"; }

/// Runs the fixture to completion; its stdout must be `calls N`.
void run_fixture(const std::vector<std::string>& args, long calls) {
  std::vector<std::string> argv{fixture()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto [st, out] = run_capture(argv);
  ASSERT_EQ(st, 0) << out;
  ASSERT_EQ(out, "calls " + std::to_string(calls) + "\n");
}

/// Sum and number of the samples of `name` whose labels start with `prefix`
/// (`name{prefix...}`), leaving out the `other` series when asked.
std::pair<double, size_t> total(const Samples& s, const std::string& name, bool with_other = true) {
  double sum = 0;
  size_t n = 0;
  for (const auto& [k, v] : s)
    if (k.rfind(name + "{", 0) == 0 && (with_other || k.find("\"other\"") == std::string::npos)) {
      sum += v;
      ++n;
    }
  return {sum, n};
}

// 64 series: fx_label_calls_total (fixed labels) takes 1, the two metrics with captured
// labels get (64 - 1) / 2 = 31 each. 500 distinct names: 31 series of 1 call each, and
// `other` counts the 469 others, exactly. The calls counter, in the same kernel map,
// loses nothing.
const char* kBudget = R"(exporter:
  max_series: 64
  series_expiry: 0
metrics:
  - name: fx_by_name_total
    type: counter
    labels: [name]
  - name: fx_id_value
    type: histogram
    labels: [id]
    buckets: [10, 100]
  - name: fx_label_calls_total
    type: counter
probes:
  - name: label
    binary: BINARY
    function: fx_label
    metrics:
      - metric: fx_by_name_total
        labels: {name: $arg1:str16}
      - metric: fx_id_value
        observe: $arg2
        labels: {id: $arg2}
      - metric: fx_label_calls_total
)";

std::string with_binary(std::string text) {
  text.replace(text.find("BINARY"), 6, fixture());
  return text;
}

TEST(Series, EachMetricKeepsToItsQuotaAndOtherCountsEveryFoldedCall) {
  require_root();
  Exporter exp(write_config("budget", with_binary(kBudget)), 19461);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  Samples s0 = exp.scrape();
  EXPECT_EQ(s0.at("insa_exporter_series_quota{metric=\"fx_by_name_total\"}"), 31);
  EXPECT_EQ(s0.at("insa_exporter_series_quota{metric=\"fx_id_value\"}"), 31);
  EXPECT_EQ(s0.at("insa_exporter_series_quota{metric=\"fx_label_calls_total\"}"), 1);

  run_fixture({"distinct", "500"}, 500);
  Samples s = exp.scrape();
  auto [kept, kept_series] = total(s, "fx_by_name_total", false);
  EXPECT_EQ(kept_series, 31u);
  EXPECT_EQ(kept, 31);
  EXPECT_EQ(s.at("fx_by_name_total{name=\"other\"}"), 500 - 31);
  EXPECT_EQ(s.at("insa_exporter_series_folded_total{metric=\"fx_by_name_total\"}"), 500 - 31);
  // The histogram's `other`: ids 0..30 keep series of their own, 31..499 fold (observing
  // the id itself): none at or below 10, the 70 of 31..100 at or below 100.
  EXPECT_EQ(s.at("fx_id_value_count{id=\"other\"}"), 469);
  EXPECT_EQ(s.at("fx_id_value_bucket{id=\"other\",le=\"10\"}"), 0);
  EXPECT_EQ(s.at("fx_id_value_bucket{id=\"other\",le=\"100\"}"), 70);
  EXPECT_EQ(s.at("fx_id_value_sum{id=\"other\"}"), (31 + 499) * 469 / 2);
  EXPECT_EQ(s.at("insa_exporter_series_folded_total{metric=\"fx_id_value\"}"), 469);
  EXPECT_EQ(s.at("fx_label_calls_total"), 500);  // another metric: unaffected
  EXPECT_EQ(s.at("insa_exporter_series_folded_total{metric=\"fx_label_calls_total\"}"), 0);
  EXPECT_EQ(s.at("insa_exporter_dropped_updates_total{probe=\"label\"}"), 0);
  // Kernel keys: 31 names + their `other` + the calls counter; 31 ids + `other`.
  EXPECT_EQ(s.at("insa_exporter_map_entries{map=\"counters\"}"), 33);
  EXPECT_EQ(s.at("insa_exporter_map_entries{map=\"histograms\"}"), 32);
  const double counters_bytes = s.at("insa_exporter_kernel_map_bytes{map=\"counters\"}");
  const double hist_bytes = s.at("insa_exporter_kernel_map_bytes{map=\"histograms\"}");
  EXPECT_LE(counters_bytes, s.at("insa_exporter_kernel_map_limit_bytes{map=\"counters\"}"));
  EXPECT_LE(hist_bytes, s.at("insa_exporter_kernel_map_limit_bytes{map=\"histograms\"}"));

  // 2000 more distinct values: the maps hold the same keys and the same kernel memory.
  run_fixture({"distinct", "2000", "500"}, 2000);
  Samples s2 = exp.scrape();
  EXPECT_EQ(s2.at("fx_by_name_total{name=\"other\"}"), 2500 - 31);
  EXPECT_EQ(total(s2, "fx_by_name_total").first, 2500);
  EXPECT_EQ(s2.at("fx_id_value_count{id=\"other\"}"), 2500 - 31);
  EXPECT_EQ(s2.at("fx_label_calls_total"), 2500);
  EXPECT_EQ(s2.at("insa_exporter_map_entries{map=\"counters\"}"), 33);
  EXPECT_EQ(s2.at("insa_exporter_map_entries{map=\"histograms\"}"), 32);
  EXPECT_EQ(s2.at("insa_exporter_kernel_map_bytes{map=\"counters\"}"), counters_bytes);
  EXPECT_EQ(s2.at("insa_exporter_kernel_map_bytes{map=\"histograms\"}"), hist_bytes);
}

// The kernel's own memory figure grows by exactly the per-element cost the budget
// (attach/map_budget.h) charges: `check`'s estimate is the kernel's accounting.
TEST(Series, KernelMemoryPerSeriesIsWhatTheBudgetCharges) {
  require_root();
  Exporter exp(write_config("perkey", with_binary(kBudget)), 19462);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  run_fixture({"distinct", "10"}, 10);
  Samples a = exp.scrape();
  run_fixture({"distinct", "15", "10"}, 15);
  Samples b = exp.scrape();
  ASSERT_EQ(a.at("insa_exporter_map_entries{map=\"counters\"}"), 11);  // 10 names + calls
  ASSERT_EQ(b.at("insa_exporter_map_entries{map=\"counters\"}"), 26);
  ASSERT_EQ(
      b.at("insa_exporter_map_entries{map=\"histograms\"}") - a.at("insa_exporter_map_entries{map=\"histograms\"}"),
      15);
  const int ncpus = libbpf_num_possible_cpus();
  plan::HashShape counters{65, sizeof(insa_key), sizeof(insa_count), true};
  plan::HashShape hists{32, sizeof(insa_key), sizeof(insa_hist), true};
  EXPECT_EQ(b.at("insa_exporter_kernel_map_bytes{map=\"counters\"}") -
                a.at("insa_exporter_kernel_map_bytes{map=\"counters\"}"),
            15.0 * static_cast<double>(plan::hash_map_elem_bytes(counters, ncpus)));
  EXPECT_EQ(b.at("insa_exporter_kernel_map_bytes{map=\"histograms\"}") -
                a.at("insa_exporter_kernel_map_bytes{map=\"histograms\"}"),
            15.0 * static_cast<double>(plan::hash_map_elem_bytes(hists, ncpus)));
}

TEST(Series, IdleSeriesExpireCountedAndFreeTheirQuota) {
  require_root();
  std::string text = with_binary(kBudget);
  text.replace(text.find("series_expiry: 0"), 16, "series_expiry: 2s");
  Exporter exp(write_config("expiry", text), 19463);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  run_fixture({"distinct", "100"}, 100);
  Samples s = exp.scrape();
  ASSERT_EQ(total(s, "fx_by_name_total", false).second, 31u);
  ASSERT_EQ(s.at("fx_by_name_total{name=\"other\"}"), 69);
  // Idle for 2 s: every captured series (31 + `other`) goes, per metric; the calls
  // counter has fixed labels and stays (never reset).
  Samples after;
  for (int i = 0; i < 60; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = exp.scrape();
    if (after.at("insa_exporter_series_expired_total{metric=\"fx_id_value\"}") == 32 &&
        after.at("insa_exporter_series_expired_total{metric=\"fx_by_name_total\"}") == 32)
      break;
  }
  EXPECT_EQ(after.at("insa_exporter_series_expired_total{metric=\"fx_by_name_total\"}"), 32);
  EXPECT_EQ(after.at("insa_exporter_series_expired_total{metric=\"fx_id_value\"}"), 32);
  EXPECT_EQ(after.at("insa_exporter_series_expired_total{metric=\"fx_label_calls_total\"}"), 0);
  EXPECT_EQ(total(after, "fx_by_name_total").second, 0u);
  EXPECT_EQ(total(after, "fx_id_value_count").second, 0u);
  EXPECT_EQ(after.at("fx_label_calls_total"), 100);
  EXPECT_EQ(after.at("insa_exporter_map_entries{map=\"counters\"}"), 1);
  EXPECT_EQ(after.at("insa_exporter_map_entries{map=\"histograms\"}"), 0);
  EXPECT_EQ(after.at("insa_exporter_lost_events_total{reason=\"expiry_race\"}"), 0);
  // The quota is free again: new names get series of their own.
  run_fixture({"distinct", "20", "1000"}, 20);
  Samples again = exp.scrape();
  EXPECT_EQ(total(again, "fx_by_name_total", false).second, 20u);
  EXPECT_EQ(again.count("fx_by_name_total{name=\"other\"}"), 0u);
  EXPECT_EQ(again.at("fx_by_name_total{name=\"name-1019\"}"), 1);
  EXPECT_EQ(again.at("fx_label_calls_total"), 120);
}

TEST(Series, DeadProcessSeriesGoAtOnce) {
  require_root();
  auto cfg = write_config("pid", R"(exporter:
  series_expiry: 0
metrics:
  - name: fx_by_pid_total
    type: counter
    labels: [pid]
probes:
  - name: by_pid
    binary: )" + fixture() + R"(
    function: fx_label
    metrics:
      - metric: fx_by_pid_total
        labels: {pid: $pid}
)");
  Exporter exp(cfg, 19464);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const std::string log = "/tmp/insa-series-hold-" + std::to_string(getpid()) + ".log";
  std::vector<Child> kids;
  for (int i = 0; i < 3; ++i) kids.push_back(Child::spawn({fixture(), "hold", "5"}, log));
  Samples s;
  for (int i = 0; i < 100 && total(s, "fx_by_pid_total").first != 15; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s = exp.scrape();
  }
  for (const auto& k : kids) EXPECT_EQ(s.at("fx_by_pid_total{pid=\"" + std::to_string(k.pid()) + "\"}"), 5);
  kids[0].signal(SIGKILL);
  kids[0].wait();
  // Gone within the next sweep (about a second), not after series_expiry (disabled here).
  Samples after;
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = exp.scrape();
    if (after.at("insa_exporter_series_expired_total{metric=\"fx_by_pid_total\"}") >= 1) break;
  }
  EXPECT_EQ(after.at("insa_exporter_series_expired_total{metric=\"fx_by_pid_total\"}"), 1);
  EXPECT_EQ(total(after, "fx_by_pid_total").second, 2u);
  EXPECT_EQ(total(after, "fx_by_pid_total").first, 10);
}

TEST(Losses, StringReadFromAnUnmappedPageIsCounted) {
  require_root();
  Exporter exp(write_config("badstr", with_binary(kBudget)), 19465);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  run_fixture({"badstr", "25"}, 25);
  run_fixture({"same", "5"}, 5);  // readable: not counted
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_lost_events_total{reason=\"string_read\"}"), 25);
  EXPECT_EQ(s.at("fx_by_name_total{name=\"\"}"), 25);  // the update counts, with an empty label
  EXPECT_EQ(s.at("fx_by_name_total{name=\"same\"}"), 5);
  EXPECT_EQ(s.at("fx_label_calls_total"), 30);
}

// A span whose end never comes (its process ended, or series_expiry passed) is removed
// from the kernel and counted; the spans that do end are observed as before.
TEST(Losses, SpansThatNeverEndAreRemovedAndCounted) {
  require_root();
  auto cfg = write_config("spans", R"(exporter:
  series_expiry: 2s
metrics:
  - name: fx_span_seconds
    type: histogram
    buckets: [1]
probes:
  - name: open
    binary: )" + fixture() + R"(
    function: fx_label
    metrics:
      - {metric: fx_span_seconds, span_begin: s, span_key: $arg2}
  - name: close
    binary: )" + fixture() + R"(
    function: fx_close
    metrics:
      - {metric: fx_span_seconds, span_end: s, span_key: $arg1}
)");
  Exporter exp(cfg, 19467);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  run_fixture({"distinct", "7"}, 7);  // 7 spans begun, none ended: the process is gone
  Samples s;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    s = exp.scrape();
    if (s.at("insa_exporter_lost_events_total{reason=\"span_expired\"}") >= 7) break;
  }
  EXPECT_EQ(s.at("insa_exporter_lost_events_total{reason=\"span_expired\"}"), 7);
  EXPECT_EQ(s.at("insa_exporter_lost_events_total{reason=\"span_map_full\"}"), 0);
  EXPECT_EQ(s.at("fx_span_seconds_count"), 0);
}

// The spans map holds 65536 open spans: of 66000 begun and never ended, 464 find it full
// and are counted (with series_expiry 0 nothing removes the others during the test).
TEST(Losses, SpanMapFullIsCounted) {
  require_root();
  auto cfg = write_config("spanfull", R"(exporter:
  series_expiry: 0
metrics:
  - name: fx_span_seconds
    type: histogram
    buckets: [1]
probes:
  - name: open
    binary: )" + fixture() + R"(
    function: fx_label
    metrics:
      - {metric: fx_span_seconds, span_begin: s, span_key: $arg2}
  - name: close
    binary: )" + fixture() + R"(
    function: fx_close
    metrics:
      - {metric: fx_span_seconds, span_end: s, span_key: $arg1}
)");
  Exporter exp(cfg, 19469);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  run_fixture({"distinct", "66000"}, 66000);
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_lost_events_total{reason=\"span_map_full\"}"), 66000 - 65536);
  EXPECT_EQ(s.at("insa_exporter_probe_events_total{probe=\"open\"}"), 66000);
}

// `check` prints each metric's share and the most the maps can take, from the same
// estimate the exporter exports.
TEST(Series, CheckPrintsTheBudget) {
  require_root();
  const std::string cfg = write_config("check", with_binary(kBudget));
  auto [st, out] = run_capture({binary_dir() + "/insa-exporter", "check", cfg});
  ASSERT_EQ(st, 0) << out;
  EXPECT_NE(out.find("metric fx_by_name_total            31 series in the kernel, then its label values count as "
                     "'other'\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("metric fx_label_calls_total        1 series in the kernel (every label is fixed)\n"),
            std::string::npos)
      << out;
  const int ncpus = libbpf_num_possible_cpus();
  const uint64_t c = plan::hash_map_bytes({33, sizeof(insa_key), sizeof(insa_count), true}, 33, ncpus);
  const uint64_t h = plan::hash_map_bytes({32, sizeof(insa_key), sizeof(insa_hist), true}, 32, ncpus);
  const uint64_t g = plan::hash_map_bytes({1, sizeof(insa_key), sizeof(insa_gauge), false}, 1, ncpus);
  const std::string line = "kernel maps at most " + plan::human_bytes(c + h + g) + " at " + std::to_string(ncpus) +
                           " CPUs (max_series 64): counters 33 (" + plan::human_bytes(c) + "), histograms 32 (" +
                           plan::human_bytes(h) + "), gauges 1 (" + plan::human_bytes(g) + ")\n";
  EXPECT_NE(out.find(line), std::string::npos) << out << "\nwanted: " << line;
  // The exporter exports the same figures.
  Exporter exp(cfg, 19468);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_kernel_map_limit_bytes{map=\"counters\"}"), static_cast<double>(c));
  EXPECT_EQ(s.at("insa_exporter_kernel_map_limit_bytes{map=\"histograms\"}"), static_cast<double>(h));
  EXPECT_EQ(s.at("insa_exporter_kernel_map_limit_bytes{map=\"gauges\"}"), static_cast<double>(g));
}

// The exit ring buffer holds 64 KiB: 2048 exit records of 32 bytes. With the exporter
// stopped (SIGSTOP) nothing drains it, so of N process exits at least N - 2048 are
// dropped, and counted. (Other processes on the host exit meanwhile too: a lower bound.)
TEST(Losses, RingBufferFullIsCounted) {
  require_root();
  Exporter exp(write_config("ring", with_binary(kBudget)), 19466);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const double before = exp.scrape().at("insa_exporter_lost_events_total{reason=\"ringbuf_full\"}");
  const pid_t ep = exp.child().pid();
  ASSERT_EQ(kill(ep, SIGSTOP), 0);
  // Wait until it is stopped (state T in /proc/PID/stat).
  for (int i = 0; i < 100; ++i) {
    std::string st = slurp("/proc/" + std::to_string(ep) + "/stat");
    auto p = st.rfind(')');
    if (p != std::string::npos && st.size() > p + 2 && st[p + 2] == 'T') break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  constexpr int kExits = 3000;
  for (int i = 0; i < kExits; ++i) {
    pid_t c = fork();
    if (c == 0) _exit(0);
    ASSERT_GT(c, 0);
    waitpid(c, nullptr, 0);
  }
  ASSERT_EQ(kill(ep, SIGCONT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double lost = exp.scrape().at("insa_exporter_lost_events_total{reason=\"ringbuf_full\"}") - before;
  EXPECT_GE(lost, kExits - 2048);
  EXPECT_LE(lost, kExits + 100000);
}

}  // namespace
}  // namespace insa::testing
