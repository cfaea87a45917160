// SPDX-License-Identifier: Apache-2.0
/// @file crm_agent_worker.cpp
/// Demo agent "crm_agent": handles "task" messages with insa_demo::handle_request, records
/// "handoff" messages from sizing_agent as deals in SQLite (Debian's libsqlite3), keeps
/// customer sessions, and runs a periodic report. No metrics code.
///
/// Database contract (probes go on libsqlite3's exported sqlite3_exec):
///   every workload operation is exactly one sqlite3_exec() with exactly one statement whose
///   SQL text is lower case and starts "<operation> ..." with the table in its first 64 bytes:
///   "select ... from T", "insert into T", "update T set", "delete from T". Schema setup uses
///   sqlite3_prepare_v2/sqlite3_step/sqlite3_finalize and is not a workload operation.
///   Scheduled errors: a duplicate deal id (SQLITE_CONSTRAINT = 19) and a report on the
///   missing table deal_archive (SQLITE_ERROR = 1).

#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.h"
#include "common/agent_worker.h"
#include "common/cli.h"
#include "common/lifecycle.h"

namespace insa_crm {

/// Called once when the connection pool of `database_name` is opened with `pool_size` connections.
INSA_OBSERVABLE long db_pool_open(const char* database_name, long pool_size) {
  (void)database_name;
  INSA_MARKER_BODY(pool_size);
  return pool_size;
}
/// Called once per session opened (session_type: voice, chat or email).
INSA_OBSERVABLE void session_open(long session_id, const char* session_type) {
  (void)session_type;
  INSA_MARKER_BODY(session_id);
}
/// Called once per message attributed to an open session.
INSA_OBSERVABLE void session_message(long session_id, const char* session_type) {
  (void)session_type;
  INSA_MARKER_BODY(session_id);
}
/// Called once per session closed (reason: completed, expired or shutdown).
INSA_OBSERVABLE void session_close(long session_id, const char* reason) {
  (void)reason;
  INSA_MARKER_BODY(session_id);
}

}  // namespace insa_crm

using namespace insa_demo;
using namespace insa_crm;
using clock_type = std::chrono::steady_clock;

static const char* kUsage =
    "usage: crm_agent_worker --run-dir DIR [--seed S] [--duration-s D] [--truth FILE]\n"
    "                        [--exit-after-s S --exit-code C] [--report-every-ms MS]\n";

namespace {

const char* error_type(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT: return "constraint";
    case SQLITE_ERROR: return "sqlite_error";
    case SQLITE_BUSY: return "busy";
    default: return "other";
  }
}

/// sqlite: insa_sleep_ms(n) sleeps n ms, so report queries have a planned duration.
void sleep_ms_fn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  std::this_thread::sleep_for(std::chrono::milliseconds(sqlite3_value_int(argv[0])));
  sqlite3_result_int(ctx, 0);
}

