// SPDX-License-Identifier: Apache-2.0
// Worker lifecycle without privileges: wait-status decoding, health and
// restart counting from observe/exited events, " (deleted)" binaries, a /proc
// scan over a fake proc root made of `exe` symlinks, and the families.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "process/lifecycle.h"

namespace insa::process {
namespace {
namespace fs = std::filesystem;

std::vector<config::WorkerDef> defs() {
  return {{"sizing_agent", "agent", "./sizing", {}}, {"crm_agent", "crm", "./crm", {}}};
}
const std::vector<std::string> kBins{"/opt/insa/sizing_agent_worker", "/opt/insa/crm_agent_worker"};

const WorkerState& state(const std::vector<WorkerState>& s, const std::string& name) {
  for (const auto& w : s)
    if (w.name == name) return w;
  static WorkerState none;
  ADD_FAILURE() << "no worker " << name;
  return none;
}

TEST(ExitReason, Signals) {
  EXPECT_EQ(exit_reason(SIGKILL), "SIGKILL");
  EXPECT_EQ(exit_reason(9), "SIGKILL");
  EXPECT_EQ(exit_reason(SIGTERM), "SIGTERM");
  EXPECT_EQ(exit_reason(SIGSEGV | 0x80), "SIGSEGV");  // core dumped
  EXPECT_EQ(exit_reason(SIGABRT | 0x80), "SIGABRT");
  EXPECT_EQ(exit_reason(100), "signal_100");  // no abbreviation for it
}

TEST(ExitReason, ExitCodes) {
  EXPECT_EQ(exit_reason(3 << 8), "exit_code_3");
  EXPECT_EQ(exit_reason(0), "exit_code_0");
  EXPECT_EQ(exit_reason(255 << 8), "exit_code_255");
  EXPECT_EQ(exit_reason(1 << 8), "exit_code_1");
}

TEST(ExitReason, MatchesRealWaitStatuses) {
  // Ground truth from the kernel: children that exit and that are killed.
  pid_t a = fork();
  ASSERT_GE(a, 0);
  if (a == 0) _exit(3);
  int st = 0;
  ASSERT_EQ(waitpid(a, &st, 0), a);
  EXPECT_EQ(exit_reason(st), "exit_code_3");
  pid_t b = fork();
  ASSERT_GE(b, 0);
  if (b == 0) {
    pause();
    _exit(0);
  }
  kill(b, SIGKILL);
  ASSERT_EQ(waitpid(b, &st, 0), b);
  EXPECT_EQ(exit_reason(st), "SIGKILL");
}

TEST(Lifecycle, ObserveMatchesBinaries) {
  Lifecycle l(defs(), kBins);
  EXPECT_EQ(l.observe(100, "/opt/insa/sizing_agent_worker"), 0);
  EXPECT_EQ(l.observe(200, "/opt/insa/crm_agent_worker"), 1);
  EXPECT_EQ(l.observe(300, "/usr/bin/bash"), -1);
  EXPECT_EQ(l.observe(301, "/opt/insa/sizing_agent_worker2"), -1);
  EXPECT_EQ(l.observe(302, "/opt/insa/sizing_agent_worke"), -1);
  auto s = l.snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].name, "sizing_agent");
  EXPECT_EQ(s[0].type, "agent");
  EXPECT_EQ(s[0].binary, "/opt/insa/sizing_agent_worker");
  EXPECT_EQ(s[0].pids, (std::set<uint32_t>{100}));
  EXPECT_EQ(s[1].pids, (std::set<uint32_t>{200}));
  EXPECT_TRUE(s[0].restarts.empty());
}

TEST(Lifecycle, DeletedSuffix) {
  Lifecycle l(defs(), kBins);
  // A binary replaced on disk (upgrade) still belongs to its worker.
  EXPECT_EQ(l.observe(100, "/opt/insa/sizing_agent_worker (deleted)"), 0);
  EXPECT_EQ(l.observe(101, " (deleted)"), -1);
  EXPECT_EQ(l.observe(102, "/opt/insa/crm_agent_worker(deleted)"), -1);
  EXPECT_EQ(l.observe(103, "/opt/insa/crm_agent_worker (deleted) (deleted)"), -1);
  EXPECT_EQ(state(l.snapshot(), "sizing_agent").pids, (std::set<uint32_t>{100}));
}

