// SPDX-License-Identifier: Apache-2.0
// Target kinds of the probe engine, attached for real: USDT probes with
// arguments, a probe limited to one PID, a raw file offset. Functions in a
// shared library reached by soname (libsqlite3.so.0: tests/root/platform_test.cpp).
#include <gtest/gtest.h>

#include "harness.h"

namespace insa::testing {
namespace {

std::string write_config(const std::string& name, const std::string& text) {
  std::string path = "/tmp/insa-targets-" + std::to_string(getpid()) + "-" + name + ".yaml";
  std::ofstream(path) << text;
  return path;
}

std::string fixture_c() { return binary_dir() + "/tests/fixtures/fixture_c_pie_O2"; }

TEST(Targets, UsdtProbeWithArguments) {
  require_root();
  auto cfg = write_config("usdt", R"(metrics:
  - name: fx_usdt_requests_total
    type: counter
    labels: [parity]
  - name: fx_usdt_arg_sum_total
    type: counter
probes:
  - name: usdt_request
    binary: )" + fixture_c() + R"(
    usdt: insa_fx:request
    metrics:
      - metric: fx_usdt_requests_total
        labels: {parity: {value: $arg1, map: {0: even}, default: nonzero}}
      - metric: fx_usdt_arg_sum_total
        count: $arg2
)");
  Exporter exp(cfg, 19371);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({fixture_c(), "usdt", "50"});
  ASSERT_EQ(st, 0) << out;
  ASSERT_NE(out.find("usdt{probe=\"insa_fx:request\"} 50"), std::string::npos) << out;
  Samples s = exp.scrape();
  // arg1 = i (0..49): one call with 0; arg2 = 2*i, summed: 2 * (0+..+49) = 2450.
  EXPECT_EQ(s.at("fx_usdt_requests_total{parity=\"even\"}"), 1);
  EXPECT_EQ(s.at("fx_usdt_requests_total{parity=\"nonzero\"}"), 49);
  EXPECT_EQ(s.at("fx_usdt_arg_sum_total"), 2450);
  EXPECT_EQ(s.at("insa_exporter_probe_events_total{probe=\"usdt_request\"}"), 50);
}

// A metric's series quota full: new label values are counted in its `other` series,
// call by call; nothing is dropped. 50 distinct values, max_series 16 (the metric's
// whole quota: its labels are all captured).
TEST(Targets, FullQuotaFoldsIntoOther) {
  require_root();
  auto cfg = write_config("full", R"(exporter:
  max_series: 16
metrics:
  - name: fx_by_id_total
    type: counter
    labels: [id]
probes:
  - name: by_id
    binary: )" + fixture_c() + R"(
    usdt: insa_fx:request
    metrics:
      - metric: fx_by_id_total
        labels: {id: $arg1}
)");
  Exporter exp(cfg, 19374);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({fixture_c(), "usdt", "50"});
  ASSERT_EQ(st, 0) << out;
  Samples s = exp.scrape();
  double kept = 0;
  size_t series = 0;
  for (const auto& [k, v] : s)
    if (k.rfind("fx_by_id_total{", 0) == 0 && k != "fx_by_id_total{id=\"other\"}") {
      kept += v;
      ++series;
    }
  EXPECT_EQ(series, 16u);
  EXPECT_EQ(kept, 16);
  EXPECT_EQ(s.at("fx_by_id_total{id=\"other\"}"), 34);
  EXPECT_EQ(s.at("insa_exporter_series_folded_total{metric=\"fx_by_id_total\"}"), 34);
  EXPECT_EQ(s.at("insa_exporter_dropped_updates_total{probe=\"by_id\"}"), 0);
  EXPECT_EQ(s.at("insa_exporter_map_entries{map=\"counters\"}"), 17);
  EXPECT_EQ(s.at("insa_exporter_probe_events_total{probe=\"by_id\"}"), 50);
}

TEST(Targets, PidLimitsTheProbeToOneProcess) {
  require_root();
  const std::string worker = binary_dir() + "/tests/workers/request_worker";
  // A long-running process we target, and a second one of the same binary we must not count.
  Child target = Child::spawn({worker, "--seed", "2", "--requests", "30", "--start-delay-ms", "1500", "--truth",
                               "/tmp/insa-targets-pid.truth"},
                              "/tmp/insa-targets-pid.log");
  auto cfg = write_config("pid", R"(metrics:
  - name: fx_requests_total
    type: counter
probes:
  - name: one_process
    binary: )" + worker + R"(
    pid: )" + std::to_string(target.pid()) + R"(
    function: insa_demo::handle_request
    metrics:
      - metric: fx_requests_total
)");
  Exporter exp(cfg, 19372);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({worker, "--seed", "3", "--requests", "20"});
  ASSERT_EQ(st, 0) << out;
  ASSERT_EQ(target.wait(), 0);
  EXPECT_EQ(exp.scrape().at("fx_requests_total"), 30);
}

TEST(Targets, RawFileOffset) {
  require_root();
  // An entry-only probe at a raw offset: the entry of usdt_fn, read from nm.
  auto [nst, nm] = run_capture({"/usr/bin/nm", fixture_c()});
  ASSERT_EQ(nst, 0);
  auto pos = nm.find(" T usdt_fn\n");
  ASSERT_NE(pos, std::string::npos) << nm;
  const uint64_t vaddr = std::stoull(nm.substr(nm.rfind('\n', pos) + 1, 16), nullptr, 16);
  // PIE with a zero-based first segment: the file offset of .text equals the vaddr here.
  auto [rst, rd] = run_capture({"/usr/bin/readelf", "-lW", fixture_c()});
  ASSERT_NE(rd.find("LOAD           0x001000 0x0000000000001000"), std::string::npos) << rd;
  char off[32];
  std::snprintf(off, sizeof off, "0x%llx", static_cast<unsigned long long>(vaddr));
  auto cfg = write_config("offset", R"(metrics:
  - name: fx_offset_calls_total
    type: counter
probes:
  - name: by_offset
    binary: )" + fixture_c() + R"(
    offset: )" + off + R"(
    metrics:
      - metric: fx_offset_calls_total
)");
  Exporter exp(cfg, 19373);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({fixture_c(), "usdt", "17"});
  ASSERT_EQ(st, 0) << out;
  EXPECT_EQ(exp.scrape().at("fx_offset_calls_total"), 17);
}

}  // namespace
}  // namespace insa::testing