class Db {
 public:
  Db(const std::string& path, int pool_size, Truth& truth) : truth_(truth) {
    ::unlink(path.c_str());
    for (int i = 0; i < pool_size; ++i) {
      sqlite3* c = nullptr;
      if (sqlite3_open_v2(path.c_str(), &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
          SQLITE_OK) {
        std::fprintf(stderr, "crm_agent_worker: cannot open %s\n", path.c_str());
        std::exit(1);
      }
      sqlite3_busy_timeout(c, 2000);
      sqlite3_create_function_v2(c, "insa_sleep_ms", 1, SQLITE_UTF8, nullptr, sleep_ms_fn,
                                 nullptr, nullptr, nullptr);
      setup(c, "pragma journal_mode = memory");
      setup(c, "pragma synchronous = off");
      pool_.push_back(c);
    }
    setup(pool_[0], "create table customers(id integer primary key, name text)");
    setup(pool_[0], "create table deals(id integer primary key, customer_id integer, amount integer)");
    setup(pool_[0], "create table sessions(id integer primary key, type text, reason text)");
    // libsqlite3 loads a connection's schema with an internal sqlite3_exec("SELECT*FROM
    // \"main\".sqlite_master ..."); make every connection do that now, during setup, so no
    // such call happens during the workload.
    for (auto* c : pool_) setup(c, "select count(*) from sessions");
    db_pool_open("crm", pool_size);
    truth_.set("insa_database_connection_pool_size", {{"database_name", "crm"}}, pool_size);
  }
  ~Db() {
    for (auto* c : pool_) sqlite3_close_v2(c);
  }

  /// One workload operation through sqlite3_exec on the next pooled connection. The duration
  /// sample is `planned_s` when the statement has a planned duration, else the measured one.
  int exec(const std::string& sql, const char* op, const char* table, double planned_s = -1) {
    sqlite3* c = pool_[next_++ % pool_.size()];
    char* err = nullptr;
    auto t0 = clock_type::now();
    int rc = sqlite3_exec(c, sql.c_str(), nullptr, nullptr, &err);
    double took = std::chrono::duration<double>(clock_type::now() - t0).count();
    sqlite3_free(err);
    truth_.add("insa_database_operations_total", {{"operation", op}, {"table", table}});
    truth_.observe("insa_database_operation_duration_seconds",
                   {{"operation", op}, {"table", table}}, planned_s >= 0 ? planned_s : took);
    if (rc != SQLITE_OK)
      truth_.add("insa_database_errors_total", {{"operation", op}, {"error_type", error_type(rc)}});
    return rc;
  }

 private:
  static void setup(sqlite3* c, const char* sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(c, sql, -1, &st, nullptr) == SQLITE_OK) {
      while (sqlite3_step(st) == SQLITE_ROW) {
      }
    }
    sqlite3_finalize(st);
  }
  Truth& truth_;
  std::vector<sqlite3*> pool_;
  size_t next_ = 0;
};

