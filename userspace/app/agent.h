// SPDX-License-Identifier: Apache-2.0
/// @file The long-running agent: attach, serve, watch processes, reload on HUP.
#pragma once

#include <string>

namespace insa::app {

/// Why this process cannot load BPF ("" when it can): not root and lacking
/// CAP_BPF/CAP_PERFMON.
std::string privilege_problem();

struct AgentOptions {
  std::string config_file = "probes.yaml";
  std::string listen;           ///< "" = exporter.listen_address of the config
  std::string web_config_file;  ///< "" = plain HTTP, no auth
  std::string telemetry_path = "/metrics";
  bool enable_lifecycle = false;  ///< POST /-/reload
};

/// Runs until SIGINT/SIGTERM. Fatal start-up errors throw insa::FatalError.
int run_agent(const AgentOptions& opt);

}  // namespace insa::app
