# SPDX-License-Identifier: Apache-2.0
"""Client of agent_message_bus.py, used by every agent process. Newline-delimited JSON
over the bus's Unix socket (RUN_DIR/bus.sock). No metrics code: insa-exporter measures
send_message (one call per message sent, a broadcast is one call with to_agent
"broadcast") and dispatch (one asyncio task per message received: its processing time)."""
import asyncio
import json


class BusClient:
    def __init__(self, agent, reader, writer, truth):
        self.agent = agent
        self._reader = reader
        self._writer = writer
        self._truth = truth

    @classmethod
    async def connect(cls, run_dir, agent, truth, timeout_s=10.0):
        path = run_dir + "/bus.sock"
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(path, limit=1 << 22)
                break
            except OSError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)
        client = cls(agent, reader, writer, truth)
        client._write({"op": "hello", "agent": agent})
        return client

    def _write(self, obj):
        self._writer.write(json.dumps(obj).encode() + b"\n")

    def send_message(self, from_agent, to_agent, message_type, message_id, payload_bytes):
        """Queues one message for to_agent ("broadcast": every other agent). Plain method,
        called from Python code: one call per message."""
        self._write({"op": "send", "from": from_agent, "to": to_agent, "type": message_type,
                     "id": message_id, "bytes": payload_bytes})
        self._truth.add("insa_message_bus_messages_total",
                        (("from_agent", from_agent), ("to_agent", to_agent),
                         ("message_type", message_type)))

    def send(self, to_agent, message_type, message_id, payload_bytes):
        self.send_message(self.agent, to_agent, message_type, message_id, payload_bytes)

    def broadcast(self, message_type, message_id, payload_bytes):
        self.send_message(self.agent, "broadcast", message_type, message_id, payload_bytes)

    async def fetch(self, max_count):
        """Up to max_count messages waiting in this agent's queue (oldest first)."""
        self._write({"op": "fetch", "max": max_count})
        await self._writer.drain()
        line = await self._reader.readline()
        if not line:
            raise ConnectionError("bus closed the connection")
        return json.loads(line)["messages"]

    async def dispatch(self, agent_type, from_agent, message_type, message_id, handler, message,
                       planned_s):
        """Runs handler(message) for the receiving agent agent_type. Each message is
        processed in its own asyncio task (process() below), so a shutdown can wait for it."""
        await handler(message)
        self._truth.observe("insa_message_bus_processing_duration_seconds",
                            (("agent_type", agent_type),), planned_s)

    async def process(self, message, handler, planned_s):
        task = asyncio.create_task(
            self.dispatch(self.agent, message["from"], message["type"], message["id"], handler,
                          message, planned_s))
        await task

    async def close(self):
        await self._writer.drain()
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass
