// SPDX-License-Identifier: Apache-2.0
/// @file `--log.format logfmt|json`, the two formats of Prometheus exporters:
/// `ts=2026-01-02T03:04:05.678Z level=info msg="..."` or one JSON object a line.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>

namespace insa {

enum class LogFormat { Logfmt, Json };

/// A spdlog formatter writing one escaped record a line in UTC.
class ExporterFormatter : public spdlog::formatter {
 public:
  explicit ExporterFormatter(LogFormat f) : format_(f) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<ExporterFormatter>(format_); }

 private:
  LogFormat format_;
};

}  // namespace insa
