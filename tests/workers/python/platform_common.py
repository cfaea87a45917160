# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the Python demo platform: seeded decisions, the request plan,
command-line options, shutdown on SIGTERM/SIGINT and the ground truth each process
writes when it exits (the same format as tests/workers/common/truth.h).

The truth is the program's own bookkeeping for tests; no probe reads it and nothing here
is metrics code."""
import argparse
import asyncio
import os
import signal
import threading

MASK = (1 << 64) - 1


def mix64(x):
    """splitmix64 finaliser, as tests/workers/common/rng.h."""
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def pick(seed, stream, n_th, n):
    """Uniform value in [0, n) for decision n_th of stream under seed (pure function)."""
    return mix64(mix64(seed ^ mix64(stream)) ^ (n_th & MASK)) % n


# The request plan (tests/workers/common/request_plan.h): 75% success (2/10/40 ms),
# 15% error (2 ms, raises), 10% slow (150 ms: a timeout by the probes' > 100 ms rule).
SUCCESS_MS = (2, 10, 40)
ERROR_MS = 2
SLOW_MS = 150
REQUEST_SIZES = (60, 700, 3000, 20000)
RESPONSE_SIZES = (250, 1500, 7000, 40000)


class Plan:
    __slots__ = ("kind", "duration_ms", "request_size", "response_size")

    def __init__(self, seed, request_id):
        roll = pick(seed, 1, request_id, 100)
        self.kind = "success" if roll < 75 else "error" if roll < 90 else "slow"
        self.duration_ms = (SUCCESS_MS[pick(seed, 2, request_id, 3)] if self.kind == "success"
                            else ERROR_MS if self.kind == "error" else SLOW_MS)
        self.request_size = REQUEST_SIZES[pick(seed, 3, request_id, 4)]
        self.response_size = RESPONSE_SIZES[pick(seed, 4, request_id, 4)]

    @property
    def status(self):
        return {"success": "success", "error": "error", "slow": "timeout"}[self.kind]


def series(name, labels=()):
    if not labels:
        return name
    parts = []
    for k, v in labels:
        v = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append('%s="%s"' % (k, v))
    return "%s{%s}" % (name, ",".join(parts))


def number(v):
    """Shortest round-trip decimal: 20000, 0.007."""
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


class Truth:
    """Counters, final gauges and histogram samples; written sorted at exit."""

    def __init__(self, program):
        self._lock = threading.Lock()
        self._counters = {}
        self._gauges = {}
        self._samples = []
        self._comments = ["# insa-demo truth v1 program=%s pid=%d python" % (program, os.getpid())]

    def add(self, name, labels=(), delta=1):
        with self._lock:
            k = series(name, labels)
            self._counters[k] = self._counters.get(k, 0) + delta

    def set(self, name, labels, value):
        with self._lock:
            self._gauges[series(name, labels)] = value

    def observe(self, name, labels, value):
        with self._lock:
            self._samples.append("observe %s %s" % (series(name, labels), number(value)))

    def write(self, path):
        if not path:
            return
        with self._lock:
            lines = list(self._comments)
            lines += ["%s %d" % (k, v) for k, v in sorted(self._counters.items()) if v]
            lines += ["%s %s" % (k, number(v)) for k, v in sorted(self._gauges.items())]
            lines += sorted(self._samples)
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(path + ".tmp", path)


def parser(prog, doc):
    p = argparse.ArgumentParser(prog=prog, description=doc)
    p.add_argument("--run-dir", default=".", help="directory of bus.sock (and crm.db)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--truth", default="", help="write the ground truth here at exit")
    p.add_argument("--start-delay-ms", type=int, default=0,
                   help="wait this long before doing anything (lets an exporter hook the process)")
    return p


class Stopper:
    """An asyncio.Event set by SIGTERM/SIGINT: the current message finishes first."""

    def __init__(self):
        self.event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, self.event.set)
        self._waiter = loop.create_task(self.event.wait())

    @property
    def stopped(self):
        return self.event.is_set()

    async def sleep(self, seconds):
        """Sleeps, or returns early when stopped. True if the full time passed."""
        if seconds > 0 and not self.stopped:
            await asyncio.wait({self._waiter}, timeout=seconds)
        return not self.stopped
