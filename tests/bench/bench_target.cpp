// SPDX-License-Identifier: Apache-2.0
/// @file The benchmark's target program: calls a probed request function in a
/// tight loop and reports ns per call, or at a steady rate for the agent-cost
/// run, or with N distinct first arguments for the scrape-size run.
///
///   bench_target loop N VARIANT...      RESULT loop VARIANT NS_PER_CALL CALLS ERRORS
///   bench_target rate PER_SEC SECONDS VARIANT   RESULT rate VARIANT CALLS ERRORS SECONDS
///   bench_target distinct N VARIANT     RESULT distinct VARIANT CALLS
///
/// VARIANT is nop, push or rip (see CMakeLists.txt). Built as bench_target_prom
/// (BENCH_PROM), every call is also instrumented in-process with prometheus-cpp
/// the way an application would do it itself: in-flight gauge, counter by
/// status, duration histogram. In loop mode, the command in $BENCH_AT_EXIT (if
/// set) runs after the last measurement, while probes are still attached.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench_req.h"

#ifdef BENCH_PROM
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#endif

static struct bench_ctx g_ctx;
extern "C" {
struct bench_ctx* volatile bench_ctx = &g_ctx;
}

namespace {

using ReqFn = long (*)(long, long);

ReqFn variant_fn(const std::string& v) {
  if (v == "nop") return req_nop;
  if (v == "push") return req_push;
  if (v == "rip") return req_rip;
  std::fprintf(stderr, "bench_target: unknown variant '%s' (nop, push, rip)\n", v.c_str());
  std::exit(2);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

#ifdef BENCH_PROM
/// What an application instrumented by hand would keep: families created once,
/// children resolved once, updates on every call.
struct InProcess {
  prometheus::Registry registry;
  prometheus::Counter* ok;
  prometheus::Counter* err;
  prometheus::Histogram* duration;
  prometheus::Gauge* inflight;
  InProcess() {
    auto& c = prometheus::BuildCounter().Name("bench_requests_total").Help("requests").Register(registry);
    ok = &c.Add({{"status", "success"}});
    err = &c.Add({{"status", "error"}});
    auto& h = prometheus::BuildHistogram().Name("bench_request_duration_seconds").Help("time").Register(registry);
    duration = &h.Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5});
    auto& g = prometheus::BuildGauge().Name("bench_active_requests").Help("in flight").Register(registry);
    inflight = &g.Add({});
  }
};
InProcess* g_prom;
#endif

inline long call(ReqFn fn, long id, long size) {
#ifdef BENCH_PROM
  g_prom->inflight->Increment();
  auto t0 = std::chrono::steady_clock::now();
  long r = fn(id, size);
  auto d = std::chrono::steady_clock::now() - t0;
  (r < 0 ? g_prom->err : g_prom->ok)->Increment();
  g_prom->duration->Observe(std::chrono::duration<double>(d).count());
  g_prom->inflight->Decrement();
  return r;
#else
  return fn(id, size);
#endif
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_target loop N VARIANT... | rate PER_SEC SECONDS VARIANT | distinct N VARIANT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef BENCH_PROM
  InProcess prom;
  g_prom = &prom;
#endif
  if (argc < 4) return usage();
  std::string mode = argv[1];
  if (mode == "loop") {
    long n = std::atol(argv[2]);
    for (int a = 3; a < argc; ++a) {
      ReqFn fn = variant_fn(argv[a]);
      for (long i = 0; i < 2000; ++i) call(fn, i, 64);  // warm caches, first-hit uprobe work
      long errors = 0;
      uint64_t t0 = now_ns();
      for (long i = 0; i < n; ++i) errors += call(fn, i, 64) < 0;
      uint64_t t1 = now_ns();
      std::printf("RESULT loop %s %.1f %ld %ld\n", argv[a], double(t1 - t0) / double(n), n, errors);
      std::fflush(stdout);
    }
    // The runner reads BPF run-time statistics while this process still holds
    // the attach points (bpftrace -c and bench_floor detach when it exits).
    if (const char* cmd = std::getenv("BENCH_AT_EXIT")) return std::system(cmd) == 0 ? 0 : 1;
    return 0;
  }
  if (mode == "rate" && argc == 5) {
    // Steady rate: a batch every millisecond, absolute deadlines so sleeping
    // late does not lower the rate.
    long per_sec = std::atol(argv[2]);
    double seconds = std::atof(argv[3]);
    ReqFn fn = variant_fn(argv[4]);
    long ticks = long(seconds * 1000), calls = 0, errors = 0;
    timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long t = 0; t < ticks; ++t) {
      long target = per_sec * (t + 1) / 1000;
      for (; calls < target; ++calls) errors += call(fn, calls, 64 + calls % 1000) < 0;
      next.tv_nsec += 1000000;
      if (next.tv_nsec >= 1000000000) {
        next.tv_nsec -= 1000000000;
        next.tv_sec++;
      }
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    }
    std::printf("RESULT rate %s %ld %ld %.1f\n", argv[4], calls, errors, seconds);
    return 0;
  }
  if (mode == "distinct") {
    long n = std::atol(argv[2]);
    ReqFn fn = variant_fn(argv[3]);
    for (long i = 0; i < n; ++i) call(fn, i, 64);
    std::printf("RESULT distinct %s %ld\n", argv[3], n);
    return 0;
  }
  return usage();
}
