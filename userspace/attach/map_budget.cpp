// SPDX-License-Identifier: Apache-2.0
#include "attach/map_budget.h"

#include <cstdio>

#include "attach/plan.h"
#include "config/config.h"
#include "insa_shared.h"

namespace insa::plan {

const char* map_name(MapKind k) {
  switch (k) {
    case MapKind::Counters:
      return "counters";
    case MapKind::Histograms:
      return "histograms";
    case MapKind::Gauges:
      return "gauges";
  }
  return "?";
}

Result<MapBudget> compute_budget(const config::Config& cfg, const Plan& plan) {
  MapBudget b;
  b.metrics.resize(cfg.metrics.size());
  const uint32_t nstatuses = plan.statuses.empty() ? 1 : static_cast<uint32_t>(plan.statuses.size());
  std::vector<uint64_t> fixed(cfg.metrics.size(), 0);
  for (size_t mi = 0; mi < cfg.metrics.size(); ++mi) {
    const auto t = cfg.metrics[mi].type;
    b.metrics[mi].map = t == config::MetricType::Counter ? MapKind::Counters
                        : t == config::MetricType::Gauge ? MapKind::Gauges
                                                         : MapKind::Histograms;
  }
  for (const auto& s : plan.series) {
    if (s.derived_inflight || s.metric >= b.metrics.size()) continue;  // no kernel key
    bool captured = false, status = false;
    for (const auto& l : s.labels) {
      captured |= l.kind == LabelDecoder::Kind::Int || l.kind == LabelDecoder::Kind::Str;
      status |= l.kind == LabelDecoder::Kind::Status;
    }
    const uint32_t keys = status ? nstatuses : 1;
    auto& q = b.metrics[s.metric];
    if (captured) {
      q.captured = true;
      q.other_keys += keys;
    } else {
      fixed[s.metric] += keys;
    }
  }
  // A metric's own max_series is taken out first; the rest goes to fixed series, then in
  // even shares to the other metrics with captured labels.
  uint64_t taken = 0, ncaptured = 0;
  for (size_t mi = 0; mi < b.metrics.size(); ++mi) {
    const auto& m = cfg.metrics[mi];
    if (m.max_series) {
      if (m.max_series < fixed[mi])
        return Error{m.max_series_mark.str() + ": 'max_series' " + std::to_string(m.max_series) + " of metric '" +
                     m.name + "' is less than the " + std::to_string(fixed[mi]) +
                     " series its fixed labels can have; raise it or remove it"};
      taken += m.max_series;
    } else {
      taken += fixed[mi];
      ncaptured += b.metrics[mi].captured;
    }
  }
  const uint64_t need = taken + kMinQuota * ncaptured;
  if (need > cfg.max_series) {
    const std::string where = cfg.max_series_mark.line ? cfg.max_series_mark.str() + ": 'max_series' "
                                                       : cfg.file + ": exporter.max_series (default) ";
    return Error{where + std::to_string(cfg.max_series) +
                 " is too small: metrics' own max_series and series with fixed labels take " + std::to_string(taken) +
                 " and each of the " + std::to_string(ncaptured) +
                 " other metrics with captured labels needs at least " + std::to_string(kMinQuota) +
                 "; set max_series to at least " + std::to_string(need)};
  }
  const uint64_t share = ncaptured ? (cfg.max_series - taken) / ncaptured : 0;
  uint64_t entries[kMapKinds] = {0, 0, 0};
  for (size_t mi = 0; mi < b.metrics.size(); ++mi) {
    auto& q = b.metrics[mi];
    const uint32_t own = cfg.metrics[mi].max_series;
    q.quota = own ? own : static_cast<uint32_t>(fixed[mi] + (q.captured ? share : 0));
    entries[static_cast<size_t>(q.map)] += uint64_t{q.quota} + q.other_keys;
  }
  for (size_t k = 0; k < kMapKinds; ++k) b.entries[k] = static_cast<uint32_t>(entries[k] ? entries[k] : 1);
  return b;
}

uint64_t hash_map_elem_bytes(const HashShape& s, int ncpus) {
  auto round8 = [](uint64_t v) { return (v + 7) & ~uint64_t{7}; };
  constexpr uint64_t kElemHeader = 48;  // struct htab_elem on 64-bit
  constexpr uint64_t kListNode = 8;     // struct llist_node of the BPF memory allocator
  uint64_t elem = kElemHeader + round8(s.key_size) + (s.percpu ? 8 : round8(s.value_size));
  uint64_t bytes = elem + kListNode;
  // Per-CPU values: a separately allocated per-CPU area (its own list node and pointer).
  if (s.percpu) bytes += kListNode + 8 + round8(s.value_size) * static_cast<uint64_t>(ncpus);
  return bytes;
}

uint64_t hash_map_bytes(const HashShape& s, uint64_t entries, int ncpus) {
  uint64_t buckets = 1;
  while (buckets < s.max_entries) buckets <<= 1;
  constexpr uint64_t kBucket = 16;  // struct bucket: list head and lock
  return kHashMapFixedBytes + kBucket * buckets + entries * hash_map_elem_bytes(s, ncpus);
}

HashShape map_shape(MapKind k, const MapBudget& b) {
  HashShape s;
  s.max_entries = b.entries[static_cast<size_t>(k)];
  s.key_size = sizeof(insa_key);
  switch (k) {
    case MapKind::Counters:
      s.value_size = sizeof(insa_count);
      s.percpu = true;
      break;
    case MapKind::Histograms:
      s.value_size = sizeof(insa_hist);
      s.percpu = true;
      break;
    case MapKind::Gauges:
      s.value_size = sizeof(insa_gauge);
      s.percpu = false;
      break;
  }
  return s;
}

std::string human_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace insa::plan
