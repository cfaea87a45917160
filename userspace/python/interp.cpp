// SPDX-License-Identifier: Apache-2.0
#include "python/interp.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "common/name_hash.h"
#include "elf/elf_file.h"

namespace insa::python {
namespace {

/// Offsets of one minor version, taken from that version's headers
/// (Include/internal/pycore_frame.h, cpython/code.h, cpython/pystate.h,
/// cpython/genobject.h, cpython/unicodeobject.h) for x86_64.
struct VersionTable {
  uint32_t minor;
  insa_py_layout layout;
  uint16_t interp_head;   ///< _PyRuntimeState.interpreters.head
  uint16_t threads_head;  ///< PyInterpreterState.threads.head
  uint16_t tstate_frame;  ///< tstate -> cframe (3.11/3.12) or current_frame (3.13)
  int16_t cframe_frame;   ///< cframe -> current_frame, -1 when tstate holds it
  uint16_t tstate_tid;    ///< PyThreadState.native_thread_id
  uint16_t gilstate;      ///< _PyRuntimeState.gilstate.tstate_current (3.11), 0 after
  uint8_t op_resume[2];   ///< RESUME and its specialized form (opcode.h)
  uint8_t op_yield;       ///< YIELD_VALUE
};

insa_py_layout make(uint16_t code, uint16_t instr, uint16_t owner, uint16_t exc, bool exc_type, bool next,
                    uint8_t retgen, bool tagged, uint16_t iframe, uint16_t ascii, uint16_t utf8) {
  insa_py_layout l{};
  l.frame_code = code;
  l.frame_instr = instr;
  l.frame_owner = owner;
  l.frame_localsplus = 72;
  l.code_qualname = 128;
  l.code_filename = 112;
  l.tstate_exc = exc;
  l.exc_is_type = exc_type;
  l.instr_is_next = next;
  l.op_return_generator = retgen;
  l.long_tagged = tagged;
  l.gen_iframe = iframe;
  l.gen_state = iframe - 5;  // int8_t gi_frame_state, just before the frame in all three
  l.str_ascii = ascii;
  l.str_utf8 = utf8;
  l.str_utf8_len = utf8 - 8;
  return l;
}

const VersionTable kTables[] = {
    {11, make(32, 56, 69, 96, true, false, 75, false, 80, 48, 56), 40, 16, 56, 8, 160, 576, {150, 151}, 86},
    {12, make(0, 56, 70, 96, false, false, 75, true, 72, 40, 48), 40, 72, 56, 0, 144, 0, {151, 151}, 150},
    {13, make(0, 56, 70, 112, false, true, 35, true, 72, 40, 48), 632, 7344, 72, -1, 160, 0, {149, 207}, 118},
};

const VersionTable* table_for(uint32_t version) {
  uint32_t minor = (version >> 16) & 0xff;
  if ((version >> 24) != 3) return nullptr;
  for (const auto& t : kTables)
    if (t.minor == minor) return &t;
  return nullptr;
}

struct Sym {
  uint64_t vaddr = 0, size = 0;
};

std::optional<Sym> find_symbol(const elf::ElfFile& f, const std::string& name) {
  auto s = find_any_symbol(f, name);
  if (!s) return std::nullopt;
  return Sym{s->first, s->second};
}

template <typename T>
std::optional<T> read_at(const elf::ElfFile& f, uint64_t vaddr) {
  auto b = f.bytes_at_vaddr(vaddr, sizeof(T));
  if (!b) return std::nullopt;
  T v;
  std::memcpy(&v, b->data(), sizeof v);
  return v;
}

/// _Py_DebugOffsets (3.13+) at the start of _PyRuntime, as initialized in the file: the
/// offsets it publishes replace the table's (a later 3.13.x may move fields); a
/// free-threaded build is refused.
Result<void> apply_debug_offsets(const elf::ElfFile& f, uint64_t runtime, VersionTable& t, const std::string& path) {
  auto b = f.bytes_at_vaddr(runtime, 8 * 64);
  if (!b) return Error{path + ": cannot read _Py_DebugOffsets from _PyRuntime"};
  auto u64 = [&](size_t i) {
    uint64_t v;
    std::memcpy(&v, b->data() + 8 * i, 8);
    return v;
  };
  if (std::memcmp(b->data(), "xdebugpy", 8) != 0) return Error{path + ": _PyRuntime does not start with _Py_DebugOffsets"};
  if (u64(2) != 0)
    return Error{path + ": a free-threaded (no-GIL) CPython build is not supported: its frames and reference counts "
                        "differ; run the workers on the default build"};
  // Field order of _Py_DebugOffsets in 3.13 (Include/internal/pycore_runtime.h): cookie, version,
  // free_threaded, runtime_state{size, finalizing, interpreters_head}, interpreter_state{size, id, next,
  // threads_head, 9 more}, thread_state{size, prev, next, interp, current_frame, thread_id,
  // native_thread_id, datastack_chunk, status}, interpreter_frame{size, previous, executable,
  // instr_ptr, localsplus, owner}, code_object{size, filename, name, qualname, ...}.
  struct Field {
    size_t index;
    uint16_t* into;
  };
  auto& l = t.layout;
  uint16_t tstate_next = 8;
  const Field fields[] = {
      {5, &t.interp_head},      {9, &t.threads_head},       {21, &tstate_next},        {23, &t.tstate_frame},
      {25, &t.tstate_tid},      {30, &l.frame_code},        {31, &l.frame_instr},      {32, &l.frame_localsplus},
      {33, &l.frame_owner},     {35, &l.code_filename},     {37, &l.code_qualname},
  };
  for (const auto& fl : fields) {
    uint64_t v = u64(fl.index);
    if (v > 0xffff) return Error{path + ": implausible _Py_DebugOffsets (" + std::to_string(v) + "); not probing it"};
    *fl.into = static_cast<uint16_t>(v);
  }
  if (tstate_next != 8) return Error{path + ": unexpected thread-state layout in _Py_DebugOffsets; not probing it"};
  return {};
}

}  // namespace

std::string Interpreter::version_str() const {
  return std::to_string(version >> 24) + "." + std::to_string((version >> 16) & 0xff) + "." +
         std::to_string((version >> 8) & 0xff);
}

std::string supported_versions() {
  std::string s;
  for (const auto& t : kTables) s += (s.empty() ? "3." : ", 3.") + std::to_string(t.minor);
  return s;
}

/// The libpython an executable is linked with (DT_NEEDED), found through its
/// RUNPATH/RPATH ($ORIGIN expanded) or the system's library path.
std::optional<std::string> linked_libpython(const elf::ElfFile& f) {
  auto dyn = f.section(".dynamic");
  auto strsec = f.section(".dynstr");
  if (!dyn || !strsec) return std::nullopt;
  auto d = f.bytes_at_offset(dyn->offset, dyn->size);
  auto strs = f.bytes_at_offset(strsec->offset, strsec->size);
  if (!d || !strs) return std::nullopt;
  std::string needed;
  std::vector<std::string> paths;
  auto str_at = [&](uint64_t off) {
    return off < strs->size() ? std::string(reinterpret_cast<const char*>(strs->data()) + off,
                                            strnlen(reinterpret_cast<const char*>(strs->data()) + off, strs->size() - off))
                              : std::string();
  };
  for (size_t i = 0; i + sizeof(Elf64_Dyn) <= d->size(); i += sizeof(Elf64_Dyn)) {
    Elf64_Dyn e;
    std::memcpy(&e, d->data() + i, sizeof e);
    if (e.d_tag == DT_NULL) break;
    if (e.d_tag == DT_NEEDED && str_at(e.d_un.d_val).rfind("libpython3", 0) == 0) needed = str_at(e.d_un.d_val);
    if (e.d_tag == DT_RUNPATH || e.d_tag == DT_RPATH) {
      std::string all = str_at(e.d_un.d_val);
      for (size_t a = 0, b; a <= all.size(); a = b + 1) {
        b = all.find(':', a);
        if (b == std::string::npos) b = all.size();
        paths.push_back(all.substr(a, b - a));
      }
    }
  }
  if (needed.empty()) return std::nullopt;
  const std::string dir = f.path().substr(0, f.path().rfind('/'));
  for (auto p : paths) {
    if (auto o = p.find("$ORIGIN"); o != std::string::npos) p.replace(o, 7, dir);
    std::string cand = p + "/" + needed;
    if (access(cand.c_str(), R_OK) == 0) return cand;
  }
  if (auto lib = elf::resolve_library(needed)) return *lib;
  return std::nullopt;
}

Result<Interpreter> inspect(const std::string& path) {
  auto f = elf::ElfFile::open(path);
  if (!f) return f.error();
  auto eval = find_symbol(*f, "_PyEval_EvalFrameDefault");
  auto ver = find_symbol(*f, "Py_Version");
  if (!eval) {
    // A launcher linked with a shared libpython (pyenv, --enable-shared): the interpreter is there.
    if (auto lib = linked_libpython(*f); lib && *lib != path) return inspect(*lib);
  }
  if (!eval || !ver)
    return Error{path + " is not a CPython 3.11+ interpreter (no _PyEval_EvalFrameDefault or Py_Version symbol)"};
  Interpreter in;
  in.path = path;
  auto v = read_at<uint32_t>(*f, ver->vaddr);
  if (!v) return Error{path + ": cannot read Py_Version"};
  in.version = *v;
  const auto* known = table_for(in.version);
  if (!known)
    return Error{path + ": CPython " + in.version_str() + " is not supported (supported: " + supported_versions() +
                 "); its frame layout is unknown, so it is not guessed"};
  VersionTable table = *known;
  const auto* t = &table;
  if (path.find("python3." + std::to_string(t->minor) + "t") != std::string::npos)
    return Error{path + ": a free-threaded (no-GIL) CPython build is not supported"};
  auto off = f->vaddr_to_offset(eval->vaddr);
  if (!off) return Error{path + ": _PyEval_EvalFrameDefault: " + off.error().message};
  in.eval_vaddr = eval->vaddr;
  in.pie = f->is_dyn();
  in.eval_offset = *off;
  in.layout = t->layout;
  in.layout.version = in.version;
  auto none = find_symbol(*f, "_Py_NoneStruct");
  if (!none) return Error{path + ": no _Py_NoneStruct symbol"};
  in.layout.none_delta = static_cast<int64_t>(none->vaddr - eval->vaddr);
  auto rt = find_symbol(*f, "_PyRuntime");
  if (!rt) return Error{path + ": no _PyRuntime symbol"};
  in.runtime_vaddr = rt->vaddr;
  if (t->minor >= 13) {
    if (auto r = apply_debug_offsets(*f, rt->vaddr, table, path); !r) return r.error();
    uint64_t none_delta = in.layout.none_delta;
    in.layout = table.layout;  // frame and code offsets as the file publishes them
    in.layout.version = in.version;
    in.layout.none_delta = static_cast<int64_t>(none_delta);
  }
  auto& l = in.layout;
  l.runtime = rt->vaddr;
  l.gilstate_tstate = t->gilstate;
  l.interp_head = t->interp_head;
  l.threads_head = t->threads_head;
  l.tstate_next = 8;
  l.tstate_tid = t->tstate_tid;
  l.tstate_frame = t->tstate_frame;
  l.cframe_frame = t->cframe_frame;
  l.op_resume[0] = t->op_resume[0];
  l.op_resume[1] = t->op_resume[1];
  l.op_yield = t->op_yield;
  auto sites = find_call_sites(*f, in.version, eval->vaddr, eval->size);
  if (sites && !sites->resume.empty() && sites->resume.size() <= 2) {
    for (size_t i = 0; i < sites->resume.size(); ++i) l.site_vaddr[i] = sites->resume[i].vaddr;
    l.clear_vaddr = sites->clear.vaddr;
    in.call_sites = *sites;
  } else {
    in.call_error = sites ? "unexpected RESUME handlers" : sites.error().message;
  }
  return in;
}

Result<void> verify_live(int pid, const Interpreter& in, uint64_t base) {
  const auto& l = in.layout;
  const bool v311 = ((in.version >> 16) & 0xff) == 11;
  int fd = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::from_errno("pid " + std::to_string(pid) + ": cannot read its memory");
  auto rd = [&](uint64_t addr, void* out, size_t n) { return pread(fd, out, n, static_cast<off_t>(addr)) == ssize_t(n); };
  auto rd64 = [&](uint64_t addr) {
    uint64_t v = 0;
    return rd(addr, &v, 8) ? v : 0;
  };
  std::string fail;
  uint64_t interp = rd64(base + in.runtime_vaddr + l.interp_head);
  uint64_t tstate = interp ? rd64(interp + l.threads_head) : 0;
  // Walk the threads: one of them is running Python (has a current frame).
  bool checked = false;
  for (int i = 0; tstate && i < 64 && !checked; ++i, tstate = rd64(tstate + 8)) {
    uint64_t frame = l.cframe_frame >= 0 ? rd64(rd64(tstate + l.tstate_frame) + l.cframe_frame)
                                         : rd64(tstate + l.tstate_frame);
    for (int depth = 0; frame && depth < 64; ++depth, frame = rd64(frame + (v311 ? 48 : 8))) {
      uint8_t owner = 0;
      rd(frame + in.layout.frame_owner, &owner, 1);
      if (owner == 3) continue;  // a C-stack shim frame (3.12+)
      uint64_t code = rd64(frame + in.layout.frame_code);
      uint64_t type = code ? rd64(code + 8) : 0;
      char name[8] = {};
      if (!type || !rd(rd64(type + 24), name, 5)) break;
      if (std::string(name, 5) != std::string("code\0", 5)) {
        fail = "a frame's code object has type '" + std::string(name) + "'";
        break;
      }
      checked = true;
      break;
    }
  }
  ::close(fd);
  if (!fail.empty() || !interp)
    return Error{"pid " + std::to_string(pid) + " (" + in.path + ", CPython " + in.version_str() +
                 "): the struct layout does not match the running process (" +
                 (fail.empty() ? "no interpreter state" : fail) + "); not probing it"};
  return {};
}

uint32_t name_hash(const std::string& name) { return python_name_hash(name); }

}  // namespace insa::python
