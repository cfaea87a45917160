// SPDX-License-Identifier: Apache-2.0
#include "elf/elf_file.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>

namespace insa::elf {

namespace {

struct Segment {
  uint64_t vaddr, offset, filesz;
};

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.substr(s.size() - suffix.size()) == suffix;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += ", ";
    out += "'" + s + "'";
  }
  return out;
}

}  // namespace

struct ElfFile::Impl {
  std::string path;
  int fd = -1;
  Elf* elf = nullptr;
  const uint8_t* raw = nullptr;  // whole file image (read by libelf into our memory)
  size_t raw_size = 0;
  bool dyn = false;
  std::vector<Segment> segments;
  std::vector<Section> sections;
  std::vector<Symbol> functions;
  std::vector<Fde> fdes;
  std::string eh_frame_error;
  std::string debug_file;
  std::string cxx_runtime;
  bool has_symtab = false;  // a .symtab with function symbols (not stripped)
  uint64_t dev = 0, ino = 0;

  /// Adds the function symbols of `from` (this file or its debug file).
  void read_symbols(Elf* from,
                    std::map<std::pair<std::string, uint64_t>, size_t>& seen);
  /// Sets cxx_runtime from DT_NEEDED when a symbol did not already.
  void read_cxx_runtime();
  std::string build_id() const;
  std::string find_debug_file(const std::string& debug_root) const;

  ~Impl() {
    if (elf) elf_end(elf);
    if (fd >= 0) ::close(fd);
  }

  Result<uint64_t> to_offset(uint64_t vaddr) const {
    for (const auto& s : segments) {
      if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)
        return vaddr - s.vaddr + s.offset;
    }
    return Error{"address " + hex(vaddr) +
                 " is not in any loadable segment of '" + path + "'"};
  }
};

void ElfFile::Impl::read_symbols(
    Elf* from, std::map<std::pair<std::string, uint64_t>, size_t>& seen) {
  for (Elf_Scn* scn = elf_nextscn(from, nullptr); scn;
       scn = elf_nextscn(from, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || sh.sh_entsize == 0) continue;
    size_t count = sh.sh_size / sh.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
      const char* n = elf_strptr(from, sh.sh_link, sym.st_name);
      if (!n || !*n) continue;
      if (cxx_runtime.empty()) {
        for (const char* marker :
             {"__gxx_personality_v0", "__cxa_throw", "__cxa_begin_catch"}) {
          if (std::strcmp(n, marker) == 0) {
            cxx_runtime = std::string(sym.st_shndx == SHN_UNDEF ? "imports " : "contains ") + marker;
          }
        }
      }
      if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF ||
          sym.st_value == 0) {
        continue;
      }
      if (sh.sh_type == SHT_SYMTAB) has_symtab = true;
      bool global = GELF_ST_BIND(sym.st_info) != STB_LOCAL;
      auto key =
          std::make_pair(std::string(n), static_cast<uint64_t>(sym.st_value));
      if (auto it = seen.find(key); it != seen.end()) {
        functions[it->second].global |= global;
        continue;
      }
      auto off = to_offset(sym.st_value);
      if (!off) continue;  // not file-backed: nothing a uprobe could hit
      Symbol s;
      s.name = n;
      s.demangled = demangle(s.name);
      s.short_name = strip_parameters(s.demangled);
      s.vaddr = sym.st_value;
      s.size = sym.st_size;
      s.file_offset = *off;
      s.global = global;
      seen.emplace(std::move(key), functions.size());
      functions.push_back(std::move(s));
    }
  }
}

void ElfFile::Impl::read_cxx_runtime() {
  // DT_NEEDED first: "needs libstdc++.so.6" says more than an imported symbol.
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn;
       scn = elf_nextscn(elf, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || sh.sh_entsize == 0) continue;
    for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; ++i) {
      GElf_Dyn dyn;
      if (!gelf_getdyn(data, static_cast<int>(i), &dyn)) continue;
      if (dyn.d_tag != DT_NEEDED) continue;
      const char* n = elf_strptr(elf, sh.sh_link, dyn.d_un.d_val);
      if (n && (std::strncmp(n, "libstdc++.so", 12) == 0 ||
                std::strncmp(n, "libc++.so", 9) == 0)) {
        cxx_runtime = std::string("needs ") + n;
        return;
      }
    }
  }
}

