// SPDX-License-Identifier: Apache-2.0
/// @file request_worker.cpp
/// A "legacy" single-process worker with no metrics code: the probe engine's first fixture.
///
/// Observable function (see PROBES.md):
///   long insa_demo::handle_request(long request_id, char const* agent_type, long request_size)
///     arg1 request id (0, 1, 2, ...), arg2 agent type string, arg3 request size in bytes;
///     returns the response size in bytes (>= 0) or -1 on error.
/// Each request follows a schedule that is a pure function of (--seed, request id):
///   success  sleeps 2, 10 or 40 ms and returns a response size
///   error    sleeps 2 ms and returns -1 (with --errors throw: throws std::runtime_error)
///   slow     sleeps 150 ms and returns a response size (probes.yaml calls > 100 ms timeout)

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/cli.h"
#include "common/observable.h"
#include "common/request_plan.h"
#include "common/truth.h"

namespace insa_demo {

static std::uint64_t g_seed = 1;
static bool g_throw_errors = false;

/// The request handler the probes watch. Called exactly once per request.
INSA_OBSERVABLE long handle_request(long request_id, const char* agent_type, long request_size) {
  Plan p = plan_for(g_seed, request_id);
  (void)agent_type;
  (void)request_size;
  work_for_ms(p.duration_ms);
  if (p.kind == Plan::kError) {
    if (g_throw_errors) throw std::runtime_error("request failed");
    return -1;
  }
  return p.response_size;
}

}  // namespace insa_demo

using namespace insa_demo;

static const char* kUsage =
    "usage: request_worker [--seed S] [--requests N | --forever] [--rate R] [--threads T]\n"
    "                      [--agent NAME] [--errors return|throw] [--start-delay-ms MS]\n"
    "                      [--linger-ms MS] [--truth FILE]\n"
    "  --requests N      handle N requests then exit (default 100)\n"
    "  --forever         handle requests until SIGTERM/SIGINT\n"
    "  --rate R          start at most R requests per second in total (default: no pacing)\n"
    "  --threads T       concurrent handler threads; request i runs on thread i % T\n"
    "  --errors throw    failing requests throw instead of returning -1\n"
    "  --truth FILE      write ground truth here at exit (also on SIGTERM)\n";

int main(int argc, char** argv) {
  Args args(argc, argv,
            {"seed", "requests", "rate", "threads", "agent", "errors", "start-delay-ms",
             "linger-ms", "truth"},
            {"forever"}, kUsage);
  g_seed = static_cast<std::uint64_t>(args.num("seed", 1));
  const bool forever = args.has("forever");
  const long requests = static_cast<long>(args.num("requests", 100));
  const double rate = args.real("rate", 0);
  const int threads = static_cast<int>(args.num("threads", 1));
  const std::string agent = args.str("agent", "sizing_agent");
  const std::string errors = args.str("errors", "return");
  const std::string truth_path = args.str("truth", "");
  if (threads < 1 || requests < 0 || rate < 0 || (errors != "return" && errors != "throw")) {
    std::fprintf(stderr, "request_worker: bad option value\n%s", kUsage);
    return 2;
  }
  g_throw_errors = errors == "throw";
  install_stop_handler();

  Truth truth;
  truth.comment("insa-demo truth v1 program=request_worker pid=" + std::to_string(getpid()) +
                " seed=" + std::to_string(g_seed));
  const Labels agent_l{{"agent_type", agent}};

  std::printf("request_worker pid=%d ready\n", getpid());
  std::fflush(stdout);
  sleep_until_or_stop(std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(args.num("start-delay-ms", 0)));

  const auto start = std::chrono::steady_clock::now();
  auto run = [&](int t) {
    for (long id = t; forever || id < requests; id += threads) {
      if (g_stop.load()) return;
      if (rate > 0) {
        auto at = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(id / rate));
        if (!sleep_until_or_stop(at)) return;
      }
      Plan p = plan_for(g_seed, id);
      long result;
      try {
        result = handle_request(id, agent.c_str(), p.request_size);
      } catch (const std::runtime_error&) {
        result = -1;
      }
      const char* status = result < 0 ? "error" : status_of(p);
      truth.add("insa_agent_requests_total", {{"agent_type", agent}, {"status", status}});
      truth.observe("insa_agent_request_duration_seconds", agent_l, p.duration_ms / 1000.0);
      truth.observe("insa_agent_request_size_bytes", agent_l, static_cast<double>(p.request_size));
      if (result >= 0)
        truth.observe("insa_agent_response_size_bytes", agent_l, static_cast<double>(result));
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(run, t);
  for (auto& th : pool) th.join();

  sleep_until_or_stop(std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(args.num("linger-ms", 0)));
  truth.set("insa_worker_active_requests", {{"worker_name", "request_worker"}}, 0);
  if (!truth.write(truth_path)) {
    std::perror(("request_worker: writing " + truth_path).c_str());
    return 1;
  }
  return 0;
}
