// SPDX-License-Identifier: Apache-2.0
#include "attach/plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include <signal.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "elf/plt.h"
#include "elf/return_sites.h"
#include "elf/usdt.h"
#include "process/containers.h"
#include "python/procs.h"
#include "python/source.h"

namespace insa::plan {
namespace fs = std::filesystem;
static_assert(config::kMaxProbes == INSA_MAX_PROBES, "config and kernel agree on the probe table size");
using config::UpdateOp;
using config::ValueRef;

Result<std::string> resolve_binary(const std::string& binary, const std::string& config_file) {
  if (binary.find('/') == std::string::npos) return elf::resolve_library(binary);
  fs::path p(binary);
  if (p.is_relative()) {
    fs::path near = fs::path(config_file).parent_path() / p;
    // The error_code overloads throughout: a symlink loop must not throw. A path near the
    // config that exists, or fails for another reason than absence (ELOOP, EACCES), is it.
    std::error_code ec;
    if (fs::exists(near, ec) || (ec && ec != std::errc::no_such_file_or_directory)) p = near;
  }
  std::error_code ec;
  auto abs = fs::canonical(p, ec);
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory)
    return Error{"binary '" + binary + "' not found: " + ec.message() + " (paths are relative to the config file's directory)", ec.value()};
  if (ec)
    return Error{"binary '" + binary + "' cannot be resolved: " + ec.message() + " at '" + p.string() +
                     "': fix the path or the symbolic links in it",
                 ec.value()};
  return abs.string();
}

namespace {

/// Why a C++ exception may unwind through code at `vaddr` of `file` ("" when
/// it is C code): the file needs or contains the C++ runtime, or the function's
/// FDE names a personality routine (C++ catch/cleanup, or C with -fexceptions).
std::string unwinds_cxx(const elf::ElfFile& file, uint64_t vaddr) {
  if (!file.cxx_runtime().empty()) return "'" + file.path() + "' " + file.cxx_runtime() + " (C++ code)";
  const elf::Fde* fde = elf::fde_containing(file.fdes(), vaddr);
  if (fde && (fde->personality || fde->lsda))
    return "its .eh_frame entry names an exception personality routine (code built with -fexceptions)";
  return "";
}

uint8_t src_kind(const ValueRef& v) {
  switch (v.kind) {
    case ValueRef::Kind::Literal: return INSA_SRC_NONE;
    case ValueRef::Kind::Int: return INSA_SRC_CONST;
    case ValueRef::Kind::Arg: return INSA_SRC_ARG;
    case ValueRef::Kind::ArgStr: return INSA_SRC_ARG_STR;
    case ValueRef::Kind::Ret: return INSA_SRC_RET;
    case ValueRef::Kind::Duration: return INSA_SRC_DURATION;
    case ValueRef::Kind::Status: return INSA_SRC_STATUS;
    case ValueRef::Kind::Pid: return INSA_SRC_PID;
    case ValueRef::Kind::ArgLen: return INSA_SRC_ARG;
    case ValueRef::Kind::RetStr: return INSA_SRC_RET_STR;
    case ValueRef::Kind::Exception: return INSA_SRC_EXC;
    case ValueRef::Kind::RetNone: return INSA_SRC_RET_NONE;
    case ValueRef::Kind::Container:
    case ValueRef::Kind::Pod:
    case ValueRef::Kind::Namespace: return INSA_SRC_PID;  // named in userspace from the PID
  }
  return INSA_SRC_NONE;
}

uint8_t src_of(const ValueRef& v) { return src_kind(v) | (v.i32 ? INSA_SRC_I32 : 0); }

uint8_t op_of(UpdateOp op) {
  switch (op) {
    case UpdateOp::Count: return INSA_OP_COUNT;
    case UpdateOp::Observe: return INSA_OP_OBSERVE;
    case UpdateOp::Add: return INSA_OP_GAUGE_ADD;
    case UpdateOp::Sub: return INSA_OP_GAUGE_SUB;
    case UpdateOp::Set: return INSA_OP_GAUGE_SET;
    case UpdateOp::Inflight: return INSA_OP_INFLIGHT;
    case UpdateOp::SpanBegin: return INSA_OP_SPAN_BEGIN;
    case UpdateOp::SpanEnd: return INSA_OP_SPAN_END;
  }
  return 0;
}

uint8_t cmp_of(config::Cmp c) {
  switch (c) {
    case config::Cmp::Lt: return INSA_CMP_LT;
    case config::Cmp::Le: return INSA_CMP_LE;
    case config::Cmp::Eq: return INSA_CMP_EQ;
    case config::Cmp::Ne: return INSA_CMP_NE;
    case config::Cmp::Gt: return INSA_CMP_GT;
    case config::Cmp::Ge: return INSA_CMP_GE;
  }
  return 0;
}

class Builder {
 public:
  explicit Builder(const config::Config& cfg) : cfg_(cfg) {}

  Result<Plan> build() {
    // Spans pair a begin in one probe with an end in another: the end's series id
    // keys both, so number every span end first.
    for (const auto& p : cfg_.probes)
      for (const auto& u : p.updates)
        if (u.op == UpdateOp::SpanEnd) span_series_[u.span] = 0;
    for (size_t i = 0; i < cfg_.probes.size(); ++i) {
      // Input reaches the filesystem, ELF and Python readers from here: whatever one of
      // them throws becomes this probe's one line, never a dead agent.
      Result<void> r;
      try {
        r = add_probe(i);
      } catch (const std::exception& e) {
        const auto& p = cfg_.probes[i];
        return Error{p.mark.str() + ": probe '" + p.name + "': " + e.what()};
      }
      if (!r) return r.error();
      if (plan_.statuses.size() > 256)
        return Error{cfg_.probes[i].mark.str() + ": more than 256 distinct status names across the probes (the kernel "
                                                 "keeps a status in one byte): reuse names such as success and error"};
    }
    for (auto& [si, span] : pending_spans_) plan_.specs[si.first].actions[si.second].span_series = span_series_[span];
    if (plan_.needs_catch) add_catch_points();
    auto budget = compute_budget(cfg_, plan_);
    if (!budget) return budget.error();
    plan_.budget = std::move(*budget);
    return std::move(plan_);
  }

  /// Probe `index` alone, analysed from `file`: earlier probes are left empty so the
  /// cookie (== probe index) is the one of the full plan.
  Result<FilePlan> build_one(size_t index, const std::string& file) {
    only_ = index;
    file_override_ = file;
    plan_.specs.resize(index);
    plan_.probes.resize(index);
    if (auto r = add_probe(index); !r) return r.error();
    return FilePlan{std::move(plan_.probes[index]), plan_.specs[index].entry_sp_delta};
  }

