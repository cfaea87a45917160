// SPDX-License-Identifier: Apache-2.0
#include "python/procs.h"

#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "process/containers.h"

namespace insa::python {
namespace {

std::string basename_of(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

bool is_python_name(const std::string& exe) {
  static const std::regex re(R"(python(3(\.\d+)?)?[a-z]*(-dbg)?)");
  return std::regex_match(basename_of(exe), re);
}

}  // namespace

bool path_suffix_match(const std::string& path, const std::string& suffix) {
  if (suffix.empty() || path.size() < suffix.size()) return false;
  if (path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  return path.size() == suffix.size() || suffix[0] == '/' || path[path.size() - suffix.size() - 1] == '/';
}

bool parse_cmdline(const std::vector<std::string>& argv, std::string* script, std::string* module) {
  if (argv.empty()) return false;
  // Options that take an argument (python --help): -c cmd ends the options, -m mod too.
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      if (i + 1 < argv.size() && argv[i + 1] != "-") *script = argv[i + 1];
      return !script->empty();
    }
    if (a.empty() || a == "-") return false;  // no script, or the program comes from stdin
    if (a[0] != '-') {
      *script = a;
      return true;
    }
    if (a[1] == '-') {
      // The one long option with a separate value (python3 --help); the others are flags.
      if (a == "--check-hash-based-pycs") ++i;
      continue;
    }
    // Short options may be grouped (-uBm mod).
    for (size_t k = 1; k < a.size(); ++k) {
      char o = a[k];
      if (o == 'c') return false;
      if (o == 'm' || o == 'W' || o == 'X') {
        std::string val = k + 1 < a.size() ? a.substr(k + 1) : (i + 1 < argv.size() ? argv[++i] : "");
        if (o == 'm') {
          *module = val;
          return !val.empty();
        }
        break;
      }
    }
  }
  return false;
}

std::optional<PyProcess> describe_process(int pid, const std::string& proc_root) {
  const std::string dir = proc_root + "/" + std::to_string(pid);
  std::ifstream in(dir + "/cmdline", std::ios::binary);
  if (!in) return std::nullopt;
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  std::string cur;
  for (char c : all) {
    if (c == 0) {
      argv.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) argv.push_back(cur);
  if (argv.empty()) return std::nullopt;
  PyProcess p;
  p.pid = pid;
  // The interpreter: a mapped libpython3.X.so, else the executable itself.
  std::ifstream maps(dir + "/maps");
  std::string line;
  static const std::regex lib(R"(/libpython3\.\d+t?\.so[.0-9]*$)");
  while (std::getline(maps, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (!std::regex_search(path, lib)) continue;
    std::istringstream ls(line);
    std::string range, perms, offset;
    ls >> range >> perms >> offset;
    if (p.interpreter.empty()) {
      p.interpreter = path;
      uint64_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
      uint64_t off = std::stoull(offset, nullptr, 16);
      p.interpreter_base = start - off;  // the first mapping of a shared library is at file offset 0
    }
  }
  std::string exe = process::read_link(dir + "/exe");
  if (exe.size() > 10 && exe.compare(exe.size() - 10, 10, " (deleted)") == 0) exe.resize(exe.size() - 10);
  if (p.interpreter.empty()) {
    if (!is_python_name(exe) && !is_python_name(argv[0])) return std::nullopt;
    p.interpreter = exe;
    std::ifstream again(dir + "/maps");
    while (std::getline(again, line)) {
      auto slash = line.find('/');
      if (slash == std::string::npos || line.substr(slash) != exe) continue;
      std::istringstream ls(line);
      std::string range, perms, offset;
      ls >> range >> perms >> offset;
      // Load bias candidate; the caller zeroes it for a non-PIE executable (ET_EXEC).
      p.interpreter_base = std::stoull(range.substr(0, range.find('-')), nullptr, 16) - std::stoull(offset, nullptr, 16);
      break;
    }
  }
  // A container: its own mount namespace or root directory; its files are reached through
  // /proc/PID/root (the kernel resolves that link in the process's namespace).
  p.root = process::process_root(pid, proc_root);
  if (!parse_cmdline(argv, &p.script, &p.module)) return p;
  if (!p.script.empty()) {
    if (p.script[0] == '/') {
      p.script_path = p.script;
    } else {
      std::string cwd = process::read_link(dir + "/cwd");
      p.script_path = cwd.empty() ? p.script : cwd + "/" + p.script;
    }
    // "python3 ./w.py" or "../app/w.py": the path as a config names it (/srv/app/w.py).
    p.script_path = std::filesystem::path(p.script_path).lexically_normal().string();
  }
  return p;
}

std::vector<PyProcess> scan_processes(const std::string& proc_root) {
  std::vector<PyProcess> out;
  DIR* d = opendir(proc_root.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    int pid = std::atoi(e->d_name);
    if (pid == getpid()) continue;
    if (auto p = describe_process(pid, proc_root)) out.push_back(std::move(*p));
  }
  closedir(d);
  return out;
}

}  // namespace insa::python
