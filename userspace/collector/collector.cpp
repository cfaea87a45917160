// SPDX-License-Identifier: Apache-2.0
#include "collector/collector.h"

#include <spdlog/spdlog.h>
#include <sys/utsname.h>

#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <charconv>
#include <cmath>
#include <cstring>

#include "collector/exposition.h"
#include "process/containers.h"

namespace insa::collector {
namespace pm = prometheus;
using plan::LabelDecoder;

namespace {

pm::MetricFamily family(const std::string& name, const std::string& help, pm::MetricType type) {
  pm::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

pm::ClientMetric gauge_sample(std::vector<pm::ClientMetric::Label> labels, double v) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  return m;
}

pm::ClientMetric counter_sample(std::vector<pm::ClientMetric::Label> labels, double v) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = v;
  return m;
}


}  // namespace

Collector::Collector(const config::Config& cfg, const plan::Plan& plan, reader::MapReader& reader,
                     std::function<std::vector<ProbeStatus>()> probe_status)
    : cfg_(cfg), plan_(plan), reader_(reader), probe_status_(std::move(probe_status)) {
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ < 1) ncpus_ = 1;
  utsname u{};
  if (uname(&u) == 0) {
    std::string sys = u.sysname;
    for (auto& c : sys) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    platform_ = sys + "-" + u.machine;
  }
}

std::string Collector::decode_label(const LabelDecoder& d, const insa_key& key,
                                    const std::vector<std::string>& statuses) {
  // The kernel's `other` key of a metric whose quota was full: captured labels are gone.
  if ((key.flags & INSA_KEY_OTHER) && (d.kind == LabelDecoder::Kind::Int || d.kind == LabelDecoder::Kind::Str))
    return "other";
  switch (d.kind) {
    case LabelDecoder::Kind::Static:
      return d.static_value;
    case LabelDecoder::Kind::Status: {
      int64_t v;
      std::memcpy(&v, key.data + d.offset, sizeof v);
      return v >= 0 && static_cast<size_t>(v) < statuses.size() ? statuses[v] : std::to_string(v);
    }
    case LabelDecoder::Kind::Int: {
      int64_t v;
      std::memcpy(&v, key.data + d.offset, sizeof v);
      if (!d.value_map.empty()) {
        auto it = d.value_map.find(v);
        if (it != d.value_map.end()) return it->second;
        if (!d.map_default.empty()) return d.map_default;
      }
      return std::to_string(v);
    }
    case LabelDecoder::Kind::Container: {
      int64_t pid;
      std::memcpy(&pid, key.data + d.offset, sizeof pid);
      const auto l = process::container_labels(static_cast<int>(pid));
      return d.field == LabelDecoder::Field::Pod         ? l.pod
             : d.field == LabelDecoder::Field::Namespace ? l.namespace_
                                                         : l.container;
    }
    case LabelDecoder::Kind::Str: {
      const char* p = reinterpret_cast<const char*>(key.data + d.offset);
      std::string s(p, strnlen(p, d.len));
      if (d.regex) {
        auto v = d.regex->extract(s);
        if (!v) return d.drop_unmatched ? "" : d.map_default.empty() ? "unknown" : d.map_default;
        return *v;
      }
      return s;
    }
  }
  return "";
}

std::string Collector::bounded(size_t metric, size_t label, const std::string& value) const {
  auto& seen = seen_[{metric, label}];
  if (seen.count(value)) return value;
  if (seen.size() < cfg_.label_limit) {
    seen.insert(value);
    return value;
  }
  if (folded_[metric].insert(value).second) ++folded_count_[metric];
  return "other";
}

