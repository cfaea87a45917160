// SPDX-License-Identifier: Apache-2.0
#include "elf/return_sites.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include <elf.h>

namespace insa::elf {

namespace {

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

/// The 64-bit register that `r` is part of (eax -> rax), or `r` itself.
x86_reg full_reg(unsigned r) {
  static const x86_reg kFamilies[][5] = {
      {X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL, X86_REG_AH},
      {X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL, X86_REG_BH},
      {X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH},
      {X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH},
      {X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL, X86_REG_SIL},
      {X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL, X86_REG_DIL},
      {X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL, X86_REG_BPL},
      {X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL, X86_REG_SPL},
      {X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B, X86_REG_R8B},
      {X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B, X86_REG_R9B},
      {X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B, X86_REG_R10B},
      {X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B, X86_REG_R11B},
      {X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B, X86_REG_R12B},
      {X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B, X86_REG_R13B},
      {X86_REG_R14, X86_REG_R14D, X86_REG_R14W, X86_REG_R14B, X86_REG_R14B},
      {X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B, X86_REG_R15B},
  };
  for (const auto& f : kFamilies) {
    for (x86_reg m : f) {
      if (m == r) return f[0];
    }
  }
  return static_cast<x86_reg>(r);
}

/// Capstone handle with operand details, closed on destruction.
class Disassembler {
 public:
  Disassembler() {
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &h_) != CS_ERR_OK) {
      h_ = 0;
      return;
    }
    cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
  }
  ~Disassembler() {
    if (h_) cs_close(&h_);
  }
  Disassembler(const Disassembler&) = delete;
  Disassembler& operator=(const Disassembler&) = delete;
  csh handle() const { return h_; }

 private:
  csh h_ = 0;
};

/// Instructions owned by Capstone, freed on destruction.
struct Insns {
  cs_insn* v = nullptr;
  size_t n = 0;
  ~Insns() {
    if (v) cs_free(v, n);
  }
};

struct Decoded {
  CodeRange range;
  Insns insns;
};

std::string text(const cs_insn& i) {
  std::string s = i.mnemonic;
  if (i.op_str[0]) s += std::string(" ") + i.op_str;
  return s;
}

bool is_group(const cs_insn& i, uint8_t group) {
  const cs_detail* d = i.detail;
  return d && std::find(d->groups, d->groups + d->groups_count, group) !=
                  d->groups + d->groups_count;
}

bool writes_reg(csh h, const cs_insn& i, x86_reg full) {
  cs_regs rd, wr;
  uint8_t nrd = 0, nwr = 0;
  if (cs_regs_access(h, &i, rd, &nrd, wr, &nwr) != CS_ERR_OK) return true;
  for (uint8_t k = 0; k < nwr; ++k) {
    if (full_reg(wr[k]) == full) return true;
  }
  return false;
}

bool writes_memory(const cs_insn& i) {
  const cs_x86& x = i.detail->x86;
  for (uint8_t k = 0; k < x.op_count; ++k) {
    if (x.operands[k].type == X86_OP_MEM &&
        (x.operands[k].access & CS_AC_WRITE))
      return true;
  }
  return false;
}

class Analyzer {
 public:
  Analyzer(const ElfFile& file, const Symbol& sym, csh h)
      : file_(file), sym_(sym), h_(h) {}

  bool inside(uint64_t a) const {
    for (const auto& d : decoded_) {
      if (a >= d->range.vaddr && a < d->range.vaddr + d->range.size)
        return true;
    }
    return false;
  }

  static std::string where(const cs_insn& i) {
    return "at " + hex(i.address) + " (" + text(i) + ")";
  }

  Error refuse(const std::string& why) const {
    // Never point C++ code at a uretprobe: an exception unwinding through its
    // trampoline ends in std::terminate.
    const std::string advice =
        file_.cxx_runtime().empty()
            ? "probe a caller, count calls at entry only, or use 'exit: "
              "uretprobe' (C code)"
            : "probe a caller, or count calls at entry only";
    return Error{"cannot find the exits of '" + sym_.demangled + "' in '" +
                 file_.path() + "': " + why + "; not probing it (" + advice +
                 ")"};
  }

