// SPDX-License-Identifier: Apache-2.0
#include "common/label_regex.h"

#include <re2/re2.h>

#include <cctype>
#include <cstdlib>

namespace insa {

namespace {

std::shared_ptr<const re2::RE2> build(const std::string& pattern, bool case_sensitive) {
  RE2::Options o;
  o.set_case_sensitive(case_sensitive);
  o.set_log_errors(false);
  return std::make_shared<const re2::RE2>(pattern, o);
}

}  // namespace

Result<LabelRegex> LabelRegex::compile(const std::string& pattern, bool case_sensitive) {
  LabelRegex r;
  r.re_ = build(pattern, case_sensitive);
  if (!r.re_->ok()) return Error{r.re_->error(), EINVAL};
  return r;
}

LabelRegex::LabelRegex(const std::string& pattern, bool case_sensitive) : re_(build(pattern, case_sensitive)) {
  if (!re_->ok()) std::abort();
}

std::optional<std::string> LabelRegex::extract(std::string_view s) const {
  re2::StringPiece m[2];
  const int groups = re_->NumberOfCapturingGroups() >= 1 ? 2 : 1;
  if (!re_->Match(re2::StringPiece(s.data(), s.size()), 0, s.size(), RE2::UNANCHORED, m, groups)) return std::nullopt;
  re2::StringPiece v = groups == 2 && m[1].data() != nullptr ? m[1] : m[0];
  std::string out(v.data(), v.size());
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const std::string& LabelRegex::pattern() const { return re_->pattern(); }

}  // namespace insa