size_t Collector::add_row(size_t metric, std::vector<std::string> values, bool always) const {
  std::string rendered;
  const auto& m = cfg_.metrics[metric];
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) rendered += ',';
    rendered += m.labels[i] + "=\"";
    exposition::append_label_value(rendered, values[i]);
    rendered += '"';
  }
  std::string id = std::to_string(metric) + '\0' + rendered;
  auto it = by_labels_.find(id);
  if (it != by_labels_.end()) {
    rows_[it->second].always |= always;
    return it->second;
  }
  Row r;
  r.metric = metric;
  r.values = std::move(values);
  r.rendered = std::move(rendered);
  r.always = always;
  r.buckets.resize(m.buckets.size() + 1);
  rows_.push_back(std::move(r));
  const size_t idx = rows_.size() - 1;
  by_labels_.emplace(std::move(id), idx);
  auto& list = by_metric_[metric];
  auto pos = std::lower_bound(list.begin(), list.end(), idx,
                              [&](size_t x, size_t y) { return rows_[x].values < rows_[y].values; });
  list.insert(pos, idx);
  return idx;
}

size_t Collector::row_for(const plan::Series& s, uint32_t series, const insa_key& key) const {
  std::string raw(reinterpret_cast<const char*>(&key), sizeof key);
  (void)series;
  auto it = by_key_.find(raw);
  if (it != by_key_.end()) return it->second;
  std::vector<std::string> values;
  values.reserve(s.labels.size());
  size_t row = std::string::npos;
  bool dropped = false;
  for (size_t i = 0; i < s.labels.size(); ++i) {
    auto v = decode_label(s.labels[i], key, plan_.statuses);
    if (s.labels[i].drop_unmatched && v.empty()) {
      dropped = true;
      break;
    }
    // Static and status labels come from a finite set in the config: never folded; nor
    // is the kernel's `other` key (already folded).
    const auto k = s.labels[i].kind;
    const bool fixed =
        k == LabelDecoder::Kind::Static || k == LabelDecoder::Kind::Status || (key.flags & INSA_KEY_OTHER);
    values.push_back(fixed ? v : bounded(s.metric, i, v));
  }
  if (!dropped) row = add_row(s.metric, std::move(values), false);
  by_key_.emplace(std::move(raw), row);
  return row;
}

void Collector::forget_expired(const reader::Snapshot& snap) const {
  auto raw = [](const insa_key& k) { return std::string(reinterpret_cast<const char*>(&k), sizeof k); };
  std::unordered_map<std::string, char> live;
  for (const auto& [k, v] : snap.counters) live.emplace(raw(k), 0);
  for (const auto& [k, v] : snap.histograms) live.emplace(raw(k), 0);
  for (const auto& [k, v] : snap.gauges) live.emplace(raw(k), 0);
  for (auto it = by_key_.begin(); it != by_key_.end();) it = live.count(it->first) ? std::next(it) : by_key_.erase(it);
  // Rows still fed by a key, shown always (fixed labels), or derived: kept, renumbered.
  std::vector<size_t> renum(rows_.size(), std::string::npos);
  std::vector<char> keep(rows_.size(), 0);
  for (const auto& [k, r] : by_key_)
    if (r != std::string::npos) keep[r] = 1;
  for (size_t i = 0; i < rows_.size(); ++i) keep[i] |= rows_[i].always;
  for (const auto& [si, r] : derived_) keep[r] = 1;
  std::vector<Row> rows;
  for (size_t i = 0; i < rows_.size(); ++i)
    if (keep[i]) {
      renum[i] = rows.size();
      rows.push_back(std::move(rows_[i]));
    }
  rows_ = std::move(rows);
  for (auto& [k, r] : by_key_)
    if (r != std::string::npos) r = renum[r];
  for (auto& [si, r] : derived_) r = renum[r];
  for (auto& list : by_metric_) {
    std::vector<size_t> kept;
    for (size_t r : list)
      if (renum[r] != std::string::npos) kept.push_back(renum[r]);
    list = std::move(kept);
  }
  for (auto it = by_labels_.begin(); it != by_labels_.end();) {
    if (renum[it->second] == std::string::npos) {
      it = by_labels_.erase(it);
    } else {
      it->second = renum[it->second];
      ++it;
    }
  }
  // Label values of rows gone free their place under label_limit.
  for (auto& [ml, values] : seen_) {
    std::set<std::string> still;
    for (size_t r : by_metric_[ml.first])
      if (ml.second < rows_[r].values.size() && values.count(rows_[r].values[ml.second]))
        still.insert(rows_[r].values[ml.second]);
    values = std::move(still);
  }
  folded_.clear();  // which values fed `other` is not kept per key; the counter stays
  for (int m = 0; m < 3; ++m) {
    last_keys_[m].clear();
    last_rows_[m].clear();
  }
}

