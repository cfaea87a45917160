// SPDX-License-Identifier: Apache-2.0
/// @file The regex of a string label (`regex:` in probes.yaml), run at scrape time
/// on bytes copied from process memory. RE2, not std::regex: RE2 matches in time
/// linear in the input and never backtracks, so no captured string can stall a
/// scrape (std::regex's backtracking is exponential on patterns such as `(a*)*b`).
/// Syntax: https://github.com/google/re2/wiki/Syntax (no backreferences or
/// lookaround).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace re2 {
class RE2;
}

namespace insa {

/// A compiled, immutable label regex; copies share one RE2.
class LabelRegex {
 public:
  /// Compiles `pattern`, case-insensitive unless `case_sensitive`. Fails with
  /// RE2's reason ("missing ]: [a-z").
  static Result<LabelRegex> compile(const std::string& pattern, bool case_sensitive = false);
  /// Like compile(), for patterns known to be valid (tests); aborts otherwise.
  explicit LabelRegex(const std::string& pattern, bool case_sensitive = false);

  /// The first capture group of the first match in `s` (the whole match when the
  /// pattern has no group, or the group did not take part), lower-cased; nullopt
  /// when nothing matches.
  std::optional<std::string> extract(std::string_view s) const;
  const std::string& pattern() const;

 private:
  LabelRegex() = default;
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace insa
