// SPDX-License-Identifier: Apache-2.0
#include "python/source.h"

#include "common/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <regex>
#include <sstream>

namespace insa::python {
namespace {

struct Scope {
  int indent;
  std::string qual;  ///< qualname prefix for children ("C." or "f.<locals>.")
  int func = -1;     ///< index of the function this scope is the body of
};

/// One logical line: a statement, joined across bracket, backslash and
/// triple-quoted string continuations, with comments dropped and string
/// contents blanked ("..." becomes ""), so that `def`, `yield` or an indent
/// inside a string or a continuation line is never taken for code.
struct Logical {
  int line = 0;    ///< 1-based, where the statement starts
  int indent = 0;  ///< of its first physical line
  std::string code;
};

std::vector<Logical> logical_lines(const std::string& text) {
  std::vector<Logical> out;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  Logical cur;
  bool open = false;   // inside a logical line
  int depth = 0;       // open brackets
  std::string triple;  // the delimiter of an open triple-quoted string
  while (std::getline(in, line)) {
    ++lineno;
    size_t i = 0;
    if (!open) {
      auto first = line.find_first_not_of(" \t\f\r");
      if (first == std::string::npos || line[first] == '#') continue;
      cur = Logical{lineno, static_cast<int>(first), ""};
      open = true;
      depth = 0;
      i = first;
    }
    bool backslash = false;
    for (; i < line.size(); ++i) {
      const char c = line[i];
      if (!triple.empty()) {
        if (c == '\\')
          ++i;
        else if (line.compare(i, 3, triple) == 0) {
          triple.clear();
          i += 2;
          cur.code += '"';
        }
        continue;
      }
      if (c == '#') break;
      if (c == '\'' || c == '"') {
        if (i + 2 < line.size() && line[i + 1] == c && line[i + 2] == c) {
          triple.assign(3, c);
          i += 2;
          cur.code += '"';
          continue;
        }
        size_t j = i + 1;
        while (j < line.size() && line[j] != c) j += line[j] == '\\' ? 2 : 1;
        cur.code += "\"\"";
        i = j;
        continue;
      }
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') --depth;
      if (c == '\\' && line.find_first_not_of(" \t\r", i + 1) == std::string::npos) {
        backslash = true;
        break;
      }
      cur.code += c;
    }
    if (triple.empty() && depth <= 0 && !backslash) {
      out.push_back(std::move(cur));
      open = false;
    } else {
      cur.code += ' ';
    }
  }
  if (open) out.push_back(std::move(cur));  // unterminated at end of file
  return out;
}

std::vector<std::string> split_params(const std::string& s) {
  std::vector<std::string> out;
  int depth = 0;
  std::string cur;
  auto flush = [&] {
    std::string p = cur;
    cur.clear();
    auto cut = p.find_first_of(":=");
    if (cut != std::string::npos) p = p.substr(0, cut);
    p.erase(0, p.find_first_not_of(" \t\n"));
    p.erase(p.find_last_not_of(" \t\n") + 1);
    if (p.empty() || p == "/" || p == "*" || p[0] == '*') return;  // markers, *args, **kwargs
    out.push_back(p);
  };
  for (char c : s) {
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0)
      flush();
    else
      cur += c;
  }
  flush();
  return out;
}

}  // namespace

std::vector<PyFunction> scan_source(const std::string& text) {
  static const std::regex def_re(R"(^(async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\()");
  static const std::regex class_re(R"(^class\s+([A-Za-z_][A-Za-z0-9_]*)\b)");
  static const std::regex yield_re(R"(\byield\b)");
  std::vector<PyFunction> out;
  std::vector<Scope> scopes;
  for (const auto& l : logical_lines(text)) {
    while (!scopes.empty() && l.indent <= scopes.back().indent) scopes.pop_back();
    const std::string prefix = scopes.empty() ? "" : scopes.back().qual;
    std::smatch m;
    // The def/class regexes see the line's first 1 KiB: std::regex recurses once per
    // character of a match, and a 60000-character name would overflow the stack.
    const std::string head = l.code.substr(0, 1024);
    if (std::regex_search(head, m, def_re)) {
      PyFunction f;
      f.qualname = prefix + m[2].str();
      f.line = l.line;
      f.is_async = m[1].matched;
      // Parameters: up to the parenthesis that closes the opening one.
      size_t i = static_cast<size_t>(m.position(0) + m.length(0));
      int paren = 1;
      std::string params;
      for (; i < l.code.size(); ++i) {
        if (l.code[i] == '(') ++paren;
        if (l.code[i] == ')' && --paren == 0) break;
        params += l.code[i];
      }
      f.params = split_params(params);
      // A body on the same line (`def g(): yield 1`).
      if (i < l.code.size()) f.is_generator = std::regex_search(l.code.substr(i), yield_re);
      out.push_back(f);
      scopes.push_back({l.indent, f.qualname + ".<locals>.", static_cast<int>(out.size() - 1)});
      continue;
    }
    if (std::regex_search(head, m, class_re)) {
      scopes.push_back({l.indent, prefix + m[1].str() + ".", -1});
      continue;
    }
    if (std::regex_search(l.code, yield_re)) {
      for (auto it = scopes.rbegin(); it != scopes.rend(); ++it)
        if (it->func >= 0) {
          out[static_cast<size_t>(it->func)].is_generator = true;
          break;
        }
    }
  }
  return out;
}

Result<std::vector<PyFunction>> scan_file(const std::string& path) {
  constexpr uint64_t kMaxSource = 64 << 20;  // the largest Python modules are a few MiB
  // Never blocks: a FIFO named as the source (or as the script of list-probes) would
  // otherwise wait for a writer forever.
  auto f = read_regular_file(path, kMaxSource);
  switch (f.status) {
    case RegularFile::Status::Ok: break;
    case RegularFile::Status::CannotOpen:
    case RegularFile::Status::ReadError:
      return Error::from_errno("cannot read Python source '" + path + "'", f.err);
    case RegularFile::Status::NotRegular:
      return Error{"Python source '" + path + "' is " +
                       (S_ISDIR(f.mode) ? "a directory" : S_ISFIFO(f.mode) ? "a FIFO" : "not a regular file") +
                       ", not a .py file: give the path of the script",
                   EINVAL};
    case RegularFile::Status::TooBig:
      return Error{"Python source '" + path + "' is " + std::to_string(f.size) +
                       " bytes, more than the 64 MiB a source may have: give the script that defines the function",
                   EFBIG};
  }
  return scan_source(f.text);
}

}  // namespace insa::python