 private:
  /// The catch hook goes on every __cxa_begin_catch a tracked probe's process may run.
  void add_catch_points() {
    // libstdc++.so.6 is not here: hooked on the whole file it would trap every C++
    // program of the host; the engine hooks it per targeted process instead. A probed
    // file's own copy (-static-libstdc++) or its PLT stub of __cxa_begin_catch traps only
    // that file's processes, from their first instruction (the per-process hook comes
    // from an exec event a little later).
    std::vector<std::string> files;
    for (const auto& pp : plan_.probes)
      if (pp.tracked && !pp.per_process() && std::find(files.begin(), files.end(), pp.binary) == files.end())
        files.push_back(pp.binary);
    for (const auto& f : files) {
      auto file = elf::ElfFile::open(f);
      if (!file) continue;
      auto sym = file->find_function("__cxa_begin_catch");
      auto stub = sym ? Result<uint64_t>(sym->file_offset) : elf::plt_stub_offset(*file, "__cxa_begin_catch");
      if (!stub) continue;  // a C binary, or one importing it without a PLT stub (-fno-plt)
      AttachPoint a;
      a.role = Role::Catch;
      a.binary = f;
      a.offset = *stub;
      a.dev = file->device();
      a.ino = file->inode();
      plan_.catch_points.push_back(a);
    }
  }

  uint8_t status_index(const std::string& s) {
    auto it = std::find(plan_.statuses.begin(), plan_.statuses.end(), s);
    if (it != plan_.statuses.end()) return static_cast<uint8_t>(it - plan_.statuses.begin());
    plan_.statuses.push_back(s);
    return static_cast<uint8_t>(plan_.statuses.size() - 1);
  }

  /// The probe's status names and rules into its spec.
  void set_statuses(insa_probe_spec& spec, const config::ProbeDef& p) {
    spec.default_status = status_index(p.default_status);
    spec.exception_status = status_index(p.exception_status);
    if (!p.abandoned_status.empty()) {
      spec.flags |= INSA_PROBE_ABANDON_STATUS;
      spec.abandoned_status = status_index(p.abandoned_status);
    }
    for (const auto& r : p.status) {
      auto& kr = spec.rules[spec.nrules++];
      kr.src = src_of(r.lhs);
      kr.arg = static_cast<uint8_t>(r.lhs.arg);
      kr.cmp = cmp_of(r.cmp);
      kr.value = r.rhs;
      kr.status = status_index(r.status);
    }
  }

