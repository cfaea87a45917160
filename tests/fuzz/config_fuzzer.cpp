// SPDX-License-Identifier: Apache-2.0
/// @file libFuzzer target: probes.yaml text through the config parser and, when it is
/// accepted, the attach plan builder (binaries, symbols, return sites, Python sources;
/// no BPF, nothing attached). Besides crashes, leaks and timeouts, it enforces the
/// rule for bad input: a rejected config is one line naming where, never an exception.
/// Built by -DINSA_FUZZ=ON with clang (build-fuzz); run by tests/run.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "attach/plan.h"
#include "config/config.h"

namespace {

/// Relative binaries resolve against the repository (probes.yaml names build/tests/...).
const std::string kConfig = std::string(INSA_SOURCE_DIR) + "/probes.yaml";

[[noreturn]] void bad(const char* stage, const std::string& message) {
  std::fprintf(stderr, "config_fuzzer: %s error is not one located line: [%s]\n", stage, message.c_str());
  std::abort();
}

/// One line, starting with the config file's name (every config error says where).
void check_line(const char* stage, const std::string& message) {
  if (message.empty() || message.find('\n') != std::string::npos || message.find('\r') != std::string::npos ||
      message.rfind(kConfig + ":", 0) != 0)
    bad(stage, message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = insa::config::parse_config(text, kConfig);
  if (!cfg) {
    check_line("parse_config", cfg.error().message);
    return 0;
  }
  auto plan = insa::plan::build_plan(*cfg);
  if (!plan) check_line("build_plan", plan.error().message);
  return 0;
}