TEST(Lifecycle, RestartsCountedWithTheReason) {
  Lifecycle l(defs(), kBins);
  const std::string sizing = kBins[0];
  l.observe(100, sizing);  // first start: not a restart
  l.observe(100, sizing);  // seen again by a later scan: nothing new
  EXPECT_TRUE(state(l.snapshot(), "sizing_agent").restarts.empty());

  l.exited(100, SIGKILL);
  auto s = state(l.snapshot(), "sizing_agent");
  EXPECT_TRUE(s.pids.empty());
  EXPECT_EQ(s.pending, (std::deque<std::string>{"SIGKILL"}));
  EXPECT_TRUE(s.restarts.empty());  // not restarted yet

  l.observe(101, sizing);
  s = state(l.snapshot(), "sizing_agent");
  EXPECT_EQ(s.restarts, (std::map<std::string, uint64_t>{{"SIGKILL", 1}}));
  EXPECT_TRUE(s.pending.empty());

  l.exited(101, 3 << 8);
  l.observe(102, sizing);
  l.exited(102, SIGKILL);
  l.observe(103, sizing);
  l.exited(103, 3 << 8);
  l.observe(104, sizing);
  s = state(l.snapshot(), "sizing_agent");
  EXPECT_EQ(s.restarts, (std::map<std::string, uint64_t>{{"SIGKILL", 2}, {"exit_code_3", 2}}));
  EXPECT_EQ(s.pids, (std::set<uint32_t>{104}));
  EXPECT_TRUE(state(l.snapshot(), "crm_agent").restarts.empty());
}

TEST(Lifecycle, UnrelatedExitsAreIgnored) {
  Lifecycle l(defs(), kBins);
  l.observe(100, kBins[0]);
  l.exited(999, SIGKILL);  // not a worker
  l.observe(101, kBins[0]);  // a second instance, not a restart
  auto s = state(l.snapshot(), "sizing_agent");
  EXPECT_TRUE(s.restarts.empty());
  EXPECT_EQ(s.pids, (std::set<uint32_t>{100, 101}));
  l.exited(100, 0);  // one of two exits: still healthy
  s = state(l.snapshot(), "sizing_agent");
  EXPECT_EQ(s.pids, (std::set<uint32_t>{101}));
  EXPECT_EQ(s.pending, (std::deque<std::string>{"exit_code_0"}));
}

// Two instances of one worker die (one killed, one exits 1) and both are
// started again: that is two restarts, one per reason. A single pending
// reason per worker loses the first.
TEST(Lifecycle, EveryInstanceRestartIsCounted) {
  Lifecycle l(defs(), kBins);
  l.observe(100, kBins[0]);
  l.observe(101, kBins[0]);
  l.exited(100, SIGKILL);
  l.exited(101, 1 << 8);
  l.observe(102, kBins[0]);
  l.observe(103, kBins[0]);
  EXPECT_EQ(state(l.snapshot(), "sizing_agent").restarts,
            (std::map<std::string, uint64_t>{{"SIGKILL", 1}, {"exit_code_1", 1}}));
}

class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/insa_fake_proc_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }
  /// proc_root/PID/exe -> target (the target need not exist: only readlink is used).
  void process(const std::string& pid, const std::string& exe) {
    fs::create_directories(root_ / pid);
    fs::create_symlink(exe, root_ / pid / "exe");
  }
  fs::path root_;
};

TEST_F(FakeProc, ScanFindsWorkersAndDropsVanished) {
  process("100", kBins[0]);
  process("200", kBins[1] + " (deleted)");
  process("300", "/usr/bin/bash");
  fs::create_directories(root_ / "400");  // a kernel thread: no exe link
  process("self", kBins[0]);              // not a pid
  process("0", kBins[0]);                 // not a pid either
  fs::create_directories(root_ / "sys");
  Lifecycle l(defs(), kBins);
  l.scan(root_.string());
  auto s = l.snapshot();
  EXPECT_EQ(state(s, "sizing_agent").pids, (std::set<uint32_t>{100}));
  EXPECT_EQ(state(s, "crm_agent").pids, (std::set<uint32_t>{200}));

  // 100 disappears without an exit event (e.g. before the exporter watched):
  // dropped, unhealthy, and its successor is not counted as a restart.
  fs::remove_all(root_ / "100");
  l.scan(root_.string());
  EXPECT_TRUE(state(l.snapshot(), "sizing_agent").pids.empty());
  process("101", kBins[0]);
  l.scan(root_.string());
  s = l.snapshot();
  EXPECT_EQ(state(s, "sizing_agent").pids, (std::set<uint32_t>{101}));
  EXPECT_TRUE(state(s, "sizing_agent").restarts.empty());

  // With an exit event in between, the next scan counts the restart.
  l.exited(101, SIGTERM);
  fs::remove_all(root_ / "101");
  process("102", kBins[0]);
  l.scan(root_.string());
  EXPECT_EQ(state(l.snapshot(), "sizing_agent").restarts, (std::map<std::string, uint64_t>{{"SIGTERM", 1}}));
}

