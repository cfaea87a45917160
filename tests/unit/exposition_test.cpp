// SPDX-License-Identifier: Apache-2.0
// The exposition writer alone: numbers against Go's strconv.FormatFloat(f, 'g', -1, 64)
// (the values below are what Go prints), UTF-8 repair as strings.ToValidUTF8, label
// and HELP escaping, and one HELP/TYPE per sample name.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "collector/exposition.h"

namespace insa::exposition {
namespace {
namespace pm = prometheus;

TEST(Exposition, NumbersAsGoFormatsThem) {
  const std::pair<double, const char*> cases[] = {
      {0, "0"},
      {-0.0, "0"},
      {1, "1"},
      {-1, "-1"},
      {0.0001, "0.0001"},  // prometheus-cpp and %g print 1e-04
      {0.00001, "1e-05"},
      {0.00025, "0.00025"},
      {0.005, "0.005"},
      {0.1, "0.1"},
      {0.149, "0.149"},
      {0.14900000000000002, "0.14900000000000002"},
      {1.5, "1.5"},
      {2.5e-7, "2.5e-07"},
      {100, "100"},
      {100000, "100000"},
      {123456, "123456"},
      {999999, "999999"},
      {1e6, "1e+06"},
      {1234567, "1.234567e+06"},
      {1.5e9, "1.5e+09"},
      {123456789012, "1.23456789012e+11"},
      {1e21, "1e+21"},
      {1e100, "1e+100"},
      {5e-324, "5e-324"},
      {std::numeric_limits<double>::max(), "1.7976931348623157e+308"},
      {-0.0001, "-0.0001"},
      {-1234567, "-1.234567e+06"},
      {std::numeric_limits<double>::infinity(), "+Inf"},
      {-std::numeric_limits<double>::infinity(), "-Inf"},
      {std::nan(""), "NaN"},
  };
  for (const auto& [v, want] : cases) EXPECT_EQ(format_number(v), want) << v;
}

TEST(Exposition, ValidUtf8) {
  EXPECT_EQ(valid_utf8("plain"), "plain");
  EXPECT_EQ(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(valid_utf8("\xff"), r);
  EXPECT_EQ(valid_utf8("a\xff\xfe"
                       "b"),
            "a" + r + "b");                       // one replacement per run
  EXPECT_EQ(valid_utf8("cut \xc3"), "cut " + r);  // a character cut by a capture length
  EXPECT_EQ(valid_utf8("\xe2\x82"), r);           // truncated 3-byte sequence
  EXPECT_EQ(valid_utf8("\xc0\xaf"), r);           // overlong '/'
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), r);       // UTF-16 surrogate
  EXPECT_EQ(valid_utf8("\xf4\x90\x80\x80"), r);   // above U+10FFFF
  EXPECT_EQ(valid_utf8(std::string("nul\0in", 6)), std::string("nul\0in", 6));
}

TEST(Exposition, LabelValueEscaping) {
  std::string o;
  append_label_value(o, "q\"b\\n\nend\xff");
  EXPECT_EQ(o, "q\\\"b\\\\n\\nend\xEF\xBF\xBD");
}

pm::MetricFamily fam(const std::string& name, pm::MetricType t, const std::string& help = "h") {
  pm::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = t;
  pm::ClientMetric m;
  m.label = {{"l", "v"}};
  m.counter.value = 1;
  m.gauge.value = 2;
  m.untyped.value = 3;
  m.histogram.sample_count = 4;
  m.histogram.sample_sum = 0.5;
  m.histogram.bucket = {{1, 0.0001}, {4, std::numeric_limits<double>::infinity()}};
  m.summary.sample_count = 2;
  m.summary.sample_sum = 3;
  m.summary.quantile = {{0.5, 1}, {0.99, 2}};
  f.metric.push_back(m);
  return f;
}

TEST(Exposition, WriterFamiliesByteForByte) {
  std::string out;
  Writer w(out);
  w.write({fam("c_total", pm::MetricType::Counter, "multi\nline \\ help \"q\""), fam("g", pm::MetricType::Gauge),
           fam("h", pm::MetricType::Histogram), fam("s", pm::MetricType::Summary), fam("u", pm::MetricType::Untyped)});
  EXPECT_EQ(out,
            "# HELP c_total multi\\nline \\\\ help \"q\"\n"
            "# TYPE c_total counter\n"
            "c_total{l=\"v\"} 1\n"
            "# HELP g h\n# TYPE g gauge\ng{l=\"v\"} 2\n"
            "# HELP h h\n# TYPE h histogram\n"
            "h_bucket{l=\"v\",le=\"0.0001\"} 1\n"
            "h_bucket{l=\"v\",le=\"+Inf\"} 4\n"
            "h_sum{l=\"v\"} 0.5\n"
            "h_count{l=\"v\"} 4\n"
            "# HELP s h\n# TYPE s summary\n"
            "s{l=\"v\",quantile=\"0.5\"} 1\n"
            "s{l=\"v\",quantile=\"0.99\"} 2\n"
            "s_sum{l=\"v\"} 3\n"
            "s_count{l=\"v\"} 2\n"
            "# HELP u h\n# TYPE u untyped\nu{l=\"v\"} 3\n");
  EXPECT_TRUE(w.collisions().empty());
}

TEST(Exposition, CollidingNamesAreWrittenOnce) {
  std::string out;
  Writer w(out);
  w.reserve(fam("insa_exporter_build_info", pm::MetricType::Gauge));
  // A configured metric with a built-in name: skipped, the built-in keeps it.
  EXPECT_FALSE(w.begin("insa_exporter_build_info", "mine", pm::MetricType::Counter));
  EXPECT_TRUE(w.begin("h", "hist", pm::MetricType::Histogram));
  EXPECT_FALSE(w.begin("h_count", "clash with h's count", pm::MetricType::Counter));
  EXPECT_FALSE(w.begin("h", "twice", pm::MetricType::Gauge));
  EXPECT_TRUE(w.begin("x", "x", pm::MetricType::Counter));
  EXPECT_TRUE(w.begin("x_sum", "x_sum", pm::MetricType::Histogram));  // no clash with counter x
  w.write(fam("insa_exporter_build_info", pm::MetricType::Gauge));    // the owner of the reservation
  EXPECT_EQ(w.collisions(), (std::vector<std::string>{"insa_exporter_build_info", "h_count", "h"}));
  EXPECT_EQ(out,
            "# HELP h hist\n# TYPE h histogram\n"
            "# HELP x x\n# TYPE x counter\n"
            "# HELP x_sum x_sum\n# TYPE x_sum histogram\n"
            "# HELP insa_exporter_build_info h\n# TYPE insa_exporter_build_info gauge\n"
            "insa_exporter_build_info{l=\"v\"} 2\n");
}

}  // namespace
}  // namespace insa::exposition
