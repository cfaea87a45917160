#!/usr/bin/python3.11
# SPDX-License-Identifier: Apache-2.0
"""sizing_agent_worker: agent "sizing_agent". A task is one request
(AgentWorker.handle_request); a successful one is handed off to crm_agent and its result
sent to the orchestrator. No metrics code."""
import asyncio
import sys

from agent_worker import SHORT_S, AgentWorker
from bus_client import BusClient
from platform_common import Stopper, Truth, parser


async def main(args):
    await asyncio.sleep(args.start_delay_ms / 1000)
    truth = Truth("sizing_agent_worker")
    stopper = Stopper()
    bus = await BusClient.connect(args.run_dir, "sizing_agent", truth)
    worker = AgentWorker("sizing_agent_worker", "sizing_agent", args.seed, bus, truth, stopper)
    worker.work_scale = args.work_scale

    async def handler(message):
        if message["type"] == "task":
            if await worker.handle_and_record(message["id"], message["bytes"]):
                bus.send("crm_agent", "handoff", message["id"], 512)
                bus.send("orchestrator", "result", message["id"], 128)
        else:  # config_reload
            await asyncio.sleep(SHORT_S)

    async def tick():
        pass

    print("sizing_agent_worker: running", flush=True)
    exit_now = await worker.run(handler, tick, args.exit_after_s)
    await bus.close()
    truth.write(args.truth)
    return args.exit_code if exit_now else 0


if __name__ == "__main__":
    p = parser("sizing_agent_worker.py", __doc__)
    p.add_argument("--exit-after-s", type=float, default=0, help="exit with --exit-code after S seconds")
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--work-scale", type=float, default=1.0,
                   help="multiply planned request times (benchmarks: 0, no sleeping)")
    sys.exit(asyncio.run(main(p.parse_args())))