// The exit event is read from a ring buffer between scans: a scan can miss the old pid
// and find its successor before the event of the old one is read. The late event still
// counts the restart, once, with its reason.
TEST_F(FakeProc, ExitEventReadAfterTheScanSawTheSuccessor) {
  process("100", kBins[1]);
  Lifecycle l(defs(), kBins);
  l.scan(root_.string());
  fs::remove_all(root_ / "100");
  process("101", kBins[1]);
  l.scan(root_.string());  // 100 gone, 101 running, no exit event read yet
  auto s = state(l.snapshot(), "crm_agent");
  EXPECT_EQ(s.pids, (std::set<uint32_t>{101}));
  EXPECT_TRUE(s.restarts.empty());
  EXPECT_EQ(s.unclaimed_starts, 1u);
  l.exited(100, 3 << 8);  // the late event
  s = state(l.snapshot(), "crm_agent");
  EXPECT_EQ(s.restarts, (std::map<std::string, uint64_t>{{"exit_code_3", 1}}));
  EXPECT_TRUE(s.pending.empty());
  EXPECT_EQ(s.unclaimed_starts, 0u);
  l.exited(100, 3 << 8);  // a duplicate changes nothing
  EXPECT_EQ(state(l.snapshot(), "crm_agent").restarts, (std::map<std::string, uint64_t>{{"exit_code_3", 1}}));

  // A late event with no successor yet waits for the next instance as usual.
  fs::remove_all(root_ / "101");
  l.scan(root_.string());
  l.exited(101, SIGKILL);
  s = state(l.snapshot(), "crm_agent");
  EXPECT_EQ(s.pending, (std::deque<std::string>{"SIGKILL"}));
  process("102", kBins[1]);
  l.scan(root_.string());
  EXPECT_EQ(state(l.snapshot(), "crm_agent").restarts,
            (std::map<std::string, uint64_t>{{"exit_code_3", 1}, {"SIGKILL", 1}}));
}

TEST_F(FakeProc, MissingProcRootIsHarmless) {
  Lifecycle l(defs(), kBins);
  l.observe(100, kBins[0]);
  l.scan((root_ / "does-not-exist").string());
  EXPECT_EQ(state(l.snapshot(), "sizing_agent").pids, (std::set<uint32_t>{100}));
}

TEST(Lifecycle, ScanOfTheRealProcFindsThisProcess) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  Lifecycle l({{"me", "test", "x", {}}}, {self});
  l.scan("/proc");
  EXPECT_TRUE(state(l.snapshot(), "me").pids.count(static_cast<uint32_t>(getpid())));
}

TEST(Lifecycle, Collect) {
  Lifecycle l(defs(), kBins);
  l.observe(100, kBins[0]);
  l.exited(100, SIGKILL);
  l.observe(101, kBins[0]);
  l.observe(200, kBins[1]);
  l.exited(200, 1 << 8);  // crm down, not restarted
  std::vector<prometheus::MetricFamily> out;
  l.collect(out);
  ASSERT_EQ(out.size(), 2u);
  const auto& health = out[0];
  EXPECT_EQ(health.name, "insa_worker_health_status");
  EXPECT_EQ(health.type, prometheus::MetricType::Gauge);
  ASSERT_EQ(health.metric.size(), 2u);
  ASSERT_EQ(health.metric[0].label.size(), 2u);
  EXPECT_EQ(health.metric[0].label[0].name, "worker_name");
  EXPECT_EQ(health.metric[0].label[0].value, "sizing_agent");
  EXPECT_EQ(health.metric[0].label[1].name, "worker_type");
  EXPECT_EQ(health.metric[0].label[1].value, "agent");
  EXPECT_EQ(health.metric[0].gauge.value, 1);
  EXPECT_EQ(health.metric[1].label[0].value, "crm_agent");
  EXPECT_EQ(health.metric[1].label[1].value, "crm");
  EXPECT_EQ(health.metric[1].gauge.value, 0);

  const auto& restarts = out[1];
  EXPECT_EQ(restarts.name, "insa_worker_restarts_total");
  EXPECT_EQ(restarts.type, prometheus::MetricType::Counter);
  ASSERT_EQ(restarts.metric.size(), 1u);
  EXPECT_EQ(restarts.metric[0].label[0].name, "worker_name");
  EXPECT_EQ(restarts.metric[0].label[0].value, "sizing_agent");
  EXPECT_EQ(restarts.metric[0].label[1].name, "reason");
  EXPECT_EQ(restarts.metric[0].label[1].value, "SIGKILL");
  EXPECT_EQ(restarts.metric[0].counter.value, 1);
}

TEST(Lifecycle, CollectWithoutWorkersAddsNothing) {
  Lifecycle l({}, {});
  std::vector<prometheus::MetricFamily> out;
  l.collect(out);
  EXPECT_TRUE(out.empty());
}

