// SPDX-License-Identifier: Apache-2.0
/// @file The call-frame records of `.eh_frame` (one FDE per contiguous piece of
/// code), read without libdw. They survive `strip`: the C++ runtime needs them
/// to unwind, so they give a stripped binary's code extents, including the
/// unnamed ".cold" parts GCC splits off a function, and say which code has C++
/// exception tables (a personality routine or an LSDA).
///
/// Format: the LSB "Exception Frame" chapter
/// (https://refspecs.linuxfoundation.org/LSB_5.0.0/LSB-Core-generic/LSB-Core-generic/ehframechpt.html)
/// and DWARF 5 section 6.4 for the call frame instructions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"

namespace insa::elf {

/// One Frame Description Entry: a contiguous range of code.
struct Fde {
  uint64_t begin = 0;        ///< link-time virtual address of the first byte
  uint64_t size = 0;         ///< bytes of code covered
  bool personality = false;  ///< its CIE names a personality routine ('P')
  bool lsda = false;         ///< it points at a non-null LSDA (C++ catch/cleanup table)
  /// The frame rules at `begin` are a function entry's: CFA = rsp + 8, the
  /// return address at CFA - 8, no register saved. False for code entered in
  /// the middle of a frame (GCC's cold parts after a push or `sub rsp`).
  bool entry_state = true;
};

/// Parses a `.eh_frame` section whose first byte is at link-time address
/// `vaddr`. Returns the FDEs with a non-empty range, sorted by `begin`. Fails
/// with the offset of the first malformed record.
Result<std::vector<Fde>> parse_eh_frame(std::span<const uint8_t> bytes, uint64_t vaddr);

/// The FDE whose range contains `vaddr`, or nullptr. `fdes` sorted by begin.
const Fde* fde_containing(const std::vector<Fde>& fdes, uint64_t vaddr);

}  // namespace insa::elf