namespace {

/// CRC-32 (IEEE 802.3, as zlib's crc32) of a file, for .gnu_debuglink.
std::optional<uint32_t> file_crc32(const std::string& path) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  uint32_t crc = 0xffffffffu;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i)
      crc = table[(crc ^ static_cast<uint8_t>(buf[i])) & 0xff] ^ (crc >> 8);
  }
  return crc ^ 0xffffffffu;
}

}  // namespace

std::string ElfFile::Impl::build_id() const {
  for (const auto& sec : sections) {
    if (sec.type != SHT_NOTE || sec.offset > raw_size ||
        sec.size > raw_size - sec.offset)
      continue;
    const uint8_t* p = raw + sec.offset;
    size_t left = sec.size;
    while (left >= 12) {
      uint32_t namesz, descsz, type;
      std::memcpy(&namesz, p, 4);
      std::memcpy(&descsz, p + 4, 4);
      std::memcpy(&type, p + 8, 4);
      size_t name_pad = (namesz + 3) & ~size_t{3}, desc_pad = (descsz + 3) & ~size_t{3};
      if (12 + name_pad + desc_pad > left) break;
      if (type == 3 /* NT_GNU_BUILD_ID */ && namesz == 4 &&
          std::memcmp(p + 12, "GNU", 4) == 0) {
        std::string id;
        char b[3];
        for (uint32_t i = 0; i < descsz; ++i) {
          std::snprintf(b, sizeof b, "%02x", p[12 + name_pad + i]);
          id += b;
        }
        return id;
      }
      p += 12 + name_pad + desc_pad;
      left -= 12 + name_pad + desc_pad;
    }
  }
  return "";
}

std::string ElfFile::Impl::find_debug_file(const std::string& debug_root) const {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string id = build_id();
  if (id.size() > 2) {
    std::string p = debug_root + "/.build-id/" + id.substr(0, 2) + "/" +
                    id.substr(2) + ".debug";
    if (fs::is_regular_file(p, ec)) return p;
  }
  auto link = std::find_if(sections.begin(), sections.end(), [](const Section& x) {
    return x.name == ".gnu_debuglink";
  });
  if (link == sections.end() || link->offset > raw_size ||
      link->size > raw_size - link->offset || link->size < 8)
    return "";
  const char* name = reinterpret_cast<const char*>(raw + link->offset);
  size_t len = strnlen(name, link->size);
  if (len == 0 || len + 1 > link->size - 4) return "";
  uint32_t want_crc = 0;
  std::memcpy(&want_crc, raw + link->offset + ((len + 4) & ~size_t{3}), 4);
  const std::string base(name, len);
  if (base.find('/') != std::string::npos) return "";
  const fs::path dir = fs::absolute(path, ec).parent_path();
  for (const fs::path& p :
       {dir / base, dir / ".debug" / base,
        fs::path(debug_root + dir.string()) / base}) {
    if (p == fs::absolute(path, ec) || !fs::is_regular_file(p, ec)) continue;
    if (file_crc32(p.string()) == want_crc) return p.string();
  }
  return "";
}

ElfFile::ElfFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ElfFile::ElfFile(ElfFile&&) noexcept = default;
ElfFile& ElfFile::operator=(ElfFile&&) noexcept = default;
ElfFile::~ElfFile() = default;

const std::string& ElfFile::path() const { return impl_->path; }
uint64_t ElfFile::device() const { return impl_->dev; }
uint64_t ElfFile::inode() const { return impl_->ino; }
bool ElfFile::is_dyn() const { return impl_->dyn; }
const std::vector<Symbol>& ElfFile::functions() const {
  return impl_->functions;
}

Result<uint64_t> ElfFile::vaddr_to_offset(uint64_t vaddr) const {
  return impl_->to_offset(vaddr);
}

