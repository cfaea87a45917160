// SPDX-License-Identifier: Apache-2.0
#include "common/agent_worker.h"

#include <deque>

#include "common/cli.h"
#include "common/lifecycle.h"

namespace insa_demo {

std::uint64_t g_request_seed = 1;

long handle_request(long request_id, const char* agent_type, long request_size) {
  (void)agent_type, (void)request_size;
  Plan p = plan_for(g_request_seed, request_id);
  work_for_ms(p.duration_ms);
  return p.kind == Plan::kError ? -1 : p.response_size;
}

long handle_and_record(long request_id, const std::string& agent_type, long request_size,
                       Truth& truth) {
  Plan p = plan_for(g_request_seed, request_id);
  long r = handle_request(request_id, agent_type.c_str(), request_size);
  const Labels a{{"agent_type", agent_type}};
  truth.add("insa_agent_requests_total",
            {{"agent_type", agent_type}, {"status", r < 0 ? "error" : status_of(p)}});
  truth.observe("insa_agent_request_duration_seconds", a, p.duration_ms / 1000.0);
  truth.observe("insa_agent_request_size_bytes", a, static_cast<double>(request_size));
  if (r >= 0) truth.observe("insa_agent_response_size_bytes", a, static_cast<double>(r));
  return r;
}

bool run_agent_loop(insa_bus::Client& bus, const WorkerOptions& o, const insa_bus::Handler& h,
                    const std::function<double(const insa_bus::Message&)>& planned_s,
                    const std::function<void()>& tick, Truth& truth) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto limit = [&](double s) { return s > 0 && clock::now() - start >= std::chrono::duration<double>(s); };
  std::deque<insa_bus::Message> local;
  auto publish = [&] {
    worker_queue_size(o.worker_name.c_str(), static_cast<long>(local.size()));
    truth.set("insa_worker_queue_size", {{"worker_name", o.worker_name}},
              static_cast<double>(local.size()));
  };
  publish();
  while (!g_stop.load() && !limit(o.duration_s) && !limit(o.exit_after_s)) {
    tick();
    auto batch = bus.fetch(8);
    if (batch.empty()) {
      work_for_ms(10);
      continue;
    }
    for (auto& m : batch) local.push_back(std::move(m));
    publish();
    // The fetched batch is always finished, even when a stop arrives meanwhile.
    while (!local.empty()) {
      insa_bus::Message m = std::move(local.front());
      local.pop_front();
      publish();
      bus.process(m, h, planned_s(m));
      tick();
    }
  }
  truth.set("insa_worker_active_requests", {{"worker_name", o.worker_name}}, 0);
  return !g_stop.load() && limit(o.exit_after_s);
}

}  // namespace insa_demo