  Result<void> add_probe(size_t index) {
    const auto& p = cfg_.probes[index];
    if (p.python) return add_python_probe(p);
    const auto where = p.binary_mark.str();
    if (plan_.specs.size() >= INSA_MAX_PROBES)
      return Error{p.mark.str() + ": more than " + std::to_string(INSA_MAX_PROBES) + " probes"};
    if (p.pid > 0) {
      const std::string pm = p.pid_mark.str() + ": pid " + std::to_string(p.pid);
      if (p.pid == getpid()) return Error{pm + " is insa-exporter itself; give the worker's PID"};
      if (kill(p.pid, 0) != 0 && errno == ESRCH)
        return Error{pm + ": no such process; start the worker first, or drop 'pid:' to probe every process of the "
                          "binary"};
    }
    auto bin = only_ == index ? Result<std::string>(file_override_) : resolve_binary(p.binary, cfg_.file);
    // An absolute path that is not on this host names a file inside containers: checked
    // now against a container that runs it, attached per process by the engine.
    const std::string own = !p.binary.empty() && p.binary[0] == '/' ? p.binary : "";
    bool host_file = true;
    // (Only a path that does not exist: a symlink loop or a permission problem stays an error.)
    if (!bin && !own.empty() && only_ != index && (bin.error().err == ENOENT || bin.error().err == ENOTDIR)) {
      host_file = false;
      for (const auto& proc : process::scan_executables())
        if (!proc.root.empty() && proc.exe == own) {
          bin = proc.host_path();
          break;
        }
      if (!bin) return add_waiting_probe(p);
    }
    if (!bin) return Error{where + ": " + bin.error().message, bin.error().err};
    auto file = elf::ElfFile::open(*bin);
    if (!file) return Error{where + ": " + file.error().message, file.error().err};

    const uint32_t cookie = static_cast<uint32_t>(plan_.specs.size());
    insa_probe_spec spec{};
    ProbePlan pp;
    pp.name = p.name;
    pp.binary = *bin;
    pp.cookie = cookie;
    pp.mark = p.mark;
    pp.tracked = p.tracked();
    if (pp.tracked) spec.flags |= INSA_PROBE_TRACKED;
    set_statuses(spec, p);

    const int probe_index = static_cast<int>(plan_.probes.size());
    std::vector<AttachPoint> points;
    auto point = [&](Role role, uint64_t off, uint32_t ck) {
      AttachPoint a;
      a.role = role;
      a.binary = *bin;
      a.offset = off;
      a.pid = p.pid;
      a.cookie = ck;
      a.probe = probe_index;
      a.dev = file->device();
      a.ino = file->inode();
      points.push_back(a);
    };
    const auto fmark = p.function_mark.str();
    if (!p.usdt.empty()) {
      auto probes = elf::read_usdt_probes(*file);
      if (!probes) return Error{fmark + ": " + probes.error().message};
      auto colon = p.usdt.find(':');
      std::string prov = p.usdt.substr(0, colon), name = p.usdt.substr(colon + 1);
      bool found = std::any_of(probes->begin(), probes->end(),
                               [&](const elf::UsdtProbe& u) { return u.provider == prov && u.name == name; });
      if (!found)
        return Error{fmark + ": no USDT probe '" + p.usdt + "' in " + *bin + " (run: insa-exporter list-probes " + *bin + ")"};
      AttachPoint a;
      a.role = Role::Usdt;
      a.binary = *bin;
      a.pid = p.pid;
      a.cookie = cookie;
      a.usdt_provider = prov;
      a.usdt_name = name;
      a.probe = probe_index;
      a.dev = file->device();
      a.ino = file->inode();
      points.push_back(a);
      pp.target = "usdt " + p.usdt;
    } else {
      std::optional<elf::Symbol> sym;
      uint64_t entry = 0;
      if (p.offset) {
        entry = *p.offset;
        auto spot = elf::check_code_offset(*file, entry);
        if (!spot)
          return Error{fmark + ": " + spot.error().message + "; give an offset that list-probes or objdump shows "
                               "as an instruction start"};
        pp.target = "offset 0x" + hex(entry) + " (" + spot->str() + ")";
      } else {
        auto s = file->find_function(p.function);
        if (!s) return Error{fmark + ": " + s.error().message};
        sym = *s;
        entry = s->file_offset;
        pp.target = s->demangled + (s->demangled != s->name ? " (" + s->name + ")" : "") + " @0x" + hex(entry);
      }
      if (!pp.tracked) {
        point(Role::Entry, entry, cookie);
        pp.exit_method = "none: no update needs the end of the call (entry only)";
      } else if (p.exit == config::ExitMethod::Uretprobe) {
        const auto emark = (p.exit_mark.line ? p.exit_mark : p.mark).str();
        if (auto why = unwinds_cxx(*file, sym ? sym->vaddr : *file->offset_to_vaddr(entry)); !why.empty())
          return Error{emark + ": 'exit: uretprobe' refused for probe '" + p.name + "': " + why +
                       ", and a C++ exception unwinding through a uretprobe's return trampoline ends in "
                       "std::terminate; remove 'exit:' (return sites, the default, follow exceptions)"};
        point(Role::Entry, entry, cookie);
        point(Role::Uretprobe, entry, cookie | INSA_COOKIE_URET);
        pp.exit_sites = 1;
        pp.exit_method = "uretprobe ('exit: uretprobe'; allowed: C code, no C++ runtime in the binary and no "
                         "exception tables at the function)";
      } else {
        if (!sym)
          return Error{fmark + ": a raw offset has no known extent, so its return sites cannot be found; use "
                               "'function:'" +
                       (file->cxx_runtime().empty() ? ", or 'exit: uretprobe' (C code)" : "") +
                       ", or count calls at entry only"};
        auto code = elf::analyze_function(*file, *sym);
        if (!code) return Error{fmark + ": cannot find the return sites of " + sym->demangled + ": " + code.error().message};
        const auto& site = code->entry_probe;
        spec.entry_sp_delta = site.sp_delta;
        point(Role::Entry, site.file_offset, cookie);
        for (const auto& x : code->exits)
          point(Role::Exit, x.file_offset, x.kind == elf::ExitSite::Kind::TailJmp ? cookie | INSA_COOKIE_TAIL : cookie);
        pp.exit_sites = code->exits.size();
        pp.exit_method = "return sites (default: probes on the function's own ret and tail-jmp instructions; "
                         "C++ exceptions closed at the catch)";
        pp.sites = "entry @0x" + hex(site.file_offset) + " " + site.insn_text +
                   (site.emulated ? " (emulated" : " (single-stepped");
        if (site.file_offset != entry)
          pp.sites += ", " + std::to_string(site.file_offset - entry) + " bytes in: the first instruction would be " +
                      "single-stepped";
        pp.sites += ")";
        if (!code->exits.empty()) pp.sites += "; exits";
        for (const auto& x : code->exits)
          pp.sites += " @0x" + hex(x.file_offset) + (x.kind == elf::ExitSite::Kind::Ret ? " ret" : " tail-jmp") +
                      (x.unnamed ? " (cold, unnamed: from .eh_frame)" : x.cold ? " (cold)" : "");
        plan_.needs_catch = true;
      }
    }

    for (const auto& u : p.updates) {
      auto r = add_update(p, u, spec, probe_index, cookie);
      if (!r) return r;
    }
    plan_.specs.push_back(spec);
    pp.points = std::move(points);
    pp.pid = p.pid;
    pp.own_path = own;
    pp.host_file = host_file && only_ != index;
    pp.select = p.select;
    pp.library = fs::path(p.binary).filename().string().find(".so") != std::string::npos;
    if (p.select && host_file) pp.target += " (per process: selected containers only)";
    if (!host_file) {
      // Checked against one container's file; each container's file is attached per process.
      pp.points.clear();
      pp.binary = own;
      pp.target += " (in containers: " + own + ")";
    }
    plan_.probes.push_back(std::move(pp));
    return {};
  }

  /// A probe on a path inside containers that no process runs yet: its spec and series,
  /// no points; the engine analyses and attaches each container's file when one starts.
  Result<void> add_waiting_probe(const config::ProbeDef& p) {
    const uint32_t cookie = static_cast<uint32_t>(plan_.specs.size());
    const int probe_index = static_cast<int>(plan_.probes.size());
    insa_probe_spec spec{};
    ProbePlan pp;
    pp.name = p.name;
    pp.binary = p.binary;
    pp.own_path = p.binary;
    pp.host_file = false;
    pp.select = p.select;
    pp.cookie = cookie;
    pp.mark = p.mark;
    pp.pid = p.pid;
    pp.tracked = p.tracked();
    if (pp.tracked) spec.flags |= INSA_PROBE_TRACKED;
    if (pp.tracked && p.exit != config::ExitMethod::Uretprobe && p.usdt.empty()) plan_.needs_catch = true;
    set_statuses(spec, p);
    pp.target = (p.usdt.empty() ? p.function.empty() ? "offset" : p.function : "usdt " + p.usdt) +
                " (in containers: " + p.binary + "; not on this host and no process runs it yet: checked and attached "
                "when one starts)";
    for (const auto& u : p.updates)
      if (auto r = add_update(p, u, spec, probe_index, cookie); !r) return r;
    plan_.specs.push_back(spec);
    plan_.probes.push_back(std::move(pp));
    return {};
  }

