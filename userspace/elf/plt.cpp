// SPDX-License-Identifier: Apache-2.0
#include "elf/plt.h"

#include <elf.h>

#include <cstring>
#include <string>
#include <vector>

namespace insa::elf {
namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

Result<uint64_t> plt_stub_offset(const ElfFile& file, std::string_view symbol) {
  const std::string what = "no PLT stub of " + std::string(symbol) + " in " + file.path();
  auto dynsym = file.section(".dynsym");
  auto dynstr = file.section(".dynstr");
  if (!dynsym || !dynstr) return Error{what + " (no dynamic symbols)"};
  auto syms = file.bytes_at_offset(dynsym->offset, dynsym->size);
  auto strs = file.bytes_at_offset(dynstr->offset, dynstr->size);
  if (!syms || !strs) return Error{what + " (unreadable dynamic symbols)"};
  // The GOT slots the dynamic loader fills with `symbol`'s address.
  std::vector<uint64_t> slots;
  for (const char* rel : {".rela.plt", ".rela.dyn"}) {
    auto sec = file.section(rel);
    if (!sec) continue;
    auto bytes = file.bytes_at_offset(sec->offset, sec->size);
    if (!bytes) continue;
    for (size_t i = 0; i + sizeof(Elf64_Rela) <= bytes->size(); i += sizeof(Elf64_Rela)) {
      const auto r = load<Elf64_Rela>(bytes->data() + i);
      const uint32_t type = ELF64_R_TYPE(r.r_info), idx = ELF64_R_SYM(r.r_info);
      if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) || idx == 0) continue;
      if ((idx + 1) * sizeof(Elf64_Sym) > syms->size()) continue;
      const auto s = load<Elf64_Sym>(syms->data() + idx * sizeof(Elf64_Sym));
      if (s.st_name >= strs->size()) continue;
      const char* name = reinterpret_cast<const char*>(strs->data()) + s.st_name;
      if (std::string_view(name, strnlen(name, strs->size() - s.st_name)) == symbol) slots.push_back(r.r_offset);
    }
  }
  if (slots.empty()) return Error{what + " (not imported)"};
  // The stub: `[endbr64] [bnd] jmp *disp32(%rip)` whose target is one of the slots.
  for (const char* name : {".plt.sec", ".plt", ".plt.got"}) {
    auto sec = file.section(name);
    if (!sec) continue;
    auto bytes = file.bytes_at_offset(sec->offset, sec->size);
    if (!bytes) continue;
    const uint8_t* b = bytes->data();
    for (size_t i = 0; i + 6 <= bytes->size(); ++i) {
      if (b[i] != 0xff || b[i + 1] != 0x25) continue;
      const uint64_t next = sec->vaddr + i + 6;
      const uint64_t target = next + static_cast<int64_t>(load<int32_t>(b + i + 2));
      for (uint64_t slot : slots)
        if (target == slot) return sec->offset + i - (i > 0 && b[i - 1] == 0xf2 ? 1 : 0);
    }
  }
  return Error{what + " (imported without a PLT stub: -fno-plt?)"};
}

}  // namespace insa::elf
