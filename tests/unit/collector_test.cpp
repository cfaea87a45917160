// SPDX-License-Identifier: Apache-2.0
// The collector over a fake map reader: a handcrafted snapshot (keys with
// label bytes as the kernel writes them, per-series histogram values, gauges,
// probe stats) and a handcrafted plan, checked family by family and as the
// exact text exposition Prometheus scrapes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <sys/utsname.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <bpf/libbpf.h>

#include "collector/collector.h"
#include "collector/exposition.h"
#include "../test_util.h"

namespace insa::collector {
namespace {
namespace pm = prometheus;
using plan::LabelDecoder;
using ::testing::HasSubstr;
using ::testing::Not;

class FakeReader : public reader::MapReader {
 public:
  reader::Snapshot snap;
  bool fail = false;
  int reads = 0;
  Result<void> read(reader::Snapshot& out) override {
    ++reads;
    if (fail) return Error{"fake read failure", EIO};
    out = snap;
    return {};
  }
};

// ---- building keys the way the kernel lays out insa_key.data ----

insa_key key(uint32_t series) {
  insa_key k{};
  k.series = series;
  return k;
}
void put_str(insa_key& k, uint32_t off, const std::string& s) { std::memcpy(k.data + off, s.data(), s.size()); }
void put_int(insa_key& k, uint32_t off, int64_t v) { std::memcpy(k.data + off, &v, sizeof v); }

insa_count counter(int64_t v) {
  insa_count c{};
  c.sum = v;
  return c;
}
insa_gauge gauge(int64_t v) {
  insa_gauge g{};
  g.value = v;
  return g;
}

LabelDecoder stat(const std::string& name, const std::string& value) {
  LabelDecoder d;
  d.name = name;
  d.kind = LabelDecoder::Kind::Static;
  d.static_value = value;
  return d;
}
LabelDecoder str(const std::string& name, uint32_t off, uint32_t len) {
  LabelDecoder d;
  d.name = name;
  d.kind = LabelDecoder::Kind::Str;
  d.offset = off;
  d.len = len;
  return d;
}
LabelDecoder integer(const std::string& name, uint32_t off) {
  LabelDecoder d;
  d.name = name;
  d.kind = LabelDecoder::Kind::Int;
  d.offset = off;
  d.len = 8;
  return d;
}
LabelDecoder status(const std::string& name, uint32_t off) {
  LabelDecoder d = integer(name, off);
  d.kind = LabelDecoder::Kind::Status;
  return d;
}

config::MetricDef metric(const std::string& name, config::MetricType t, std::vector<std::string> labels,
                         std::vector<double> buckets = {}, const std::string& help = "") {
  config::MetricDef m;
  m.name = name;
  m.help = help.empty() ? name : help;
  m.type = t;
  m.labels = std::move(labels);
  m.buckets = std::move(buckets);
  return m;
}

plan::Series series(size_t metric, std::vector<LabelDecoder> labels, double scale = 1.0, int probe = 0,
                    bool gauge = false) {
  plan::Series s;
  s.metric = metric;
  s.labels = std::move(labels);
  s.scale = scale;
  s.probe = probe;
  s.gauge = gauge;
  return s;
}

enum M { kRequests, kDuration, kActive, kErrors, kModels, kStatic, kSizes };

/// The fixture: config + plan + reader + the collector over them.
struct World {
  config::Config cfg;
  plan::Plan plan;
  FakeReader reader;
  std::vector<ProbeStatus> attached{{true}, {false}};

  World() {
    using config::MetricType;
    cfg.label_limit = 2;
    cfg.system_info = {{"version", "9.9.9"}, {"environment", "test"}};
    cfg.metrics = {
        metric("insa_agent_requests_total", MetricType::Counter, {"agent_type", "status"}, {}, "Requests handled."),
        metric("insa_agent_request_duration_seconds", MetricType::Histogram, {"agent_type"}, {0.005, 0.01, 0.1},
               "Request handling time."),
        metric("insa_worker_active_requests", MetricType::Gauge, {"worker_name"}),
        metric("insa_errors_total", MetricType::Counter, {"code"}),
        metric("insa_model_calls_total", MetricType::Counter, {"model"}),
        metric("insa_static_total", MetricType::Counter, {"kind"}),
        metric("insa_sizes_bytes", MetricType::Histogram, {}, {100, 1000}),
    };
    plan.statuses = {"success", "error", "timeout"};
    plan::ProbePlan a, b;
    a.name = "request";
    b.name = "queue";
    b.cookie = 1;
    plan.probes = {a, b};
    auto code = integer("code", 0);
    code.value_map = {{0, "ok"}, {1, "retry"}};
    code.map_default = "other_code";
    auto model = str("model", 0, 64);
    model.regex.emplace("model=([a-z0-9-]+)");
    plan.series = {
        series(kRequests, {str("agent_type", 0, 32), status("status", 32)}),  // 0
        series(kDuration, {str("agent_type", 0, 32)}, 1e-9),                  // 1
        series(kActive, {stat("worker_name", "request_worker")}, 1.0, 0, true),  // 2
        series(kErrors, {code}, 1.0, 1),                                       // 3
        series(kModels, {model}, 1.0, 1),                                      // 4
        series(kStatic, {stat("kind", "a")}, 1.0, 1),                          // 5
        series(kSizes, {}, 1.0, 1),                                            // 6
    };
    plan.budget = *plan::compute_budget(cfg, plan);
  }

  Collector make() {
    return Collector(cfg, plan, reader, [this] { return attached; });
  }

