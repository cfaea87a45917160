// SPDX-License-Identifier: Apache-2.0
// --log.format: logfmt and JSON records, escaped, in UTC with milliseconds.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <regex>
#include <sstream>

#include "common/log_format.h"

namespace insa {
namespace {

std::string log_one(LogFormat f, spdlog::level::level_enum lv, const std::string& msg) {
  std::ostringstream os;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(os);
  spdlog::logger l("t", sink);
  l.set_formatter(std::make_unique<ExporterFormatter>(f));
  l.log(lv, "{}", msg);
  return os.str();
}

TEST(LogFormat, Logfmt) {
  auto line = log_one(LogFormat::Logfmt, spdlog::level::warn, "probe \"x\" at a\\b\nnext\tend");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(ts=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)\n)"))) << line;
  EXPECT_EQ(m[2].str(), R"(level=warn msg="probe \"x\" at a\\b\nnext\tend")");
}

TEST(LogFormat, Json) {
  auto line = log_one(LogFormat::Json, spdlog::level::err, std::string("bad \"q\" \x01 done"));
  std::smatch m;
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"re(\{"ts":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)",(.*)\n)re")))
      << line;
  EXPECT_EQ(m[2].str(), R"re("level":"error","msg":"bad \"q\" \u0001 done"})re");
}

}  // namespace
}  // namespace insa
