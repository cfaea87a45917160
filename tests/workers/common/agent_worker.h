// SPDX-License-Identifier: Apache-2.0
/// @file agent_worker.h
/// What sizing_agent_worker and crm_agent_worker share: the request handler the probes watch
/// and the fetch -> local queue -> dispatch loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "bus/bus.h"
#include "common/observable.h"
#include "common/request_plan.h"
#include "common/truth.h"

namespace insa_demo {

/// Seed of the request schedule (set from --seed before the first request).
extern std::uint64_t g_request_seed;

/// Handles one task: sleeps the planned time; returns the response size (>= 0) or -1.
/// Same contract as in request_worker. Called exactly once per task message.
INSA_OBSERVABLE long handle_request(long request_id, const char* agent_type, long request_size);

/// Calls handle_request and records the request families in `truth` for `worker_name`.
long handle_and_record(long request_id, const std::string& agent_type, long request_size,
                       Truth& truth);

/// Options every agent worker takes.
struct WorkerOptions {
  std::string run_dir, truth_path, worker_name, worker_type, agent;
  double duration_s = 0;     ///< 0: until SIGTERM
  double exit_after_s = 0;   ///< > 0: stop after this long and exit with exit_code
  int exit_code = 0;
};

/// Fetches batches of up to 8 messages, keeps them in a local queue (worker_queue_size) and
/// dispatches each through the bus library. `planned_s(m)` gives the intended processing time
/// for the truth file. `tick()` runs between messages. Returns true when it stopped because --exit-after-s
/// elapsed (the caller then exits with exit_code), false on a signal or --duration-s.
bool run_agent_loop(insa_bus::Client& bus, const WorkerOptions& o, const insa_bus::Handler& h,
                    const std::function<double(const insa_bus::Message&)>& planned_s,
                    const std::function<void()>& tick, Truth& truth);

}  // namespace insa_demo