  /// In a stripped file GCC's "<name>.cold" symbol is gone but its FDE is not.
  /// A direct jump from the function to `target`, outside its known ranges, is
  /// into an unnamed part of the same function when `target` is in the same
  /// section, inside an FDE no symbol names, and that code is not a function
  /// of its own: it is entered mid-range, or mid-frame (FDE rules at its start
  /// are not an entry's), or it jumps back into the function, or it never
  /// returns (a cold part ends in a throw or a jump back; a tail-called
  /// function returns). Returns the decoded part, or nullptr.
  std::unique_ptr<Decoded> unnamed_part(uint64_t target) {
    const Fde* fde = fde_containing(file_.fdes(), target);
    if (!fde) return nullptr;
    auto here = file_.section_at(sym_.vaddr), there = file_.section_at(target);
    if (!here || !there || here->name != there->name) return nullptr;
    const uint64_t end = fde->begin + fde->size;
    for (const auto& s : file_.functions()) {
      if ((s.vaddr >= fde->begin && s.vaddr < end) ||
          (target >= s.vaddr && target - s.vaddr < s.size))
        return nullptr;
    }
    for (const auto& d : decoded_) {
      if (d->range.vaddr < end && fde->begin < d->range.vaddr + d->range.size)
        return nullptr;  // overlaps a part we have: not a separate piece
    }
    auto bytes = file_.bytes_at_vaddr(fde->begin, fde->size);
    if (!bytes) return nullptr;
    auto d = std::make_unique<Decoded>();
    d->range = {fde->begin, fde->size, true, true};
    d->insns.n = cs_disasm(h_, bytes->data(), bytes->size(), fde->begin, 0,
                           &d->insns.v);
    if (!d->insns.n) return nullptr;
    const cs_insn& last = d->insns.v[d->insns.n - 1];
    if (last.address + last.size != end) return nullptr;
    bool has_ret = false, jumps_back = false;
    for (size_t k = 0; k < d->insns.n; ++k) {
      const cs_insn& i = d->insns.v[k];
      const cs_x86& x = i.detail->x86;
      if (i.id == X86_INS_RET) has_ret = true;
      if (is_group(i, CS_GRP_JUMP) && x.op_count == 1 &&
          x.operands[0].type == X86_OP_IMM && inside(x.operands[0].imm))
        jumps_back = true;
    }
    const bool part = target != fde->begin || !fde->entry_state || jumps_back ||
                      !has_ret;
    return part ? std::move(d) : nullptr;
  }

  Result<void> decode(const CodeRange& r) {
    auto bytes = file_.bytes_at_vaddr(r.vaddr, r.size);
    if (!bytes) return refuse(bytes.error().message);
    auto d = std::make_unique<Decoded>();
    d->range = r;
    d->insns.n =
        cs_disasm(h_, bytes->data(), bytes->size(), r.vaddr, 0, &d->insns.v);
    uint64_t end = r.vaddr;
    if (d->insns.n) {
      const cs_insn& last = d->insns.v[d->insns.n - 1];
      end = last.address + last.size;
    }
    if (end != r.vaddr + r.size) {
      return refuse("bytes at " + hex(end) +
                    " do not decode as x86-64 instructions");
    }
    decoded_.push_back(std::move(d));
    return {};
  }

