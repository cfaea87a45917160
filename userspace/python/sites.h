// SPDX-License-Identifier: Apache-2.0
/// @file Where the per-call mechanism of Python probes attaches inside an
/// interpreter: the RESUME opcode handlers (every frame start, found through the
/// computed-goto table opcode_targets) and the function that clears a finished
/// frame (_PyFrame_Clear / _PyFrame_ClearExceptCode). Works on stripped builds
/// (Debian's python3.11): the table is found by its shape, the clear function
/// as the first call of the RETURN_VALUE handler.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace insa::python {

struct CallSites {
  struct Site {
    uint64_t vaddr = 0, offset = 0;
    std::string insn;  ///< the probed instruction ("jne 0x...")
    bool first_insn = false;  ///< no conditional jump found: the handler's first instruction (single-stepped)
  };
  std::vector<Site> resume;  ///< one per RESUME handler (RESUME_QUICK; RESUME + RESUME_CHECK on 3.13)
  Site clear;                ///< entry of the frame-clear function
  bool clear_from_symbol = false;
  uint64_t table_vaddr = 0;  ///< opcode_targets
};

/// A symbol of any type and binding (locals included) by name, from .symtab then
/// .dynsym: {link-time address, size}. A name ending in '.' matches compiler-numbered
/// statics ("opcode_targets." finds "opcode_targets.3").
std::optional<std::pair<uint64_t, uint64_t>> find_any_symbol(const elf::ElfFile& f, const std::string& name);

/// Finds the call-mechanism sites of an interpreter file of version `version`
/// (PY_VERSION_HEX) whose _PyEval_EvalFrameDefault is at [eval, eval + eval_size).
Result<CallSites> find_call_sites(const elf::ElfFile& f, uint32_t version, uint64_t eval, uint64_t eval_size);

}  // namespace insa::python
