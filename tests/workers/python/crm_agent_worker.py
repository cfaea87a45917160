#!/usr/bin/python3.11
# SPDX-License-Identifier: Apache-2.0
"""crm_agent_worker: agent "crm_agent". Tasks are requests (AgentWorker.handle_request);
handoffs from sizing_agent store the customer and the deal with Python's sqlite3 module
(a pool of 4 connections to RUN_DIR/crm.db) and are attributed to customer sessions. A
session is one asyncio task (CrmAgent.session) from open to close, returning why it
closed: "completed" (6 messages), "expired" (its lifetime passed) or "shutdown". Every
--report-every-ms a report query runs (30 ms, planned); every third report also queries
the missing table deal_archive (an error). One handoff in eight inserts its deal twice
(a constraint error). No metrics code."""
import asyncio
import re
import sqlite3
import sys
import time

from agent_worker import HANDOFF_S, SHORT_S, AgentWorker
from bus_client import BusClient
from platform_common import Stopper, Truth, parser, pick

SESSION_TYPES = ("voice", "chat", "email")
LIFETIMES_MS = (300, 700, 1800, 4000)
MESSAGES_TO_COMPLETE = 6
OPERATION = re.compile(r"^(select|insert|update|delete)\s")
TABLE = re.compile(r"(?:from|into|update)\s+(\w+)")
ERROR_TYPES = {sqlite3.IntegrityError: "constraint", sqlite3.OperationalError: "sqlite_error"}


def db_pool_open(database_name, pool_size):
    """The connection pool of database_name is open with pool_size connections."""
    return pool_size


def _sleep_ms(ms):
    time.sleep(ms / 1000)
    return 0


class Database:
    """A small pool of sqlite3 connections used round robin. Each workload statement is
    exactly one execute(sql) call; schema setup does not go through execute."""

    def __init__(self, path, pool_size, truth):
        self._truth = truth
        self._pool = []
        self._next = 0
        for _ in range(pool_size):
            c = sqlite3.connect(path, isolation_level=None, timeout=2.0)
            c.create_function("insa_sleep_ms", 1, _sleep_ms)
            c.execute("pragma journal_mode = memory")
            c.execute("pragma synchronous = off")
            self._pool.append(c)
        setup = self._pool[0]
        for table in ("customers", "deals", "sessions", "deal_archive"):
            setup.execute("drop table if exists %s" % table)
        setup.execute("create table customers(id integer primary key, name text)")
        setup.execute("create table deals(id integer primary key, customer_id integer, amount integer)")
        setup.execute("create table sessions(id integer primary key, type text, reason text)")
        db_pool_open("crm", pool_size)
        truth.set("insa_database_connection_pool_size", (("database_name", "crm"),), pool_size)

    def execute(self, sql):
        """Runs one statement on the next pooled connection; returns its rows. Raises
        sqlite3.Error (IntegrityError, OperationalError) when the statement fails."""
        conn = self._pool[self._next % len(self._pool)]
        self._next += 1
        return conn.execute(sql).fetchall()

    def run(self, sql, planned_s=None):
        """execute() plus this program's own ground truth. Returns False on an error."""
        op = OPERATION.match(sql).group(1)
        table = TABLE.search(sql).group(1)
        labels = (("operation", op), ("table", table))
        t0 = time.perf_counter()
        ok = True
        try:
            self.execute(sql)
        except sqlite3.Error as e:
            ok = False
            self._truth.add("insa_database_errors_total",
                            (("operation", op), ("error_type", ERROR_TYPES.get(type(e), "other"))))
        took = time.perf_counter() - t0
        self._truth.add("insa_database_operations_total", labels)
        self._truth.observe("insa_database_operation_duration_seconds", labels,
                            planned_s if planned_s is not None else took)
        return ok

    def close(self):
        for c in self._pool:
            c.close()


class SessionState:
    def __init__(self, session_type, lifetime_ms):
        self.type = session_type
        self.lifetime_s = lifetime_ms / 1000
        self.messages = 0
        self.closing = False
        self.wake = asyncio.Event()


