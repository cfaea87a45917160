// SPDX-License-Identifier: Apache-2.0
/// @file Return-site analysis: where a function can be left, and where its
/// entry is cheapest to probe, found by decoding its x86-64 code with Capstone.
///
/// Why: uretprobes rewrite the return address on the stack, which breaks C++
/// unwinding (a throwing worker dies in std::terminate). Probing the function's
/// own exit instructions instead leaves the stack untouched.
///
/// Invariant the consumer relies on: at every exit site, before the instruction
/// executes, the stack pointer equals the stack pointer at function entry (it
/// points at the return address). For `ret` that is what ret pops; for a tail
/// `jmp` the compiler has torn the frame down so the callee can return straight
/// to our caller. Entry and exit are therefore paired by (thread, rsp);
/// recursion and nested probed calls pair exactly. An entry probe placed after
/// the first instruction must add EntrySite::sp_delta to rsp to get the entry
/// value.
#pragma once

#include <capstone/capstone.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace insa::elf {

/// An instruction at which the function is left with rsp == entry rsp.
struct ExitSite {
  enum class Kind {
    Ret,      ///< ret / ret imm16
    TailJmp,  ///< jmp (direct or indirect) to code outside the function
  };
  uint64_t vaddr = 0;
  uint64_t file_offset = 0;  ///< uprobe offset of the instruction
  Kind kind = Kind::Ret;
  bool cold = false;      ///< in the function's split-off ".cold" part
  std::string insn_text;  ///< e.g. "jmp 0x1720"
  bool unnamed = false;   ///< in a cold part known only by its .eh_frame FDE
};

/// A place where the entry uprobe may go instead of the first instruction.
struct EntrySite {
  uint64_t vaddr = 0;
  uint64_t file_offset = 0;
  /// Bytes subtracted from rsp between function entry and this instruction (8
  /// after one push); entry rsp = rsp at this site + sp_delta.
  int64_t sp_delta = 0;
  bool emulated = false;  ///< is_kernel_emulated(): no single-step needed
  std::string insn_text;
};

/// A contiguous piece of a function's code.
struct CodeRange {
  uint64_t vaddr = 0;
  uint64_t size = 0;
  bool cold = false;  ///< GCC's "<name>.cold" part (hot/cold splitting)
  /// Found through .eh_frame, not a symbol (stripped file): an FDE no symbol
  /// names, reached by a jump from the function (see analyze_function).
  bool unnamed = false;
};

/// What analyze_function found. `exits` is empty only when `noreturn`.
struct FunctionCode {
  Symbol symbol;
  std::vector<CodeRange> ranges;  ///< the symbol first, then .cold parts
  std::vector<ExitSite> exits;    ///< sorted by vaddr
  /// Offset 0 first, then each later instruction of the straight-line prologue
  /// that is safe to probe (see analyze_function).
  std::vector<EntrySite> entry_candidates;
  EntrySite entry_probe;  ///< choose_entry_site(entry_candidates)
  bool noreturn = false;  ///< no exit at all and ends in a call/ud2/hlt
};

/// Decodes `sym` (and its ".cold" part if GCC split one off) and finds its
/// exits: every ret; every direct jmp leaving the function (tail call); every
/// indirect jmp that is not a jump-table dispatch inside the function (tail
/// call through a pointer or the GOT). Jumps into the function's own .cold part
/// are internal, whether the part is named by a symbol (".cold", also from a
/// separate debug file) or, in a stripped file, only by its .eh_frame FDE: an
/// FDE in the same section that no symbol names, reached by a jump from the
/// function, and not a function of its own (entered mid-range or mid-frame,
/// jumps back into the function, or never returns). A symbol of size 0 takes
/// the size of the FDE that starts at it.
///
/// Refuses, with the reason, rather than guess when: the size is 0; any byte
/// fails to decode; an indirect jmp looks like a table dispatch it cannot
/// verify, or the function computes addresses of its own code (computed goto);
/// a conditional jump leaves the function (a probe there would fire whether or
/// not it is taken); or no exit exists and the function does not end in a call
/// to a noreturn function (or ud2/hlt).
///
/// Entry candidates: offset 0, then each instruction after it in the prologue,
/// tracking rsp through `push` and `sub rsp, imm`. The walk stops at the first
/// branch, call or return, memory write other than push, other change of rsp,
/// write to an argument register (rdi rsi rdx rcx r8 r9: the entry probe reads
/// arguments), or instruction that is a jump target; in functions with a jump
/// table only offset 0 is offered.
Result<FunctionCode> analyze_function(const ElfFile& file, const Symbol& sym);

/// Where a raw uprobe offset lands, for messages ("insa_fx::boom(int)+0x4:
/// mov eax, edi").
struct CodeSpot {
  uint64_t vaddr = 0;
  Symbol function;      ///< the containing function (name empty: an unnamed FDE)
  std::string insn_text;
  std::string str() const;
};

/// Checks that file offset `offset` may take a uprobe: inside the file, in an
/// executable section, inside a function (symbol, else .eh_frame FDE) whose
/// code decodes from its start up to `offset`, and on the first byte of an
/// instruction. A breakpoint in the middle of an instruction corrupts it (the
/// worker dies of SIGSEGV or SIGILL), so anything unsure is refused.
Result<CodeSpot> check_code_offset(const ElfFile& file, uint64_t offset);

/// Whether the x86 uprobe code emulates `insn` instead of single-stepping a
/// copy of it out of line (an extra trap). From arch/x86/kernel/uprobes.c:
/// branch_setup_xol_ops() emulates call rel32, jmp rel8/rel32 and jcc
/// rel8/rel32 without a 0x66 prefix, and `[prefix*] 0x90`; push_setup_xol_ops()
/// emulates `push reg` (50+r, or 41 50+r for r8-r15). Since Linux 6.16 (commit
/// 610f6e14c29d "uprobes/x86: Add support to emulate NOP instructions") every
/// x86_nops[1..8] form is emulated too, including the 5-byte `0f 1f 44 00 00`;
/// since 6.18 (commit ba2bfc97b462 "uprobes/x86: Add support to optimize
/// uprobes") a probe on that 5-byte nop is even rewritten into a call to a
/// trampoline (no trap at all after the first hit). Nothing else is emulated:
/// not mov, not sub/add rsp, not ret, not endbr64. This function models
/// the 6.16+ set.
bool is_kernel_emulated(const cs_insn& insn);

/// Offset 0 when the kernel emulates it; else the first emulated candidate;
/// else offset 0. `candidates` must start with offset 0.
EntrySite choose_entry_site(const std::vector<EntrySite>& candidates);

}  // namespace insa::elf