reader::Snapshot Collector::gather() const {
  if (by_metric_.size() != cfg_.metrics.size()) {
    by_metric_.assign(cfg_.metrics.size(), {});
    // Series whose labels are all static exist from the start, at zero.
    for (size_t si = 0; si < plan_.series.size(); ++si) {
      const auto& s = plan_.series[si];
      if (s.unused) continue;
      bool all_static = std::all_of(s.labels.begin(), s.labels.end(),
                                    [](const LabelDecoder& d) { return d.kind == LabelDecoder::Kind::Static; });
      if (!all_static) continue;
      std::vector<std::string> values;
      for (const auto& d : s.labels) values.push_back(d.static_value);
      size_t row = add_row(s.metric, std::move(values), true);
      if (s.derived_inflight) derived_.emplace_back(si, row);
    }
  }
  reader::Snapshot snap;
  auto ok = reader_.read(snap);
  if (!ok) {
    ++scrape_errors_;
    spdlog::error("scrape: {}", ok.error().message);
  }
  const size_t sizes[3] = {snap.counters.size(), snap.histograms.size(), snap.gauges.size()};
  for (int m = 0; m < 3; ++m) {
    last_keys_[m].resize(std::min(last_keys_[m].size(), sizes[m]));
    last_rows_[m].resize(last_keys_[m].size());
  }
  for (auto& r : rows_) {
    r.touched = false;
    r.count = 0;
    r.sum = 0;
    r.gauge = 0;
    std::fill(r.buckets.begin(), r.buckets.end(), 0);
  }
  // Row of the i-th key of map `m` (0 counters, 1 histograms, 2 gauges), via last scrape's order.
  auto row_at = [&](int m, size_t i, const insa_key& key) {
    auto& keys = last_keys_[m];
    auto& rows = last_rows_[m];
    if (i < keys.size() && std::memcmp(&keys[i], &key, sizeof key) == 0) return rows[i];
    const size_t idx = row_for(plan_.series[key.series], key.series, key);
    if (i >= keys.size()) {
      // Keys skipped above (a series this plan does not know: a probe being added or
      // removed by a reload) leave gaps; a gap must never match a real key (a zeroed
      // key is series 0 with all-zero labels).
      insa_key gap{};
      gap.series = UINT32_MAX;
      keys.resize(i + 1, gap);
      rows.resize(i + 1, std::string::npos);
    }
    keys[i] = key;
    rows[i] = idx;
    return idx;
  };
  for (size_t i = 0; i < snap.counters.size(); ++i) {
    const auto& [key, c] = snap.counters[i];
    if (key.series >= plan_.series.size() || plan_.series[key.series].unused) continue;
    const auto& s = plan_.series[key.series];
    size_t idx = row_at(0, i, key);
    if (idx == std::string::npos) continue;
    auto& r = rows_[idx];
    r.touched = true;
    r.sum += static_cast<double>(c.sum) * s.scale;
  }
  for (size_t i = 0; i < snap.histograms.size(); ++i) {
    const auto& [key, h] = snap.histograms[i];
    if (key.series >= plan_.series.size() || plan_.series[key.series].unused) continue;
    const auto& s = plan_.series[key.series];
    size_t idx = row_at(1, i, key);
    if (idx == std::string::npos) continue;
    auto& r = rows_[idx];
    r.touched = true;
    r.count += h.count;
    r.sum += static_cast<double>(h.sum) * s.scale;
    for (size_t b = 0; b < r.buckets.size() && b <= INSA_MAX_BUCKETS; ++b) r.buckets[b] += h.buckets[b];
  }
  for (size_t i = 0; i < snap.gauges.size(); ++i) {
    const auto& [key, g] = snap.gauges[i];
    if (key.series >= plan_.series.size() || plan_.series[key.series].unused) continue;
    const auto& s = plan_.series[key.series];
    size_t idx = row_at(2, i, key);
    if (idx == std::string::npos) continue;
    rows_[idx].touched = true;
    rows_[idx].gauge += static_cast<double>(g.value) * s.scale;
  }
  // In-flight gauges with static labels: calls entered and not yet ended, from the probe's
  // statistics (a call ends by return, exception or reclaim; untracked entries never began).
  for (const auto& [si, row] : derived_) {
    const auto& s = plan_.series[si];
    if (s.probe < 0 || static_cast<size_t>(s.probe) >= plan_.probes.size()) continue;
    const uint32_t cookie = plan_.probes[static_cast<size_t>(s.probe)].cookie;
    if (cookie >= snap.stats.size()) continue;
    const insa_probe_stats& st = snap.stats[cookie];
    const uint64_t ended = st.completed + st.exceptions + st.abandoned + st.overflow;
    // The per-CPU slots are read one after another: a call that ends meanwhile may be seen
    // ended but not begun. Never report a negative number of calls.
    rows_[row].gauge += st.hits > ended ? static_cast<double>(st.hits - ended) : 0.0;
    rows_[row].touched = true;
  }
  // Keys the expiry (or a reload) removed: forgotten once this snapshot's keys all have
  // their rows, so label values still in use keep their place (also those a new collector
  // adopted), and only the rows no live key feeds go.
  if (expiry_ && expiry_->generation() != expiry_generation_) {
    expiry_generation_ = expiry_->generation();
    if (ok) forget_expired(snap);
  }
  return snap;
}

