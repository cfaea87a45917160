// SPDX-License-Identifier: Apache-2.0
/// @file The hash the kernel side computes over a Python exception type name
/// (bpf/insa_probes.bpf.c: py_name_hash): FNV-1a of the part after the last '.',
/// never 0. Rules compare against it (`exception == TimeoutError`).
#pragma once

#include <cstdint>
#include <string_view>

namespace insa {

inline uint32_t python_name_hash(std::string_view name) {
  uint32_t h = 2166136261u;
  for (unsigned char c : name) {
    if (c == '.') {
      h = 2166136261u;
      continue;
    }
    h ^= c;
    h *= 16777619u;
  }
  return h ? h : 1;
}

}  // namespace insa
