// SPDX-License-Identifier: Apache-2.0
// The kernel memory budget (attach/map_budget.h) over handcrafted plans: how
// max_series is shared among metrics, the map sizes, the refusal when it is too
// small, and the memory estimate, element by element as the kernel charges it
// (the root test Series.KernelMemoryPerSeriesIsWhatTheBudgetCharges checks the
// same per-element figure against the kernel's own). Also the expiry verdict
// (collector/expiry.h), a pure function of one key.
#include <gtest/gtest.h>

#include "attach/map_budget.h"
#include "attach/plan.h"
#include "collector/expiry.h"
#include "config/config.h"

namespace insa::plan {
namespace {

using config::MetricType;

config::MetricDef metric(const std::string& name, MetricType t) {
  config::MetricDef m;
  m.name = name;
  m.type = t;
  return m;
}

LabelDecoder label(LabelDecoder::Kind k, uint32_t offset = 0, bool pid = false) {
  LabelDecoder d;
  d.kind = k;
  d.offset = offset;
  d.len = 8;
  d.pid = pid;
  return d;
}

Series series(size_t metric, std::vector<LabelDecoder> labels) {
  Series s;
  s.metric = metric;
  s.labels = std::move(labels);
  return s;
}

using K = LabelDecoder::Kind;

struct Fixture {
  config::Config cfg;
  Plan plan;
  Fixture() {
    cfg.file = "probes.yaml";
    cfg.max_series = 1000;
    cfg.metrics = {metric("a_total", MetricType::Counter), metric("b_seconds", MetricType::Histogram),
                   metric("c_total", MetricType::Counter), metric("d", MetricType::Gauge),
                   metric("e_total", MetricType::Counter)};
    plan.statuses = {"success", "error", "timeout"};
    plan.series = {
        series(0, {label(K::Str), label(K::Status, 16)}),  // a: captured, with status: 3 `other` keys
        series(1, {label(K::Int)}),                        // b: captured
        series(2, {label(K::Static)}),                     // c: fixed, 1 key
        series(2, {label(K::Status)}),                     // c: fixed, one key per status
        series(3, {label(K::Int, 0, true)}),               // d: captured ($pid)
        series(4, {}),                                     // e: fixed, 1 key
    };
    Series derived = series(3, {label(K::Static)});
    derived.derived_inflight = true;  // no kernel key at all
    plan.series.push_back(derived);
  }
};

TEST(MapBudget, FixedSeriesGetExactlyTheirKeysTheRestIsSharedEvenly) {
  Fixture f;
  auto b = compute_budget(f.cfg, f.plan);
  ASSERT_TRUE(b.ok()) << b.error().message;
  // Fixed: c has 1 + 3 keys, e has 1: 5. The three captured metrics share 995: 331 each.
  ASSERT_EQ(b->metrics.size(), 5u);
  EXPECT_EQ(b->metrics[0].quota, 331u);
  EXPECT_EQ(b->metrics[1].quota, 331u);
  EXPECT_EQ(b->metrics[2].quota, 4u);
  EXPECT_EQ(b->metrics[3].quota, 331u);
  EXPECT_EQ(b->metrics[4].quota, 1u);
  EXPECT_TRUE(b->metrics[0].captured);
  EXPECT_FALSE(b->metrics[2].captured);
  EXPECT_EQ(b->metrics[0].other_keys, 3u);  // one per status
  EXPECT_EQ(b->metrics[1].other_keys, 1u);
  EXPECT_EQ(b->metrics[2].other_keys, 0u);
  EXPECT_EQ(b->metrics[1].map, MapKind::Histograms);
  EXPECT_EQ(b->metrics[3].map, MapKind::Gauges);
  // counters: a 331 + 3, c 4, e 1; histograms: b 331 + 1; gauges: d 331 + 1.
  EXPECT_EQ(b->entries[0], 339u);
  EXPECT_EQ(b->entries[1], 332u);
  EXPECT_EQ(b->entries[2], 332u);
}

TEST(MapBudget, AMapNoMetricUsesHasOneEntry) {
  Fixture f;
  f.cfg.metrics.resize(1);
  f.plan.series.resize(1);
  auto b = compute_budget(f.cfg, f.plan);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->metrics[0].quota, 1000u);
  EXPECT_EQ(b->entries[0], 1003u);
  EXPECT_EQ(b->entries[1], 1u);  // a BPF map cannot have 0 entries
  EXPECT_EQ(b->entries[2], 1u);
}

TEST(MapBudget, TooSmallIsRefusedAtMaxSeries) {
  Fixture f;
  f.cfg.max_series = 28;  // 5 fixed + 3 x 8 = 29 needed
  f.cfg.max_series_mark = {"probes.yaml", 2, 15};
  auto b = compute_budget(f.cfg, f.plan);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message,
            "probes.yaml:2:15: 'max_series' 28 is too small: metrics' own max_series and series with fixed labels take "
            "5 and each of the 3 other metrics with captured labels needs at least 8; set max_series to at least 29");
  f.cfg.max_series = 29;
  ASSERT_TRUE(compute_budget(f.cfg, f.plan).ok());
  EXPECT_EQ(compute_budget(f.cfg, f.plan)->metrics[0].quota, 8u);
  f.cfg.max_series = 20;
  f.cfg.max_series_mark = {};  // not written: the default
  EXPECT_EQ(compute_budget(f.cfg, f.plan).error().message,
            "probes.yaml: exporter.max_series (default) 20 is too small: metrics' own max_series and series with fixed "
            "labels take 5 and each of the 3 other metrics with captured labels needs at least 8; set max_series to "
            "at least 29");
}