Result<uint64_t> ElfFile::offset_to_vaddr(uint64_t offset) const {
  for (const auto& s : impl_->segments) {
    if (offset >= s.offset && offset - s.offset < s.filesz)
      return s.vaddr + (offset - s.offset);
  }
  return Error{"offset " + hex(offset) + " is not in any loadable segment of '" +
               impl_->path + "' (file size " + std::to_string(impl_->raw_size) +
               ")"};
}

Result<std::span<const uint8_t>> ElfFile::bytes_at_offset(uint64_t offset,
                                                          uint64_t size) const {
  if (offset > impl_->raw_size || size > impl_->raw_size - offset) {
    return Error{"range " + hex(offset) + "+" + std::to_string(size) +
                 " is outside '" + impl_->path + "'"};
  }
  return std::span<const uint8_t>(impl_->raw + offset, size);
}

Result<std::span<const uint8_t>> ElfFile::bytes_at_vaddr(uint64_t vaddr,
                                                         uint64_t size) const {
  for (const auto& s : impl_->segments) {
    if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) {
      if (size > s.vaddr + s.filesz - vaddr) break;
      return bytes_at_offset(vaddr - s.vaddr + s.offset, size);
    }
  }
  return Error{"address range " + hex(vaddr) + "+" + std::to_string(size) +
               " is not backed by the file contents of '" + impl_->path + "'"};
}

std::optional<Section> ElfFile::section(std::string_view name) const {
  for (const auto& s : impl_->sections) {
    if (s.name == name) return s;
  }
  return std::nullopt;
}

std::optional<Section> ElfFile::section_at(uint64_t vaddr) const {
  for (const auto& s : impl_->sections) {
    if ((s.flags & SHF_ALLOC) && s.vaddr != 0 && vaddr >= s.vaddr &&
        vaddr - s.vaddr < s.size)
      return s;
  }
  return std::nullopt;
}

const std::vector<Fde>& ElfFile::fdes() const { return impl_->fdes; }
const std::string& ElfFile::eh_frame_error() const {
  return impl_->eh_frame_error;
}
const std::string& ElfFile::debug_file() const { return impl_->debug_file; }
const std::string& ElfFile::cxx_runtime() const { return impl_->cxx_runtime; }

std::string demangle(const std::string& name) {
  if (name.rfind("_Z", 0) != 0) return name;
  int status = 0;
  char* out = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) return name;
  std::string result(out);
  std::free(out);
  return result;
}

std::string strip_parameters(std::string_view d) {
  if (d.find(" [clone ") != std::string_view::npos) return "";
  // Thunks and transactional-memory clones are not the function a user means.
  for (std::string_view p :
       {"transaction clone for ", "non-virtual thunk to ", "virtual thunk to ",
        "covariant return thunk to "}) {
    if (d.rfind(p, 0) == 0) return "";
  }
  std::string_view s = d;
  // Trailing qualifiers of member functions: "f() const &".
  for (bool again = true; again;) {
    again = false;
    for (std::string_view q :
         {" const", " volatile", " &&", " &", " noexcept"}) {
      if (ends_with(s, q)) {
        s.remove_suffix(q.size());
        again = true;
      }
    }
  }
  if (s.empty() || s.back() != ')')
    return std::string(s);  // C name or not a function
  int depth = 0;
  size_t open = std::string_view::npos;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == ')') ++depth;
    if (s[i] == '(' && --depth == 0) {
      open = i;
      break;
    }
  }
  if (open == std::string_view::npos || open == 0) return "";
  std::string_view name = s.substr(0, open);
  if (name.back() == ')' && !ends_with(name, "operator()"))
    return "";  // function returning a function pointer: too odd
  // Template functions carry their return type: "int ns::f<int>(int)". Drop
  // what precedes the last space at nesting depth 0, but never split "operator
  // new".
  size_t last_space = std::string_view::npos;
  depth = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name.compare(i, 8, "operator") == 0 &&
        (i == 0 || name[i - 1] == ':' || name[i - 1] == ' ')) {
      break;
    }
    char c = name[i];
    if (c == '<' || c == '(' || c == '[') ++depth;
    if (c == '>' || c == ')' || c == ']') --depth;
    if (c == ' ' && depth == 0) last_space = i;
  }
  if (last_space != std::string_view::npos) name = name.substr(last_space + 1);
  return std::string(name);
}

