// SPDX-License-Identifier: Apache-2.0
/// @file sizing_agent_worker.cpp
/// Demo agent "sizing_agent": handles "task" messages from the orchestrator with
/// insa_demo::handle_request, hands successful sizings to crm_agent ("handoff") and reports
/// every task back to the orchestrator ("result"). No metrics code.

#include <unistd.h>

#include <cstdio>

#include "bus/bus.h"
#include "common/agent_worker.h"
#include "common/cli.h"
#include "common/lifecycle.h"

using namespace insa_demo;

static const char* kUsage =
    "usage: sizing_agent_worker --run-dir DIR [--seed S] [--duration-s D] [--truth FILE]\n"
    "                           [--exit-after-s S --exit-code C]\n";

int main(int argc, char** argv) {
  Args args(argc, argv, {"run-dir", "seed", "duration-s", "truth", "exit-after-s", "exit-code"},
            {}, kUsage);
  WorkerOptions o;
  o.run_dir = args.str("run-dir", ".");
  o.truth_path = args.str("truth", "");
  o.worker_name = "sizing_agent_worker";
  o.worker_type = "sizing";
  o.agent = "sizing_agent";
  o.duration_s = args.real("duration-s", 0);
  o.exit_after_s = args.real("exit-after-s", 0);
  o.exit_code = static_cast<int>(args.num("exit-code", 0));
  g_request_seed = static_cast<std::uint64_t>(args.num("seed", 1));
  install_stop_handler();

  Truth truth;
  truth.comment("insa-demo truth v1 program=sizing_agent_worker pid=" + std::to_string(getpid()));
  auto bus = insa_bus::Client::connect(o.run_dir, o.agent, 10000, &truth);
  if (!bus) {
    std::fprintf(stderr, "sizing_agent_worker: cannot reach the bus in %s\n", o.run_dir.c_str());
    return 1;
  }
  worker_started(o.worker_name.c_str(), o.worker_type.c_str());

  insa_bus::Handler handler = [&](const insa_bus::Message& m) -> long {
    if (m.type == "task") {
      long r = handle_and_record(m.id, o.agent, m.bytes, truth);
      if (r >= 0) bus->send("crm_agent", "handoff", m.id, r);
      bus->send("orchestrator", "result", m.id, r < 0 ? 0 : r);
      return r;
    }
    work_for_ms(1);  // config_reload and anything else
    return 0;
  };
  auto planned = [](const insa_bus::Message& m) {
    return m.type == "task" ? plan_for(g_request_seed, m.id).duration_ms / 1000.0 : 0.001;
  };
  bool scheduled_exit = run_agent_loop(*bus, o, handler, planned, [] {}, truth);

  int code = scheduled_exit ? o.exit_code : 0;
  worker_stopped(o.worker_name.c_str(), code);
  if (!truth.write(o.truth_path)) std::perror("sizing_agent_worker: writing truth");
  return code;
}
