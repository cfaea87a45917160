// SPDX-License-Identifier: Apache-2.0
#include "python/sites.h"

#include <capstone/capstone.h>
#include <elf.h>

#include <cstring>
#include <optional>

namespace insa::python {
namespace {


/// The computed-goto table: 256 pointers into the evaluator.
Result<uint64_t> find_table(const elf::ElfFile& f, uint64_t eval, uint64_t size) {
  if (auto s = find_any_symbol(f, "opcode_targets.")) return s->first;
  if (auto s = find_any_symbol(f, "opcode_targets")) return s->first;
  // Stripped: 256 pointers into .text, most into the evaluator (the rest
  // in its .cold parts: 175 of 256 in Debian's 3.11.2).
  auto text = f.section(".text");
  if (!text) return Error{"no .text section"};
  for (const char* name : {".data.rel.ro", ".rodata", ".data"}) {
    auto sec = f.section(name);
    if (!sec || sec->size < 256 * 8) continue;
    auto b = f.bytes_at_offset(sec->offset, sec->size);
    if (!b) continue;
    for (uint64_t off = 0; off + 256 * 8 <= b->size(); off += 8) {
      bool all = true;
      int inside = 0;
      for (int i = 0; i < 256 && all; ++i) {
        uint64_t v;
        std::memcpy(&v, b->data() + off + 8 * i, 8);
        all = v >= text->vaddr && v < text->vaddr + text->size;
        inside += v >= eval && v < eval + size;
      }
      if (all && inside >= 128) return sec->vaddr + off;
    }
  }
  return Error{"no opcode_targets table (256 handler addresses into _PyEval_EvalFrameDefault) found"};
}

class Decoder {
 public:
  Decoder() {
    if (cs_open(CS_ARCH_X86, CS_MODE_64, &h_) == CS_ERR_OK) cs_option(h_, CS_OPT_DETAIL, CS_OPT_ON);
  }
  ~Decoder() {
    if (h_) cs_close(&h_);
  }
  /// Decodes one instruction at vaddr.
  bool one(const elf::ElfFile& f, uint64_t vaddr, cs_insn** out) {
    auto b = f.bytes_at_vaddr(vaddr, 16);
    if (!b) b = f.bytes_at_vaddr(vaddr, 1);
    if (!b || !h_) return false;
    return cs_disasm(h_, b->data(), b->size(), vaddr, 1, out) == 1;
  }