  /// Target of a table dispatch, or 0 when `i` (an indirect jmp) is not one.
  /// Sets *unsure when it looks like a table but cannot be verified.
  uint64_t table_target(const Decoded& d, size_t at, bool* unsure) {
    const cs_insn& j = d.insns.v[at];
    const cs_x86_op& op = j.detail->x86.operands[0];
    auto abs_entry = [&](int64_t table) -> uint64_t {
      auto b = file_.bytes_at_vaddr(static_cast<uint64_t>(table), 8);
      if (!b) return 0;
      uint64_t t;
      std::memcpy(&t, b->data(), 8);
      return t;
    };
    if (op.type == X86_OP_MEM) {
      // jmp [index*8 + table] (non-PIE): absolute 8-byte entries.
      if (op.mem.index != X86_REG_INVALID && op.mem.base == X86_REG_INVALID &&
          op.mem.scale == 8) {
        uint64_t t = abs_entry(op.mem.disp);
        if (t && inside(t)) return t;
      }
      if (op.mem.index != X86_REG_INVALID) *unsure = true;
      return 0;
    }
    // jmp reg: find how reg was computed within the last few instructions.
    x86_reg r = full_reg(op.reg);
    auto writer = [&](size_t before, x86_reg reg) -> const cs_insn* {
      for (size_t k = before, seen = 0; k-- > 0 && seen < 8; ++seen) {
        const cs_insn& c = d.insns.v[k];
        if (is_group(c, CS_GRP_JUMP) || is_group(c, CS_GRP_CALL) ||
            is_group(c, CS_GRP_RET)) {
          return nullptr;
        }
        if (writes_reg(h_, c, reg)) return &c;
      }
      return nullptr;
    };
    auto index_of = [&](const cs_insn* c) {
      return static_cast<size_t>(c - d.insns.v);
    };
    const cs_insn* w = writer(at, r);
    if (!w) return 0;
    const cs_x86& wx = w->detail->x86;
    if (w->id == X86_INS_MOV && wx.op_count == 2 &&
        wx.operands[1].type == X86_OP_MEM &&
        wx.operands[1].mem.index != X86_REG_INVALID) {
      // mov reg, [index*8 + table]; jmp reg
      const x86_op_mem& m = wx.operands[1].mem;
      if (m.base == X86_REG_INVALID && m.scale == 8) {
        uint64_t t = abs_entry(m.disp);
        if (t && inside(t)) return t;
      }
      *unsure = true;
      return 0;
    }
    if (w->id == X86_INS_ADD && wx.op_count == 2 &&
        wx.operands[1].type == X86_OP_REG) {
      // PIE: T is a table of 32-bit offsets from T itself, loaded by
      //   lea B, [rip+T]; movsxd X, [B + I*4]; add R, S; jmp R     (-O2), or
      //   ...; mov eax, [..]; cdqe; lea S, [rip+T]; add R, S; jmp R  (-O0).
      // Adding two registers right before an indirect jmp is a table dispatch:
      // from here on, anything we cannot verify is a refusal.
      *unsure = true;
      x86_reg s = full_reg(wx.operands[1].reg);
      const cs_insn* lea = nullptr;
      for (x86_reg reg : {s, r}) {
        const cs_insn* c = writer(index_of(w), reg);
        if (c && c->id == X86_INS_LEA &&
            c->detail->x86.operands[1].type == X86_OP_MEM &&
            c->detail->x86.operands[1].mem.base == X86_REG_RIP) {
          lea = c;
          break;
        }
      }
      if (!lea) return 0;
      uint64_t table =
          lea->address + lea->size + lea->detail->x86.operands[1].mem.disp;
      auto b = file_.bytes_at_vaddr(table, 4);
      if (!b) return 0;
      int32_t rel;
      std::memcpy(&rel, b->data(), 4);
      uint64_t t = table + static_cast<int64_t>(rel);
      if (!inside(t)) return 0;
      *unsure = false;
      return t;
    }
    if (w->id == X86_INS_MOVSXD) *unsure = true;
    return 0;
  }

