// SPDX-License-Identifier: Apache-2.0
// Label regexes run at scrape time on bytes read from process memory: RE2
// semantics (first group, lower-cased) and linear time on the patterns that make
// a backtracking engine exponential. The time is printed as a figure, not asserted.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "collector/collector.h"
#include "common/label_regex.h"

namespace insa {
namespace {

TEST(LabelRegex, FirstGroupLowerCasedOrWholeMatch) {
  EXPECT_EQ(LabelRegex("(?:from|into|update)\\s+(\\w+)").extract("SELECT * FROM Users WHERE id=1"), "users");
  EXPECT_EQ(LabelRegex("[a-z]+").extract("42 Hello"), "hello");  // no group: the whole match
  EXPECT_EQ(LabelRegex("(x)?(y)").extract("y"), "y");            // group 1 did not take part
  EXPECT_EQ(LabelRegex("[A-Z]+", true).extract("abc DEF"), "def");
  EXPECT_EQ(LabelRegex("nope").extract("something else"), std::nullopt);
  EXPECT_EQ(LabelRegex("(a)").extract(std::string_view("\0a", 2)), "a");
  auto bad = LabelRegex::compile("(a");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "missing ): (a");
}

// `(a|a)*b`, `(a*)*b` and `(a+)+$` on 64 bytes of 'a' (the longest string capture)
// take std::regex 2^64 steps; RE2 answers in one pass. Exact outputs, and the time of
// a full scrape's decode of the label printed.
TEST(LabelRegex, BacktrackingPatternsOnA64ByteCaptureAreLinear) {
  insa_key key{};
  const std::string aaa(64, 'a');
  std::memcpy(key.data, aaa.data(), aaa.size());
  for (const char* pattern : {"(a|a)*b", "(a*)*b", "(a+)+$", "^(a|aa)+c"}) {
    plan::LabelDecoder d;
    d.name = "q";
    d.kind = plan::LabelDecoder::Kind::Str;
    d.offset = 0;
    d.len = 64;
    d.regex.emplace(pattern);
    d.map_default = "other_sql";
    const auto t0 = std::chrono::steady_clock::now();
    const std::string got = collector::Collector::decode_label(d, key, {});
    const auto us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ figure   ] regex %-10s on a 64-byte capture: %.1f us\n", pattern, us);
    // "(a+)+$" matches: its group is the last 'a+' iteration, the whole run.
    EXPECT_EQ(got, std::string(pattern) == "(a+)+$" ? aaa : "other_sql") << pattern;
  }
}

}  // namespace
}  // namespace insa