TEST(MapBudget, AMetricsOwnMaxSeriesIsTakenFirst) {
  Fixture f;
  f.cfg.metrics[0].max_series = 500;  // a: its own quota
  f.cfg.metrics[2].max_series = 10;   // c: fixed labels, 4 keys: 10 is enough
  auto b = compute_budget(f.cfg, f.plan);
  ASSERT_TRUE(b.ok()) << b.error().message;
  // 1000 - 500 - 10 - 1 (e) = 489 for b and d: 244 each.
  EXPECT_EQ(b->metrics[0].quota, 500u);
  EXPECT_EQ(b->metrics[1].quota, 244u);
  EXPECT_EQ(b->metrics[2].quota, 10u);
  EXPECT_EQ(b->metrics[3].quota, 244u);
  EXPECT_EQ(b->metrics[4].quota, 1u);
  EXPECT_EQ(b->entries[0], 500u + 3 + 10 + 1);
  f.cfg.metrics[2].max_series = 3;
  f.cfg.metrics[2].max_series_mark = {"probes.yaml", 9, 17};
  EXPECT_EQ(compute_budget(f.cfg, f.plan).error().message,
            "probes.yaml:9:17: 'max_series' 3 of metric 'c_total' is less than the 4 series its fixed labels can "
            "have; raise it or remove it");
  f.cfg.metrics[2].max_series = 10;
  f.cfg.metrics[0].max_series = 980;  // leaves 9 for two metrics
  EXPECT_FALSE(compute_budget(f.cfg, f.plan).ok());
}

TEST(MapBudget, ElementBytesAsTheKernelChargesThem) {
  // Per-CPU counter value (16 bytes) at 2 CPUs: htab_elem 48 + key 136 + pointer 8, the
  // allocator's node 8, and the per-CPU part: node 8 + pointer 8 + 16 x 2. Measured on
  // Linux 6.18 (fdinfo memlock): 248 bytes per element.
  HashShape counters{65, sizeof(insa_key), sizeof(insa_count), true};
  EXPECT_EQ(hash_map_elem_bytes(counters, 2), 248u);
  EXPECT_EQ(hash_map_elem_bytes(counters, 64), 248u + 16u * 62u);
  HashShape hist{32, sizeof(insa_key), sizeof(insa_hist), true};
  EXPECT_EQ(hash_map_elem_bytes(hist, 2), 48u + 136 + 8 + 8 + 8 + 8 + 160u * 2);
  // A shared (not per-CPU) value is inline: 48 + 136 + 16 + 8, whatever the CPU count.
  HashShape gauges{1, sizeof(insa_key), sizeof(insa_gauge), false};
  EXPECT_EQ(hash_map_elem_bytes(gauges, 2), 208u);
  EXPECT_EQ(hash_map_elem_bytes(gauges, 128), 208u);
  // Odd sizes round up to 8.
  EXPECT_EQ(hash_map_elem_bytes({1, 13, 3, false}, 1), 48u + 16 + 8 + 8);
  // The whole map: fixed part, 16-byte buckets for max_entries rounded up to a power of
  // two (65 -> 128), and the elements.
  EXPECT_EQ(hash_map_bytes(counters, 0, 2), kHashMapFixedBytes + 16 * 128);
  EXPECT_EQ(hash_map_bytes(counters, 65, 2), kHashMapFixedBytes + 16 * 128 + 65 * 248);
}

TEST(MapBudget, TheOldOneHistogramPerSeriesCostVersusNow) {
  // Issue 12: 16384 series, each a full per-CPU histogram, at 64 CPUs: about 150 MiB.
  HashShape old_way{16384, sizeof(insa_key), 152, true};
  EXPECT_GT(hash_map_bytes(old_way, 16384, 64), 150ull << 20);
  // Counters now carry 16 bytes per CPU: the same 16384 series take under 20 MiB.
  HashShape counters{16384, sizeof(insa_key), sizeof(insa_count), true};
  EXPECT_LT(hash_map_bytes(counters, 16384, 64), 20ull << 20);
}