  Result<FunctionCode> run() {
    uint64_t size = sym_.size;
    if (size == 0) {  // hand-written assembly often has no .size: ask .eh_frame
      const Fde* fde = fde_containing(file_.fdes(), sym_.vaddr);
      if (fde && fde->begin == sym_.vaddr) size = fde->size;
    }
    if (size == 0) {
      return refuse("the symbol has size 0 and no .eh_frame FDE starts at it "
                    "(no extent to decode)");
    }
    FunctionCode fc;
    fc.symbol = sym_;
    fc.ranges.push_back({sym_.vaddr, size, false});
    // GCC moves unlikely code to "<name>.cold" (same frame, own symbol; C parts
    // often carry size 0: then it extends to the next symbol).
    const auto& fns = file_.functions();
    for (size_t k = 0; k < fns.size(); ++k) {
      const Symbol& s = fns[k];
      if (s.name != sym_.name + ".cold" &&
          s.name.rfind(sym_.name + ".cold.", 0) != 0)
        continue;
      uint64_t size = s.size;
      if (size == 0) {
        uint64_t next = 0;
        for (const auto& o : fns) {
          if (o.vaddr > s.vaddr && (next == 0 || o.vaddr < next))
            next = o.vaddr;
        }
        if (next == 0)
          return refuse("cannot bound its cold part '" + s.name + "'");
        size = next - s.vaddr;
      }
      fc.ranges.push_back({s.vaddr, size, true, false});
    }
    for (const auto& r : fc.ranges) {
      if (auto ok = decode(r); !ok) return ok.error();
    }
    // Unnamed parts (stripped files), found by following jumps; a part may
    // jump on to another.
    for (size_t n = 0; n < decoded_.size() && decoded_.size() < 16; ++n) {
      for (size_t k = 0; k < decoded_[n]->insns.n; ++k) {
        const cs_insn& i = decoded_[n]->insns.v[k];
        const cs_x86& x = i.detail->x86;
        if (!is_group(i, CS_GRP_JUMP) || x.op_count != 1 ||
            x.operands[0].type != X86_OP_IMM || inside(x.operands[0].imm))
          continue;
        if (auto part = unnamed_part(x.operands[0].imm)) {
          fc.ranges.push_back(part->range);
          decoded_.push_back(std::move(part));
        }
      }
    }

    // Does the function take the address of its own code (computed goto)?
    bool own_code_address = false;
    std::set<uint64_t> targets;  // direct branch targets inside the function
    bool has_table = false;
    for (const auto& d : decoded_) {
      for (size_t k = 0; k < d->insns.n; ++k) {
        const cs_insn& i = d->insns.v[k];
        const cs_x86& x = i.detail->x86;
        if (i.id == X86_INS_LEA && x.operands[1].type == X86_OP_MEM &&
            x.operands[1].mem.base == X86_REG_RIP &&
            inside(i.address + i.size + x.operands[1].mem.disp)) {
          own_code_address = true;
        }
        if ((is_group(i, CS_GRP_JUMP) || is_group(i, CS_GRP_CALL)) &&
            x.op_count == 1 && x.operands[0].type == X86_OP_IMM &&
            inside(x.operands[0].imm)) {
          targets.insert(x.operands[0].imm);
        }
      }
    }

    for (const auto& d : decoded_) {
      for (size_t k = 0; k < d->insns.n; ++k) {
        const cs_insn& i = d->insns.v[k];
        const cs_x86& x = i.detail->x86;
        auto add_exit = [&](ExitSite::Kind kind) -> Result<void> {
          auto off = file_.vaddr_to_offset(i.address);
          if (!off) return off.error();
          fc.exits.push_back({i.address, *off, kind, d->range.cold, text(i),
                              d->range.unnamed});
          return {};
        };
        if (i.id == X86_INS_RET) {
          if (auto ok = add_exit(ExitSite::Kind::Ret); !ok) return ok.error();
          continue;
        }
        if (i.id == X86_INS_RETF || i.id == X86_INS_RETFQ ||
            i.id == X86_INS_LJMP || i.id == X86_INS_IRET ||
            i.id == X86_INS_IRETQ) {
          return refuse("far transfer " + where(i));
        }
        if (!is_group(i, CS_GRP_JUMP)) continue;
        bool direct = x.op_count == 1 && x.operands[0].type == X86_OP_IMM;
        if (i.id != X86_INS_JMP) {  // jcc, jrcxz, loop
          if (!direct || !inside(x.operands[0].imm)) {
            return refuse(
                "conditional jump leaves the function " + where(i) +
                "; a probe there would fire whether or not it is taken");
          }
          continue;
        }
        if (direct) {
          if (!inside(x.operands[0].imm)) {
            if (auto ok = add_exit(ExitSite::Kind::TailJmp); !ok)
              return ok.error();
          }
          continue;
        }
        bool unsure = false;
        if (table_target(*d, k, &unsure) != 0) {
          has_table = true;
          continue;
        }
        if (unsure) {
          return refuse(
              "indirect jump " + where(i) +
              " looks like a jump table whose targets cannot be verified");
        }
        if (own_code_address) {
          return refuse("indirect jump " + where(i) +
                        " in a function that takes addresses of its own code "
                        "(computed goto?)");
        }
        if (auto ok = add_exit(ExitSite::Kind::TailJmp); !ok) return ok.error();
      }
    }
    std::sort(
        fc.exits.begin(), fc.exits.end(),
        [](const ExitSite& a, const ExitSite& b) { return a.vaddr < b.vaddr; });

    if (fc.exits.empty()) {
      // Obviously noreturn: the main part ends (before padding) in a call, ud2
      // or hlt.
      const Decoded& main = *decoded_.front();
      const cs_insn* last = nullptr;
      for (size_t k = main.insns.n; k-- > 0;) {
        const cs_insn& i = main.insns.v[k];
        if (i.id == X86_INS_NOP || i.id == X86_INS_INT3) continue;
        last = &i;
        break;
      }
      if (last && (is_group(*last, CS_GRP_CALL) || last->id == X86_INS_UD2 ||
                   last->id == X86_INS_HLT)) {
        fc.noreturn = true;
      } else {
        return refuse(
            "no ret or tail jump found, and it does not end in a call to a "
            "noreturn "
            "function");
      }
    }

    entry_candidates(fc, targets, has_table);
    fc.entry_probe = choose_entry_site(fc.entry_candidates);
    return fc;
  }

