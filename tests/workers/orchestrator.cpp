// SPDX-License-Identifier: Apache-2.0
/// @file orchestrator.cpp
/// Demo "orchestrator": answers a seeded stream of queries from an LRU cache with a TTL; on
/// a miss it sends a "task" to sizing_agent or crm_agent over the bus, guarded by retries, a
/// circuit breaker per agent and a dead-letter queue per agent that it replays. Failures
/// come from a seeded schedule (scattered faults plus outage windows that trip the breaker).
/// No metrics code.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "bus/bus.h"
#include "common/cli.h"
#include "common/lifecycle.h"
#include "common/request_plan.h"
#include "resilience/resilience.h"

namespace insa_demo {

/// Called once per cache lookup; returns 1 on a hit, 0 on a miss (an expired entry is
/// evicted with reason "ttl" first and counts as a miss).
INSA_OBSERVABLE long cache_lookup(const char* cache_type, long key);
/// Called once per hit / per miss.
INSA_OBSERVABLE void cache_hit(const char* cache_type, long key);
INSA_OBSERVABLE void cache_miss(const char* cache_type, long key);
/// Called once per evicted entry; reason is "capacity" or "ttl".
INSA_OBSERVABLE void cache_evict(const char* cache_type, const char* reason, long key);
/// Called with the number of entries at start (0) and after every insert or eviction.
INSA_OBSERVABLE void cache_size(const char* cache_type, long entries);
/// One try (attempt 0 = first, 1.. = retries) to hand task `task_id` to `agent_type`.
/// Returns 0 when the task was sent, -1 when the (simulated) agent call failed.
INSA_OBSERVABLE long call_agent(const char* agent_type, long task_id, long attempt);

void cache_hit(const char* cache_type, long key) {
  (void)cache_type;
  INSA_MARKER_BODY(key);
}
void cache_miss(const char* cache_type, long key) {
  (void)cache_type;
  INSA_MARKER_BODY(key);
}
void cache_evict(const char* cache_type, const char* reason, long key) {
  (void)cache_type, (void)reason;
  INSA_MARKER_BODY(key);
}
void cache_size(const char* cache_type, long entries) {
  (void)cache_type;
  INSA_MARKER_BODY(entries);
}

/// LRU cache of query keys; ages are counted in queries so the schedule is deterministic.
class LruCache {
 public:
  LruCache(std::string type, size_t capacity, long ttl_queries, Truth& truth)
      : type_(std::move(type)), capacity_(capacity), ttl_(ttl_queries), truth_(truth) {
    publish();
  }
  bool lookup(long key, long now_q) {
    long r = cache_lookup_impl(key, now_q);
    truth_.add(r ? "insa_cache_hits_total" : "insa_cache_misses_total", {{"cache_type", type_}});
    return r;
  }
  void insert(long key, long now_q) {
    order_.push_front(key);
    index_[key] = {order_.begin(), now_q};
    while (index_.size() > capacity_) evict(order_.back(), "capacity");
    publish();
  }
  long cache_lookup_impl(long key, long now_q);

 private:
  struct Entry {
    std::list<long>::iterator pos;
    long inserted_q;
  };
  void evict(long key, const char* reason) {
    cache_evict(type_.c_str(), reason, key);
    truth_.add("insa_cache_evictions_total", {{"cache_type", type_}, {"reason", reason}});
    order_.erase(index_[key].pos);
    index_.erase(key);
  }
  void publish() {
    cache_size(type_.c_str(), static_cast<long>(index_.size()));
    truth_.set("insa_cache_size_entries", {{"cache_type", type_}},
               static_cast<double>(index_.size()));
  }
  friend long cache_lookup(const char*, long);
  std::string type_;
  size_t capacity_;
  long ttl_;
  Truth& truth_;
  std::list<long> order_;
  std::unordered_map<long, Entry> index_;
  long now_q_ = 0;
};

static LruCache* g_cache = nullptr;

long cache_lookup(const char* cache_type, long key) {
  (void)cache_type;
  LruCache& c = *g_cache;
  auto it = c.index_.find(key);
  if (it != c.index_.end() && c.now_q_ - it->second.inserted_q >= c.ttl_) {
    c.evict(key, "ttl");
    c.publish();
    it = c.index_.end();
  }
  if (it == c.index_.end()) {
    cache_miss(cache_type, key);
    return 0;
  }
  c.order_.splice(c.order_.begin(), c.order_, it->second.pos);
  cache_hit(cache_type, key);
  return 1;
}

long LruCache::cache_lookup_impl(long key, long now_q) {
  now_q_ = now_q;
  return cache_lookup(type_.c_str(), key);
}

}  // namespace insa_demo

using namespace insa_demo;
using namespace insa_resilience;

namespace {

std::uint64_t g_seed = 1;
insa_bus::Client* g_bus = nullptr;
long g_now_q = 0;

/// Outage windows (in query numbers) during which every call to the agent fails.
bool in_outage(const std::string& agent, long q) {
  return agent == "sizing_agent" ? q % 300 >= 150 && q % 300 < 170 : q % 300 >= 40 && q % 300 < 80;
}

struct Downstream {
  std::string agent;
  std::unique_ptr<CircuitBreaker> breaker;
  std::unique_ptr<DeadLetterQueue> dlq;
  long replays = 0;
};

}  // namespace