 private:
  csh h_ = 0;
};

bool group(const cs_insn* i, uint8_t g) {
  for (int k = 0; k < i->detail->groups_count; ++k)
    if (i->detail->groups[k] == g) return true;
  return false;
}

std::optional<uint64_t> imm_target(const cs_insn* i) {
  const cs_x86& x = i->detail->x86;
  if (x.op_count == 1 && x.operands[0].type == X86_OP_IMM) return static_cast<uint64_t>(x.operands[0].imm);
  return std::nullopt;
}

/// The first conditional jump reached from `start`, following direct jumps (the
/// kernel emulates a jcc: far cheaper than single-stepping the first instruction).
Result<CallSites::Site> first_jcc(const elf::ElfFile& f, uint64_t start) {
  Decoder d;
  uint64_t at = start;
  for (int n = 0; n < 64; ++n) {
    cs_insn* i = nullptr;
    if (!d.one(f, at, &i)) break;
    std::string txt = std::string(i->mnemonic) + " " + i->op_str;
    const bool jump = group(i, CS_GRP_JUMP);
    const bool cond = jump && i->id != X86_INS_JMP;
    auto target = imm_target(i);
    const bool stop = group(i, CS_GRP_CALL) || group(i, CS_GRP_RET) || (jump && !target);
    uint64_t next = i->address + i->size;
    cs_free(i, 1);
    if (cond) {
      auto off = f.vaddr_to_offset(at);
      if (!off) return off.error();
      return CallSites::Site{at, *off, txt, false};
    }
    if (stop) break;
    at = jump ? *target : next;
  }
  auto off = f.vaddr_to_offset(start);
  if (!off) return off.error();
  return CallSites::Site{start, *off, "first instruction", true};
}

/// The first direct call reached from `start` (following direct jumps).
std::optional<uint64_t> first_call(const elf::ElfFile& f, uint64_t start) {
  Decoder d;
  uint64_t at = start;
  for (int n = 0; n < 256; ++n) {
    cs_insn* i = nullptr;
    if (!d.one(f, at, &i)) return std::nullopt;
    auto target = imm_target(i);
    const bool call = group(i, CS_GRP_CALL), jump = group(i, CS_GRP_JUMP), ret = group(i, CS_GRP_RET);
    const bool cond = jump && i->id != X86_INS_JMP;
    uint64_t next = i->address + i->size;
    cs_free(i, 1);
    if (call) return target;
    if (ret || (jump && !target)) return std::nullopt;
    at = jump && !cond ? *target : next;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::pair<uint64_t, uint64_t>> find_any_symbol(const elf::ElfFile& f, const std::string& name) {
  const bool prefix = !name.empty() && name.back() == '.';
  for (const char* tab : {".symtab", ".dynsym"}) {
    auto sec = f.section(tab);
    auto strsec = f.section(std::string(tab) == ".dynsym" ? ".dynstr" : ".strtab");
    if (!sec || !strsec) continue;
    auto syms = f.bytes_at_offset(sec->offset, sec->size);
    auto strs = f.bytes_at_offset(strsec->offset, strsec->size);
    if (!syms || !strs) continue;
    for (size_t i = 0; i + sizeof(Elf64_Sym) <= syms->size(); i += sizeof(Elf64_Sym)) {
      Elf64_Sym s;
      std::memcpy(&s, syms->data() + i, sizeof s);
      if (s.st_shndx == SHN_UNDEF || s.st_name >= strs->size()) continue;
      const char* nm = reinterpret_cast<const char*>(strs->data()) + s.st_name;
      const size_t len = strnlen(nm, strs->size() - s.st_name);
      if (prefix ? len > name.size() && std::strncmp(nm, name.c_str(), name.size()) == 0
                 : len == name.size() && name == nm)
        return std::make_pair(s.st_value, s.st_size);
    }
  }
  return std::nullopt;
}

Result<CallSites> find_call_sites(const elf::ElfFile& f, uint32_t version, uint64_t eval, uint64_t eval_size) {
  const uint32_t minor = (version >> 16) & 0xff;
  std::vector<int> resume_ops;
  int return_value = 0;
  const char* clear_name = "_PyFrame_ClearExceptCode";
  switch (minor) {
    // 3.11: RESUME_QUICK, and RESUME (the first calls of a code object, before quickening;
    // its jump into RESUME_QUICK lands past that handler's first conditional jump).
    case 11: resume_ops = {150, 151}; return_value = 83; clear_name = "_PyFrame_Clear"; break;
    case 12: resume_ops = {151}; return_value = 83; break;                                // RESUME
    case 13: resume_ops = {149, 207}; return_value = 36; break;                           // RESUME, RESUME_CHECK
    default: return Error{"no per-call sites known for this version"};
  }
  if (eval_size == 0) return Error{"_PyEval_EvalFrameDefault has no size in the symbol table"};
  auto table = find_table(f, eval, eval_size);
  if (!table) return table.error();
  CallSites cs;
  cs.table_vaddr = *table;
  auto entry = [&](int op) -> Result<uint64_t> {
    auto b = f.bytes_at_vaddr(*table + 8 * static_cast<uint64_t>(op), 8);
    if (!b) return Error{"cannot read opcode_targets"};
    uint64_t v;
    std::memcpy(&v, b->data(), 8);
    if (v < eval || v >= eval + eval_size) return Error{"opcode_targets entry outside the evaluator"};
    return v;
  };
  for (int op : resume_ops) {
    auto h = entry(op);
    if (!h) return h.error();
    auto site = first_jcc(f, *h);
    if (!site) return site.error();
    cs.resume.push_back(*site);
  }
  uint64_t clear = 0;
  if (auto s = find_any_symbol(f, clear_name)) {
    clear = s->first;
    cs.clear_from_symbol = true;
  } else {
    auto h = entry(return_value);
    if (!h) return h.error();
    auto c = first_call(f, *h);
    if (!c) return Error{std::string("cannot find ") + clear_name + " (no symbol, no call in the RETURN_VALUE handler)"};
    clear = *c;
  }
  auto off = f.vaddr_to_offset(clear);
  if (!off) return off.error();
  cs.clear = CallSites::Site{clear, *off, clear_name, true};
  return cs;
}

}  // namespace insa::python
