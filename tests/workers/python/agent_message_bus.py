#!/usr/bin/python3.11
# SPDX-License-Identifier: Apache-2.0
"""agent_message_bus: the agents' message bus. An asyncio server on a Unix socket
(RUN_DIR/bus.sock) holding one queue per agent: direct sends go to the named agent's
queue, a broadcast to every other known agent's queue; an agent fetches its queue in
batches. No metrics code: queue_depth() is called with an agent's queue depth when the
queue is created and after every enqueue and dequeue."""
import asyncio
import collections
import json
import os
import sys

from platform_common import Stopper, Truth, parser


class MessageBus:
    def __init__(self, truth):
        self._queues = {}
        self._truth = truth

    def queue_depth(self, agent_type, depth):
        """The depth of agent_type's queue changed (or the queue was created)."""
        self._truth.set("insa_message_bus_queue_depth", (("agent_type", agent_type),), depth)

    def queue(self, agent):
        q = self._queues.get(agent)
        if q is None:
            q = self._queues[agent] = collections.deque()
            self.queue_depth(agent, 0)
        return q

    def enqueue(self, to_agent, message):
        q = self.queue(to_agent)
        q.append(message)
        self.queue_depth(to_agent, len(q))

    def deliver(self, message):
        if message["to"] == "broadcast":
            for agent in sorted(self._queues):
                if agent != message["from"]:
                    self.enqueue(agent, message)
        else:
            self.enqueue(message["to"], message)

    def dequeue(self, agent, max_count):
        q = self.queue(agent)
        out = []
        while q and len(out) < max_count:
            out.append(q.popleft())
            self.queue_depth(agent, len(q))
        return out

    async def serve_client(self, reader, writer):
        """One connection per agent process (an asyncio task per connection)."""
        agent = None
        try:
            while line := await reader.readline():
                req = json.loads(line)
                op = req["op"]
                if op == "hello":
                    agent = req["agent"]
                    self.queue(agent)
                elif op == "send":
                    self.deliver(req)
                elif op == "fetch":
                    batch = self.dequeue(agent, req["max"])
                    writer.write(json.dumps({"messages": batch}).encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def main(args):
    await asyncio.sleep(args.start_delay_ms / 1000)
    truth = Truth("agent_message_bus")
    stopper = Stopper()
    bus = MessageBus(truth)
    path = args.run_dir + "/bus.sock"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(bus.serve_client, path, limit=1 << 22)
    print("agent_message_bus: listening on %s" % path, flush=True)
    await stopper.event.wait()
    server.close()
    truth.write(args.truth)
    return 0


if __name__ == "__main__":
    p = parser("agent_message_bus.py", __doc__)
    sys.exit(asyncio.run(main(p.parse_args())))