  /// A Python probe: a target the kernel matches code objects against, value slots read
  /// from the frame's parameters, and the spec its calls update.
  Result<void> add_python_probe(const config::ProbeDef& p) {
    const auto& d = *p.python;
    const auto fmark = d.function_mark.str();
    if (plan_.specs.size() >= INSA_MAX_PROBES)
      return Error{p.mark.str() + ": more than " + std::to_string(INSA_MAX_PROBES) + " probes"};
    if (plan_.py_targets.size() >= INSA_MAX_PY_TARGETS)
      return Error{p.mark.str() + ": more than " + std::to_string(INSA_MAX_PY_TARGETS) + " python probes"};
    const uint32_t cookie = static_cast<uint32_t>(plan_.specs.size());
    const int probe_index = static_cast<int>(plan_.probes.size());
    ProbePlan pp;
    pp.name = p.name;
    pp.cookie = cookie;
    pp.mark = p.mark;
    pp.tracked = true;
    pp.python = d;
    pp.pid = p.pid;
    pp.py_target = static_cast<int>(plan_.py_targets.size());
    pp.target = "python " + d.function + " in " + d.file + (p.pid > 0 ? " (pid " + std::to_string(p.pid) + ")" : "");

    // Running processes this probe targets, and the source that defines the function.
    std::vector<python::PyProcess> procs;
    for (auto& proc : python::scan_processes())
      if (python_matches(pp, proc.pid, proc.script_path, proc.module)) procs.push_back(std::move(proc));
    if (p.pid > 0 && procs.empty())
      return Error{p.mark.str() + ": probe '" + p.name + "': pid " + std::to_string(p.pid) +
                   " is not a running Python process that matches " + (d.script.empty() ? "module " + d.module : "script " + d.script)};
    std::vector<std::string> sources;
    if (!d.source.empty()) {
      fs::path sp(d.source);
      if (sp.is_relative()) sp = fs::path(cfg_.file).parent_path() / sp;
      std::error_code ec;
      if (!fs::is_regular_file(sp, ec))
        return Error{d.mark.str() + ": source '" + d.source + "' not found (relative to the config file's directory)"};
      sources.push_back(sp.string());
    }
    for (const auto& proc : procs)
      if (!d.script.empty() && python::path_suffix_match(proc.script_path, d.file))
        sources.push_back("/proc/" + std::to_string(proc.pid) + "/root" + proc.script_path);
    for (const auto& f : {fs::path(cfg_.file).parent_path() / d.file, fs::path(d.file)}) sources.push_back(f.string());
    std::optional<python::PyFunction> fn;
    std::string source;
    for (const auto& src : sources) {
      std::error_code ec;
      if (src.empty() || !fs::is_regular_file(src, ec)) continue;
      auto funcs = python::scan_file(src);
      if (!funcs) continue;
      source = src;
      for (const auto& f : *funcs)
        if (f.qualname == d.function) fn = f;
      if (!fn) {
        // Suggest functions with the same last component, or any when none does.
        std::string last = d.function.substr(d.function.rfind('.') + 1), hint;
        int n = 0;
        for (const auto& f : *funcs)
          if (n < 3 && f.qualname.size() >= last.size() &&
              f.qualname.compare(f.qualname.size() - last.size(), last.size(), last) == 0)
            hint += std::string(n++ ? ", " : "") + "'" + f.qualname + "'";
        return Error{fmark + ": function '" + d.function + "' is not defined in " + src +
                     (hint.empty() ? "" : "; did you mean " + hint + "?") + " (run 'insa-exporter list-probes " + src +
                     "' to see its functions)"};
      }
      break;
    }

    // Value slots: every parameter value the probe reads, with its conversion.
    config::ProbeDef q = p;
    std::vector<std::pair<int, uint8_t>> slots;
    uint8_t ret_conv = 0;
    std::string ret_first;
    auto slot_of = [&](ValueRef& v) -> Result<void> {
      if (v.kind == ValueRef::Kind::Ret || v.kind == ValueRef::Kind::RetStr) {
        uint8_t c = v.kind == ValueRef::Kind::RetStr ? INSA_PY_STR : v.len_of ? INSA_PY_LEN : INSA_PY_INT;
        if (ret_conv && ret_conv != c)
          return Error{p.mark.str() + ": probe '" + p.name + "' reads the return value as " + ret_first + " and as " +
                       v.str() + "; one probe reads it one way (split it into two probes)"};
        ret_conv = c;
        ret_first = v.str();
        return {};
      }
      if (v.kind != ValueRef::Kind::Arg && v.kind != ValueRef::Kind::ArgLen && v.kind != ValueRef::Kind::ArgStr) return {};
      int local = v.arg - 1;
      if (!v.name.empty()) {
        if (!fn) {
          if (v.name != "self")
            return Error{fmark + ": $" + v.name + " names a parameter, but the source of '" + d.function +
                         "' was not found (looked for " + d.file + " beside the config and in running processes); "
                         "use $argN (1 = first parameter) instead"};
          local = 0;
        } else {
          auto it = std::find(fn->params.begin(), fn->params.end(), v.name);
          if (it == fn->params.end()) {
            std::string list;
            for (const auto& pn : fn->params) list += (list.empty() ? "" : ", ") + pn;
            return Error{fmark + ": '" + d.function + "' has no parameter '" + v.name + "' (parameters: " + list + ")"};
          }
          local = static_cast<int>(it - fn->params.begin());
        }
      } else if (fn && local >= static_cast<int>(fn->params.size())) {
        return Error{fmark + ": " + v.str() + ": '" + d.function + "' has " + std::to_string(fn->params.size()) +
                     " parameters (self counts as $arg1)"};
      }
      uint8_t conv = v.kind == ValueRef::Kind::ArgLen ? INSA_PY_LEN : v.kind == ValueRef::Kind::ArgStr ? INSA_PY_STR : INSA_PY_INT;
      auto key = std::make_pair(local, conv);
      auto it = std::find(slots.begin(), slots.end(), key);
      if (it == slots.end()) {
        if (slots.size() >= INSA_MAX_ARGS)
          return Error{p.mark.str() + ": probe '" + p.name + "' reads more than " + std::to_string(INSA_MAX_ARGS) + " parameter values"};
        slots.push_back(key);
        it = slots.end() - 1;
      }
      v.arg = static_cast<int>(it - slots.begin()) + 1;
      v.kind = conv == INSA_PY_STR ? ValueRef::Kind::ArgStr : ValueRef::Kind::Arg;
      v.name.clear();
      return {};
    };
    for (auto& r : q.status)
      if (auto e = slot_of(r.lhs); !e) return e;
    for (auto& u : q.updates) {
      if (auto e = slot_of(u.value); !e) return e;
      if (u.cond)
        if (auto e = slot_of(u.cond->lhs); !e) return e;
      for (auto& l : u.labels)
        if (auto e = slot_of(l.value); !e) return e;
    }

    insa_py_target t{};
    t.spec = cookie;
    t.tgid = p.pid > 0 ? static_cast<uint32_t>(p.pid) : 0;
    t.qual_len = static_cast<uint8_t>(d.function.size());
    t.file_len = static_cast<uint8_t>(d.file.size());
    t.ret_conv = ret_conv;
    t.per_call = d.per_call;
    std::memcpy(t.qualname, d.function.data(), d.function.size());
    std::memcpy(t.file, d.file.data(), d.file.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      t.slots[i].local = static_cast<uint8_t>(slots[i].first);
      t.slots[i].conv = slots[i].second;
    }

    insa_probe_spec spec{};
    spec.flags = INSA_PROBE_TRACKED | INSA_PROBE_PYTHON;
    set_statuses(spec, q);  // abandoned: calls whose process died mid-call
    for (const auto& u : q.updates)
      if (auto r = add_update(q, u, spec, probe_index, cookie); !r) return r;

    // Interpreters: the configured ones (an error here is the user's), and those of running
    // matching processes (an unsupported one is reported by the engine when it meets it).
    for (const auto& path : d.interpreters) {
      auto in = python::inspect(path);
      if (!in) return Error{d.mark.str() + ": " + in.error().message};
      add_interpreter(*in);
    }
    // Processes running now (hooked per process at start), for `check` to show.
    std::string running;
    for (const auto& proc : procs) {
      auto in = python::inspect(proc.host_path(proc.interpreter));
      running += "; pid " + std::to_string(proc.pid) + ": " +
                 (in ? "CPython " + in->version_str() + " (" + in->path + ")" +
                           (d.per_call && !in->call_sites ? ", per-call mechanism unavailable: " + in->call_error : "")
                     : in.error().message);
      if (procs.size() > 8 && &proc == &procs[7]) {
        running += "; ...";
        break;
      }
    }
    if (procs.empty()) running = "; no process runs it now";
    pp.binary = "python";
    pp.sites = std::string(d.per_call ? "mechanism call: every frame start (RESUME handler) and end (frame clear) of the "
                                        "targeted processes: plain calls too, at about 1 us on every Python call of those processes"
                                      : "mechanism eval: calls seen where the interpreter enters a frame from C "
                                        "(_PyEval_EvalFrameDefault): coroutines, generators, thread targets, callbacks; "
                                        "no cost to other Python calls") +
               std::string(source.empty() ? "; source not found, function not checked" : "; defined in " + source +
                           (fn ? ":" + std::to_string(fn->line) + (fn->is_async ? " (async def)" : fn->is_generator ? " (generator)" : "") : "")) +
               running;
    plan_.specs.push_back(spec);
    plan_.py_targets.push_back(t);
    plan_.probes.push_back(std::move(pp));
    return {};
  }