  void entry_candidates(FunctionCode& fc, const std::set<uint64_t>& targets,
                        bool has_table) {
    const Decoded& main = *decoded_.front();
    int64_t delta = 0;
    static const x86_reg kArgs[] = {X86_REG_RDI, X86_REG_RSI, X86_REG_RDX,
                                    X86_REG_RCX, X86_REG_R8,  X86_REG_R9};
    for (size_t k = 0; k < main.insns.n && k < 16; ++k) {
      const cs_insn& i = main.insns.v[k];
      if (k > 0 && (has_table || targets.count(i.address))) break;
      if (k > 0 && (i.id == X86_INS_RET || i.id == X86_INS_JMP))
        break;  // exit sites
      fc.entry_candidates.push_back(
          {i.address, sym_.file_offset + (i.address - sym_.vaddr), delta,
           is_kernel_emulated(i), text(i)});
      // May the probe move past this instruction?
      if (is_group(i, CS_GRP_JUMP) || is_group(i, CS_GRP_CALL) ||
          is_group(i, CS_GRP_RET) || is_group(i, CS_GRP_INT) ||
          is_group(i, CS_GRP_IRET)) {
        break;
      }
      const cs_x86& x = i.detail->x86;
      bool is_push = i.id == X86_INS_PUSH;
      if (!is_push && writes_memory(i)) break;
      if (std::any_of(std::begin(kArgs), std::end(kArgs),
                      [&](x86_reg r) { return writes_reg(h_, i, r); })) {
        break;
      }
      if (writes_reg(h_, i, X86_REG_RSP)) {
        if (is_push) {
          delta += 8;
        } else if (i.id == X86_INS_SUB && x.op_count == 2 &&
                   x.operands[0].type == X86_OP_REG &&
                   x.operands[0].reg == X86_REG_RSP &&
                   x.operands[1].type == X86_OP_IMM) {
          delta += x.operands[1].imm;
        } else {
          break;
        }
      }
    }
  }

 private:
  const ElfFile& file_;
  const Symbol& sym_;
  csh h_;
  std::vector<std::unique_ptr<Decoded>> decoded_;
};

}  // namespace

