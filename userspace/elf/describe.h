// SPDX-License-Identifier: Apache-2.0
/// @file What `insa-exporter list-probes BINARY` prints: every function and
/// USDT probe a user can name in probes.yaml.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace insa::elf {

/// One line per function and per USDT probe site, sorted:
///   "function <demangled>  (<mangled>) offset 0x<hex> size <n>"  (C++; the
///   parenthesised mangled name is left out when it equals the demangled one)
///   "usdt <provider>:<name> <args> offset 0x<hex>"
Result<std::vector<std::string>> describe(const ElfFile& file);

}  // namespace insa::elf
