// SPDX-License-Identifier: Apache-2.0
#include "common/log_format.h"

#include <chrono>
#include <ctime>

namespace insa {
namespace {

void append(spdlog::memory_buf_t& d, std::string_view s) { d.append(s.data(), s.data() + s.size()); }

/// Escapes for a double-quoted logfmt or JSON string (the same set serves both).
void quoted(spdlog::memory_buf_t& d, std::string_view s) {
  d.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        append(d, "\\\"");
        break;
      case '\\':
        append(d, "\\\\");
        break;
      case '\n':
        append(d, "\\n");
        break;
      case '\r':
        append(d, "\\r");
        break;
      case '\t':
        append(d, "\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          append(d, buf);
        } else {
          d.push_back(static_cast<char>(c));
        }
    }
  }
  d.push_back('"');
}

}  // namespace

void ExporterFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  using namespace std::chrono;
  const auto t = msg.time;
  const std::time_t secs = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[40];
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count() % 1000;
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  auto level = spdlog::level::to_string_view(msg.level);
  std::string_view lv(level.data(), level.size());
  if (lv == "warning") lv = "warn";
  std::string_view text(msg.payload.data(), msg.payload.size());
  if (format_ == LogFormat::Json) {
    append(dest, "{\"ts\":\"");
    append(dest, ts);
    append(dest, "\",\"level\":\"");
    append(dest, lv);
    append(dest, "\",\"msg\":");
    quoted(dest, text);
    append(dest, "}\n");
  } else {
    append(dest, "ts=");
    append(dest, ts);
    append(dest, " level=");
    append(dest, lv);
    append(dest, " msg=");
    quoted(dest, text);
    dest.push_back('\n');
  }
}

}  // namespace insa
