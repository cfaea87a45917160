// SPDX-License-Identifier: Apache-2.0
/// @file The long-running agent: attach, serve, watch processes, reload on HUP.
#pragma once

#include <string>

namespace insa::app {

/// Why this process cannot load BPF ("" when it can): not root and lacking
/// CAP_BPF/CAP_PERFMON.
std::string privilege_problem();

/// Runs until SIGINT/SIGTERM. Fatal start-up errors throw insa::FatalError.
int run_agent(const std::string& config_file, const std::string& listen_override);

}  // namespace insa::app