  void add_events() {
    auto& s = reader.snap;
    auto req = [&](const char* agent, int64_t st, int64_t n) {
      auto k = key(0);
      put_str(k, 0, agent);
      put_int(k, 32, st);
      s.counters.emplace_back(k, counter(n));
    };
    req("sizing", 0, 5);
    req("sizing", 1, 2);
    req("crm", 1, 1);
    // durations 2, 7, 20, 120 ms for sizing
    auto kd = key(1);
    put_str(kd, 0, "sizing");
    insa_hist h{};
    h.count = 4;
    h.sum = 149'000'000;
    h.buckets[0] = 1;
    h.buckets[1] = 1;
    h.buckets[2] = 1;
    h.buckets[3] = 1;  // +Inf slot of a 3-bound histogram
    s.histograms.emplace_back(kd, h);
    auto code = [&](int64_t c, int64_t n) {
      auto k = key(3);
      put_int(k, 0, c);
      s.counters.emplace_back(k, counter(n));
    };
    code(0, 3);
    code(1, 1);
    code(7, 2);
    code(-4, 1);
    auto model = [&](const char* m, int64_t n) {
      auto k = key(4);
      put_str(k, 0, m);
      s.counters.emplace_back(k, counter(n));
    };
    model("call MODEL=GPT-4o now", 2);
    model("model=gpt-4o", 1);   // same exported value: folds into the same series
    model("model=claude", 1);
    model("model=llama", 4);    // third distinct value with label_limit 2: `other`
    model("model=mistral", 1);  // fourth: `other` too
    auto g = key(2);
    s.gauges.emplace_back(g, gauge(3));
    s.stats.resize(2);
    s.stats[0] = {10, 9, 1, 2, 3, 4, 5};
    s.stats[1] = {7, 0, 0, 0, 0, 0, 0};
    // A key for a series the plan does not know (stale map entry) is ignored.
    s.counters.emplace_back(key(99), counter(1000));
    s.map_bytes = {{"counters", 19064}, {"specs", 635192}};
    s.folded = {0, 0, 0, 4, 0, 0, 0};
    s.lost[INSA_LOST_STR_READ] = 1;
    s.lost[INSA_LOST_RINGBUF] = 2;
    s.lost[INSA_LOST_SPAN_FULL] = 3;
  }
};

const pm::MetricFamily& fam(const std::vector<pm::MetricFamily>& fs, const std::string& name) {
  for (const auto& f : fs)
    if (f.name == name) return f;
  static pm::MetricFamily none;
  ADD_FAILURE() << "no family " << name;
  return none;
}

std::vector<std::pair<std::string, std::string>> labels(const pm::ClientMetric& m) {
  std::vector<std::pair<std::string, std::string>> v;
  for (const auto& l : m.label) v.emplace_back(l.name, l.value);
  return v;
}

using L = std::vector<std::pair<std::string, std::string>>;

std::string text(const std::vector<pm::MetricFamily>& fs) { return pm::TextSerializer().Serialize(fs); }

std::string host_platform() {
  utsname u{};
  uname(&u);
  std::string sys = u.sysname;
  for (auto& c : sys) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return sys + "-" + u.machine;
}

TEST(Collector, Counters) {
  World w;
  w.add_events();
  auto c = w.make();
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_agent_requests_total");
  EXPECT_EQ(f.type, pm::MetricType::Counter);
  EXPECT_EQ(f.help, "Requests handled.");
  ASSERT_EQ(f.metric.size(), 3u);  // sorted by label values
  EXPECT_EQ(labels(f.metric[0]), (L{{"agent_type", "crm"}, {"status", "error"}}));
  EXPECT_EQ(f.metric[0].counter.value, 1);
  EXPECT_EQ(labels(f.metric[1]), (L{{"agent_type", "sizing"}, {"status", "error"}}));
  EXPECT_EQ(f.metric[1].counter.value, 2);
  EXPECT_EQ(labels(f.metric[2]), (L{{"agent_type", "sizing"}, {"status", "success"}}));
  EXPECT_EQ(f.metric[2].counter.value, 5);
}

TEST(Collector, HistogramCumulativeBucketsInSeconds) {
  World w;
  w.add_events();
  auto c = w.make();
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_agent_request_duration_seconds");
  EXPECT_EQ(f.type, pm::MetricType::Histogram);
  ASSERT_EQ(f.metric.size(), 1u);
  const auto& h = f.metric[0].histogram;
  EXPECT_EQ(labels(f.metric[0]), (L{{"agent_type", "sizing"}}));
  EXPECT_EQ(h.sample_count, 4u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 0.149);
  ASSERT_EQ(h.bucket.size(), 4u);
  EXPECT_EQ(h.bucket[0].upper_bound, 0.005);
  EXPECT_EQ(h.bucket[0].cumulative_count, 1u);
  EXPECT_EQ(h.bucket[1].upper_bound, 0.01);
  EXPECT_EQ(h.bucket[1].cumulative_count, 2u);
  EXPECT_EQ(h.bucket[2].upper_bound, 0.1);
  EXPECT_EQ(h.bucket[2].cumulative_count, 3u);
  EXPECT_EQ(h.bucket[3].upper_bound, std::numeric_limits<double>::infinity());
  EXPECT_EQ(h.bucket[3].cumulative_count, 4u);
}

// An in-flight gauge with static labels has no kernel series: entries minus calls ended
// (return, exception, reclaim, untracked) of its probe; never negative on a torn read.
TEST(Collector, DerivedInflightFromProbeStats) {
  World w;
  auto derived = series(kActive, {stat("worker_name", "queue_worker")}, 1.0, 1, true);
  derived.derived_inflight = true;
  w.plan.series.push_back(derived);
  w.reader.snap.stats.resize(2);
  w.reader.snap.stats[1] = {12, 5, 2, 1, 7, 1, 0};  // hits, completed, exceptions, abandoned, unmatched, untracked
  auto c = w.make();
  auto value = [&] {
    auto t = c.text();
    auto k = t.find("insa_worker_active_requests{worker_name=\"queue_worker\"} ");
    EXPECT_NE(k, std::string::npos) << t;
    return k == std::string::npos ? -1.0 : std::stod(t.substr(k + 56));
  };
  EXPECT_EQ(value(), 3);  // 12 - (5 + 2 + 1 + 1); unmatched exits never entered
  w.reader.snap.stats[1] = {12, 12, 1, 0, 0, 0, 0};
  EXPECT_EQ(value(), 0);
  w.reader.snap.stats[1] = {0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(value(), 0);  // shown at zero before any call
}

TEST(Collector, GaugesAndStaticSeries) {
  World w;
  w.add_events();
  auto c = w.make();
  auto fs = c.Collect();
  const auto& g = fam(fs, "insa_worker_active_requests");
  EXPECT_EQ(g.type, pm::MetricType::Gauge);
  ASSERT_EQ(g.metric.size(), 1u);
  EXPECT_EQ(labels(g.metric[0]), (L{{"worker_name", "request_worker"}}));
  EXPECT_EQ(g.metric[0].gauge.value, 3);
  const auto& s = fam(fs, "insa_static_total");
  ASSERT_EQ(s.metric.size(), 1u);
  EXPECT_EQ(labels(s.metric[0]), (L{{"kind", "a"}}));
  EXPECT_EQ(s.metric[0].counter.value, 0);
}

TEST(Collector, ValueMapAndDefault) {
  World w;
  w.add_events();
  auto c = w.make();
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_errors_total");
  ASSERT_EQ(f.metric.size(), 3u) << text({f});
  // 0 → ok and 1 → retry take the two allowed values; 7 and -4 map to the
  // default name, a third distinct value, so they fold into `other`.
  EXPECT_EQ(labels(f.metric[0]), (L{{"code", "ok"}}));
  EXPECT_EQ(f.metric[0].counter.value, 3);
  EXPECT_EQ(labels(f.metric[1]), (L{{"code", "other"}}));
  EXPECT_EQ(f.metric[1].counter.value, 3);
  EXPECT_EQ(labels(f.metric[2]), (L{{"code", "retry"}}));
  EXPECT_EQ(f.metric[2].counter.value, 1);
}

TEST(Collector, RegexLabelAndLabelLimit) {
  World w;
  w.add_events();
  auto c = w.make();
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_model_calls_total");
  ASSERT_EQ(f.metric.size(), 3u) << text({f});
  EXPECT_EQ(labels(f.metric[0]), (L{{"model", "claude"}}));
  EXPECT_EQ(f.metric[0].counter.value, 1);
  EXPECT_EQ(labels(f.metric[1]), (L{{"model", "gpt-4o"}}));  // lower-cased first group
  EXPECT_EQ(f.metric[1].counter.value, 3);
  EXPECT_EQ(labels(f.metric[2]), (L{{"model", "other"}}));
  EXPECT_EQ(f.metric[2].counter.value, 5);

  const auto& o = fam(fs, "insa_exporter_label_overflow_total");
  EXPECT_EQ(o.type, pm::MetricType::Counter);
  ASSERT_EQ(o.metric.size(), w.cfg.metrics.size());
  for (const auto& m : o.metric) {
    const auto& name = m.label.at(0).value;
    EXPECT_EQ(m.label.at(0).name, "metric");
    double want = name == "insa_model_calls_total" ? 2 : name == "insa_errors_total" ? 1 : 0;
    EXPECT_EQ(m.counter.value, want) << name;
  }
}

// A key of a series the plan does not know (a probe a reload is adding or removing)
// leaves a gap in the scrape-to-scrape key order cache: a later key that is all zeros
// (series 0, empty string, status 0) must not match the gap and land in another row.
TEST(Collector, SkippedKeyLeavesNoZeroKeyInTheOrderCache) {
  World w;
  auto c = w.make();
  w.reader.snap.counters = {{key(99), counter(1000)}, {key(5), counter(2)}};
  (void)c.Collect();
  w.reader.snap.counters = {{key(0), counter(4)}, {key(5), counter(3)}};
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_agent_requests_total");
  ASSERT_EQ(f.metric.size(), 1u) << text({f});
  EXPECT_EQ(labels(f.metric[0]), (L{{"agent_type", ""}, {"status", "success"}}));
  EXPECT_EQ(f.metric[0].counter.value, 4);
  const auto& g = fam(fs, "insa_worker_active_requests");
  ASSERT_EQ(g.metric.size(), 1u);
  EXPECT_EQ(g.metric[0].gauge.value, 0);
  EXPECT_EQ(fam(fs, "insa_static_total").metric.at(0).counter.value, 3);
}

// A reload's new collector takes over which label values are shown and which are
// folded into `other`, and the scrape error count: the same keys give the same series.
TEST(Collector, AdoptKeepsLabelFoldingAcrossAReload) {
  World w;
  w.add_events();
  w.reader.fail = true;
  auto old = w.make();
  (void)old.Collect();  // one failed scrape
  w.reader.fail = false;
  (void)old.Collect();  // claude and gpt-4o seen; llama and mistral folded
  // The new collector sees a new value first: without the old state it would take a slot.
  auto& cs = w.reader.snap.counters;
  auto k = key(4);
  put_str(k, 0, "model=zephyr");
  cs.insert(cs.begin(), {k, counter(6)});
  auto fresh = w.make();
  fresh.adopt(old);
  auto fs = fresh.Collect();
  const auto& f = fam(fs, "insa_model_calls_total");
  ASSERT_EQ(f.metric.size(), 3u) << text({f});
  EXPECT_EQ(labels(f.metric[0]), (L{{"model", "claude"}}));
  EXPECT_EQ(labels(f.metric[1]), (L{{"model", "gpt-4o"}}));
  EXPECT_EQ(labels(f.metric[2]), (L{{"model", "other"}}));
  EXPECT_EQ(f.metric[2].counter.value, 11);
  EXPECT_EQ(fam(fs, "insa_exporter_scrape_errors_total").metric.at(0).counter.value, 1);
  for (const auto& m : fam(fs, "insa_exporter_label_overflow_total").metric)
    if (m.label.at(0).value == "insa_model_calls_total") EXPECT_EQ(m.counter.value, 3);
  // Without adopt, the first value met takes a slot.
  auto plain = w.make();
  const auto pfs = plain.Collect();
  const auto& p = fam(pfs, "insa_model_calls_total");
  EXPECT_EQ(labels(p.metric.at(p.metric.size() - 1)), (L{{"model", "zephyr"}})) << text({p});
}

TEST(Collector, LabelLimitIsStableAcrossScrapes) {
  World w;
  w.add_events();
  auto c = w.make();
  (void)c.Collect();
  auto fs = c.Collect();  // the same values again: no new folds, same series
  const auto& f = fam(fs, "insa_model_calls_total");
  ASSERT_EQ(f.metric.size(), 3u);
  EXPECT_EQ(f.metric[2].counter.value, 5);
  const auto& o = fam(fs, "insa_exporter_label_overflow_total");
  for (const auto& m : o.metric)
    if (m.label.at(0).value == "insa_model_calls_total") EXPECT_EQ(m.counter.value, 2);
  EXPECT_EQ(w.reader.reads, 2);
}

TEST(Collector, StaticSeriesPresentAtZeroBeforeAnyEvent) {
  World w;  // empty snapshot
  auto c = w.make();
  auto fs = c.Collect();
  EXPECT_TRUE(fam(fs, "insa_agent_requests_total").metric.empty());
  EXPECT_TRUE(fam(fs, "insa_agent_request_duration_seconds").metric.empty());
  const auto& g = fam(fs, "insa_worker_active_requests");
  ASSERT_EQ(g.metric.size(), 1u);
  EXPECT_EQ(g.metric[0].gauge.value, 0);
  const auto& s = fam(fs, "insa_static_total");
  ASSERT_EQ(s.metric.size(), 1u);
  EXPECT_EQ(s.metric[0].counter.value, 0);
  const auto& h = fam(fs, "insa_sizes_bytes");
  ASSERT_EQ(h.metric.size(), 1u);
  EXPECT_TRUE(h.metric[0].label.empty());
  EXPECT_EQ(h.metric[0].histogram.sample_count, 0u);
  ASSERT_EQ(h.metric[0].histogram.bucket.size(), 3u);
  for (const auto& b : h.metric[0].histogram.bucket) EXPECT_EQ(b.cumulative_count, 0u);

  const std::string t = text(fs);
  EXPECT_THAT(t, HasSubstr("\ninsa_static_total{kind=\"a\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("\ninsa_worker_active_requests{worker_name=\"request_worker\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("\ninsa_sizes_bytes_bucket{le=\"100\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("\ninsa_sizes_bytes_bucket{le=\"+Inf\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("\ninsa_sizes_bytes_count 0\n"));
  EXPECT_THAT(t, HasSubstr("\ninsa_sizes_bytes_sum 0\n"));
  EXPECT_THAT(t, HasSubstr("# TYPE insa_agent_requests_total counter\n"));
}

TEST(Collector, SelfMetrics) {
  World w;
  w.add_events();
  auto c = w.make();
  auto fs = c.Collect();
  const auto& a = fam(fs, "insa_exporter_probe_attached");
  EXPECT_EQ(a.type, pm::MetricType::Gauge);
  ASSERT_EQ(a.metric.size(), 2u);
  EXPECT_EQ(labels(a.metric[0]), (L{{"probe", "request"}}));
  EXPECT_EQ(a.metric[0].gauge.value, 1);
  EXPECT_EQ(labels(a.metric[1]), (L{{"probe", "queue"}}));
  EXPECT_EQ(a.metric[1].gauge.value, 0);

  auto per_probe = [&](const char* name, double r, double q) {
    const auto& f = fam(fs, name);
    EXPECT_EQ(f.type, pm::MetricType::Counter) << name;
    ASSERT_EQ(f.metric.size(), 2u) << name;
    EXPECT_EQ(f.metric[0].counter.value, r) << name;
    EXPECT_EQ(f.metric[1].counter.value, q) << name;
    EXPECT_EQ(labels(f.metric[1]), (L{{"probe", "queue"}})) << name;
  };
  per_probe("insa_exporter_probe_events_total", 10, 7);
  per_probe("insa_exporter_abandoned_calls_total", 2, 0);
  per_probe("insa_exporter_exception_exits_total", 1, 0);
  per_probe("insa_exporter_unmatched_exits_total", 3, 0);
  per_probe("insa_exporter_untracked_calls_total", 4, 0);
  per_probe("insa_exporter_dropped_updates_total", 5, 0);

  const auto& b = fam(fs, "insa_exporter_build_info");
  ASSERT_EQ(b.metric.size(), 1u);
  EXPECT_EQ(labels(b.metric[0]), (L{{"version", INSA_VERSION}}));
  EXPECT_EQ(b.metric[0].gauge.value, 1);

  const auto& m = fam(fs, "insa_exporter_map_entries");
  ASSERT_EQ(m.metric.size(), 3u);
  EXPECT_EQ(labels(m.metric[0]), (L{{"map", "counters"}}));
  EXPECT_EQ(m.metric[0].gauge.value, 13);  // 3 + 4 + 5 + the stale one
  EXPECT_EQ(labels(m.metric[1]), (L{{"map", "histograms"}}));
  EXPECT_EQ(m.metric[1].gauge.value, 1);
  EXPECT_EQ(labels(m.metric[2]), (L{{"map", "gauges"}}));
  EXPECT_EQ(m.metric[2].gauge.value, 1);

  // Budget: 3 series with fixed labels (active, static, sizes) take 1 each; the 4 metrics
  // with captured labels share the other 16381 of max_series: 4095 each.
  const auto& q = fam(fs, "insa_exporter_series_quota");
  ASSERT_EQ(q.metric.size(), 7u);
  const double quotas[] = {4095, 4095, 1, 4095, 4095, 1, 1};
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(labels(q.metric[i]), (L{{"metric", w.cfg.metrics[i].name}}));
    EXPECT_EQ(q.metric[i].gauge.value, quotas[i]) << i;
  }
  const auto& lim = fam(fs, "insa_exporter_kernel_map_limit_bytes");
  ASSERT_EQ(lim.metric.size(), 3u);
  const int ncpus = libbpf_num_possible_cpus();
  // counters: requests 4095 + 3 status `other` keys, errors and models 4095 + 1, static 1.
  EXPECT_EQ(w.plan.budget.entries[0], 12291u);
  EXPECT_EQ(w.plan.budget.entries[1], 4097u);
  EXPECT_EQ(w.plan.budget.entries[2], 1u);
  for (size_t k = 0; k < 3; ++k) {
    const auto shape = plan::map_shape(static_cast<plan::MapKind>(k), w.plan.budget);
    EXPECT_EQ(lim.metric[k].gauge.value, static_cast<double>(plan::hash_map_bytes(shape, shape.max_entries, ncpus)));
  }

  const auto& e = fam(fs, "insa_exporter_scrape_errors_total");
  ASSERT_EQ(e.metric.size(), 1u);
  EXPECT_EQ(e.metric[0].counter.value, 0);
  const auto& d = fam(fs, "insa_exporter_scrape_duration_seconds");
  ASSERT_EQ(d.metric.size(), 1u);
  EXPECT_GE(d.metric[0].gauge.value, 0);
  EXPECT_LT(d.metric[0].gauge.value, 5);
}

TEST(Collector, MissingStatsAndStatusDefaultToZero) {
  World w;
  w.attached.clear();  // the engine reports nothing yet
  auto c = w.make();
  auto fs = c.Collect();
  for (const auto& m : fam(fs, "insa_exporter_probe_attached").metric) EXPECT_EQ(m.gauge.value, 0);
  for (const auto& m : fam(fs, "insa_exporter_probe_events_total").metric) EXPECT_EQ(m.counter.value, 0);
  Collector no_callback(w.cfg, w.plan, w.reader, nullptr);
  auto fs2 = no_callback.Collect();
  ASSERT_EQ(fam(fs2, "insa_exporter_probe_attached").metric.size(), 2u);
}

TEST(Collector, ScrapeErrorIsCountedAndFamiliesStillServed) {
  World w;
  w.add_events();
  w.reader.fail = true;
  auto c = w.make();
  (void)c.Collect();
  auto fs = c.Collect();
  EXPECT_EQ(fam(fs, "insa_exporter_scrape_errors_total").metric.at(0).counter.value, 2);
  EXPECT_TRUE(fam(fs, "insa_agent_requests_total").metric.empty());
  EXPECT_EQ(fam(fs, "insa_static_total").metric.size(), 1u);
}

TEST(Collector, SystemInfo) {
  World w;
  auto c = w.make();
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_system_info");
  EXPECT_EQ(f.type, pm::MetricType::Gauge);
  ASSERT_EQ(f.metric.size(), 1u);
  EXPECT_EQ(labels(f.metric[0]), (L{{"version", "9.9.9"}, {"environment", "test"}, {"platform", host_platform()}}));
  EXPECT_EQ(f.metric[0].gauge.value, 1);

  w.cfg.system_info.clear();
  auto d = w.make();
  auto fs2 = d.Collect();
  EXPECT_EQ(labels(fam(fs2, "insa_system_info").metric.at(0)),
            (L{{"version", INSA_VERSION}, {"environment", "production"}, {"platform", host_platform()}}));
  w.cfg.system_info = {{"platform", "k8s"}};
  auto e = w.make();
  EXPECT_EQ(labels(fam(e.Collect(), "insa_system_info").metric.at(0)),
            (L{{"version", INSA_VERSION}, {"environment", "production"}, {"platform", "k8s"}}));
}

TEST(Collector, FamilyOrderAndSources) {
  World w;
  auto c = w.make();
  c.add_source([](std::vector<pm::MetricFamily>& out) {
    pm::MetricFamily f;
    f.name = "insa_worker_health_status";
    f.help = "h";
    f.type = pm::MetricType::Gauge;
    out.push_back(f);
  });
  auto fs = c.Collect();
  std::vector<std::string> names;
  for (const auto& f : fs) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "insa_agent_requests_total", "insa_agent_request_duration_seconds",
                       "insa_worker_active_requests", "insa_errors_total", "insa_model_calls_total",
                       "insa_static_total", "insa_sizes_bytes", "insa_system_info", "insa_worker_health_status",
                       "insa_exporter_build_info", "insa_exporter_probe_attached", "insa_exporter_probe_events_total",
                       "insa_exporter_abandoned_calls_total", "insa_exporter_exception_exits_total",
                       "insa_exporter_unmatched_exits_total", "insa_exporter_untracked_calls_total",
                       "insa_exporter_dropped_updates_total", "insa_exporter_label_overflow_total", "insa_exporter_map_entries",
                       "insa_exporter_kernel_map_bytes", "insa_exporter_kernel_map_limit_bytes",
                       "insa_exporter_series_quota", "insa_exporter_series_folded_total",
                       "insa_exporter_lost_events_total", "insa_exporter_series_expired_total",
                       "insa_exporter_scrape_errors_total", "insa_exporter_scrape_duration_seconds"}));
}

// What /metrics serves (Collector::text, the one writer), byte for byte: Go number
// formatting, Go's histogram line order, one HELP/TYPE per family.
TEST(Collector, TextIsByteForByte) {
  World w;
  w.add_events();
  auto c = w.make();
  std::string t = c.text();
  // The scrape duration varies: check it is a number, then fix it.
  const std::string dur = "\ninsa_exporter_scrape_duration_seconds ";
  auto k = t.rfind(dur);
  ASSERT_NE(k, std::string::npos);
  EXPECT_GE(std::stod(t.substr(k + dur.size())), 0.0);
  t = t.substr(0, k + dur.size()) + "<duration>\n";
  std::string want =
      "# HELP insa_agent_requests_total Requests handled.\n"
      "# TYPE insa_agent_requests_total counter\n"
      "insa_agent_requests_total{agent_type=\"crm\",status=\"error\"} 1\n"
      "insa_agent_requests_total{agent_type=\"sizing\",status=\"error\"} 2\n"
      "insa_agent_requests_total{agent_type=\"sizing\",status=\"success\"} 5\n"
      "# HELP insa_agent_request_duration_seconds Request handling time.\n"
      "# TYPE insa_agent_request_duration_seconds histogram\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"0.005\"} 1\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"0.01\"} 2\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"0.1\"} 3\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"+Inf\"} 4\n"
      "insa_agent_request_duration_seconds_sum{agent_type=\"sizing\"} 0.14900000000000002\n"
      "insa_agent_request_duration_seconds_count{agent_type=\"sizing\"} 4\n"
      "# HELP insa_worker_active_requests insa_worker_active_requests\n"
      "# TYPE insa_worker_active_requests gauge\n"
      "insa_worker_active_requests{worker_name=\"request_worker\"} 3\n"
      "# HELP insa_errors_total insa_errors_total\n"
      "# TYPE insa_errors_total counter\n"
      "insa_errors_total{code=\"ok\"} 3\n"
      "insa_errors_total{code=\"other\"} 3\n"
      "insa_errors_total{code=\"retry\"} 1\n"
      "# HELP insa_model_calls_total insa_model_calls_total\n"
      "# TYPE insa_model_calls_total counter\n"
      "insa_model_calls_total{model=\"claude\"} 1\n"
      "insa_model_calls_total{model=\"gpt-4o\"} 3\n"
      "insa_model_calls_total{model=\"other\"} 5\n"
      "# HELP insa_static_total insa_static_total\n"
      "# TYPE insa_static_total counter\n"
      "insa_static_total{kind=\"a\"} 0\n"
      "# HELP insa_sizes_bytes insa_sizes_bytes\n"
      "# TYPE insa_sizes_bytes histogram\n"
      "insa_sizes_bytes_bucket{le=\"100\"} 0\n"
      "insa_sizes_bytes_bucket{le=\"1000\"} 0\n"
      "insa_sizes_bytes_bucket{le=\"+Inf\"} 0\n"
      "insa_sizes_bytes_sum 0\n"
      "insa_sizes_bytes_count 0\n"
      "# HELP insa_system_info Platform information: version, environment and platform.\n"
      "# TYPE insa_system_info gauge\n"
      "insa_system_info{version=\"9.9.9\",environment=\"test\",platform=\"<platform>\"} 1\n"
      "# HELP insa_exporter_build_info insa-exporter build, value 1.\n"
      "# TYPE insa_exporter_build_info gauge\n"
      "insa_exporter_build_info{version=\"<version>\"} 1\n"
      "# HELP insa_exporter_probe_attached 1 when every attach point of the probe is attached.\n"
      "# TYPE insa_exporter_probe_attached gauge\n"
      "insa_exporter_probe_attached{probe=\"request\"} 1\n"
      "insa_exporter_probe_attached{probe=\"queue\"} 0\n"
      "# HELP insa_exporter_probe_events_total Times the probe's entry or USDT point fired.\n"
      "# TYPE insa_exporter_probe_events_total counter\n"
      "insa_exporter_probe_events_total{probe=\"request\"} 10\n"
      "insa_exporter_probe_events_total{probe=\"queue\"} 7\n"
      "# HELP insa_exporter_abandoned_calls_total Probed calls that never returned (thread exit, longjmp, kill) and were reclaimed.\n"
      "# TYPE insa_exporter_abandoned_calls_total counter\n"
      "insa_exporter_abandoned_calls_total{probe=\"request\"} 2\n"
      "insa_exporter_abandoned_calls_total{probe=\"queue\"} 0\n"
      "# HELP insa_exporter_exception_exits_total Probed calls left by a C++ exception.\n"
      "# TYPE insa_exporter_exception_exits_total counter\n"
      "insa_exporter_exception_exits_total{probe=\"request\"} 1\n"
      "insa_exporter_exception_exits_total{probe=\"queue\"} 0\n"
      "# HELP insa_exporter_unmatched_exits_total Return sites reached with no open call (attached mid-call).\n"
      "# TYPE insa_exporter_unmatched_exits_total counter\n"
      "insa_exporter_unmatched_exits_total{probe=\"request\"} 3\n"
      "insa_exporter_unmatched_exits_total{probe=\"queue\"} 0\n"
      "# HELP insa_exporter_untracked_calls_total Calls not tracked because the per-thread frame stack was full.\n"
      "# TYPE insa_exporter_untracked_calls_total counter\n"
      "insa_exporter_untracked_calls_total{probe=\"request\"} 4\n"
      "insa_exporter_untracked_calls_total{probe=\"queue\"} 0\n"
      "# HELP insa_exporter_dropped_updates_total Metric updates lost because the kernel could not allocate their series, not even the metric's other series.\n"
      "# TYPE insa_exporter_dropped_updates_total counter\n"
      "insa_exporter_dropped_updates_total{probe=\"request\"} 5\n"
      "insa_exporter_dropped_updates_total{probe=\"queue\"} 0\n"
      "# HELP insa_exporter_label_overflow_total Distinct label values folded into 'other' because a metric reached label_limit.\n"
      "# TYPE insa_exporter_label_overflow_total counter\n"
      "insa_exporter_label_overflow_total{metric=\"insa_agent_requests_total\"} 0\n"
      "insa_exporter_label_overflow_total{metric=\"insa_agent_request_duration_seconds\"} 0\n"
      "insa_exporter_label_overflow_total{metric=\"insa_worker_active_requests\"} 0\n"
      "insa_exporter_label_overflow_total{metric=\"insa_errors_total\"} 1\n"
      "insa_exporter_label_overflow_total{metric=\"insa_model_calls_total\"} 2\n"
      "insa_exporter_label_overflow_total{metric=\"insa_static_total\"} 0\n"
      "insa_exporter_label_overflow_total{metric=\"insa_sizes_bytes\"} 0\n"
      "# HELP insa_exporter_map_entries Entries in the kernel aggregation maps.\n"
      "# TYPE insa_exporter_map_entries gauge\n"
      "insa_exporter_map_entries{map=\"counters\"} 13\n"
      "insa_exporter_map_entries{map=\"histograms\"} 1\n"
      "insa_exporter_map_entries{map=\"gauges\"} 1\n"
      "# HELP insa_exporter_kernel_map_bytes Kernel memory charged for each BPF map now (memlock in /proc/self/fdinfo).\n"
      "# TYPE insa_exporter_kernel_map_bytes gauge\n"
      "insa_exporter_kernel_map_bytes{map=\"counters\"} 19064\n"
      "insa_exporter_kernel_map_bytes{map=\"specs\"} 635192\n"
      "# HELP insa_exporter_kernel_map_limit_bytes Most kernel memory an aggregation map can take: every metric at its series quota, at this CPU count.\n"
      "# TYPE insa_exporter_kernel_map_limit_bytes gauge\n"
      "insa_exporter_kernel_map_limit_bytes{map=\"counters\"} <counters>\n"
      "insa_exporter_kernel_map_limit_bytes{map=\"histograms\"} <histograms>\n"
      "insa_exporter_kernel_map_limit_bytes{map=\"gauges\"} <gauges>\n"
      "# HELP insa_exporter_series_quota Kernel series a metric may hold; new label values beyond it are counted in its 'other' series.\n"
      "# TYPE insa_exporter_series_quota gauge\n"
      "insa_exporter_series_quota{metric=\"insa_agent_requests_total\"} 4095\n"
      "insa_exporter_series_quota{metric=\"insa_agent_request_duration_seconds\"} 4095\n"
      "insa_exporter_series_quota{metric=\"insa_worker_active_requests\"} 1\n"
      "insa_exporter_series_quota{metric=\"insa_errors_total\"} 4095\n"
      "insa_exporter_series_quota{metric=\"insa_model_calls_total\"} 4095\n"
      "insa_exporter_series_quota{metric=\"insa_static_total\"} 1\n"
      "insa_exporter_series_quota{metric=\"insa_sizes_bytes\"} 1\n"
      "# HELP insa_exporter_series_folded_total Updates counted in a metric's 'other' series because its series quota was full.\n"
      "# TYPE insa_exporter_series_folded_total counter\n"
      "insa_exporter_series_folded_total{metric=\"insa_agent_requests_total\"} 0\n"
      "insa_exporter_series_folded_total{metric=\"insa_agent_request_duration_seconds\"} 0\n"
      "insa_exporter_series_folded_total{metric=\"insa_worker_active_requests\"} 0\n"
      "insa_exporter_series_folded_total{metric=\"insa_errors_total\"} 4\n"
      "insa_exporter_series_folded_total{metric=\"insa_model_calls_total\"} 0\n"
      "insa_exporter_series_folded_total{metric=\"insa_static_total\"} 0\n"
      "insa_exporter_series_folded_total{metric=\"insa_sizes_bytes\"} 0\n"
      "# HELP insa_exporter_lost_events_total Events lost or degraded, by reason: string_read (a label's string could not be read, the label is empty), ringbuf_full (a process exec/exit event), span_map_full (a span begin), span_expired (a span whose end never came), expiry_race (updates of a series expired as they arrived).\n"
      "# TYPE insa_exporter_lost_events_total counter\n"
      "insa_exporter_lost_events_total{reason=\"string_read\"} 1\n"
      "insa_exporter_lost_events_total{reason=\"ringbuf_full\"} 2\n"
      "insa_exporter_lost_events_total{reason=\"span_map_full\"} 3\n"
      "insa_exporter_lost_events_total{reason=\"span_expired\"} 0\n"
      "insa_exporter_lost_events_total{reason=\"expiry_race\"} 0\n"
      "# HELP insa_exporter_series_expired_total Kernel series removed because they did not change for exporter.series_expiry, or their $pid process ended.\n"
      "# TYPE insa_exporter_series_expired_total counter\n"
      "insa_exporter_series_expired_total{metric=\"insa_agent_requests_total\"} 0\n"
      "insa_exporter_series_expired_total{metric=\"insa_agent_request_duration_seconds\"} 0\n"
      "insa_exporter_series_expired_total{metric=\"insa_worker_active_requests\"} 0\n"
      "insa_exporter_series_expired_total{metric=\"insa_errors_total\"} 0\n"
      "insa_exporter_series_expired_total{metric=\"insa_model_calls_total\"} 0\n"
      "insa_exporter_series_expired_total{metric=\"insa_static_total\"} 0\n"
      "insa_exporter_series_expired_total{metric=\"insa_sizes_bytes\"} 0\n"
      "# HELP insa_exporter_scrape_errors_total Scrapes that failed to read the kernel maps.\n"
      "# TYPE insa_exporter_scrape_errors_total counter\n"
      "insa_exporter_scrape_errors_total 0\n"
      "# HELP insa_exporter_scrape_duration_seconds Time to read the kernel maps and aggregate the series of this scrape.\n"
      "# TYPE insa_exporter_scrape_duration_seconds gauge\n"
      "insa_exporter_scrape_duration_seconds <duration>\n";
  auto put = [&](const std::string& what, const std::string& with) { want.replace(want.find(what), what.size(), with); };
  put("<platform>", host_platform());
  put("<version>", INSA_VERSION);
  // The most each aggregation map can take depends on this machine's CPU count.
  for (size_t k = 0; k < plan::kMapKinds; ++k) {
    const auto kind = static_cast<plan::MapKind>(k);
    const auto shape = plan::map_shape(kind, w.plan.budget);
    std::string v;
    exposition::append_number(v, static_cast<double>(plan::hash_map_bytes(shape, shape.max_entries,
                                                                           libbpf_num_possible_cpus())));
    put(std::string("<") + plan::map_name(kind) + ">", v);
  }
  EXPECT_EQ(t, want);
}

TEST(Collector, TextExposition) {
  World w;
  w.add_events();
  auto c = w.make();
  const std::string t = text(c.Collect());
  const char* lines[] = {
      "# HELP insa_agent_requests_total Requests handled.\n"
      "# TYPE insa_agent_requests_total counter\n"
      "insa_agent_requests_total{agent_type=\"crm\",status=\"error\"} 1\n"
      "insa_agent_requests_total{agent_type=\"sizing\",status=\"error\"} 2\n"
      "insa_agent_requests_total{agent_type=\"sizing\",status=\"success\"} 5\n",
      "# HELP insa_agent_request_duration_seconds Request handling time.\n"
      "# TYPE insa_agent_request_duration_seconds histogram\n"
      "insa_agent_request_duration_seconds_count{agent_type=\"sizing\"} 4\n"
      "insa_agent_request_duration_seconds_sum{agent_type=\"sizing\"} 0.149\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"0.005\"} 1\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"0.01\"} 2\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"0.1\"} 3\n"
      "insa_agent_request_duration_seconds_bucket{agent_type=\"sizing\",le=\"+Inf\"} 4\n",
      "\ninsa_worker_active_requests{worker_name=\"request_worker\"} 3\n",
      "\ninsa_model_calls_total{model=\"gpt-4o\"} 3\n",
      "\ninsa_model_calls_total{model=\"other\"} 5\n",
      "\ninsa_errors_total{code=\"ok\"} 3\n",
      "\ninsa_exporter_probe_attached{probe=\"request\"} 1\n",
      "\ninsa_exporter_probe_attached{probe=\"queue\"} 0\n",
      "\ninsa_exporter_probe_events_total{probe=\"request\"} 10\n",
      "\ninsa_exporter_abandoned_calls_total{probe=\"request\"} 2\n",
      "\ninsa_exporter_label_overflow_total{metric=\"insa_model_calls_total\"} 2\n",
      "\ninsa_exporter_label_overflow_total{metric=\"insa_agent_requests_total\"} 0\n",
      "# TYPE insa_system_info gauge\n",
      "\ninsa_exporter_scrape_errors_total 0\n",
  };
  for (const char* l : lines) EXPECT_THAT(t, HasSubstr(l));
  EXPECT_THAT(t, HasSubstr("\ninsa_system_info{version=\"9.9.9\",environment=\"test\",platform=\"" + host_platform() +
                           "\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("\ninsa_exporter_build_info{version=\"" + std::string(INSA_VERSION) + "\"} 1\n"));
  EXPECT_THAT(t, Not(HasSubstr("} 1000\n")));  // the stale key of an unknown series
  EXPECT_THAT(t, Not(HasSubstr("llama")));
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// Whatever bytes a worker hands a captured string, whatever a config says in help,
// static labels or system_info, and whatever metric names it picks: /metrics stays
// valid for Prometheus (checked by promtool, the parser Prometheus uses).
TEST(Collector, HostileValuesStillValidForPromtool) {
  World w;
  w.cfg.label_limit = 100;
  w.cfg.metrics[kRequests].help = "Requests \\ handled.\nA second line with \"quotes\" and \xff.";
  w.cfg.system_info["environment"] = std::string(4096, 'e') + "\"\\\n\xff";
  w.plan.series[kStatic].labels[0].static_value = "s\"\\\n" + std::string(4096, 'x') + "\xc3";
  w.plan.probes[0].name = "probe \"\\\n\xfe";
  // Configured names colliding with a built-in and with a histogram's _count.
  using config::MetricType;
  w.cfg.metrics.push_back(metric("insa_exporter_build_info", MetricType::Gauge, {"v"}, {}, "mine"));
  w.cfg.metrics.push_back(metric("insa_sizes_bytes_count", MetricType::Counter, {"v"}, {}, "clash"));
  w.plan.series.push_back(series(7, {stat("v", "1")}));
  w.plan.series.push_back(series(8, {stat("v", "1")}));
  w.add_events();
  auto req = [&](const std::string& agent, int64_t n) {
    auto k = key(0);
    put_str(k, 0, agent);
    w.reader.snap.counters.emplace_back(k, counter(n));
  };
  req("a\"b", 1);
  req("c\\d", 2);
  req("e\nf", 3);
  req("\xff\xfe", 4);
  req("x\xff", 5);  // x\xff and x\xfe both become x\uFFFD: one series, 5 + 6
  req("x\xfe", 6);
  req("caf\xc3", 7);  // é cut by the capture length
  req(std::string(31, 'z') + "\xe2", 8);
  auto c = w.make();
  const std::string t = c.text();
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"a\\\"b\",status=\"success\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"c\\\\d\",status=\"success\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"e\\nf\",status=\"success\"} 3\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"\xEF\xBF\xBD\",status=\"success\"} 4\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"x\xEF\xBF\xBD\",status=\"success\"} 11\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"caf\xEF\xBF\xBD\",status=\"success\"} 7\n"));
  EXPECT_THAT(t, HasSubstr("# HELP insa_agent_requests_total Requests \\\\ handled.\\nA second line with \"quotes\" and \xEF\xBF\xBD.\n"));
  EXPECT_EQ(count(t, "# HELP insa_exporter_build_info "), 1u);
  EXPECT_EQ(count(t, "# TYPE insa_exporter_build_info gauge\n"), 1u);
  EXPECT_EQ(count(t, "\ninsa_sizes_bytes_count"), 1u);  // only the histogram's own line
  EXPECT_EQ(count(t, "mine"), 0u);
  const std::string file = ::testing::TempDir() + "/hostile.prom";
  {
    std::ofstream out(file, std::ios::binary);
    out << t;
  }
  EXPECT_EQ(insa::test::run_command("promtool check metrics < " + file + " 2>&1; echo rc=$?"), "rc=0\n")
      << "promtool (Debian's prometheus package, installed by tests/install-deps.sh) rejected /metrics";
}

// The kernel's `other` key (its metric's quota was full): captured labels read
// `other`, $status stays, and it takes no place under label_limit, so the user's
// values and the kernel's overflow land in the same exported `other` series.
TEST(Collector, KernelOtherKeyIsTheOtherSeries) {
  World w;  // label_limit 2
  auto req = [&](const char* agent, int64_t st, int64_t n, uint32_t flags) {
    auto k = key(0);
    k.flags = flags;
    put_str(k, 0, agent);
    put_int(k, 32, st);
    w.reader.snap.counters.emplace_back(k, counter(n));
  };
  req("", 0, 40, INSA_KEY_OTHER);  // folded in the kernel: bytes zeroed, status kept
  req("", 1, 2, INSA_KEY_OTHER);
  req("sizing", 0, 5, 0);
  req("crm", 0, 1, 0);
  req("tax", 0, 3, 0);  // third value with label_limit 2: folded here, into the same series
  auto c = w.make();
  const std::string t = c.text();
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"other\",status=\"success\"} 43\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"other\",status=\"error\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"sizing\",status=\"success\"} 5\n"));
  EXPECT_THAT(t, HasSubstr("insa_agent_requests_total{agent_type=\"crm\",status=\"success\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("insa_exporter_label_overflow_total{metric=\"insa_agent_requests_total\"} 1\n"));
  plan::LabelDecoder d = str("agent_type", 0, 32);
  auto k = key(0);
  k.flags = INSA_KEY_OTHER;
  EXPECT_EQ(Collector::decode_label(d, k, w.plan.statuses), "other");
  EXPECT_EQ(Collector::decode_label(status("status", 32), k, w.plan.statuses), "success");
  EXPECT_EQ(Collector::decode_label(stat("kind", "a"), k, w.plan.statuses), "a");
}

// Status names are a closed set declared in probes.yaml (plan.statuses): they
// must never count against label_limit nor fold into `other`.
TEST(Collector, StatusLabelsAreNotFolded) {
  World w;  // label_limit 2, three statuses
  for (int64_t st : {0, 1, 2}) {
    auto k = key(0);
    put_str(k, 0, "sizing");
    put_int(k, 32, st);
    w.reader.snap.counters.emplace_back(k, counter(st + 1));
  }
  auto c = w.make();
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_agent_requests_total");
  ASSERT_EQ(f.metric.size(), 3u);
  EXPECT_EQ(labels(f.metric[0]), (L{{"agent_type", "sizing"}, {"status", "error"}}));
  EXPECT_EQ(labels(f.metric[1]), (L{{"agent_type", "sizing"}, {"status", "success"}}));
  EXPECT_EQ(labels(f.metric[2]), (L{{"agent_type", "sizing"}, {"status", "timeout"}}));
  EXPECT_EQ(f.metric[2].counter.value, 3);
  for (const auto& m : fam(fs, "insa_exporter_label_overflow_total").metric) EXPECT_EQ(m.counter.value, 0);
}

// ---- decode_label on its own ----

TEST(DecodeLabel, Kinds) {
  const std::vector<std::string> statuses{"success", "error"};
  insa_key k{};
  put_str(k, 0, "sizing");
  put_int(k, 32, 1);
  put_int(k, 40, -3);
  EXPECT_EQ(Collector::decode_label(stat("x", "lit"), k, statuses), "lit");
  EXPECT_EQ(Collector::decode_label(str("x", 0, 32), k, statuses), "sizing");
  EXPECT_EQ(Collector::decode_label(str("x", 0, 3), k, statuses), "siz");  // bounded by the capture length
  EXPECT_EQ(Collector::decode_label(status("x", 32), k, statuses), "error");
  EXPECT_EQ(Collector::decode_label(status("x", 40), k, statuses), "-3");  // out of range: the number
  put_int(k, 48, 2);
  EXPECT_EQ(Collector::decode_label(status("x", 48), k, statuses), "2");
  EXPECT_EQ(Collector::decode_label(integer("x", 40), k, statuses), "-3");
  auto mapped = integer("x", 40);
  mapped.value_map = {{-3, "minus_three"}};
  EXPECT_EQ(Collector::decode_label(mapped, k, statuses), "minus_three");
  auto nodefault = integer("x", 32);
  nodefault.value_map = {{0, "zero"}};
  EXPECT_EQ(Collector::decode_label(nodefault, k, statuses), "1");  // not in the map, no default: the number
  nodefault.map_default = "nonzero";
  EXPECT_EQ(Collector::decode_label(nodefault, k, statuses), "nonzero");
}

TEST(DecodeLabel, Regex) {
  insa_key k{};
  put_str(k, 0, "POST /api/Users/42");
  auto d = str("route", 0, 64);
  d.regex.emplace("/api/([a-z]+)");
  EXPECT_EQ(Collector::decode_label(d, k, {}), "users");
  auto whole = str("route", 0, 64);
  whole.regex.emplace("[A-Z]+", true);  // no group: the whole match, lower-cased
  EXPECT_EQ(Collector::decode_label(whole, k, {}), "post");
  auto miss = str("route", 0, 64);
  miss.regex.emplace("/v2/(\\w+)", true);
  EXPECT_EQ(Collector::decode_label(miss, k, {}), "unknown");
  miss.map_default = "v1";
  EXPECT_EQ(Collector::decode_label(miss, k, {}), "v1");
  miss.drop_unmatched = true;
  EXPECT_EQ(Collector::decode_label(miss, k, {}), "");
}

TEST(Collector, DropUnmatchedSkipsTheSeries) {
  World w;
  auto& model = w.plan.series[4].labels[0];
  model.drop_unmatched = true;
  auto k = key(4);
  put_str(k, 0, "no model here");
  w.reader.snap.counters.emplace_back(k, counter(5));
  auto k2 = key(4);
  put_str(k2, 0, "model=a1");
  w.reader.snap.counters.emplace_back(k2, counter(2));
  auto c = w.make();
  auto fs = c.Collect();
  const auto& f = fam(fs, "insa_model_calls_total");
  ASSERT_EQ(f.metric.size(), 1u);
  EXPECT_EQ(labels(f.metric[0]), (L{{"model", "a1"}}));
  EXPECT_EQ(f.metric[0].counter.value, 2);
}

TEST(Collector, NegativeGaugeWithIntegerLabel) {
  World w;
  w.plan.series[2].labels[0] = integer("worker_name", 0);
  auto k = key(2);
  put_int(k, 0, 12);
  w.reader.snap.gauges.emplace_back(k, gauge(-2));
  auto c = w.make();
  auto fs = c.Collect();
  const auto& g = fam(fs, "insa_worker_active_requests");
  ASSERT_EQ(g.metric.size(), 1u);
  EXPECT_EQ(labels(g.metric[0]), (L{{"worker_name", "12"}}));
  EXPECT_EQ(g.metric[0].gauge.value, -2);
}

}  // namespace
}  // namespace insa::collector
