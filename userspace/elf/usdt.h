// SPDX-License-Identifier: Apache-2.0
/// @file USDT (SystemTap SDT) probes from an ELF file's .note.stapsdt notes.
/// Note layout:
/// https://sourceware.org/systemtap/wiki/UserSpaceProbeImplementation
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace insa::elf {

/// One USDT probe site. A provider:name pair may have several sites (one per
/// inlined or repeated DTRACE_PROBE); each is its own UsdtProbe.
struct UsdtProbe {
  std::string provider;  ///< e.g. "libstdcxx"
  std::string name;      ///< e.g. "throw"
  std::string args;  ///< argument string as in the note, e.g. "8@%rax 8@%rdx"
  uint64_t pc_vaddr =
      0;  ///< probe address, adjusted by .stapsdt.base (prelink)
  uint64_t file_offset = 0;      ///< pc_vaddr as a uprobe file offset
  uint64_t semaphore_vaddr = 0;  ///< 0 when the probe has no semaphore
  /// semaphore_vaddr as a file offset: the uprobe ref_ctr_offset; 0 when none.
  uint64_t semaphore_offset = 0;
};

/// Parses every .note.stapsdt note of `file`, in note order. A file without
/// USDT notes yields an empty vector; a malformed note is an error.
Result<std::vector<UsdtProbe>> read_usdt_probes(const ElfFile& file);

}  // namespace insa::elf