void Collector::adopt(const Collector& old) {
  std::scoped_lock lock(mu_, old.mu_);
  // Label values already seen keep their own series, and values folded into `other` stay
  // folded, for every metric defined as before: a reload never re-decides which values
  // `other` holds.
  for (size_t mi = 0; mi < cfg_.metrics.size(); ++mi) {
    const auto& m = cfg_.metrics[mi];
    auto it = std::find_if(old.cfg_.metrics.begin(), old.cfg_.metrics.end(), [&](const config::MetricDef& o) {
      return o.name == m.name && o.type == m.type && o.labels == m.labels;
    });
    if (it == old.cfg_.metrics.end()) continue;
    const size_t oi = static_cast<size_t>(it - old.cfg_.metrics.begin());
    for (size_t li = 0; li < m.labels.size(); ++li) {
      auto s = old.seen_.find({oi, li});
      if (s != old.seen_.end()) seen_[{mi, li}] = s->second;
    }
    if (auto f = old.folded_.find(oi); f != old.folded_.end()) folded_[mi] = f->second;
    if (auto f = old.folded_count_.find(oi); f != old.folded_count_.end()) folded_count_[mi] = f->second;
  }
  scrape_errors_ = old.scrape_errors_;
  warned_ = old.warned_;
}

std::vector<pm::MetricFamily> Collector::Collect() const {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  reader::Snapshot snap = gather();
  std::vector<pm::MetricFamily> out;
  out.reserve(cfg_.metrics.size() + 12);
  for (size_t mi = 0; mi < cfg_.metrics.size(); ++mi) {
    const auto& m = cfg_.metrics[mi];
    auto type = m.type == config::MetricType::Counter  ? pm::MetricType::Counter
                : m.type == config::MetricType::Gauge ? pm::MetricType::Gauge
                                                      : pm::MetricType::Histogram;
    auto f = family(m.name, m.help, type);
    for (size_t idx : by_metric_[mi]) {
      const Row& a = rows_[idx];
      if (!a.touched && !a.always) continue;
      pm::ClientMetric cm;
      for (size_t i = 0; i < a.values.size(); ++i) cm.label.push_back({m.labels[i], a.values[i]});
      if (m.type == config::MetricType::Counter) {
        cm.counter.value = a.sum;
      } else if (m.type == config::MetricType::Gauge) {
        cm.gauge.value = a.gauge;
      } else {
        cm.histogram.sample_count = a.count;
        cm.histogram.sample_sum = a.sum;
        uint64_t cum = 0;
        for (size_t b = 0; b < m.buckets.size(); ++b) {
          cum += a.buckets[b];
          cm.histogram.bucket.push_back({cum, m.buckets[b]});
        }
        cm.histogram.bucket.push_back({a.count, std::numeric_limits<double>::infinity()});
      }
      f.metric.push_back(std::move(cm));
    }
    out.push_back(std::move(f));
  }
  last_scrape_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto self = self_families(snap);
  for (auto& f : self) out.push_back(std::move(f));
  return out;
}

