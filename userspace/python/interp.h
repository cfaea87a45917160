// SPDX-License-Identifier: Apache-2.0
/// @file CPython interpreters as probe targets: which build a file is (version,
/// free-threaded or not), where its frame evaluator is, and the struct offsets
/// the generic BPF programs read, per supported version. Pure userspace; reads
/// the ELF file and, to check offsets on a live process, that process's memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "insa_shared.h"
#include "python/sites.h"

namespace insa::python {

/// One interpreter file: an executable with the interpreter linked in
/// (Debian's /usr/bin/python3.11) or a shared libpython3.X.so.
struct Interpreter {
  std::string path;
  uint32_t version = 0;  ///< PY_VERSION_HEX, from the file's Py_Version
  /// File offset of _PyEval_EvalFrameDefault: the uprobe and uretprobe go there.
  uint64_t eval_offset = 0;
  uint64_t eval_vaddr = 0;
  uint64_t runtime_vaddr = 0;  ///< _PyRuntime (live checks)
  bool pie = false;            ///< ET_DYN: addresses are relative to the load bias
  /// The per-call mechanism's sites (RESUME handlers, frame clear); empty with
  /// `call_error` saying why when they cannot be found.
  std::optional<CallSites> call_sites;
  std::string call_error;
  insa_py_layout layout{};
  /// "3.11.2"
  std::string version_str() const;
};

/// Reads `path` and returns its layout. Refuses, in one line, a file that is not
/// a CPython interpreter, a version without a known layout, and a free-threaded
/// build. From 3.13 the offsets the file publishes in _Py_DebugOffsets must agree
/// with the built-in table.
Result<Interpreter> inspect(const std::string& path);

/// Reads the running process `pid` through /proc/PID/mem and checks that the
/// layout describes it: the interpreter state's first thread has a current frame
/// whose code object's type is named "code". `base` is where `interp.path` is
/// mapped (load bias; 0 for a non-PIE executable).
Result<void> verify_live(int pid, const Interpreter& interp, uint64_t base);

/// FNV-1a of a name after its last '.', as the kernel hashes exception type
/// names (never 0).
uint32_t name_hash(const std::string& name);

/// Supported versions, for messages: "3.11, 3.12, 3.13".
std::string supported_versions();

}  // namespace insa::python