  void add_interpreter(const python::Interpreter& in) {
    for (const auto& x : plan_.py_interpreters)
      if (x.path == in.path) return;
    plan_.py_interpreters.push_back(in);
  }

  Result<void> add_update(const config::ProbeDef& p, const config::Update& u, insa_probe_spec& spec, int probe_index,
                          uint32_t cookie) {
    const auto* m = cfg_.metric(u.metric);
    const size_t metric_index = static_cast<size_t>(m - cfg_.metrics.data());
    // An in-flight gauge whose labels are all static needs no kernel action: the collector
    // derives it from the probe's own statistics. It is built aside and not kept.
    const bool derived = u.op == UpdateOp::Inflight && std::none_of(u.labels.begin(), u.labels.end(), [](const auto& l) {
                           return l.value.kernel() && l.value.kind != ValueRef::Kind::Int;
                         });
    insa_action aside{};
    auto& a = derived ? aside : spec.actions[spec.nactions++];
    a.op = op_of(u.op);
    a.metric = static_cast<uint32_t>(metric_index);
    const bool tracked = spec.flags & INSA_PROBE_TRACKED;
    a.when = u.when == config::When::Exit || (u.when == config::When::Default && tracked) ? INSA_AT_EXIT : INSA_AT_ENTRY;
    if (!tracked && a.when == INSA_AT_EXIT) return Error{u.mark.str() + ": 'when: exit' needs a function probe"};
    a.value_src = src_of(u.value);
    a.value_arg = static_cast<uint8_t>(u.value.arg);
    a.value_const = u.value.number;
    if (a.when == INSA_AT_ENTRY && (u.value.kind == ValueRef::Kind::Ret || u.value.kind == ValueRef::Kind::Duration))
      return Error{u.mark.str() + ": " + u.value.str() + " is only known at exit; drop 'when: entry'"};
    if (u.cond) {
      const auto k = u.cond->lhs.kind;
      if (a.when == INSA_AT_ENTRY && (k == ValueRef::Kind::Ret || k == ValueRef::Kind::Duration))
        return Error{u.cond->mark.str() + ": 'if' tests " + u.cond->lhs.str() + ", which is only known at exit; drop 'when: entry'"};
      a.cond.src = src_of(u.cond->lhs);
      a.cond.arg = static_cast<uint8_t>(u.cond->lhs.arg);
      a.cond.cmp = cmp_of(u.cond->cmp);
      a.cond.value = u.cond->rhs;
    }

    if (u.op == UpdateOp::SpanBegin) {
      a.span_arg = static_cast<uint8_t>(u.span_key.arg);
      a.when = INSA_AT_ENTRY;
      pending_spans_.push_back({{plan_.specs.size(), spec.nactions - 1u}, u.span});
      a.series = 0;
      return {};
    }

    Series s;
    s.metric = metric_index;
    s.probe = probe_index;
    s.gauge = m->type == config::MetricType::Gauge;
    s.additive = s.gauge && (u.op == UpdateOp::Add || u.op == UpdateOp::Sub || u.op == UpdateOp::Inflight);
    const bool ns = u.value.kind == ValueRef::Kind::Duration || u.op == UpdateOp::SpanEnd;
    if (ns) s.scale = 1e-9;
    if (u.op == UpdateOp::SpanEnd) {
      a.span_arg = static_cast<uint8_t>(u.span_key.arg);
      a.when = INSA_AT_ENTRY;
    }
    if (m->type == config::MetricType::Histogram) {
      a.nbounds = static_cast<uint8_t>(m->buckets.size());
      for (size_t i = 0; i < m->buckets.size(); ++i) {
        double b = std::floor((ns ? m->buckets[i] * 1e9 : m->buckets[i]) + (ns ? 0.5 : 1e-9));
        // The kernel compares against signed 64-bit bounds: 2^63 and beyond would wrap.
        if (!(b < 9223372036854775808.0 && b >= -9223372036854775808.0)) {
          std::ostringstream v;
          v << m->buckets[i];
          return Error{m->mark.str() + ": bucket bound " + v.str() + " of histogram '" + m->name + "'" +
                       (ns ? " is beyond 2^63 ns (292 years)" : " is beyond 2^63") +
                       ", more than the kernel's signed 64-bit bounds hold; lower it (+Inf is implied)"};
        }
        a.bounds[i] = static_cast<int64_t>(b);
      }
    }
    // Kernel label slots: integers take 8 aligned bytes, strings their capture length;
    // two labels reading the same source share one slot.
    std::map<std::string, std::pair<uint32_t, uint32_t>> slots;
    uint32_t used = 0;
    for (const auto& want : m->labels) {
      auto b = std::find_if(u.labels.begin(), u.labels.end(), [&](const auto& l) { return l.label == want; });
      LabelDecoder d;
      d.name = want;
      d.value_map = b->value_map;
      d.map_default = b->map_default;
      d.regex = b->regex;
      d.drop_unmatched = b->drop_unmatched;
      const auto& v = b->value;
      if (!v.kernel() || v.kind == ValueRef::Kind::Int) {
        d.kind = LabelDecoder::Kind::Static;
        d.static_value = v.kind == ValueRef::Kind::Int ? std::to_string(v.number) : v.literal;
        s.labels.push_back(std::move(d));
        continue;
      }
      if (a.when == INSA_AT_ENTRY && (v.kind == ValueRef::Kind::Ret || v.kind == ValueRef::Kind::Status ||
                                      v.kind == ValueRef::Kind::RetStr || v.kind == ValueRef::Kind::Exception))
        return Error{b->mark.str() + ": " + v.str() + " is only known at exit"};
      const bool is_str = v.kind == ValueRef::Kind::ArgStr || v.kind == ValueRef::Kind::RetStr ||
                          v.kind == ValueRef::Kind::Exception;
      d.kind = is_str ? LabelDecoder::Kind::Str
               : v.kind == ValueRef::Kind::Status ? LabelDecoder::Kind::Status
               : v.container()                    ? LabelDecoder::Kind::Container
                                                   : LabelDecoder::Kind::Int;
      // Dead-PID expiry only for $pid itself: a container label sums the keys of its
      // processes, and dropping one process's key would lower the container's counter.
      d.pid = v.kind == ValueRef::Kind::Pid;
      d.field = v.kind == ValueRef::Kind::Pod         ? LabelDecoder::Field::Pod
                : v.kind == ValueRef::Kind::Namespace ? LabelDecoder::Field::Namespace
                                                      : LabelDecoder::Field::Container;
      // $container, $pod and $namespace share the PID's slot (with $pid too).
      auto key = v.container() ? std::string("$pid") : v.str();
      auto it = slots.find(key);
      if (it == slots.end()) {
        uint32_t len = d.kind == LabelDecoder::Kind::Str ? static_cast<uint32_t>(v.len) : 8;
        uint32_t off = (used + 7) & ~7u;
        if (off + len > INSA_KEY_BYTES || a.nlabels >= INSA_MAX_LABELS)
          return Error{b->mark.str() + ": labels captured in the kernel exceed " + std::to_string(INSA_KEY_BYTES) +
                       " bytes or " + std::to_string(INSA_MAX_LABELS) + " slots; shorten string captures ($argN:str16)"};
        auto& l = a.labels[a.nlabels++];
        l.src = v.kind == ValueRef::Kind::Exception ? static_cast<uint8_t>(INSA_SRC_EXC_STR) : src_of(v);
        l.arg = static_cast<uint8_t>(v.arg);
        l.offset = static_cast<uint8_t>(off);
        l.len = static_cast<uint8_t>(len);
        used = off + len;
        it = slots.emplace(key, std::make_pair(off, len)).first;
      }
      d.offset = it->second.first;
      d.len = it->second.second;
      s.labels.push_back(std::move(d));
    }
    a.series = static_cast<uint32_t>(plan_.series.size());
    if (u.op == UpdateOp::SpanEnd) span_series_[u.span] = a.series;
    s.derived_inflight = derived;
    plan_.series.push_back(std::move(s));
    (void)p;
    (void)cookie;
    return {};
  }

