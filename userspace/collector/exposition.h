// SPDX-License-Identifier: Apache-2.0
/// @file The one writer of the Prometheus text format (0.0.4) that /metrics serves.
/// Numbers as the Go client prints them (strconv 'g', shortest: 0.0001, 1e-05,
/// 123456, 1.234567e+06), label values and HELP escaped and made valid UTF-8
/// (invalid bytes become U+FFFD, as Go's strings.ToValidUTF8 does), and one
/// HELP/TYPE per name: a family whose sample names collide with one already
/// written (a built-in name, or `h_count` beside histogram `h`) is skipped.
#pragma once

#include <prometheus/metric_family.h>

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace insa::exposition {

/// Appends `v` formatted as Go's expfmt does (strconv.AppendFloat(f, 'g', -1, 64),
/// with +Inf, -Inf and NaN).
void append_number(std::string& out, double v);
std::string format_number(double v);

/// `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string valid_utf8(std::string_view s);

/// A label value, escaped (\\, \", \n) and valid UTF-8, without quotes.
void append_label_value(std::string& out, std::string_view v);

/// Writes families into one text body, keeping each sample name unique.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  /// Claims names before writing (built-ins): later families with them are skipped.
  void reserve(const prometheus::MetricFamily& f) { claim(f.name, f.type, /*check=*/false, false); }
  /// Writes `# HELP` and `# TYPE`; false (and nothing written) when the family's
  /// names collide with names already written or reserved by another family (only
  /// `owner` families, the ones reserve() was given, may use reserved names); the
  /// name is then in collisions().
  bool begin(const std::string& name, const std::string& help, prometheus::MetricType type, bool owner = false);
  /// Writes whole families (begin + samples) as owners, skipping colliding ones.
  void write(const std::vector<prometheus::MetricFamily>& families);
  void write(const prometheus::MetricFamily& family);
  const std::vector<std::string>& collisions() const { return collisions_; }

 private:
  bool claim(const std::string& name, prometheus::MetricType type, bool check, bool owner);
  std::string& out_;
  std::set<std::string> names_;
  std::map<std::string, std::string> reserved_;  ///< sample name → family that reserved it
  std::vector<std::string> collisions_;
};

}  // namespace insa::exposition
