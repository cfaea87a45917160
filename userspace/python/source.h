// SPDX-License-Identifier: Apache-2.0
/// @file Functions defined in a Python source file, found without running it:
/// `def` and `async def` at any nesting, named by their qualname as CPython does
/// (Class.method, outer.<locals>.inner), with their parameter names. Used by
/// list-probes and to turn `$name` into a parameter position.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace insa::python {

struct PyFunction {
  std::string qualname;
  int line = 0;
  bool is_async = false;
  bool is_generator = false;          ///< contains `yield` (async def + yield: async generator)
  std::vector<std::string> params;    ///< positional and keyword parameters, in order (self included)
};

/// Parses Python source text. Tolerant: unknown constructs are skipped.
std::vector<PyFunction> scan_source(const std::string& text);

/// Reads and parses a file.
Result<std::vector<PyFunction>> scan_file(const std::string& path);

}  // namespace insa::python