namespace insa_demo {
long call_agent(const char* agent_type, long task_id, long attempt) {
  bool fail = in_outage(agent_type, g_now_q) ||
              pick(g_seed, 30 + static_cast<std::uint64_t>(attempt), task_id, 100) < 8;
  if (fail) {
    work_for_ms(2);
    return -1;
  }
  return g_bus->send(agent_type, "task", task_id, plan_for(g_seed, task_id).request_size);
}
}  // namespace insa_demo

static const char* kUsage =
    "usage: orchestrator --run-dir DIR [--seed S] [--rate R] [--requests N | --duration-s D]\n"
    "                    [--linger-ms MS] [--truth FILE]\n"
    "  without --requests/--duration-s it runs until SIGTERM\n";

int main(int argc, char** argv) {
  Args args(argc, argv,
            {"run-dir", "seed", "rate", "requests", "duration-s", "linger-ms", "truth",
             "start-delay-ms"},
            {}, kUsage);
  g_seed = static_cast<std::uint64_t>(args.num("seed", 1));
  const double rate = args.real("rate", 20);
  const long requests = static_cast<long>(args.num("requests", 0));
  const double duration_s = args.real("duration-s", 0);
  install_stop_handler();

  Truth truth;
  truth.comment("insa-demo truth v1 program=orchestrator pid=" + std::to_string(getpid()));
  auto bus = insa_bus::Client::connect(args.str("run-dir", "."), "orchestrator", 10000, &truth);
  if (!bus) {
    std::fprintf(stderr, "orchestrator: cannot reach the bus\n");
    return 1;
  }
  g_bus = bus.get();
  worker_started("orchestrator", "orchestrator");
  LruCache cache("orchestrator", 32, 200, truth);
  g_cache = &cache;
  std::map<std::string, Downstream> down;
  for (const char* a : {"sizing_agent", "crm_agent"}) {
    down[a] = Downstream{a, std::make_unique<CircuitBreaker>(a, 3, 5, &truth),
                         std::make_unique<DeadLetterQueue>(a, &truth)};
  }

  // Results from the agents: processing is a 1 ms bookkeeping step.
  insa_bus::Handler on_result = [](const insa_bus::Message&) -> long {
    work_for_ms(1);
    return 0;
  };
  auto drain_results = [&] {
    for (auto batch = bus->fetch(16); !batch.empty(); batch = bus->fetch(16))
      for (auto& m : batch) bus->process(m, on_result, 0.001);
  };

  sleep_until_or_stop(std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(args.num("start-delay-ms", 0)));
  const auto start = std::chrono::steady_clock::now();
  for (long q = 0; !g_stop.load(); ++q) {
    if (requests > 0 && q >= requests) break;
    if (duration_s > 0 && std::chrono::steady_clock::now() - start >=
                              std::chrono::duration<double>(duration_s))
      break;
    if (rate > 0 &&
        !sleep_until_or_stop(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                         std::chrono::duration<double>(q / rate))))
      break;
    g_now_q = q;
    drain_results();
    // 70% of queries go to 24 hot keys, the rest to 400 cold ones.
    long key = pick(g_seed, 20, q, 100) < 70 ? static_cast<long>(pick(g_seed, 21, q, 24))
                                             : 100 + static_cast<long>(pick(g_seed, 22, q, 400));
    if (!cache.lookup(key, q)) {
      Downstream& d = down[key % 3 == 0 ? "crm_agent" : "sizing_agent"];
      long r = -1;
      if (d.breaker->allow()) {
        struct Ctx {
          const char* agent;
          long task;
        } ctx{d.agent.c_str(), q};
        r = with_retries(
            d.agent, 2,
            [](long attempt, void* c) {
              auto* x = static_cast<Ctx*>(c);
              return call_agent(x->agent, x->task, attempt);
            },
            &ctx, &truth);
        if (r >= 0) d.breaker->on_success(); else d.breaker->on_failure();
      }
      if (r >= 0) cache.insert(key, q);
      else d.dlq->push(q);
    }
    // Every 40 queries each dead-letter queue replays its oldest message.
    if (q % 40 == 39)
      for (auto& [name, d] : down) {
        d.dlq->replay_one(
            [](long id, void* c) {
              auto* dd = static_cast<Downstream*>(c);
              if (in_outage(dd->agent, g_now_q) || pick(g_seed, 41, id * 7 + dd->replays++, 100) < 20)
                return -1L;
              return g_bus->send(dd->agent, "task", id, plan_for(g_seed, id).request_size);
            },
            &d);
      }
    if (q % 100 == 99) bus->broadcast("config_reload", q, 64);
  }
  // Linger: keep consuming results so queues drain before the truth is written.
  auto linger_end = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(args.num("linger-ms", 0));
  do {
    drain_results();
  } while (sleep_until_or_stop(std::min(linger_end, std::chrono::steady_clock::now() +
                                                         std::chrono::milliseconds(20))) &&
           std::chrono::steady_clock::now() < linger_end);
  worker_stopped("orchestrator", 0);
  if (!truth.write(args.str("truth", ""))) std::perror("orchestrator: writing truth");
  return 0;
}
