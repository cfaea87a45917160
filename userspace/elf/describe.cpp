// SPDX-License-Identifier: Apache-2.0
#include "elf/describe.h"

#include <algorithm>
#include <cstdio>

#include "elf/usdt.h"

namespace insa::elf {

namespace {

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

Result<std::vector<std::string>> describe(const ElfFile& file) {
  std::vector<std::string> lines;
  for (const auto& s : file.functions()) {
    std::string line = "function " + s.demangled;
    if (s.demangled != s.name) line += "  (" + s.name + ")";
    line += " offset " + hex(s.file_offset) + " size " + std::to_string(s.size);
    lines.push_back(std::move(line));
  }
  auto usdt = read_usdt_probes(file);
  if (!usdt) return usdt.error();
  for (const auto& p : *usdt) {
    std::string line = "usdt " + p.provider + ":" + p.name;
    if (!p.args.empty()) line += " " + p.args;
    line += " offset " + hex(p.file_offset);
    lines.push_back(std::move(line));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace insa::elf
