// SPDX-License-Identifier: Apache-2.0
/// @file An x86_64 ELF file opened read-only: its function symbols, the
/// translation from virtual addresses to the file offsets that uprobes take,
/// and raw bytes. Pure userspace (libelf only); nothing here needs privileges.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "elf/eh_frame.h"

namespace insa::elf {

/// A function symbol from .symtab or .dynsym (deduplicated by name and
/// address).
struct Symbol {
  std::string name;       ///< as in the symbol table (mangled for C++)
  std::string demangled;  ///< abi::__cxa_demangle of name; == name for C
  std::string
      short_name;      ///< demangled without parameter list ("ns::C::f");
                       ///< empty for compiler clones ("f(int) [clone .cold]")
  uint64_t vaddr = 0;  ///< st_value: link-time virtual address
  uint64_t size = 0;   ///< st_size in bytes (0 when the symbol has no size)
  /// Offset to give to a uprobe: vaddr translated through the PT_LOAD segment
  /// that contains it (vaddr - p_vaddr + p_offset).
  uint64_t file_offset = 0;
  bool global = false;  ///< STB_GLOBAL or STB_WEAK
};

/// A section header, for callers that parse notes or tables themselves.
struct Section {
  std::string name;
  uint32_t type = 0;   ///< SHT_*
  uint64_t flags = 0;  ///< SHF_*
  uint64_t vaddr = 0;  ///< sh_addr (0 when not allocated)
  uint64_t offset = 0;
  uint64_t size = 0;
};

/// An ELF file (executable or shared library) for x86_64, opened with libelf.
/// Move-only; closes the descriptor and releases libelf state on destruction.
class ElfFile {
 public:
  /// Opens and indexes `path`. Fails with a one-line message when the file is
  /// missing or unreadable, is not ELF, or is not 64-bit x86_64.
  ///
  /// A stripped file's symbols are completed from its separate debug file when
  /// one is installed: `<debug_root>/.build-id/xx/yyyy.debug` for its GNU
  /// build-id, else the `.gnu_debuglink` name in the file's directory, its
  /// `.debug/` subdirectory or `<debug_root>/<directory>/` (checked by build-id
  /// or CRC32, as GDB does). Its `.eh_frame` FDEs are read either way.
  static Result<ElfFile> open(const std::string& path,
                              const std::string& debug_root = "/usr/lib/debug");

  ElfFile(ElfFile&&) noexcept;
  ElfFile& operator=(ElfFile&&) noexcept;
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;
  ~ElfFile();

  /// The path this file was opened with.
  const std::string& path() const;
  /// Device and inode of the file this object read (fstat of its descriptor): the
  /// identity the attach step checks, so probes land in the file that was analysed.
  uint64_t device() const;
  uint64_t inode() const;
  /// True for ET_DYN (PIE executables and shared libraries).
  bool is_dyn() const;

  /// Every function symbol (STT_FUNC, defined), sorted by vaddr then name.
  const std::vector<Symbol>& functions() const;

  /// Finds one function by, in this order: exact mangled name; exact demangled
  /// signature ("ns::C::f(int, char const*)"); demangled name without parameter
  /// list ("ns::C::f"). Names that denote one address are one match. Fails when
  /// nothing matches (suggesting up to 3 close names) or when the query is
  /// ambiguous (listing the candidates).
  Result<Symbol> find_function(std::string_view query) const;

  /// Translates a link-time virtual address into a file offset through the
  /// PT_LOAD segment whose file image contains it.
  Result<uint64_t> vaddr_to_offset(uint64_t vaddr) const;

  /// Translates a file offset into the link-time virtual address a PT_LOAD
  /// segment maps it to.
  Result<uint64_t> offset_to_vaddr(uint64_t offset) const;

  /// `size` bytes of the file image at link-time address `vaddr`; fails when
  /// the range is not entirely backed by one PT_LOAD segment's file contents.
  Result<std::span<const uint8_t>> bytes_at_vaddr(uint64_t vaddr,
                                                  uint64_t size) const;

  /// `size` bytes at file offset `offset`; fails when out of the file.
  Result<std::span<const uint8_t>> bytes_at_offset(uint64_t offset,
                                                   uint64_t size) const;

  /// The first section called `name`, if any.
  std::optional<Section> section(std::string_view name) const;

  /// The allocated section whose address range contains `vaddr`, if any.
  std::optional<Section> section_at(uint64_t vaddr) const;

  /// The `.eh_frame` FDEs, sorted by address (empty when the file has none or
  /// they cannot be parsed; see eh_frame_error()).
  const std::vector<Fde>& fdes() const;
  /// Why `.eh_frame` could not be read ("" when it was, or is absent).
  const std::string& eh_frame_error() const;

  /// The separate debug file whose symbols were merged in ("" when none).
  const std::string& debug_file() const;

  /// Why C++ exceptions can unwind through this file's code: it needs or
  /// contains the C++ runtime ("needs libstdc++.so.6", "contains
  /// __gxx_personality_v0"). Empty for C code.
  const std::string& cxx_runtime() const;

 private:
  struct Impl;
  explicit ElfFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Demangles an Itanium C++ name; returns `name` unchanged when it is not one.
std::string demangle(const std::string& name);

/// Strips the parameter list (and trailing cv/ref qualifiers) from a demangled
/// name: "ns::C::f(int) const" -> "ns::C::f". Returns "" for compiler clones
/// ("[clone .cold]"), thunks, transaction clones and names it cannot split
/// safely.
std::string strip_parameters(std::string_view demangled);

/// Resolves a shared library the way the dynamic linker would find it: accepts
/// a path (returned if it exists), a file name or soname ("libsqlite3.so.0"),
/// or a bare name ("sqlite3" -> libsqlite3.so.N). Looks in /etc/ld.so.cache
/// first, then in /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64,
/// /usr/lib64, /lib, /usr/lib, /usr/local/lib.
Result<std::string> resolve_library(std::string name);

}  // namespace insa::elf
