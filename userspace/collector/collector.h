// SPDX-License-Identifier: Apache-2.0
/// @file Turns a map snapshot into the configured metric families at scrape
/// time (a prometheus::Collectable). Labels are decoded from key bytes; value
/// maps and regexes run here, never in the kernel; distinct values per metric
/// are bounded (overflow folds into `other` and is counted).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <string>
#include <vector>

#include "attach/plan.h"
#include "collector/expiry.h"
#include "config/config.h"
#include "reader/map_reader.h"

namespace insa::collector {

/// Attach state of probe i, supplied by the engine (or a fake in tests).
struct ProbeStatus {
  bool attached = false;
};

/// Extra families from other sources (process lifecycle).
using FamilySource = std::function<void(std::vector<prometheus::MetricFamily>&)>;

class Collector : public prometheus::Collectable {
 public:
  Collector(const config::Config& cfg, const plan::Plan& plan, reader::MapReader& reader,
            std::function<std::vector<ProbeStatus>()> probe_status);

  /// Takes over what a reload must not reset from the collector of the previous config:
  /// the label values seen and folded into `other` of every metric still defined with
  /// the same name, type and labels, and the scrape error count. Values themselves come
  /// from the kernel maps, which keep the series of unchanged probes.
  void adopt(const Collector& old);

  /// Adds a source of families appended at every scrape.
  void add_source(FamilySource src) { sources_.push_back(std::move(src)); }
  /// The expiry sweep of the same maps: its counts are exported, and the keys it
  /// removed are forgotten here (with the rows only they fed).
  void set_expiry(const Expiry* e) { expiry_ = e; }

  std::vector<prometheus::MetricFamily> Collect() const override;

  /// The same families as Collect(), written straight to exposition text (format
  /// 0.0.4) by the one writer (exposition.h). This is what /metrics serves: it reuses
  /// the decoded labels of every kernel key across scrapes instead of building
  /// MetricFamily objects for the configured metrics.
  std::string text() const;

  /// Decodes one label of a key (exposed for tests).
  static std::string decode_label(const plan::LabelDecoder& d, const insa_key& key,
                                  const std::vector<std::string>& statuses);

 private:
  std::string bounded(size_t metric, size_t label, const std::string& value) const;

  /// One exported series: a metric and its label values, with the value accumulated
  /// over every kernel key that maps to it in this scrape.
  struct Row {
    size_t metric = 0;
    std::vector<std::string> values;
    std::string rendered;  ///< `a="x",b="y"` (escaped), without braces
    bool always = false;   ///< all labels static: shown at zero before any event
    bool touched = false;
    uint64_t count = 0;
    double sum = 0;
    std::vector<uint64_t> buckets;
    double gauge = 0;
  };
  /// Reads the maps and accumulates into rows_. Called with mu_ held.
  reader::Snapshot gather() const;
  size_t row_for(const plan::Series& s, uint32_t series, const insa_key& key) const;
  size_t add_row(size_t metric, std::vector<std::string> values, bool always) const;
  /// Drops cached keys that are no longer in the kernel and the rows no key feeds,
  /// so memory follows the live series. Called with mu_ held, after accumulating.
  void forget_expired(const reader::Snapshot& snap) const;
  std::vector<prometheus::MetricFamily> self_families(const reader::Snapshot& snap) const;

  const config::Config& cfg_;
  const plan::Plan& plan_;
  reader::MapReader& reader_;
  std::function<std::vector<ProbeStatus>()> probe_status_;
  std::vector<FamilySource> sources_;
  std::string platform_;
  int ncpus_ = 1;  ///< possible CPUs: per-CPU map values are allocated for each

  mutable std::mutex mu_;
  mutable std::map<std::pair<size_t, size_t>, std::set<std::string>> seen_;  ///< (metric,label) → values
  mutable std::map<size_t, std::set<std::string>> folded_;  ///< metric → values folded into `other` (live keys)
  mutable std::map<size_t, uint64_t> folded_count_;         ///< metric → distinct values folded, ever
  mutable std::vector<Row> rows_;
  mutable std::vector<std::pair<size_t, size_t>> derived_;  ///< (series, row) of derived in-flight gauges
  mutable std::vector<std::vector<size_t>> by_metric_;       ///< row indices, sorted by label values
  mutable std::unordered_map<std::string, size_t> by_key_;  ///< raw key bytes → row (or npos: dropped)
  /// The previous scrape's keys in map order and their rows: a kernel hash map is read in
  /// bucket order, which stays the same while no series is added, so most keys are matched
  /// by one sequential compare instead of a hash lookup.
  mutable std::vector<insa_key> last_keys_[3];
  mutable std::vector<size_t> last_rows_[3];
  mutable std::unordered_map<std::string, size_t> by_labels_;
  mutable double last_scrape_seconds_ = 0;
  mutable std::set<std::string> warned_;  ///< metric names already logged as colliding
  mutable uint64_t scrape_errors_ = 0;
  const Expiry* expiry_ = nullptr;
  mutable uint64_t expiry_generation_ = 0;
};

}  // namespace insa::collector
