// SPDX-License-Identifier: Apache-2.0
#include "elf/usdt.h"

#include <elf.h>

#include <cstring>

namespace insa::elf {

namespace {

constexpr uint32_t kStapsdtNoteType = 3;  // NT_STAPSDT
constexpr char kStapsdtOwner[] = "stapsdt";

size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

}  // namespace

Result<std::vector<UsdtProbe>> read_usdt_probes(const ElfFile& file) {
  std::vector<UsdtProbe> probes;
  auto notes = file.section(".note.stapsdt");
  if (!notes || notes->type != SHT_NOTE) return probes;
  auto bytes = file.bytes_at_offset(notes->offset, notes->size);
  if (!bytes) return bytes.error();
  // The note records the address .stapsdt.base had at link time; if the file
  // was prelinked since, every pc moved by the same amount as the section.
  auto base_section = file.section(".stapsdt.base");

  auto bad = [&](size_t at, const char* what) {
    return Error{"malformed USDT note at offset " +
                 std::to_string(notes->offset + at) + " of '" + file.path() +
                 "': " + what};
  };
  const uint8_t* p = bytes->data();
  size_t n = bytes->size();
  for (size_t at = 0; at + 12 <= n;) {
    uint32_t namesz, descsz, type;
    std::memcpy(&namesz, p + at, 4);
    std::memcpy(&descsz, p + at + 4, 4);
    std::memcpy(&type, p + at + 8, 4);
    size_t name_at = at + 12;
    size_t desc_at = name_at + align4(namesz);
    size_t next = desc_at + align4(descsz);
    if (desc_at > n || next > n || desc_at + descsz > n)
      return bad(at, "truncated");
    bool ours = type == kStapsdtNoteType && namesz == sizeof kStapsdtOwner &&
                std::memcmp(p + name_at, kStapsdtOwner, namesz) == 0;
    if (ours) {
      if (descsz < 3 * 8 + 3) return bad(at, "descriptor too short");
      const uint8_t* d = p + desc_at;
      uint64_t pc, base, sema;
      std::memcpy(&pc, d, 8);
      std::memcpy(&base, d + 8, 8);
      std::memcpy(&sema, d + 16, 8);
      const char* s = reinterpret_cast<const char*>(d + 24);
      size_t left = descsz - 24;
      std::string fields[3];
      for (auto& f : fields) {
        size_t len = strnlen(s, left);
        if (len == left) return bad(at, "unterminated string");
        f.assign(s, len);
        s += len + 1;
        left -= len + 1;
      }
      UsdtProbe probe;
      probe.provider = fields[0];
      probe.name = fields[1];
      probe.args = fields[2];
      probe.pc_vaddr = pc;
      if (base_section && base != 0)
        probe.pc_vaddr += base_section->vaddr - base;
      auto off = file.vaddr_to_offset(probe.pc_vaddr);
      if (!off) return bad(at, "probe address outside the loadable segments");
      probe.file_offset = *off;
      probe.semaphore_vaddr = sema;
      if (sema != 0) {
        auto soff = file.vaddr_to_offset(sema);
        if (!soff)
          return bad(at, "semaphore address outside the loadable segments");
        probe.semaphore_offset = *soff;
      }
      probes.push_back(std::move(probe));
    }
    at = next;
  }
  return probes;
}

}  // namespace insa::elf