std::string Collector::text() const {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  reader::Snapshot snap = gather();
  last_scrape_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto self = self_families(snap);
  std::string out;
  out.reserve(rows_.size() * 96 + 4096);
  exposition::Writer w(out);
  // Built-in names win: a configured metric that takes one is skipped (and logged).
  for (const auto& f : self) w.reserve(f);
  for (size_t mi = 0; mi < cfg_.metrics.size(); ++mi) {
    const auto& m = cfg_.metrics[mi];
    const auto type = m.type == config::MetricType::Counter ? pm::MetricType::Counter
                      : m.type == config::MetricType::Gauge ? pm::MetricType::Gauge
                                                            : pm::MetricType::Histogram;
    if (!w.begin(m.name, m.help, type)) continue;
    std::vector<std::string> les;
    for (double b : m.buckets) les.push_back(exposition::format_number(b));
    for (size_t idx : by_metric_[mi]) {
      const Row& a = rows_[idx];
      if (!a.touched && !a.always) continue;
      const std::string lb = a.rendered.empty() ? "" : "{" + a.rendered + "}";
      if (m.type != config::MetricType::Histogram) {
        out += m.name;
        out += lb;
        out += ' ';
        exposition::append_number(out, m.type == config::MetricType::Counter ? a.sum : a.gauge);
        out += '\n';
        continue;
      }
      // Go's order: buckets, _sum, _count.
      const std::string prefix = m.name + "_bucket{" + a.rendered + (a.rendered.empty() ? "" : ",") + "le=\"";
      uint64_t cum = 0;
      for (size_t b = 0; b <= m.buckets.size(); ++b) {
        cum += a.buckets[b];
        out += prefix;
        out += b < les.size() ? les[b] : "+Inf";
        out += "\"} ";
        exposition::append_number(out, static_cast<double>(b < les.size() ? cum : a.count));
        out += '\n';
      }
      out += m.name + "_sum" + lb + " ";
      exposition::append_number(out, a.sum);
      out += "\n" + m.name + "_count" + lb + " ";
      exposition::append_number(out, static_cast<double>(a.count));
      out += '\n';
    }
  }
  w.write(self);
  for (const auto& name : w.collisions())
    if (warned_.insert(name).second)
      spdlog::error("{}: metric '{}' has the name (or a _bucket/_count/_sum name) of another metric or of a "
                    "built-in one, so it is not exported; rename it",
                    cfg_.file, name);
  return out;
}

