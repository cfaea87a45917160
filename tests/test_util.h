// SPDX-License-Identifier: Apache-2.0
/// @file Helpers shared by the unit and root tests: running an independent tool
/// (objdump, nm, readelf) for ground truth, and locating a token in a test text.
#pragma once

#include <cstdio>
#include <string>

namespace insa::test {

/// Runs `cmd` through the shell; returns its stdout ("" when it cannot start).
inline std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

/// "line:col" (1-based) of the `nth` occurrence of `needle` in `text`, "?:?" when absent.
inline std::string line_col(const std::string& text, const std::string& needle, int nth = 1) {
  size_t pos = std::string::npos;
  for (int i = 0; i < nth; ++i) {
    pos = text.find(needle, pos == std::string::npos ? 0 : pos + 1);
    if (pos == std::string::npos) return "?:?";
  }
  int line = 1, col = 1;
  for (size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

}  // namespace insa::test