  static std::string hex(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
  }

  const config::Config& cfg_;
  Plan plan_;
  size_t only_ = SIZE_MAX;     ///< build_one: the probe analysed from file_override_
  std::string file_override_;
  std::map<std::string, uint32_t> span_series_;
  std::vector<std::pair<std::pair<size_t, unsigned>, std::string>> pending_spans_;
};

}  // namespace

Result<Plan> build_plan(const config::Config& cfg) {
  auto r = Builder(cfg).build();
  if (!r) return Error{config::one_line(r.error().message), r.error().err};
  return r;
}

Result<FilePlan> plan_probe_file(const config::Config& cfg, size_t probe, const std::string& file) {
  if (probe >= cfg.probes.size() || cfg.probes[probe].python) return Error{"not a native probe"};
  return Builder(cfg).build_one(probe, file);
}

namespace {

bool same_metric(const config::MetricDef& a, const config::MetricDef& b) {
  return a.name == b.name && a.help == b.help && a.type == b.type && a.labels == b.labels && a.buckets == b.buckets;
}

bool same_decoder(const LabelDecoder& a, const LabelDecoder& b) {
  return a.name == b.name && a.kind == b.kind && a.static_value == b.static_value && a.offset == b.offset &&
         a.len == b.len && a.value_map == b.value_map && a.map_default == b.map_default &&
         a.regex.has_value() == b.regex.has_value() && (!a.regex || a.regex->pattern() == b.regex->pattern()) &&
         a.drop_unmatched == b.drop_unmatched && a.field == b.field && a.pid == b.pid;
}

bool same_series(const Series& a, const config::Config& ca, const Series& b, const config::Config& cb) {
  if (a.unused || b.unused || a.metric >= ca.metrics.size() || b.metric >= cb.metrics.size()) return false;
  if (!same_metric(ca.metrics[a.metric], cb.metrics[b.metric]) || a.scale != b.scale || a.gauge != b.gauge ||
      a.derived_inflight != b.derived_inflight || a.labels.size() != b.labels.size())
    return false;
  for (size_t i = 0; i < a.labels.size(); ++i)
    if (!same_decoder(a.labels[i], b.labels[i])) return false;
  return true;
}

/// Same place, same file (device + inode), same role; cookies compared by their flag bits.
bool same_point(const AttachPoint& a, uint32_t ca, const AttachPoint& b, uint32_t cb) {
  return a.role == b.role && a.binary == b.binary && a.offset == b.offset && a.pid == b.pid &&
         (a.cookie ^ ca) == (b.cookie ^ cb) && a.usdt_provider == b.usdt_provider && a.usdt_name == b.usdt_name &&
         a.dev == b.dev && a.ino == b.ino;
}

bool same_python(const std::optional<config::PythonDef>& a, const std::optional<config::PythonDef>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->script == b->script && a->module == b->module && a->file == b->file && a->function == b->function &&
         a->interpreters == b->interpreters && a->source == b->source && a->per_call == b->per_call;
}

/// Series ids of probe `probe`, in the order the probe's updates created them (ids are
/// handed out in ascending order, so id order is creation order).
std::vector<uint32_t> series_of(const Plan& p, size_t probe) {
  std::vector<uint32_t> out;
  for (size_t id = 0; id < p.series.size(); ++id)
    if (!p.series[id].unused && p.series[id].probe == static_cast<int>(probe)) out.push_back(static_cast<uint32_t>(id));
  return out;
}

/// `spec` (numbered like `from`) renumbered: series ids through `ids`, statuses through
/// `status` (from index → to index). False when an id or status has no image.
bool renumber_spec(insa_probe_spec& spec, const std::map<uint32_t, uint32_t>& ids, const std::vector<int>& status) {
  auto st = [&](uint8_t& v) {
    if (v >= status.size() || status[v] < 0) return false;
    v = static_cast<uint8_t>(status[v]);
    return true;
  };
  if (!st(spec.default_status) || !st(spec.exception_status)) return false;
  if ((spec.flags & INSA_PROBE_ABANDON_STATUS) && !st(spec.abandoned_status)) return false;
  for (unsigned r = 0; r < spec.nrules && r < INSA_MAX_RULES; ++r)
    if (!st(spec.rules[r].status)) return false;
  for (unsigned k = 0; k < spec.nactions && k < INSA_MAX_ACTIONS; ++k) {
    auto& a = spec.actions[k];
    uint32_t& id = a.op == INSA_OP_SPAN_BEGIN ? a.span_series : a.series;
    auto it = ids.find(id);
    if (it == ids.end()) return false;
    id = it->second;
  }
  return true;
}

}  // namespace