Result<ElfFile> ElfFile::open(const std::string& path,
                              const std::string& debug_root) {
  static const bool elf_ready = elf_version(EV_CURRENT) != EV_NONE;
  if (!elf_ready) return Error{"libelf is too old (elf_version failed)"};

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer forever; reads of
  // a regular file ignore the flag.
  impl->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (impl->fd < 0) {
    int e = errno;
    if (e == ENOENT) {
      return Error{"binary '" + path + "' not found: " + std::strerror(e) +
                       " (check the path in probes.yaml)",
                   e};
    }
    return Error::from_errno("cannot open binary '" + path + "'", e);
  }
  struct stat st {};
  if (fstat(impl->fd, &st) != 0)
    return Error::from_errno("cannot stat '" + path + "'");
  if (!S_ISREG(st.st_mode))
    return Error{"binary '" + path + "' is " +
                     (S_ISDIR(st.st_mode)    ? "a directory"
                      : S_ISFIFO(st.st_mode) ? "a FIFO"
                      : S_ISSOCK(st.st_mode) ? "a socket"
                                             : "a device") +
                     ", not a regular file: give the path of the executable or shared library",
                 EINVAL};
  impl->dev = st.st_dev;
  impl->ino = st.st_ino;

  // ELF_C_READ (pread into our memory), never ELF_C_READ_MMAP: the kernel installs uprobe
  // breakpoints in every private mapping of a probed file that may execute, ours included,
  // so a mapped copy would show int3 where probes are already attached.
  impl->elf = elf_begin(impl->fd, ELF_C_READ, nullptr);
  if (impl->elf == nullptr || elf_kind(impl->elf) != ELF_K_ELF) {
    return Error{"'" + path + "' is not an ELF file", ENOEXEC};
  }
  GElf_Ehdr ehdr;
  if (gelf_getehdr(impl->elf, &ehdr) == nullptr) {
    return Error{"'" + path + "' has a broken ELF header: " + elf_errmsg(-1),
                 ENOEXEC};
  }
  if (gelf_getclass(impl->elf) != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
    return Error{"'" + path +
                     "' is an ELF file for another machine (e_machine " +
                     std::to_string(ehdr.e_machine) + "), not x86_64",
                 ENOEXEC};
  }
  impl->dyn = ehdr.e_type == ET_DYN;
  impl->raw =
      reinterpret_cast<const uint8_t*>(elf_rawfile(impl->elf, &impl->raw_size));
  if (impl->raw == nullptr)
    return Error{"cannot map '" + path + "': " + elf_errmsg(-1)};

  size_t nphdr = 0;
  if (elf_getphdrnum(impl->elf, &nphdr) != 0) {
    return Error{"'" + path +
                 "' has no readable program headers: " + elf_errmsg(-1)};
  }
  for (size_t i = 0; i < nphdr; ++i) {
    GElf_Phdr ph;
    if (gelf_getphdr(impl->elf, static_cast<int>(i), &ph) &&
        ph.p_type == PT_LOAD) {
      impl->segments.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz});
    }
  }

  size_t shstrndx = 0;
  if (elf_getshdrstrndx(impl->elf, &shstrndx) != 0) {
    return Error{"'" + path + "' has no section name table: " + elf_errmsg(-1)};
  }
  for (Elf_Scn* scn = elf_nextscn(impl->elf, nullptr); scn;
       scn = elf_nextscn(impl->elf, scn)) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh)) continue;
    const char* sname = elf_strptr(impl->elf, shstrndx, sh.sh_name);
    impl->sections.push_back({sname ? sname : "", sh.sh_type, sh.sh_flags,
                              sh.sh_addr, sh.sh_offset, sh.sh_size});
  }
  // (name, vaddr) -> index in functions: .symtab and .dynsym repeat exported
  // symbols, and a debug file repeats .symtab.
  std::map<std::pair<std::string, uint64_t>, size_t> seen;
  impl->read_symbols(impl->elf, seen);
  if (!impl->has_symtab) {
    std::string dbg = impl->find_debug_file(debug_root);
    if (!dbg.empty()) {
      int dfd = ::open(dbg.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      Elf* d = dfd >= 0 ? elf_begin(dfd, ELF_C_READ, nullptr) : nullptr;
      if (d && elf_kind(d) == ELF_K_ELF) {
        impl->read_symbols(d, seen);
        impl->debug_file = dbg;
      }
      if (d) elf_end(d);
      if (dfd >= 0) ::close(dfd);
    }
  }
  if (auto eh = std::find_if(impl->sections.begin(), impl->sections.end(),
                             [](const Section& x) {
                               return x.name == ".eh_frame" &&
                                      x.type == SHT_PROGBITS;
                             });
      eh != impl->sections.end()) {
    if (eh->offset <= impl->raw_size && eh->size <= impl->raw_size - eh->offset) {
      auto fdes = parse_eh_frame(
          std::span<const uint8_t>(impl->raw + eh->offset, eh->size), eh->vaddr);
      if (fdes) impl->fdes = std::move(*fdes);
      else impl->eh_frame_error = fdes.error().message;
    }
  }
  if (impl->cxx_runtime.empty() ||
      impl->cxx_runtime.rfind("imports ", 0) == 0)
    impl->read_cxx_runtime();
  std::sort(impl->functions.begin(), impl->functions.end(),
            [](const Symbol& a, const Symbol& b) {
              return std::tie(a.vaddr, a.name) < std::tie(b.vaddr, b.name);
            });
  return ElfFile(std::move(impl));
}

