#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Python side of tests/bench/run_python_bench.sh: times ordinary calls, calls of a
watched function and steps of a watched coroutine, in ns, after --go FILE exists
(so the exporter has hooked this process). Prints one line per measurement:
"<what> <ns per unit>" (median of ROUNDS)."""
import argparse
import asyncio
import os
import statistics
import time


def unwatched(x):
    return x + 1


def watched(x):
    return x + 1


async def watched_coro(steps):
    for _ in range(steps):
        await asyncio.sleep(0)
    return steps


async def plain_coro(steps):
    for _ in range(steps):
        await asyncio.sleep(0)
    return steps


def time_calls(fn, n):
    t0 = time.perf_counter_ns()
    for i in range(n):
        fn(i)
    return (time.perf_counter_ns() - t0) / n


def time_steps(coro_fn, steps):
    async def main():
        t0 = time.perf_counter_ns()
        await asyncio.ensure_future(coro_fn(steps))
        return (time.perf_counter_ns() - t0) / steps
    return asyncio.run(main())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--go", default="")
    p.add_argument("--calls", type=int, default=200000)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    print("ready", flush=True)
    while a.go and not os.path.exists(a.go):
        time.sleep(0.02)
    res = {"unwatched_call": [], "watched_call": [], "unwatched_coro_step": [], "watched_coro_step": []}
    for _ in range(a.rounds):
        res["unwatched_call"].append(time_calls(unwatched, a.calls))
        res["watched_call"].append(time_calls(watched, a.calls))
        res["unwatched_coro_step"].append(time_steps(plain_coro, a.steps))
        res["watched_coro_step"].append(time_steps(watched_coro, a.steps))
    for k, v in res.items():
        print("%s %.1f" % (k, statistics.median(v)), flush=True)


if __name__ == "__main__":
    main()
