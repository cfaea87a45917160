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
#include <string>
#include <vector>

#include "attach/plan.h"
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

  /// Adds a source of families appended at every scrape.
  void add_source(FamilySource src) { sources_.push_back(std::move(src)); }

  std::vector<prometheus::MetricFamily> Collect() const override;

  /// Decodes one label of a key (exposed for tests).
  static std::string decode_label(const plan::LabelDecoder& d, const insa_key& key,
                                  const std::vector<std::string>& statuses);

 private:
  std::string bounded(size_t metric, size_t label, const std::string& value) const;

  const config::Config& cfg_;
  const plan::Plan& plan_;
  reader::MapReader& reader_;
  std::function<std::vector<ProbeStatus>()> probe_status_;
  std::vector<FamilySource> sources_;
  std::string platform_;

  mutable std::mutex mu_;
  mutable std::map<std::pair<size_t, size_t>, std::set<std::string>> seen_;  ///< (metric,label) → values
  mutable std::map<size_t, std::set<std::string>> folded_;  ///< metric → values folded into `other`
  mutable double last_scrape_seconds_ = 0;
  mutable uint64_t scrape_errors_ = 0;
};

}  // namespace insa::collector