std::string budget_misfit(const Plan& running, const config::Config& running_cfg, const Plan& fresh,
                          const config::Config& fresh_cfg) {
  const auto& rm = running_cfg.metrics;
  const auto& fm = fresh_cfg.metrics;
  // insa_action.metric indexes `quotas` and `metric_stats`: index i must stay metric i.
  for (size_t i = 0; i < std::max(rm.size(), fm.size()); ++i) {
    if (i >= rm.size()) return "metric '" + fm[i].name + "' was added (metrics index the kernel's series quotas)";
    if (i >= fm.size()) return "metric '" + rm[i].name + "' was removed (metrics index the kernel's series quotas)";
    if (rm[i].name != fm[i].name || rm[i].type != fm[i].type)
      return "metric '" + fm[i].name + "' takes the place of '" + rm[i].name +
             "' (metrics, in config order, index the kernel's series quotas)";
    if (rm[i].max_series != fm[i].max_series) return "the max_series of metric '" + fm[i].name + "' changed";
  }
  if (running_cfg.max_series != fresh_cfg.max_series)
    return "exporter.max_series changed (the kernel maps are sized at load)";
  const MapBudget& l = running.budget;  // what the maps were loaded with
  const MapBudget& f = fresh.budget;    // what the new config alone would get
  if (l.metrics.size() != fm.size() || f.metrics.size() != fm.size()) return "the series budget has another shape";
  uint64_t need[kMapKinds] = {0, 0, 0};
  for (size_t i = 0; i < fm.size(); ++i) {
    const auto &lq = l.metrics[i], &fq = f.metrics[i];
    if (!fm[i].max_series) {
      if (fq.captured && !lq.captured)
        return "metric '" + fm[i].name + "' now has labels captured from the process and no share of max_series yet";
      if (!fq.captured && fq.quota > lq.quota)
        return "metric '" + fm[i].name + "' now has " + std::to_string(fq.quota) + " series with fixed labels, more " +
               "than its quota of " + std::to_string(lq.quota);
    }
    need[static_cast<size_t>(lq.map)] += uint64_t{lq.quota} + fq.other_keys;
  }
  for (size_t k = 0; k < kMapKinds; ++k)
    if (need[k] > l.entries[k])
      return std::string("the '") + map_name(static_cast<MapKind>(k)) + "' map has no room for the new 'other' keys";
  return "";
}

