// SPDX-License-Identifier: Apache-2.0
// A binary no one here wrote: Debian's PostgreSQL 15 (stripped, debug symbols not
// installed). An ERROR inside PortalRun leaves it by siglongjmp back to the backend's
// main loop; with `abandoned_status: error` each such call counts as an error in a
// status-labelled counter, exactly as many as the errors the client saw, and the
// return sites `check` lists are PortalRun's own (its jumps into its unnamed cold
// part are not exits).
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>

#include "harness.h"

namespace insa::testing {
namespace {

namespace fs = std::filesystem;

const std::string kPgBin = "/usr/lib/postgresql/15/bin";
const int kPgPort = 55419;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A private PostgreSQL server (initdb + postgres on a Unix socket in `dir`), run as
/// the postgres user; stopped (SIGTERM, then waited for) on destruction.
class PgServer {
 public:
  explicit PgServer(const std::string& dir) : dir_(dir) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const passwd* pw = getpwnam("postgres");
    if (!pw) return;
    chown(dir_.c_str(), pw->pw_uid, pw->pw_gid);
    auto [st, out] = run_capture({"/usr/sbin/runuser", "-u", "postgres", "--", kPgBin + "/initdb", "-D", dir_ + "/data",
                                  "-A", "trust", "-U", "postgres", "--no-sync"});
    if (st != 0) {
      error_ = "initdb failed: " + out;
      return;
    }
    server_ =
        Child::spawn({"/usr/sbin/runuser", "-u", "postgres", "--", kPgBin + "/postgres", "-D", dir_ + "/data", "-k",
                      dir_, "-c", "listen_addresses=", "-p", std::to_string(kPgPort), "-c", "autovacuum=off"},
                     dir_ + "/server.log");
    const std::string sock = dir_ + "/.s.PGSQL." + std::to_string(kPgPort);
    for (int i = 0; i < 100 && !fs::exists(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!fs::exists(sock)) error_ = "postgres did not start: " + slurp(dir_ + "/server.log");
  }
  ~PgServer() {
    server_.signal(SIGTERM);  // runuser passes it on: a smart shutdown
    server_.wait();
    fs::remove_all(dir_);
  }
  const std::string& error() const { return error_; }

  /// Runs an SQL script in one session; returns {psql's stdout+stderr, wait status}.
  std::pair<int, std::string> psql(const std::string& script) const {
    const std::string file = dir_ + "/script.sql";
    std::ofstream(file) << script;
    chmod(file.c_str(), 0644);
    return run_capture({"/usr/sbin/runuser", "-u", "postgres", "--", "/usr/bin/psql", "-X", "-q", "-h", dir_, "-p",
                        std::to_string(kPgPort), "-U", "postgres", "-d", "postgres", "-f", file});
  }

 private:
  std::string dir_, error_;
  Child server_;
};

TEST(Postgres, ErrorsInsidePortalRunCountAsErrorsExactly) {
  require_root();
  ASSERT_TRUE(fs::exists(kPgBin + "/postgres")) << "PostgreSQL 15 is not installed: run tests/install-deps.sh";
  PgServer pg("/tmp/insa-root-pg");
  ASSERT_EQ(pg.error(), "");

  const std::string dir = "/tmp/insa-root-pg-config";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string config = dir + "/pg.yaml";
  std::ofstream(config) << "metrics:\n"
                           "  - name: portal_runs_total\n    type: counter\n    labels: [status]\n"
                           "  - name: portal_run_seconds\n    type: histogram\n    buckets: [1]\n"
                           "probes:\n"
                           "  - name: portalrun\n    binary: " +
                               kPgBin +
                               "/postgres\n    function: PortalRun\n"
                               "    abandoned_status: error\n"
                               "    metrics:\n"
                               "      - {metric: portal_runs_total, labels: {status: $status}}\n"
                               "      - {metric: portal_run_seconds, observe: $duration}\n";

  // `check`: PortalRun's exits are its own ret(s); no jump into its cold part listed.
  auto [cst, cout] = run_capture({binary_dir() + "/insa-exporter", "check", config});
  ASSERT_EQ(cst, 0) << cout;
  EXPECT_TRUE(std::regex_search(cout, std::regex("\n      entry @0x[0-9a-f]+ [^\n]*; exits( @0x[0-9a-f]+ ret)+\n")))
      << cout;

  Exporter exp(config, 19365);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  // Errors raised while the portal runs (a volatile expression is not folded by the
  // planner, so the division happens inside PortalRun), mixed with successes, in one
  // session (the next PortalRun reclaims the abandoned call) and in a second one that
  // ends on an error (reclaimed when the backend exits).
  std::string one, two;
  for (int i = 0; i < 12; ++i)
    one += i % 3 == 1 ? "SELECT 1/(random()*0)::int;\n" : "SELECT " + std::to_string(i) + ";\n";
  for (int i = 0; i < 4; ++i) two += i % 2 ? "SELECT 1/(random()*0)::int;\n" : "SELECT 42;\n";
  double errors = 0, statements = 0;
  for (const auto& script : {one, two}) {
    auto [st, out] = pg.psql(script);
    ASSERT_TRUE(WIFEXITED(st)) << out;
    static const std::regex err("ERROR:  division by zero");
    errors +=
        static_cast<double>(std::distance(std::sregex_iterator(out.begin(), out.end(), err), std::sregex_iterator()));
    statements += static_cast<double>(std::count(script.begin(), script.end(), '\n'));
  }
  ASSERT_EQ(errors, 4 + 2);  // what the client saw
  Samples s;
  for (int i = 0; i < 50; ++i) {
    s = exp.scrape();
    if (s.count("portal_runs_total{status=\"error\"}") && s.at("portal_runs_total{status=\"error\"}") == errors) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(s["portal_runs_total{status=\"error\"}"], errors) << exp.log();
  EXPECT_EQ(s["portal_runs_total{status=\"success\"}"], statements - errors);
  EXPECT_EQ(s["insa_exporter_abandoned_calls_total{probe=\"portalrun\"}"], errors);
  EXPECT_EQ(s["portal_run_seconds_count"], statements - errors);  // no duration for calls never returned
  EXPECT_EQ(s["insa_exporter_unmatched_exits_total{probe=\"portalrun\"}"], 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace insa::testing