// Python workers (`script:`): every one runs the same interpreter, so the main script on
// the command line (resolved against the process's cwd) tells them apart.
TEST_F(FakeProc, PythonWorkersMatchedByScript) {
  std::vector<config::WorkerDef> py{{"sizing_agent_worker", "sizing", "", {}, "sizing_agent_worker.py"},
                                    {"crm_agent_worker", "crm", "", {}, "workers/crm_agent_worker.py"}};
  auto python = [&](const std::string& pid, const std::string& exe, const std::string& cwd,
                    std::vector<std::string> argv) {
    process(pid, exe);
    fs::create_symlink(cwd, root_ / pid / "cwd");
    std::string raw;
    for (const auto& a : argv) raw += a + '\0';
    std::ofstream(root_ / pid / "cmdline", std::ios::binary) << raw;
  };
  python("100", "/usr/bin/python3.11", "/srv", {"/usr/bin/python3.11", "/srv/app/sizing_agent_worker.py", "--seed", "1"});
  python("200", "/usr/bin/python3.11", "/srv/workers", {"python3.11", "-u", "crm_agent_worker.py"});
  python("300", "/usr/bin/python3.11", "/srv", {"python3.11", "/srv/app/my_sizing_agent_worker.py"});
  python("400", "/usr/bin/vim", "/srv", {"vim", "sizing_agent_worker.py"});  // not an interpreter
  python("500", "/usr/bin/python3.11", "/srv", {"python3.11", "-m", "sizing_agent_worker"});
  Lifecycle l(py, {"", ""});
  l.scan(root_.string());
  auto s = l.snapshot();
  EXPECT_EQ(state(s, "sizing_agent_worker").pids, (std::set<uint32_t>{100}));
  EXPECT_EQ(state(s, "crm_agent_worker").pids, (std::set<uint32_t>{200}));

  // A restart of a Python worker is counted with its exit reason like a native one.
  l.exited(200, 3 << 8);
  fs::remove_all(root_ / "200");
  python("201", "/usr/bin/python3.11", "/srv", {"python3.11", "workers/crm_agent_worker.py"});
  l.scan(root_.string());
  s = l.snapshot();
  EXPECT_EQ(state(s, "crm_agent_worker").pids, (std::set<uint32_t>{201}));
  EXPECT_EQ(state(s, "crm_agent_worker").restarts, (std::map<std::string, uint64_t>{{"exit_code_3", 1}}));
}

TEST(Lifecycle, PythonWorkerWithInterpreterBinary) {
  std::vector<config::WorkerDef> py{{"bus", "bus", "/usr/bin/python3.11", {}, "agent_message_bus.py"}};
  Lifecycle l(py, {"/usr/bin/python3.11"});
  EXPECT_EQ(l.observe(1, "/usr/bin/python3.11", "/srv/agent_message_bus.py"), 0);
  EXPECT_EQ(l.observe(2, "/opt/pyenv/bin/python3.12", "/srv/agent_message_bus.py"), -1);
  EXPECT_EQ(l.observe(3, "/usr/bin/python3.11", "/srv/other.py"), -1);
  EXPECT_EQ(l.observe(4, "/usr/bin/python3.11"), -1);
}

}  // namespace
}  // namespace insa::process

namespace insa::process {
namespace {

// Exec events name the file by device and inode: a worker living shorter than the
// scan is still seen starting, and its successors count restarts.
TEST(Lifecycle, ExecEventsOfShortLivedWorkers) {
  const fs::path dir = fs::temp_directory_path() / ("insa-lc-exec-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = (dir / "worker").string(), other = (dir / "other").string();
  for (const auto& f : {bin, other}) std::ofstream(f) << "x";
  struct stat w {}, o {};
  ASSERT_EQ(stat(bin.c_str(), &w), 0);
  ASSERT_EQ(stat(other.c_str(), &o), 0);
  Lifecycle lc({{"short", "batch", "./worker", {}}}, {bin});
  lc.started(100, w.st_dev, w.st_ino);
  EXPECT_EQ(lc.snapshot()[0].pids, (std::set<uint32_t>{100}));
  lc.exited(100, 0);
  lc.started(101, o.st_dev, o.st_ino);  // another file: not this worker
  lc.started(102, w.st_dev, w.st_ino);
  lc.exited(102, 2 << 8);
  lc.started(103, w.st_dev, w.st_ino);
  lc.exited(103, SIGKILL);
  const auto s = lc.snapshot()[0];
  EXPECT_TRUE(s.pids.empty());
  EXPECT_EQ(s.restarts, (std::map<std::string, uint64_t>{{"exit_code_0", 1}, {"exit_code_2", 1}}));
  EXPECT_EQ(s.pending, (std::deque<std::string>{"SIGKILL"}));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace insa::process