class CrmAgent:
    def __init__(self, args, worker, db, truth, stopper):
        self.seed = args.seed
        self.worker = worker
        self.db = db
        self.truth = truth
        self.stopper = stopper
        self.sessions = {}     # id -> SessionState (open)
        self.tasks = {}        # id -> asyncio.Task
        self.next_session = 1
        self.handoffs = 0
        self.rr = 0
        self.report_every_s = args.report_every_ms / 1000
        self.reports = 0
        self.last_report = None
        truth.set("insa_active_sessions_total", (), 0)

    # ---- sessions ----
    def session_message(self, session_id, session_type):
        """One message attributed to the open session session_id."""
        s = self.sessions[session_id]
        s.messages += 1
        s.wake.set()
        self.truth.add("insa_session_messages_total", (("session_type", session_type),))

    async def session(self, session_id, session_type, lifetime_ms):
        """A customer session from open to close; returns why it closed."""
        s = self.sessions[session_id]
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            if s.messages >= MESSAGES_TO_COMPLETE:
                reason = "completed"
                break
            if s.closing:
                reason = "shutdown"
                break
            left = start + s.lifetime_s - loop.time()
            if left <= 0:
                reason = "expired"
                break
            s.wake.clear()
            try:
                await asyncio.wait_for(s.wake.wait(), left)
            except asyncio.TimeoutError:
                pass
        del self.sessions[session_id]
        self.db.run("update sessions set reason = '%s' where id = %d" % (reason, session_id))
        self.truth.add("insa_session_cleanup_total", (("reason", reason),))
        self.truth.observe("insa_session_duration_seconds", (), loop.time() - start)
        self.truth.set("insa_active_sessions_total", (), len(self.sessions))
        return reason

    def open_session(self):
        sid = self.next_session
        self.next_session += 1
        stype = SESSION_TYPES[pick(self.seed, 60, sid, 3)]
        lifetime = LIFETIMES_MS[pick(self.seed, 61, sid, 4)]
        self.sessions[sid] = SessionState(stype, lifetime)
        self.truth.set("insa_active_sessions_total", (), len(self.sessions))
        self.db.run("insert into sessions(id, type) values(%d, '%s')" % (sid, stype))
        task = asyncio.create_task(self.session(sid, stype, lifetime))
        self.tasks[sid] = task
        task.add_done_callback(lambda _t, sid=sid: self.tasks.pop(sid, None))

    def attribute(self):
        """Attributes the current message to an open session that can still take one."""
        open_ids = [i for i, s in sorted(self.sessions.items())
                    if s.messages < MESSAGES_TO_COMPLETE and not s.closing]
        if not open_ids:
            return
        sid = open_ids[self.rr % len(open_ids)]
        self.rr += 1
        self.session_message(sid, self.sessions[sid].type)

    async def close_all(self):
        for s in self.sessions.values():
            s.closing = True
            s.wake.set()
        if self.tasks:
            await asyncio.gather(*list(self.tasks.values()))

    # ---- messages ----
    async def handler(self, message):
        kind = message["type"]
        if kind == "task":
            await self.worker.handle_and_record(message["id"], message["bytes"])
            self.attribute()
            self.worker.bus.send("orchestrator", "result", message["id"], 128)
        elif kind == "handoff":
            n = self.handoffs
            self.handoffs += 1
            await asyncio.sleep(HANDOFF_S)
            deal = message["id"]
            customer = deal % 50
            self.db.run("insert or replace into customers(id, name) values(%d, 'customer %d')"
                        % (customer, customer))
            self.db.run("insert into deals(id, customer_id, amount) values(%d, %d, %d)"
                        % (deal, customer, 100 + deal % 900))
            if pick(self.seed, 70, n, 8) == 0:  # a duplicate: constraint error
                self.db.run("insert into deals(id, customer_id, amount) values(%d, %d, %d)"
                            % (deal, customer, 100 + deal % 900))
            if not self.sessions or pick(self.seed, 71, n, 3) == 0:
                self.open_session()
            self.attribute()
        else:  # config_reload
            await asyncio.sleep(SHORT_S)

    async def tick(self):
        now = time.monotonic()
        if self.last_report is None:
            self.last_report = now
        if now - self.last_report >= self.report_every_s:
            self.last_report = now
            self.reports += 1
            self.db.run("select count(*), insa_sleep_ms(30) from deals", planned_s=0.030)
            if self.reports % 3 == 0:
                self.db.run("select count(*) from deal_archive")


async def main(args):
    await asyncio.sleep(args.start_delay_ms / 1000)
    truth = Truth("crm_agent_worker")
    stopper = Stopper()
    db = Database(args.run_dir + "/crm.db", 4, truth)
    bus = await BusClient.connect(args.run_dir, "crm_agent", truth)
    worker = AgentWorker("crm_agent_worker", "crm_agent", args.seed, bus, truth, stopper)
    worker.work_scale = args.work_scale
    crm = CrmAgent(args, worker, db, truth, stopper)
    print("crm_agent_worker: running", flush=True)
    exit_now = await worker.run(crm.handler, crm.tick, args.exit_after_s)
    await crm.close_all()
    await bus.close()
    db.close()
    truth.write(args.truth)
    return args.exit_code if exit_now else 0


if __name__ == "__main__":
    p = parser("crm_agent_worker.py", __doc__)
    p.add_argument("--exit-after-s", type=float, default=0, help="exit with --exit-code after S seconds")
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--report-every-ms", type=int, default=2000)
    p.add_argument("--work-scale", type=float, default=1.0,
                   help="multiply planned request times (benchmarks: 0, no sleeping)")
    sys.exit(asyncio.run(main(p.parse_args())))
