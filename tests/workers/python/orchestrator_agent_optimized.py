#!/usr/bin/python3.11
# SPDX-License-Identifier: Apache-2.0
"""orchestrator_agent_optimized: answers a seeded stream of queries from an LRU cache with
a TTL; a miss becomes a "task" for sizing_agent or crm_agent over the bus, guarded by
retries (agent_retry), a circuit breaker per agent (circuit_breaker) and a dead-letter
queue per agent (dead_letter_queue) replayed every 40 queries. Results come back over the
bus. Every 100 queries it broadcasts a config_reload. No metrics code."""
import asyncio
import collections
import sys

from agent_retry import with_retries
from bus_client import BusClient
from circuit_breaker import CircuitBreaker
from dead_letter_queue import DeadLetterQueue
from platform_common import Plan, Stopper, Truth, parser, pick

CACHE_TYPE = "orchestrator"


class LRUCache:
    """Keys with an insertion age counted in queries (deterministic TTL). Each lookup
    calls exactly one of _hit/_miss; each eviction _evict(key, reason) with reason
    "capacity" or "ttl"; _resized(entries) at creation and after every insert/eviction."""

    def __init__(self, capacity, ttl_queries, truth):
        self._data = collections.OrderedDict()  # key -> query number when inserted
        self._capacity = capacity
        self._ttl = ttl_queries
        self._truth = truth
        self._resized(0)

    def _hit(self, key):
        self._data.move_to_end(key)
        self._truth.add("insa_cache_hits_total", (("cache_type", CACHE_TYPE),))

    def _miss(self, key):
        self._truth.add("insa_cache_misses_total", (("cache_type", CACHE_TYPE),))

    def _evict(self, key, reason):
        del self._data[key]
        self._truth.add("insa_cache_evictions_total", (("cache_type", CACHE_TYPE), ("reason", reason)))

    def _resized(self, entries):
        self._truth.set("insa_cache_size_entries", (("cache_type", CACHE_TYPE),), entries)

    def lookup(self, key, now_q):
        """True on a hit. An expired entry is evicted (ttl) and is a miss."""
        inserted = self._data.get(key)
        if inserted is not None and now_q - inserted >= self._ttl:
            self._evict(key, "ttl")
            self._resized(len(self._data))
            inserted = None
        if inserted is None:
            self._miss(key)
            return False
        self._hit(key)
        return True

    def insert(self, key, now_q):
        self._data[key] = now_q
        self._data.move_to_end(key)
        while len(self._data) > self._capacity:
            self._evict(next(iter(self._data)), "capacity")
        self._resized(len(self._data))


def in_outage(agent, q):
    """Outage windows (query numbers) in which every call to the agent fails."""
    return 150 <= q % 300 < 170 if agent == "sizing_agent" else 40 <= q % 300 < 80


class Downstream:
    def __init__(self, agent, truth):
        self.agent = agent
        self.breaker = CircuitBreaker(agent, 3, 5, truth)
        self.dlq = DeadLetterQueue(agent, truth)
        self.replays = 0


class Orchestrator:
    def __init__(self, args, bus, truth, stopper):
        self.seed = args.seed
        self.bus = bus
        self.truth = truth
        self.stopper = stopper
        self.cache = LRUCache(32, 200, truth)
        self.down = {a: Downstream(a, truth) for a in ("sizing_agent", "crm_agent")}
        self.now_q = 0

    async def call_agent(self, agent, task_id, attempt):
        """One try to hand a task to an agent; raises ConnectionError when it fails."""
        if in_outage(agent, self.now_q) or pick(self.seed, 30 + attempt, task_id, 100) < 8:
            await asyncio.sleep(0.002)
            raise ConnectionError("%s unreachable" % agent)
        self.bus.send(agent, "task", task_id, Plan(self.seed, task_id).request_size)

    async def on_result(self, message):
        await asyncio.sleep(0.001)  # bookkeeping of one result

    async def drain_results(self):
        while batch := await self.bus.fetch(16):
            for m in batch:
                await self.bus.process(m, self.on_result, 0.001)

    async def query(self, q):
        self.now_q = q
        await self.drain_results()
        # 70% of queries go to 24 hot keys, the rest to 400 cold ones.
        key = (pick(self.seed, 21, q, 24) if pick(self.seed, 20, q, 100) < 70
               else 100 + pick(self.seed, 22, q, 400))
        if not self.cache.lookup(key, q):
            d = self.down["crm_agent" if key % 3 == 0 else "sizing_agent"]
            ok = False
            if d.breaker.allow():
                try:
                    await with_retries(d.agent, 2, lambda attempt: self.call_agent(d.agent, q, attempt),
                                       self.truth)
                    ok = True
                    d.breaker.on_success()
                except ConnectionError:
                    d.breaker.on_failure()
            if ok:
                self.cache.insert(key, q)
            else:
                d.dlq.push(q)
        if q % 40 == 39:
            # Every 40 queries each dead-letter queue replays its oldest message, each
            # replay in its own task.
            replays = []
            for name in sorted(self.down):
                d = self.down[name]
                if len(d.dlq):
                    replays.append(asyncio.create_task(
                        d.dlq.replay(d.agent, d.dlq.pop(), self._replayer(d))))
            await asyncio.gather(*replays)
        if q % 100 == 99:
            self.bus.broadcast("config_reload", q, 64)

    def _replayer(self, d):
        async def deliver(message_id):
            n = d.replays
            d.replays += 1
            if in_outage(d.agent, self.now_q) or pick(self.seed, 41, message_id * 7 + n, 100) < 20:
                await asyncio.sleep(0.002)
                raise ConnectionError("%s unreachable" % d.agent)
            self.bus.send(d.agent, "task", message_id, Plan(self.seed, message_id).request_size)
        return deliver

    async def run(self, rate, requests, duration_s, linger_ms):
        loop = asyncio.get_running_loop()
        start = loop.time()
        q = 0
        while not self.stopper.stopped:
            if requests and q >= requests:
                break
            if duration_s and loop.time() - start >= duration_s:
                break
            if rate > 0 and not await self.stopper.sleep(start + q / rate - loop.time()):
                break
            await self.query(q)
            q += 1
        # Linger: keep consuming results so queues drain before the truth is written.
        end = loop.time() + linger_ms / 1000
        while True:
            await self.drain_results()
            if loop.time() >= end or not await self.stopper.sleep(min(0.02, end - loop.time())):
                break
        await self.drain_results()


async def main(args):
    await asyncio.sleep(args.start_delay_ms / 1000)
    truth = Truth("orchestrator_agent_optimized")
    stopper = Stopper()
    bus = await BusClient.connect(args.run_dir, "orchestrator", truth)
    orch = Orchestrator(args, bus, truth, stopper)
    print("orchestrator: running (rate %g/s)" % args.rate, flush=True)
    await orch.run(args.rate, args.requests, args.duration_s, args.linger_ms)
    await bus.close()
    truth.write(args.truth)
    return 0


if __name__ == "__main__":
    p = parser("orchestrator_agent_optimized.py", __doc__)
    p.add_argument("--rate", type=float, default=20, help="queries per second")
    p.add_argument("--requests", type=int, default=0, help="stop after N queries (0: no limit)")
    p.add_argument("--duration-s", type=float, default=0, help="stop after S seconds (0: no limit)")
    p.add_argument("--linger-ms", type=int, default=0)
    sys.exit(asyncio.run(main(p.parse_args())))
