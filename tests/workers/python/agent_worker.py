# SPDX-License-Identifier: Apache-2.0
"""The loop both agent processes run: fetch a batch of messages from the bus into a local
queue, then process them one by one (each in its own asyncio task, see
BusClient.process). A "task" message is one request: handle_request(request_id,
agent_type, request_size), an `async def` that returns the response size or raises on
failure. No metrics code: worker_queue_size() is called with the local queue's size at
start, after each fetch and after each pop."""
import asyncio
import collections

from platform_common import Plan

HANDOFF_S = 0.003   # planned processing time of a handoff (plus its SQL in crm)
SHORT_S = 0.001     # planned processing time of a result or config_reload


class UpstreamError(Exception):
    """A request that failed (15% of the plan)."""


class AgentWorker:
    def __init__(self, worker_name, agent, seed, bus, truth, stopper):
        self.worker_name = worker_name
        self.agent = agent
        self.seed = seed
        self.bus = bus
        self.truth = truth
        self.stopper = stopper
        self.local = collections.deque()
        self.work_scale = 1.0  # benchmarks: planned request times multiplied by this

    def worker_queue_size(self, worker_name, size):
        """The local queue of worker_name now holds `size` fetched messages."""
        self.truth.set("insa_worker_queue_size", (("worker_name", worker_name),), size)

    async def handle_request(self, request_id, agent_type, request_size):
        """One request: works for its planned time; returns the response size, or raises
        UpstreamError for a planned failure."""
        plan = Plan(self.seed, request_id)
        await asyncio.sleep(plan.duration_ms / 1000 * self.work_scale)
        if plan.kind == "error":
            raise UpstreamError("request %d failed" % request_id)
        return plan.response_size

    async def handle_and_record(self, request_id, request_size):
        """handle_request plus this program's own ground truth. True on success."""
        plan = Plan(self.seed, request_id)
        labels = (("agent_type", self.agent),)
        try:
            response = await self.handle_request(request_id, self.agent, request_size)
        except UpstreamError:
            response = None
        self.truth.add("insa_agent_requests_total",
                       (("agent_type", self.agent), ("status", plan.status if response is not None else "error")))
        self.truth.observe("insa_agent_request_duration_seconds", labels, plan.duration_ms / 1000)
        self.truth.observe("insa_agent_request_size_bytes", labels, request_size)
        if response is not None:
            self.truth.observe("insa_agent_response_size_bytes", labels, response)
        return response is not None

    def planned_s(self, message):
        kind = message["type"]
        if kind == "task":
            return Plan(self.seed, message["id"]).duration_ms / 1000
        return HANDOFF_S if kind == "handoff" else SHORT_S

    def _publish(self):
        self.worker_queue_size(self.worker_name, len(self.local))

    async def run(self, handler, tick, exit_after_s=0.0):
        """Until stopped (or exit_after_s passed: returns True). A fetched batch is always
        finished, even when a stop arrives meanwhile."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        due = lambda: exit_after_s > 0 and loop.time() - start >= exit_after_s
        self._publish()
        while not self.stopper.stopped and not due():
            await tick()
            batch = await self.bus.fetch(8)
            if not batch:
                await self.stopper.sleep(0.01)
                continue
            self.local.extend(batch)
            self._publish()
            while self.local:
                m = self.local.popleft()
                self._publish()
                await self.bus.process(m, handler, self.planned_s(m))
                await tick()
        self.truth.set("insa_worker_active_requests", (("worker_name", self.worker_name),), 0)
        return not self.stopper.stopped and due()