Result<Symbol> ElfFile::find_function(std::string_view query) const {
  const auto& fns = impl_->functions;
  const std::string& path = impl_->path;
  // One stage of matching: all symbols for which `match` holds. Symbols at one
  // address (aliases, C1/C2 constructors) are one function.
  auto stage = [&](auto match) {
    std::vector<const Symbol*> hits;
    for (const auto& s : fns) {
      if (match(s)) hits.push_back(&s);
    }
    std::stable_sort(hits.begin(), hits.end(),
                     [](const Symbol* a, const Symbol* b) {
                       return std::tie(a->vaddr, b->global, a->name) <
                              std::tie(b->vaddr, a->global, b->name);
                     });
    std::vector<const Symbol*> distinct;
    for (const Symbol* s : hits) {
      if (distinct.empty() || distinct.back()->vaddr != s->vaddr)
        distinct.push_back(s);
    }
    return distinct;
  };
  auto ambiguous = [&](const std::vector<const Symbol*>& hits,
                       bool by_mangled) -> Error {
    std::vector<std::string> names;
    for (const Symbol* s : hits) {
      names.push_back(by_mangled ? s->name + " at " + hex(s->vaddr)
                                 : s->demangled);
    }
    std::sort(names.begin(), names.end());
    return Error{"function '" + std::string(query) + "' is ambiguous in '" +
                     path + "': " + quoted_list(names) +
                     (by_mangled ? "; probe one by raw offset"
                                 : "; use the full signature"),
                 0};
  };

  for (int form = 0; form < 3; ++form) {
    auto hits = stage([&](const Symbol& s) {
      switch (form) {
        case 0:
          return s.name == query;
        case 1:
          return s.demangled == query;
        default:
          return !s.short_name.empty() && s.short_name == query;
      }
    });
    if (hits.size() == 1) return *hits.front();
    if (hits.size() > 1) return ambiguous(hits, form == 0);
  }

  // Not found: suggest up to 3 names that contain the query (case-insensitive).
  std::string q = lower(query);
  std::string q_short = lower(strip_parameters(query));
  std::set<std::string> found;
  for (const auto& s : fns) {
    if (s.short_name.empty()) continue;  // clones are noise
    std::string d = lower(s.demangled);
    if (d.find(q) != std::string::npos ||
        lower(s.name).find(q) != std::string::npos ||
        (!q_short.empty() &&
         lower(s.short_name).find(q_short) != std::string::npos)) {
      found.insert(s.demangled);
    }
  }
  std::vector<std::string> suggestions(found.begin(), found.end());
  std::stable_sort(suggestions.begin(), suggestions.end(),
                   [](const std::string& a, const std::string& b) {
                     return a.size() < b.size();
                   });
  if (suggestions.size() > 3) suggestions.resize(3);
  std::string msg =
      "function '" + std::string(query) + "' not found in '" + path + "'";
  if (!suggestions.empty())
    msg += "; did you mean " + quoted_list(suggestions) + "?";
  msg += " (run 'insa-exporter list-probes " + path +
         "' to see what can be probed)";
  return Error{msg, 0};
}

