// SPDX-License-Identifier: Apache-2.0
#include "python/source.h"

#include <fstream>
#include <regex>
#include <sstream>

namespace insa::python {
namespace {

struct Scope {
  int indent;
  std::string qual;  ///< qualname prefix for children ("C." or "f.<locals>.")
  int func = -1;     ///< index of the function this scope is the body of
};

/// Strips a comment and string literals well enough to count brackets.
std::string code_part(const std::string& line) {
  std::string out;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == '\\') ++i;
      else if (c == quote) quote = 0;
      continue;
    }
    if (c == '#') break;
    if (c == '\'' || c == '"') {
      quote = c;
      out += c;
      continue;
    }
    out += c;
  }
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
    if (c == ',' && depth == 0) flush();
    else cur += c;
  }
  flush();
  return out;
}

}  // namespace

std::vector<PyFunction> scan_source(const std::string& text) {
  static const std::regex def_re(R"(^(\s*)(async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\()");
  static const std::regex class_re(R"(^(\s*)class\s+([A-Za-z_][A-Za-z0-9_]*)\b)");
  static const std::regex yield_re(R"(\byield\b)");
  std::vector<PyFunction> out;
  std::vector<Scope> scopes;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  std::string pending;  // a def whose parameter list spans lines
  int pending_func = -1;
  int paren = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (pending_func >= 0) {
      std::string c = code_part(line);
      for (char ch : c) {
        if (ch == '(') ++paren;
        if (ch == ')' && --paren == 0) break;
        pending += ch;
      }
      if (paren == 0) {
        out[pending_func].params = split_params(pending);
        pending_func = -1;
      }
      continue;
    }
    auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    int indent = static_cast<int>(first);
    while (!scopes.empty() && indent <= scopes.back().indent) scopes.pop_back();
    std::string prefix = scopes.empty() ? "" : scopes.back().qual;
    std::smatch m;
    if (std::regex_search(line, m, def_re)) {
      PyFunction f;
      f.qualname = prefix + m[3].str();
      f.line = lineno;
      f.is_async = m[2].matched;
      out.push_back(f);
      int idx = static_cast<int>(out.size() - 1);
      scopes.push_back({indent, f.qualname + ".<locals>.", idx});
      // Parameters from the opening parenthesis on.
      std::string rest = code_part(line.substr(static_cast<size_t>(m.position(0) + m.length(0))));
      paren = 1;
      pending.clear();
      for (char ch : rest) {
        if (ch == '(') ++paren;
        if (ch == ')' && --paren == 0) break;
        pending += ch;
      }
      if (paren == 0) out[idx].params = split_params(pending);
      else pending_func = idx;
      continue;
    }
    if (std::regex_search(line, m, class_re)) {
      scopes.push_back({indent, prefix + m[2].str() + ".", -1});
      continue;
    }
    if (std::regex_search(code_part(line), yield_re)) {
      for (auto it = scopes.rbegin(); it != scopes.rend(); ++it)
        if (it->func >= 0) {
          out[it->func].is_generator = true;
          break;
        }
    }
  }
  return out;
}

Result<std::vector<PyFunction>> scan_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::from_errno("cannot read Python source '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return scan_source(ss.str());
}

}  // namespace insa::python
