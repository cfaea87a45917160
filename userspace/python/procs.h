// SPDX-License-Identifier: Apache-2.0
/// @file Python processes on this host: which script or module each runs
/// (from its command line) and which file holds its interpreter (libpython
/// mapped in it, else its executable). Reads a proc root so tests can use a fake.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace insa::python {

struct PyProcess {
  int pid = 0;
  std::string script;       ///< the main script as given on the command line ("" for -m/-c)
  std::string script_path;  ///< the script resolved against the process's cwd
  std::string module;       ///< `-m module`
  std::string interpreter;  ///< file with _PyEval_EvalFrameDefault (libpython or the executable)
  uint64_t interpreter_base = 0;  ///< load bias of that file in the process (0: non-PIE executable)
  /// "/proc/PID/root" when the process sees other files than the exporter (another mount
  /// namespace or root: a container), else "". Paths above are the process's own view.
  std::string root;
  /// A path of the process's view, opened from the exporter: through its root when needed.
  std::string host_path(const std::string& own) const { return root + own; }
};

/// Parses a Python command line (argv) into script / module. Returns false when
/// argv is not a Python interpreter running a script or module.
bool parse_cmdline(const std::vector<std::string>& argv, std::string* script, std::string* module);

/// Describes `pid` if it runs a Python interpreter; nullopt otherwise.
std::optional<PyProcess> describe_process(int pid, const std::string& proc_root = "/proc");

/// Every Python process under `proc_root`.
std::vector<PyProcess> scan_processes(const std::string& proc_root = "/proc");

/// True when `path` ends with the path components of `suffix` ("worker.py"
/// matches "/srv/app/worker.py", not "/srv/app/myworker.py").
bool path_suffix_match(const std::string& path, const std::string& suffix);

}  // namespace insa::python