namespace {

/// x86_64 libc6 entries of /etc/ld.so.cache (glibc's "glibc-ld.so.cache1.1"
/// format, see glibc elf/cache.c): soname -> path, in cache order.
std::vector<std::pair<std::string, std::string>> read_ld_so_cache(
    const char* file) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in(file, std::ios::binary);
  if (!in) return out;
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  static constexpr std::string_view kMagic = "glibc-ld.so.cache1.1";
  size_t base = data.find(kMagic);
  if (base == std::string::npos) return out;
  constexpr size_t kHeader = 48, kEntry = 24;
  if (data.size() < base + kHeader) return out;
  uint32_t nlibs = 0;
  std::memcpy(&nlibs, data.data() + base + 20, 4);
  auto str = [&](uint32_t off) -> std::string {
    size_t at = base + off;
    if (at >= data.size()) return "";
    return std::string(data.c_str() + at,
                       strnlen(data.c_str() + at, data.size() - at));
  };
  for (uint32_t i = 0; i < nlibs; ++i) {
    size_t at = base + kHeader + size_t{i} * kEntry;
    if (at + kEntry > data.size()) break;
    int32_t flags = 0;
    uint32_t key = 0, value = 0;
    std::memcpy(&flags, data.data() + at, 4);
    std::memcpy(&key, data.data() + at + 4, 4);
    std::memcpy(&value, data.data() + at + 8, 4);
    constexpr int32_t kX8664Libc6 =
        0x0303;  // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
    if ((flags & 0xffff) != kX8664Libc6) continue;
    out.emplace_back(str(key), str(value));
  }
  return out;
}

/// How well a file name answers a library request; 0 = not at all. A requested
/// "sqlite3" prefers libsqlite3.so.0 (the runtime soname) over libsqlite3.so.
int library_rank(const std::string& file, const std::string& exact,
                 const std::string& stem) {
  if (!exact.empty()) return file == exact ? 3 : 0;
  if (file.rfind(stem + ".", 0) == 0 && file.size() > stem.size() + 1) {
    // lib<x>.so.N: prefer the shortest version suffix (the soname).
    return 2;
  }
  return file == stem ? 1 : 0;
}

}  // namespace

Result<std::string> resolve_library(std::string name) {
  namespace fs = std::filesystem;
  if (name.empty()) return Error{"empty library name"};
  if (name.find('/') != std::string::npos) {
    std::error_code ec;
    if (fs::exists(name, ec)) return name;
    return Error{"library '" + name + "' not found: No such file or directory",
                 ENOENT};
  }
  // "libfoo.so*" is a file name or soname; anything else is a bare name.
  std::string exact, stem;
  if (name.rfind("lib", 0) == 0 && name.find(".so") != std::string::npos) {
    exact = name;
  } else {
    stem = (name.rfind("lib", 0) == 0 ? name : "lib" + name) + ".so";
  }
  std::string best;
  int best_rank = 0;
  auto consider = [&](const std::string& file, const std::string& full) {
    int r = library_rank(file, exact, stem);
    if (r == 0) return;
    std::error_code ec;
    if (!fs::exists(full, ec)) return;
    if (r > best_rank ||
        (r == best_rank &&
         file.size() < fs::path(best).filename().string().size())) {
      best = full;
      best_rank = r;
    }
  };
  for (const auto& [soname, full] : read_ld_so_cache("/etc/ld.so.cache"))
    consider(soname, full);
  if (best.empty()) {
    for (const char* dir :
         {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64",
          "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib"}) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        consider(entry.path().filename().string(), entry.path().string());
      }
    }
  }
  if (best.empty()) {
    return Error{"library '" + name +
                     "' not found in /etc/ld.so.cache or the standard library "
                     "directories "
                     "(give its full path)",
                 ENOENT};
  }
  return best;
}

}  // namespace insa::elf