ReloadDiff rebase_plan(const Plan& running, const config::Config& running_cfg, Plan& fresh,
                       const config::Config& fresh_cfg, bool ids_only) {
  ReloadDiff d;
  if (!ids_only) {
    d.why = budget_misfit(running, running_cfg, fresh, fresh_cfg);
    if (!d.why.empty()) {
      d.why = "the kernel series budget does not hold the new config: " + d.why;
      d.incremental = false;
      return d;
    }
    // Probes attached only per process (a path no host file has, or select:) are not
    // staged by a reload: such configs reload whole.
    auto per_process = [](const Plan& p) {
      return std::any_of(p.probes.begin(), p.probes.end(),
                         [](const ProbePlan& pp) { return !pp.python && pp.per_process(); });
    };
    if (per_process(running) || per_process(fresh)) {
      d.why = "probes on paths inside containers or with 'select:' are attached per process, which a reload does "
              "not carry over";
      d.incremental = false;
      return d;
    }
  }
  const size_t nf = fresh.probes.size(), nr = running.probes.size();
  // Status names of the fresh plan in the running table (-1: not there yet).
  std::vector<int> status_to_running(fresh.statuses.size(), -1);
  for (size_t i = 0; i < fresh.statuses.size(); ++i) {
    auto it = std::find(running.statuses.begin(), running.statuses.end(), fresh.statuses[i]);
    if (it != running.statuses.end()) status_to_running[i] = static_cast<int>(it - running.statuses.begin());
  }
  // Candidates: same name, same attach points and Python target, same series definitions.
  std::vector<int> cand(nf, -1);
  std::vector<std::vector<uint32_t>> fresh_series(nf), running_series(nr);
  for (size_t i = 0; i < nr; ++i) running_series[i] = series_of(running, i);
  for (size_t j = 0; j < nf; ++j) {
    fresh_series[j] = series_of(fresh, j);
    const auto& fp = fresh.probes[j];
    auto it = std::find_if(running.probes.begin(), running.probes.end(),
                           [&](const ProbePlan& r) { return r.name == fp.name; });
    if (it == running.probes.end()) continue;
    const size_t i = static_cast<size_t>(it - running.probes.begin());
    const auto& rp = *it;
    bool same = same_python(fp.python, rp.python) && fp.pid == rp.pid &&
                fresh_series[j].size() == running_series[i].size();
    if (same && !ids_only) {
      same = fp.binary == rp.binary && fp.target == rp.target && fp.tracked == rp.tracked &&
             fp.points.size() == rp.points.size();
      for (size_t k = 0; same && k < fp.points.size(); ++k)
        same = same_point(fp.points[k], fp.cookie, rp.points[k], rp.cookie);
      if (same && fp.python) {
        same = fp.py_target == rp.py_target && fp.py_target >= 0 &&
               static_cast<size_t>(fp.py_target) < fresh.py_targets.size() &&
               static_cast<size_t>(rp.py_target) < running.py_targets.size();
        if (same) {
          insa_py_target a = fresh.py_targets[static_cast<size_t>(fp.py_target)];
          insa_py_target b = running.py_targets[static_cast<size_t>(rp.py_target)];
          a.spec = b.spec = 0;
          same = std::memcmp(&a, &b, sizeof a) == 0;
        }
      }
    }
    for (size_t k = 0; same && k < fresh_series[j].size(); ++k)
      same = same_series(fresh.series[fresh_series[j][k]], fresh_cfg, running.series[running_series[i][k]], running_cfg);
    if (same) cand[j] = static_cast<int>(i);
  }
  // The kernel spec, renumbered, must be the running one byte for byte. A span begin
  // names another probe's series, so dropping one candidate may drop others: repeat.
  std::map<uint32_t, uint32_t> ids;  // fresh series id → running id, of candidates
  for (bool changed = true; changed;) {
    changed = false;
    ids.clear();
    for (size_t j = 0; j < nf; ++j)
      if (cand[j] >= 0)
        for (size_t k = 0; k < fresh_series[j].size(); ++k) ids[fresh_series[j][k]] = running_series[cand[j]][k];
    if (ids_only) break;
    for (size_t j = 0; j < nf; ++j) {
      if (cand[j] < 0) continue;
      insa_probe_spec t = fresh.specs[fresh.probes[j].cookie];
      const auto& rs = running.specs[running.probes[cand[j]].cookie];
      if (!renumber_spec(t, ids, status_to_running) || std::memcmp(&t, &rs, sizeof t) != 0) {
        cand[j] = -1;
        changed = true;
      }
    }
  }

  // Python probes share a target table whose length the BPF object was loaded with.
  for (size_t j = 0; j < nf; ++j)
    if (fresh.probes[j].python && cand[j] < 0) d.why = "Python probe '" + fresh.probes[j].name + "' is new or changed";
  std::vector<bool> taken(nr, false);
  for (int c : cand)
    if (c >= 0) taken[static_cast<size_t>(c)] = true;
  for (size_t i = 0; i < nr; ++i)
    if (!taken[i] && running.probes[i].python) d.why = "Python probe '" + running.probes[i].name + "' was removed";
  if (fresh.py_targets.size() != running.py_targets.size() && d.why.empty()) d.why = "the Python probes changed";

  // Numbers for new and changed probes: none a running probe uses, holes first.
  std::set<uint32_t> used_specs, used_series;
  for (const auto& rp : running.probes) used_specs.insert(rp.cookie);
  for (size_t id = 0; id < running.series.size(); ++id)
    if (!running.series[id].unused) used_series.insert(static_cast<uint32_t>(id));
  std::vector<uint32_t> cookie(nf);
  uint32_t next_spec = 0;
  for (size_t j = 0; j < nf; ++j) {
    if (cand[j] >= 0) {
      cookie[j] = running.probes[cand[j]].cookie;
      continue;
    }
    while (used_specs.count(next_spec)) ++next_spec;
    cookie[j] = next_spec++;
  }
  uint32_t next_series = 0;
  std::map<uint32_t, uint32_t> final_ids = ids;
  for (size_t j = 0; j < nf; ++j) {
    if (cand[j] >= 0) continue;
    for (uint32_t id : fresh_series[j]) {
      while (used_series.count(next_series)) ++next_series;
      final_ids[id] = next_series++;
    }
  }
  std::vector<std::string> statuses = running.statuses;
  std::vector<int> status_map = status_to_running;
  for (size_t i = 0; i < status_map.size(); ++i) {
    if (status_map[i] >= 0) continue;
    status_map[i] = static_cast<int>(statuses.size());
    statuses.push_back(fresh.statuses[i]);
  }
  uint32_t max_spec = 0;
  for (uint32_t c : cookie) max_spec = std::max(max_spec, c + 1);
  if (d.why.empty() && max_spec > INSA_MAX_PROBES)
    d.why = "the probes of the running and the new config together need more than " +
            std::to_string(INSA_MAX_PROBES) + " kernel spec entries";
  if (d.why.empty() && statuses.size() > 256)
    d.why = "the running and the new config together name more than 256 statuses";
  if (!d.why.empty()) {
    d.incremental = false;  // `fresh` untouched: the agent loads it whole
    return d;
  }

  // Renumber `fresh` in place.
  std::vector<insa_probe_spec> specs(max_spec, insa_probe_spec{});
  for (size_t j = 0; j < nf; ++j) {
    auto& pp = fresh.probes[j];
    insa_probe_spec t = fresh.specs[pp.cookie];
    // Every id and status has an image here (new ones were just numbered).
    (void)renumber_spec(t, final_ids, status_map);
    specs[cookie[j]] = t;
    for (auto& pt : pp.points) pt.cookie = (pt.cookie ^ pp.cookie) | cookie[j];
    if (pp.python && pp.py_target >= 0) fresh.py_targets[static_cast<size_t>(pp.py_target)].spec = cookie[j];
    pp.cookie = cookie[j];
  }
  uint32_t max_series = 0;
  for (const auto& [from, to] : final_ids) max_series = std::max(max_series, to + 1);
  std::vector<Series> series(max_series);
  for (auto& s : series) s.unused = true;
  for (const auto& [from, to] : final_ids) series[to] = std::move(fresh.series[from]);
  fresh.specs = std::move(specs);
  fresh.series = std::move(series);
  fresh.statuses = std::move(statuses);
  // The maps keep the quotas and sizes they were loaded with (budget_misfit: they hold
  // the new config), until a whole reload.
  fresh.budget = running.budget;

  d.kept = cand;
  for (size_t i = 0; i < nr; ++i) {
    if (taken[i]) continue;
    d.removed.push_back(i);
    d.freed_specs.push_back(running.probes[i].cookie);
    for (uint32_t id : running_series[i]) d.freed_series.push_back(id);
  }
  return d;
}

bool python_matches(const ProbePlan& pp, int pid, const std::string& script_path, const std::string& module) {
  if (!pp.python) return false;
  if (pp.pid > 0 && pp.pid != pid) return false;
  if (!pp.python->script.empty()) return python::path_suffix_match(script_path, pp.python->script);
  return module == pp.python->module;
}

}  // namespace insa::plan
