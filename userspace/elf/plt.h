// SPDX-License-Identifier: Apache-2.0
/// @file PLT stubs: where a dynamically linked file calls an imported function. A
/// uprobe on the stub of `__cxa_begin_catch` traps only the processes that run the
/// file (the stub is in its own pages), from their first instruction on, with the
/// same stack pointer as at the function's entry (the stub is a single `jmp`).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/result.h"
#include "elf/elf_file.h"

namespace insa::elf {

/// File offset of the `jmp *GOT(%rip)` instruction of `symbol`'s PLT stub (in .plt,
/// .plt.sec or .plt.got), found from the JUMP_SLOT/GLOB_DAT relocation of its GOT slot.
/// Fails when the file does not import `symbol` through a PLT stub (static, -fno-plt).
Result<uint64_t> plt_stub_offset(const ElfFile& file, std::string_view symbol);

}  // namespace insa::elf