TEST(MapBudget, HumanBytes) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(150ull << 20), "150.0 MiB");
  EXPECT_EQ(human_bytes(3ull << 30), "3.0 GiB");
}

}  // namespace
}  // namespace insa::plan

namespace insa::collector {
namespace {

using plan::LabelDecoder;
constexpr uint64_t kS = 1'000'000'000ULL;

plan::Series captured(bool pid = false, bool additive = false) {
  plan::Series s;
  LabelDecoder d;
  d.kind = LabelDecoder::Kind::Int;
  d.offset = 8;
  d.pid = pid;
  s.labels = {d};
  s.additive = additive;
  return s;
}

insa_key key_with(int64_t v, uint32_t flags = 0) {
  insa_key k{};
  k.flags = flags;
  std::memcpy(k.data + 8, &v, sizeof v);
  return k;
}

TEST(Expiry, IdleCapturedSeriesGoFixedOnesNever) {
  auto alive = [](uint32_t) { return true; };
  const auto s = captured();
  const int64_t ten_min = 600 * static_cast<int64_t>(kS);
  EXPECT_EQ(judge(s, key_with(5), 1000 * kS, 0, 1000 * kS + 599 * kS, ten_min, alive), Verdict::Keep);
  EXPECT_EQ(judge(s, key_with(5), 1000 * kS, 0, 1000 * kS + 600 * kS, ten_min, alive), Verdict::Idle);
  EXPECT_EQ(judge(s, key_with(5, INSA_KEY_OTHER), 0, 0, 700 * kS, ten_min, alive), Verdict::Idle);
  // A `last` later than now (read across CPUs) is not idle.
  EXPECT_EQ(judge(s, key_with(5), 2000 * kS, 0, 1000 * kS, ten_min, alive), Verdict::Keep);
  // series_expiry 0: idle series stay.
  EXPECT_EQ(judge(s, key_with(5), 0, 0, 100000 * kS, 0, alive), Verdict::Keep);
  plan::Series fixed;
  LabelDecoder st;
  st.kind = LabelDecoder::Kind::Status;
  fixed.labels = {st};
  EXPECT_EQ(judge(fixed, key_with(0), 0, 0, 100000 * kS, ten_min, alive), Verdict::Keep);
}

TEST(Expiry, RunningBalancesExpireOnlyAtZero) {
  auto alive = [](uint32_t) { return true; };
  const auto inflight = captured(false, true);
  EXPECT_EQ(judge(inflight, key_with(1), 0, 2, 1000 * kS, 10 * kS, alive), Verdict::Keep);
  EXPECT_EQ(judge(inflight, key_with(1), 0, 0, 1000 * kS, 10 * kS, alive), Verdict::Idle);
  const auto set_gauge = captured(false, false);
  EXPECT_EQ(judge(set_gauge, key_with(1), 0, 2, 1000 * kS, 10 * kS, alive), Verdict::Idle);
}

TEST(Expiry, DeadProcessesGoAtOnce) {
  std::vector<uint32_t> asked;
  auto alive = [&](uint32_t pid) {
    asked.push_back(pid);
    return pid != 4242;
  };
  const auto s = captured(true, true);
  // Dead: removed whatever its age or balance, even with expiry off.
  EXPECT_EQ(judge(s, key_with(4242), 1000 * kS, 3, 1000 * kS, 0, alive), Verdict::DeadPid);
  EXPECT_EQ(judge(s, key_with(4243), 1000 * kS, 3, 1000 * kS, 0, alive), Verdict::Keep);
  // The `other` key carries no PID (zeroed): never asked about.
  EXPECT_EQ(judge(s, key_with(4242, INSA_KEY_OTHER), 1000 * kS, 0, 1000 * kS, 0, alive), Verdict::Keep);
  // PID 0 (kernel threads) and out-of-range values are not processes to look up.
  EXPECT_EQ(judge(s, key_with(0), 1000 * kS, 0, 1000 * kS, 0, alive), Verdict::Keep);
  EXPECT_EQ(judge(s, key_with(-1), 1000 * kS, 0, 1000 * kS, 0, alive), Verdict::Keep);
  EXPECT_EQ(asked, (std::vector<uint32_t>{4242, 4243}));
}

TEST(Expiry, SweepPeriod) {
  EXPECT_EQ(Expiry::period_ns(600 * static_cast<int64_t>(kS)), 60 * kS);
  EXPECT_EQ(Expiry::period_ns(120 * static_cast<int64_t>(kS)), 12 * kS);
  EXPECT_EQ(Expiry::period_ns(2 * static_cast<int64_t>(kS)), kS);
  EXPECT_EQ(Expiry::period_ns(0), 60 * kS);
  EXPECT_EQ(Expiry::period_ns(24 * 3600 * static_cast<int64_t>(kS)), 60 * kS);
}

}  // namespace
}  // namespace insa::collector