std::vector<pm::MetricFamily> Collector::self_families(const reader::Snapshot& snap) const {
  std::vector<pm::MetricFamily> out;
  // insa_system_info: static config plus the host.
  {
    auto f = family("insa_system_info", "Platform information: version, environment and platform.", pm::MetricType::Gauge);
    auto get = [&](const char* k, const std::string& def) {
      auto it = cfg_.system_info.find(k);
      return it == cfg_.system_info.end() ? def : it->second;
    };
    f.metric.push_back(gauge_sample({{"version", get("version", INSA_VERSION)},
                                     {"environment", get("environment", "production")},
                                     {"platform", get("platform", platform_)}},
                                    1));
    out.push_back(std::move(f));
  }
  for (const auto& src : sources_) src(out);

  // The exporter's own health.
  auto st = probe_status_ ? probe_status_() : std::vector<ProbeStatus>{};
  auto build = family("insa_exporter_build_info", "insa-exporter build, value 1.", pm::MetricType::Gauge);
  build.metric.push_back(gauge_sample({{"version", INSA_VERSION}}, 1));
  out.push_back(std::move(build));
  auto attached = family("insa_exporter_probe_attached", "1 when every attach point of the probe is attached.", pm::MetricType::Gauge);
  auto events = family("insa_exporter_probe_events_total", "Times the probe's entry or USDT point fired.", pm::MetricType::Counter);
  auto abandoned = family("insa_exporter_abandoned_calls_total",
                          "Probed calls that never returned (thread exit, longjmp, kill) and were reclaimed.",
                          pm::MetricType::Counter);
  auto exceptions = family("insa_exporter_exception_exits_total", "Probed calls left by a C++ exception.", pm::MetricType::Counter);
  auto unmatched = family("insa_exporter_unmatched_exits_total", "Return sites reached with no open call (attached mid-call).", pm::MetricType::Counter);
  auto overflow = family("insa_exporter_untracked_calls_total", "Calls not tracked because the per-thread frame stack was full.", pm::MetricType::Counter);
  auto dropped = family(
      "insa_exporter_dropped_updates_total",
      "Metric updates lost because the kernel could not allocate their series, not even the metric's other series.",
      pm::MetricType::Counter);
  for (size_t i = 0; i < plan_.probes.size(); ++i) {
    std::vector<pm::ClientMetric::Label> l{{"probe", plan_.probes[i].name}};
    attached.metric.push_back(gauge_sample(l, i < st.size() && st[i].attached ? 1 : 0));
    const uint32_t c = plan_.probes[i].cookie;  // spec index: kept across reloads, not the probe's position
    insa_probe_stats s = c < snap.stats.size() ? snap.stats[c] : insa_probe_stats{};
    events.metric.push_back(counter_sample(l, static_cast<double>(s.hits)));
    abandoned.metric.push_back(counter_sample(l, static_cast<double>(s.abandoned)));
    exceptions.metric.push_back(counter_sample(l, static_cast<double>(s.exceptions)));
    unmatched.metric.push_back(counter_sample(l, static_cast<double>(s.unmatched)));
    overflow.metric.push_back(counter_sample(l, static_cast<double>(s.overflow)));
    dropped.metric.push_back(counter_sample(l, static_cast<double>(s.dropped)));
  }
  for (auto* f : {&attached, &events, &abandoned, &exceptions, &unmatched, &overflow, &dropped})
    out.push_back(std::move(*f));
  auto folded = family("insa_exporter_label_overflow_total",
                       "Distinct label values folded into 'other' because a metric reached label_limit.", pm::MetricType::Counter);
  for (size_t mi = 0; mi < cfg_.metrics.size(); ++mi) {
    auto it = folded_count_.find(mi);
    folded.metric.push_back(counter_sample({{"metric", cfg_.metrics[mi].name}},
                                           it == folded_count_.end() ? 0 : static_cast<double>(it->second)));
  }
  out.push_back(std::move(folded));
  auto series = family("insa_exporter_map_entries", "Entries in the kernel aggregation maps.", pm::MetricType::Gauge);
  series.metric.push_back(gauge_sample({{"map", "counters"}}, static_cast<double>(snap.counters.size())));
  series.metric.push_back(gauge_sample({{"map", "histograms"}}, static_cast<double>(snap.histograms.size())));
  series.metric.push_back(gauge_sample({{"map", "gauges"}}, static_cast<double>(snap.gauges.size())));
  out.push_back(std::move(series));
  // Kernel memory: what each map is charged now (the kernel's figure), and the most the
  // aggregation maps can reach under the budget (the estimate `check` prints).
  auto bytes =
      family("insa_exporter_kernel_map_bytes",
             "Kernel memory charged for each BPF map now (memlock in /proc/self/fdinfo).", pm::MetricType::Gauge);
  for (const auto& [name, b] : snap.map_bytes)
    bytes.metric.push_back(gauge_sample({{"map", name}}, static_cast<double>(b)));
  out.push_back(std::move(bytes));
  auto limit =
      family("insa_exporter_kernel_map_limit_bytes",
             "Most kernel memory an aggregation map can take: every metric at its series quota, at this CPU count.",
             pm::MetricType::Gauge);
  for (size_t k = 0; k < plan::kMapKinds; ++k) {
    const auto kind = static_cast<plan::MapKind>(k);
    const auto shape = plan::map_shape(kind, plan_.budget);
    limit.metric.push_back(gauge_sample({{"map", plan::map_name(kind)}},
                                        static_cast<double>(plan::hash_map_bytes(shape, shape.max_entries, ncpus_))));
  }
  out.push_back(std::move(limit));
  auto quota = family("insa_exporter_series_quota",
                      "Kernel series a metric may hold; new label values beyond it are counted in its 'other' series.",
                      pm::MetricType::Gauge);
  auto other = family("insa_exporter_series_folded_total",
                      "Updates counted in a metric's 'other' series because its series quota was full.",
                      pm::MetricType::Counter);
  for (size_t mi = 0; mi < cfg_.metrics.size(); ++mi) {
    std::vector<pm::ClientMetric::Label> l{{"metric", cfg_.metrics[mi].name}};
    quota.metric.push_back(
        gauge_sample(l, mi < plan_.budget.metrics.size() ? static_cast<double>(plan_.budget.metrics[mi].quota) : 0.0));
    other.metric.push_back(counter_sample(l, mi < snap.folded.size() ? static_cast<double>(snap.folded[mi]) : 0.0));
  }
  out.push_back(std::move(quota));
  out.push_back(std::move(other));
  auto lost = family("insa_exporter_lost_events_total",
                     "Events lost or degraded, by reason: string_read (a label's string could not be read, the label "
                     "is empty), ringbuf_full (a process exec/exit event), span_map_full (a span begin), span_expired "
                     "(a span whose end never came), expiry_race (updates of a series expired as they arrived).",
                     pm::MetricType::Counter);
  static const char* reasons[INSA_LOST_MAX] = {"string_read", "ringbuf_full", "span_map_full"};
  for (int r = 0; r < INSA_LOST_MAX; ++r)
    lost.metric.push_back(counter_sample({{"reason", reasons[r]}}, static_cast<double>(snap.lost[r])));
  // Userspace's share: spans whose end never came within the expiry, and idle series
  // deleted just as an update arrived.
  lost.metric.push_back(
      counter_sample({{"reason", "span_expired"}}, expiry_ ? static_cast<double>(expiry_->spans_expired()) : 0.0));
  lost.metric.push_back(
      counter_sample({{"reason", "expiry_race"}}, expiry_ ? static_cast<double>(expiry_->raced()) : 0.0));
  out.push_back(std::move(lost));
  auto expired = family("insa_exporter_series_expired_total",
                        "Kernel series removed because they did not change for exporter.series_expiry, or their $pid "
                        "process ended.",
                        pm::MetricType::Counter);
  const auto exp = expiry_ ? expiry_->expired() : std::vector<uint64_t>{};
  for (size_t mi = 0; mi < cfg_.metrics.size(); ++mi)
    expired.metric.push_back(
        counter_sample({{"metric", cfg_.metrics[mi].name}}, mi < exp.size() ? static_cast<double>(exp[mi]) : 0.0));
  out.push_back(std::move(expired));
  auto errs = family("insa_exporter_scrape_errors_total", "Scrapes that failed to read the kernel maps.", pm::MetricType::Counter);
  errs.metric.push_back(counter_sample({}, static_cast<double>(scrape_errors_)));
  out.push_back(std::move(errs));
  auto dur = family("insa_exporter_scrape_duration_seconds", "Time to read the kernel maps and aggregate the series of this scrape.",
                    pm::MetricType::Gauge);
  dur.metric.push_back(gauge_sample({}, last_scrape_seconds_));
  out.push_back(std::move(dur));
  return out;
}

}  // namespace insa::collector