struct Session {
  std::string type;
  clock_type::time_point opened;
  long lifetime_ms;
  int messages = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv,
            {"run-dir", "seed", "duration-s", "truth", "exit-after-s", "exit-code",
             "report-every-ms"},
            {}, kUsage);
  WorkerOptions o;
  o.run_dir = args.str("run-dir", ".");
  o.truth_path = args.str("truth", "");
  o.worker_name = "crm_agent_worker";
  o.worker_type = "crm";
  o.agent = "crm_agent";
  o.duration_s = args.real("duration-s", 0);
  o.exit_after_s = args.real("exit-after-s", 0);
  o.exit_code = static_cast<int>(args.num("exit-code", 0));
  const std::uint64_t seed = static_cast<std::uint64_t>(args.num("seed", 1));
  const long report_every_ms = static_cast<long>(args.num("report-every-ms", 2000));
  g_request_seed = seed;
  install_stop_handler();

  Truth truth;
  truth.comment("insa-demo truth v1 program=crm_agent_worker pid=" + std::to_string(getpid()));
  Db db(o.run_dir + "/crm.db", 4, truth);
  auto bus = insa_bus::Client::connect(o.run_dir, o.agent, 10000, &truth);
  if (!bus) {
    std::fprintf(stderr, "crm_agent_worker: cannot reach the bus in %s\n", o.run_dir.c_str());
    return 1;
  }
  worker_started(o.worker_name.c_str(), o.worker_type.c_str());
  truth.set("insa_active_sessions_total", {}, 0);

  // ---- sessions ----
  static const char* kTypes[] = {"voice", "chat", "email"};
  static const long kLifetimeMs[] = {300, 700, 1800, 4000};
  std::map<long, Session> sessions;
  long next_session = 1, rr = 0, opened_count = 0;
  auto close_session = [&](long id, const char* reason) {
    auto it = sessions.find(id);
    double secs = std::chrono::duration<double>(clock_type::now() - it->second.opened).count();
    session_close(id, reason);
    db.exec("update sessions set reason = '" + std::string(reason) + "' where id = " +
                std::to_string(id), "update", "sessions");
    truth.add("insa_session_cleanup_total", {{"reason", reason}});
    truth.observe("insa_session_duration_seconds", {}, secs);
    sessions.erase(it);
    truth.set("insa_active_sessions_total", {}, static_cast<double>(sessions.size()));
  };
  auto open_session = [&] {
    long id = next_session++;
    const char* type = kTypes[pick(seed, 50, opened_count, 3)];
    long life = kLifetimeMs[pick(seed, 51, opened_count, 4)];
    ++opened_count;
    sessions[id] = Session{type, clock_type::now(), life};
    session_open(id, type);
    db.exec("insert into sessions(id, type) values(" + std::to_string(id) + ", '" + type + "')",
            "insert", "sessions");
    truth.set("insa_active_sessions_total", {}, static_cast<double>(sessions.size()));
  };
  // Every task and handoff belongs to a session; a new one opens when fewer than 4 are open.
  auto attribute = [&] {
    if (sessions.size() < 4) open_session();
    auto it = sessions.begin();
    std::advance(it, rr++ % sessions.size());
    session_message(it->first, it->second.type.c_str());
    truth.add("insa_session_messages_total", {{"session_type", it->second.type}});
    if (++it->second.messages >= 6) close_session(it->first, "completed");
  };

  // ---- periodic work ----
  long reports = 0;
  auto last_report = clock_type::now();
  auto tick = [&] {
    auto now = clock_type::now();
    std::vector<long> expired;
    for (auto& [id, s] : sessions)
      if (now - s.opened >= std::chrono::milliseconds(s.lifetime_ms)) expired.push_back(id);
    for (long id : expired) close_session(id, "expired");
    if (now - last_report >= std::chrono::milliseconds(report_every_ms)) {
      last_report = now;
      if (++reports % 3 == 0) {
        db.exec("select count(*) from deal_archive", "select", "deal_archive");
      } else {
        db.exec("select count(*), insa_sleep_ms(30) from deals", "select", "deals", 0.030);
      }
    }
  };

  insa_bus::Handler handler = [&](const insa_bus::Message& m) -> long {
    if (m.type == "task") {
      attribute();
      long r = handle_and_record(m.id, o.agent, m.bytes, truth);
      db.exec("select name from customers where id = " + std::to_string(m.id % 50), "select",
              "customers");
      bus->send("orchestrator", "result", m.id, r < 0 ? 0 : r);
      return r;
    }
    if (m.type == "handoff") {
      attribute();
      work_for_ms(3);
      std::string id = std::to_string(m.id);
      db.exec("insert or replace into customers(id, name) values(" + id + ", 'customer " + id +
                  "')", "insert", "customers");
      std::string deal = "insert into deals(id, customer_id, amount) values(" + id + ", " + id +
                         ", " + std::to_string(m.bytes) + ")";
      // One handoff in eight is recorded twice: the second insert violates the primary key.
      int copies = pick(seed, 52, m.id, 8) == 0 ? 2 : 1;
      int rc = SQLITE_OK;
      for (int i = 0; i < copies; ++i) {
        rc = db.exec(deal, "insert", "deals");
      }
      return rc == SQLITE_OK ? 0 : -1;
    }
    work_for_ms(1);  // config_reload
    return 0;
  };
  auto planned = [](const insa_bus::Message& m) {
    return m.type == "task"      ? plan_for(g_request_seed, m.id).duration_ms / 1000.0
           : m.type == "handoff" ? 0.003
                                 : 0.001;
  };
  bool scheduled_exit = run_agent_loop(*bus, o, handler, planned, tick, truth);

  while (!sessions.empty()) close_session(sessions.begin()->first, "shutdown");
  int code = scheduled_exit ? o.exit_code : 0;
  worker_stopped(o.worker_name.c_str(), code);
  if (!truth.write(o.truth_path)) std::perror("crm_agent_worker: writing truth");
  return code;
}
