#!/usr/bin/python3.11
# SPDX-License-Identifier: Apache-2.0
"""Load generator for the Python platform benchmark (python_platform_bench.sh): connects to
agent_message_bus.py as the agent "orchestrator" (the orchestrator itself does not run),
keeps --concurrency tasks outstanding at sizing_agent for --seconds, and measures each
task's round trip (task sent -> result received). Prints one line:
  requests=N seconds=S rps=R p50_ms=X p99_ms=Y
Part of the benchmark, not of the platform: the platform has no metrics code."""
import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../workers/python"))
from platform_common import Plan  # noqa: E402  (which task ids fail: those get no result)


async def main(a):
    reader, writer = await asyncio.open_unix_connection(a.run_dir + "/bus.sock", limit=1 << 22)
    write = lambda o: writer.write(json.dumps(o).encode() + b"\n")
    write({"op": "hello", "agent": "orchestrator"})
    sent = {}
    lat = []
    next_id = 1_000_000
    start = time.perf_counter()
    end = start + a.seconds
    while True:
        now = time.perf_counter()
        while now < end and len(sent) < a.concurrency:
            while Plan(a.seed, next_id).kind == "error":
                next_id += 1
            sent[next_id] = time.perf_counter()
            write({"op": "send", "from": "orchestrator", "to": "sizing_agent", "type": "task",
                   "id": next_id, "bytes": 700})
            next_id += 1
        if now >= end and not sent:
            break
        if now >= end + 10:
            print("py_load: %d tasks never answered" % len(sent), file=sys.stderr)
            break
        write({"op": "fetch", "max": 256})
        await writer.drain()
        msgs = json.loads(await reader.readline())["messages"]
        t = time.perf_counter()
        for m in msgs:
            t0 = sent.pop(m["id"], None)
            if t0 is not None and m["type"] == "result" and t0 < end:
                lat.append(t - t0)
        if not msgs:
            await asyncio.sleep(0.0005)
    took = min(time.perf_counter(), end) - start
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    print("requests=%d seconds=%.2f rps=%.1f p50_ms=%.3f p99_ms=%.3f"
          % (len(lat), took, len(lat) / took, pct(0.50), pct(0.99)))
    writer.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seed", type=int, default=1, help="the agents' --seed")
    asyncio.run(main(p.parse_args()))