bool is_kernel_emulated(const cs_insn& insn) {
  const uint8_t* b = insn.bytes;
  const size_t n = insn.size;
  // x86_nops[1..8] (arch/x86/include/asm/nops.h, BYTES_NOP1..8).
  static const std::vector<std::vector<uint8_t>> kNops = {
      {0x90},
      {0x66, 0x90},
      {0x0f, 0x1f, 0x00},
      {0x0f, 0x1f, 0x40, 0x00},
      {0x0f, 0x1f, 0x44, 0x00, 0x00},
      {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
      {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
      {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
  };
  for (const auto& nop : kNops) {
    if (nop.size() == n && std::memcmp(nop.data(), b, n) == 0) return true;
  }
  // push reg: 50+r, or 41 50+r.
  if (n == 1 && b[0] >= 0x50 && b[0] <= 0x57) return true;
  if (n == 2 && b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57) return true;
  // Branches after legacy prefixes (0x66 rejected by the kernel).
  size_t p = 0;
  bool has66 = false;
  while (p < n &&
         (b[p] == 0x26 || b[p] == 0x2e || b[p] == 0x36 || b[p] == 0x3e ||
          b[p] == 0x64 || b[p] == 0x65 || b[p] == 0x66 || b[p] == 0x67 ||
          b[p] == 0xf0 || b[p] == 0xf2 || b[p] == 0xf3)) {
    has66 |= b[p] == 0x66;
    ++p;
  }
  if (p < n && (b[p] & 0xf0) == 0x40) ++p;  // REX
  if (p >= n) return false;
  uint8_t op = b[p];
  if (op == 0x90)
    return true;  // "prefix* + nop", emulated like a jmp with offset 0
  bool branch =
      op == 0xe8 || op == 0xe9 || op == 0xeb || (op >= 0x70 && op <= 0x7f) ||
      (op == 0x0f && p + 1 < n && b[p + 1] >= 0x80 && b[p + 1] <= 0x8f);
  return branch && !has66;
}

EntrySite choose_entry_site(const std::vector<EntrySite>& candidates) {
  if (candidates.empty()) return {};
  if (candidates.front().emulated) return candidates.front();
  for (const auto& c : candidates) {
    if (c.emulated) return c;
  }
  return candidates.front();
}

std::string CodeSpot::str() const {
  std::string where = function.name.empty() ? "unnamed code at " + hex(function.vaddr)
                                            : function.demangled;
  if (vaddr != function.vaddr) where += "+" + hex(vaddr - function.vaddr);
  return where + ": " + insn_text;
}

Result<CodeSpot> check_code_offset(const ElfFile& file, uint64_t offset) {
  auto vaddr = file.offset_to_vaddr(offset);
  if (!vaddr) return vaddr.error();
  auto sec = file.section_at(*vaddr);
  if (!sec || !(sec->flags & SHF_EXECINSTR)) {
    return Error{"offset " + hex(offset) + " of '" + file.path() + "' is not code (section " +
                 (sec ? "'" + sec->name + "'" : std::string("none")) + ")"};
  }
  CodeSpot spot;
  for (const auto& s : file.functions()) {
    if (*vaddr >= s.vaddr && *vaddr - s.vaddr < s.size) {
      spot.function = s;
      break;
    }
  }
  if (spot.function.size == 0) {
    const Fde* fde = fde_containing(file.fdes(), *vaddr);
    if (!fde) {
      return Error{"offset " + hex(offset) + " of '" + file.path() +
                   "' is in no function known by a symbol or an .eh_frame FDE, so "
                   "instruction boundaries cannot be checked"};
    }
    spot.function.vaddr = fde->begin;
    spot.function.size = fde->size;
  }
  Disassembler dis;
  if (!dis.handle()) return Error{"cannot initialise the Capstone x86-64 disassembler"};
  auto bytes = file.bytes_at_vaddr(spot.function.vaddr, *vaddr - spot.function.vaddr + 16);
  if (!bytes) bytes = file.bytes_at_vaddr(spot.function.vaddr, *vaddr - spot.function.vaddr + 1);
  if (!bytes) return bytes.error();
  const uint8_t* code = bytes->data();
  size_t left = bytes->size();
  uint64_t at = spot.function.vaddr;
  cs_insn* insn = cs_malloc(dis.handle());
  std::string where_fn = spot.function.name.empty() ? "the code at " + hex(spot.function.vaddr)
                                                    : "'" + spot.function.demangled + "'";
  Result<CodeSpot> out = Error{""};
  while (true) {
    const uint64_t this_insn = at;
    if (!cs_disasm_iter(dis.handle(), &code, &left, &at, insn)) {
      out = Error{"offset " + hex(offset) + " is in " + where_fn + ", whose bytes at " + hex(this_insn) +
                  " do not decode as x86-64 instructions"};
      break;
    }
    if (this_insn == *vaddr) {
      spot.vaddr = *vaddr;
      spot.insn_text = text(*insn);
      out = spot;
      break;
    }
    if (at > *vaddr) {
      out = Error{"offset " + hex(offset) + " is not an instruction boundary: it is byte " +
                  std::to_string(*vaddr - this_insn) + " of '" + text(*insn) + "' at " + hex(this_insn) + " in " +
                  where_fn + " (a breakpoint there would corrupt the instruction)"};
      break;
    }
  }
  cs_free(insn, 1);
  return out;
}

Result<FunctionCode> analyze_function(const ElfFile& file, const Symbol& sym) {
  Disassembler dis;
  if (!dis.handle())
    return Error{"cannot initialise the Capstone x86-64 disassembler"};
  return Analyzer(file, sym, dis.handle()).run();
}

}  // namespace insa::elf
