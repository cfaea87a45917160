// SPDX-License-Identifier: Apache-2.0
// Root tests of python: probes (issue 9) on real, unmodified CPython processes:
// Debian's /usr/bin/python3.11 (stripped, non-PIE, interpreter in the
// executable) and pyenv's 3.12.1 and 3.13.0 (shared libpython). The fixture
// tests/fixtures/python/py_worker.py writes its own ground truth; every counter
// and histogram bucket must equal it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <regex>

#include "harness.h"

namespace insa::testing {
namespace {

const std::vector<double> kDurationLe{0.04, 0.5};
const std::vector<double> kSizeLe{100, 1000};
const std::vector<double> kItemsLe{5, 50};

std::string pyenv_python(const std::string& version) {
  const char* root = std::getenv("PYENV_ROOT");
  std::string base = root ? root : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "/.pyenv";
  return base + "/versions/" + version + "/bin/python" + version.substr(0, version.rfind('.'));
}

struct Interp {
  const char* name;
  std::string python;
};

std::vector<Interp> interpreters() {
  return {{"Debian311", "/usr/bin/python3.11"},
          {"Pyenv312", pyenv_python("3.12.1")},
          {"Pyenv313", pyenv_python("3.13.0")}};
}

std::string worker() { return source_dir() + "/tests/fixtures/python/py_worker.py"; }

/// tests/root/configs/NAME with absolute source paths, optionally naming the interpreter.
std::string make_config(const std::string& tag, const std::string& interpreter,
                        const std::string& name = "python.yaml") {
  std::ifstream in(source_dir() + "/tests/root/configs/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::string with = (interpreter.empty() ? "" : "interpreter: " + interpreter + ", ") + "source: " + worker();
  text = std::regex_replace(text, std::regex("source: \\.\\./\\.\\./fixtures/python/py_worker\\.py"), with);
  std::string path = "/tmp/insa-python-" + tag + ".yaml";
  std::ofstream(path) << text;
  return path;
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

void touch(const std::string& p) { std::ofstream(p) << "go\n"; }

/// Waits until `pred` holds or `seconds` pass.
template <typename F>
bool eventually(F pred, int seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string read_file(const std::string& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void expect_histogram(const Samples& got, const std::string& name, const std::string& labels,
                      const std::vector<double>& observed, const std::vector<double>& le, bool exact_sum) {
  auto want = expected_buckets(observed, le);
  const std::string open = labels.empty() ? "{" : "{" + labels + ",";
  for (size_t i = 0; i <= le.size(); ++i) {
    std::string key = name + "_bucket" + open + "le=\"" + (i == le.size() ? "+Inf" : le_str(le[i])) + "\"}";
    ASSERT_TRUE(got.count(key)) << "missing " << key;
    EXPECT_EQ(got.at(key), want[i]) << key;
  }
  const std::string plain = labels.empty() ? "" : "{" + labels + "}";
  EXPECT_EQ(got.at(name + "_count" + plain), observed.size()) << name;
  if (exact_sum) {
    double sum = 0;
    for (double v : observed) sum += v;
    EXPECT_EQ(got.at(name + "_sum" + plain), sum) << name;
  }
}

/// Every family of the fixture against its truth.
void expect_truth(const Samples& got, const Truth& t, const std::string& log) {
  size_t counters = 0;
  for (const auto& [series, want] : t.values) {
    if (series.rfind("insa_py_requests_total", 0) && series.rfind("insa_py_records_total", 0)) continue;  // python_call.yaml's
    ASSERT_TRUE(got.count(series)) << "missing " << series << "\n" << log;
    EXPECT_EQ(got.at(series), want) << series;
    ++counters;
  }
  EXPECT_GE(counters, 6u) << "the fixture's truth is too small to prove anything";
  // No series the worker did not produce.
  for (const auto& [series, v] : got)
    if (series.rfind("insa_py_requests_total{", 0) == 0 || series.rfind("insa_py_records_total{", 0) == 0)
      EXPECT_TRUE(t.values.count(series) || v == 0) << "unexpected " << series << " " << v;
  expect_histogram(got, "insa_py_request_duration_seconds", "agent_type=\"fixture\"",
                   t.observed.at("insa_py_request_duration_seconds{agent_type=\"fixture\"}"), kDurationLe, false);
  expect_histogram(got, "insa_py_request_size_bytes", "agent_type=\"fixture\"",
                   t.observed.at("insa_py_request_size_bytes{agent_type=\"fixture\"}"), kSizeLe, true);
  expect_histogram(got, "insa_py_response_size_bytes", "", t.observed.at("insa_py_response_size_bytes"), kSizeLe, true);
  expect_histogram(got, "insa_py_batch_items", "", t.observed.at("insa_py_batch_items"), kItemsLe, true);
  EXPECT_EQ(got.at("insa_py_active_requests"), 0);
  // A function that is never called: no events, no increments.
  EXPECT_EQ(got.at("insa_exporter_probe_events_total{probe=\"py_unused\"}"), 0);
  EXPECT_EQ(got.at("insa_py_unused_total"), 0);
}

class PythonProbe : public ::testing::TestWithParam<Interp> {};

// Attach to a process that is already running, with three requests in flight: those
// started before the exporter and must not be counted; everything after is exact.
TEST_P(PythonProbe, AttachToRunningProcessExact) {
  require_root();
  const auto& in = GetParam();
  ASSERT_TRUE(file_exists(in.python)) << in.python << " is missing: the image's interpreters are part of this test";
  const std::string tag = std::string(in.name) + "-running";
  const std::string go = "/tmp/insa-py-go-" + tag, truth = "/tmp/insa-py-truth-" + tag;
  std::remove(go.c_str());
  std::remove(truth.c_str());
  const std::string wlog = "/tmp/insa-py-worker-" + tag + ".log";
  std::remove(wlog.c_str());
  Child w = Child::spawn({in.python, worker(), "--seed", "7", "--threads", "3", "--requests", "30", "--hold", "3",
                          "--go", go, "--truth", truth},
                         wlog);
  ASSERT_TRUE(eventually([&] { return read_file(wlog).find("holding 3") != std::string::npos; }, 20)) << read_file(wlog);
  Exporter exp(make_config(tag, ""), 19701 + static_cast<int>(in.name[7] - '0'));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  ASSERT_TRUE(eventually([&] { return exp.scrape()["insa_exporter_probe_attached{probe=\"py_request\"}"] == 1; }, 10))
      << exp.log();
  const pid_t pid = w.pid();
  touch(go);
  int st = w.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(wlog);
  Truth t = read_truth({truth});
  Samples got = exp.scrape();
  expect_truth(got, t, exp.log());
  // Hooked for this process only: other Python processes of the host are not trapped.
  EXPECT_NE(exp.log().find("python: hooked pid " + std::to_string(pid) + " (CPython"), std::string::npos)
      << exp.log();
  EXPECT_EQ(exp.log().find("for every process that runs it"), std::string::npos) << exp.log();
}

// A process started after the exporter, whose interpreter the config names: exact from
// its first call.
TEST_P(PythonProbe, ProcessStartedLaterExact) {
  require_root();
  const auto& in = GetParam();
  const std::string tag = std::string(in.name) + "-later";
  const std::string truth = "/tmp/insa-py-truth-" + tag;
  std::remove(truth.c_str());
  Exporter exp(make_config(tag, in.python), 19711 + static_cast<int>(in.name[7] - '0'));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({in.python, worker(), "--seed", "3", "--threads", "2", "--requests", "25",
                                "--truth", truth});
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  expect_truth(exp.scrape(), read_truth({truth}), exp.log());
  EXPECT_NE(exp.log().find("for every process that runs it"), std::string::npos) << exp.log();
}

// A process that forks: parent and child are both counted, each exactly (hooks on the
// interpreter file, so the child is seen from its first instruction).
TEST_P(PythonProbe, ForkedProcessCountedInBoth) {
  require_root();
  const auto& in = GetParam();
  const std::string tag = std::string(in.name) + "-fork";
  const std::string truth = "/tmp/insa-py-truth-" + tag;
  std::remove(truth.c_str());
  std::remove((truth + ".child").c_str());
  Exporter exp(make_config(tag, in.python), 19741 + static_cast<int>(in.name[7] - '0'));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [st, out] = run_capture({in.python, worker(), "--seed", "4", "--requests", "15", "--fork", "--truth", truth});
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  ASSERT_NE(out.find("(child)"), std::string::npos) << out;
  // Truth files add up: the parent's and the child's own accounting.
  expect_truth(exp.scrape(), read_truth({truth, truth + ".child"}), exp.log());
}

// The exporter killed (SIGKILL) and started again while the worker runs, with calls and
// coroutines in flight under both mechanisms: the worker finishes unharmed, with the
// output it has without any exporter.
TEST_P(PythonProbe, WorkerSurvivesTheExporterDyingMidCall) {
  require_root();
  const auto& in = GetParam();
  const std::string tag = std::string(in.name) + "-kill";
  auto run = [&](bool with_exporters) {
    const std::string truth = "/tmp/insa-py-truth-" + tag + (with_exporters ? "-b" : "-a");
    std::remove(truth.c_str());
    const std::string wlog = "/tmp/insa-py-worker-" + tag + ".log";
    std::remove(wlog.c_str());
    Child w = Child::spawn({in.python, worker(), "--seed", "6", "--threads", "3", "--requests", "60", "--records",
                            "300", "--rounds", "40", "--truth", truth},
                           wlog);
    for (int round = 0; with_exporters && round < 3; ++round) {
      Exporter e(make_config(tag + std::to_string(round), "", round % 2 ? "python_call.yaml" : "python.yaml"),
                 19751 + static_cast<int>(in.name[7] - '0') + 3 * round);
      EXPECT_TRUE(e.wait_ready()) << e.log();
      EXPECT_TRUE(eventually([&] { return e.log().find("python: hooked pid " + std::to_string(w.pid())) != std::string::npos; }, 10))
          << e.log();
      EXPECT_TRUE(eventually([&] { return e.scrape()["insa_exporter_probe_events_total{probe=\"" +
                                                     std::string(round % 2 ? "py_fib" : "py_request") + "\"}"] > 0; }, 10))
          << "the worker ended before round " << round << ": make it longer";
      e.child().signal(SIGKILL);
      e.child().wait();
    }
    EXPECT_TRUE(!with_exporters || w.running()) << "the worker ended before the exporters were killed: make it longer";
    int st = w.wait();
    std::vector<std::string> lines;
    std::istringstream is(read_file(truth));
    for (std::string line; std::getline(is, line);)
      if (line.rfind("observe insa_py_request_duration", 0) != 0) lines.push_back(line);
    std::sort(lines.begin(), lines.end());
    return std::make_tuple(st, read_file(wlog), lines);
  };
  auto without = run(false);
  auto with = run(true);
  EXPECT_TRUE(WIFEXITED(std::get<0>(with)) && WEXITSTATUS(std::get<0>(with)) == 0) << std::get<1>(with);
  EXPECT_EQ(std::get<0>(with), std::get<0>(without));
  EXPECT_EQ(std::get<1>(with), std::get<1>(without));
  EXPECT_EQ(std::get<2>(with), std::get<2>(without));
}

// A worker killed with requests in flight: the in-flight gauge counts them while they
// run and returns to 0 when the process dies; they are counted as abandoned calls.
TEST_P(PythonProbe, KilledWorkerInFlightCallsReclaimed) {
  require_root();
  const auto& in = GetParam();
  const std::string tag = std::string(in.name) + "-hang";
  const std::string go = "/tmp/insa-py-go-" + tag, wlog = "/tmp/insa-py-worker-" + tag + ".log";
  std::remove(go.c_str());
  std::remove(wlog.c_str());
  Child w = Child::spawn({in.python, worker(), "--go", go, "--hang", "4"}, wlog);
  ASSERT_TRUE(eventually([&] { return read_file(wlog).find("waiting") != std::string::npos; }, 20)) << read_file(wlog);
  Exporter exp(make_config(tag, ""), 19781 + static_cast<int>(in.name[7] - '0'));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const pid_t pid = w.pid();
  ASSERT_TRUE(eventually([&] { return exp.log().find("python: hooked pid " + std::to_string(pid)) != std::string::npos; }, 10))
      << exp.log();
  touch(go);
  ASSERT_TRUE(eventually([&] { return read_file(wlog).find("hanging 4") != std::string::npos; }, 20)) << read_file(wlog);
  EXPECT_EQ(exp.scrape().at("insa_py_active_requests"), 4);
  w.signal(SIGKILL);
  w.wait();
  ASSERT_TRUE(eventually([&] { return exp.scrape()["insa_py_active_requests"] == 0; }, 5)) << exp.log();
  Samples got = exp.scrape();
  EXPECT_EQ(got.at("insa_exporter_abandoned_calls_total{probe=\"py_request\"}"), 4);
  EXPECT_EQ(got.at("insa_exporter_probe_events_total{probe=\"py_request\"}"), 4);
}

// The worker's output, exit status and own accounting are the same with and without
// the exporter attached.
TEST_P(PythonProbe, WorkerUnchangedByTheExporter) {
  require_root();
  const auto& in = GetParam();
  const std::string tag = std::string(in.name) + "-noharm";
  auto run = [&](const std::string& truth) {
    std::remove(truth.c_str());
    auto r = run_capture({in.python, worker(), "--seed", "5", "--threads", "2", "--requests", "20", "--truth", truth});
    // The threads interleave differently from run to run: compare the accounting as a sorted
    // list; durations are timings, not accounting.
    std::vector<std::string> lines;
    std::istringstream is(read_file(truth));
    for (std::string line; std::getline(is, line);)
      if (line.rfind("observe insa_py_request_duration", 0) != 0) lines.push_back(line);
    std::sort(lines.begin(), lines.end());
    return std::make_tuple(r.first, r.second, lines);
  };
  auto without = run("/tmp/insa-py-truth-" + tag + "-a");
  Exporter exp(make_config(tag, in.python), 19721 + static_cast<int>(in.name[7] - '0'));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto with = run("/tmp/insa-py-truth-" + tag + "-b");
  EXPECT_EQ(std::get<0>(with), std::get<0>(without));
  EXPECT_EQ(std::get<1>(with), std::get<1>(without));
  EXPECT_EQ(std::get<2>(with), std::get<2>(without));
  EXPECT_GT(exp.scrape()["insa_exporter_probe_events_total{probe=\"py_request\"}"], 0) << exp.log();
}

// The per-call mechanism: plain functions called from Python code (inlined by 3.11+),
// recursion, exceptions, and coroutines awaited directly (inlined by 3.12+), exact.
TEST_P(PythonProbe, PerCallMechanismExact) {
  require_root();
  const auto& in = GetParam();
  const std::string tag = std::string(in.name) + "-call";
  const std::string go = "/tmp/insa-py-go-" + tag, truth = "/tmp/insa-py-truth-" + tag;
  std::remove(go.c_str());
  std::remove(truth.c_str());
  const std::string wlog = "/tmp/insa-py-worker-" + tag + ".log";
  std::remove(wlog.c_str());
  Child w = Child::spawn({in.python, worker(), "--seed", "9", "--threads", "2", "--requests", "20", "--go", go,
                          "--truth", truth},
                         wlog);
  ASSERT_TRUE(eventually([&] { return read_file(wlog).find("waiting") != std::string::npos; }, 20)) << read_file(wlog);
  Exporter exp(make_config(tag, "", "python_call.yaml"), 19731 + static_cast<int>(in.name[7] - '0'));
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  ASSERT_TRUE(eventually([&] { return exp.log().find("python: hooked pid " + std::to_string(w.pid())) != std::string::npos; }, 10))
      << exp.log();
  touch(go);
  int st = w.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(wlog);
  Truth t = read_truth({truth});
  Samples got = exp.scrape();
  size_t n = 0;
  for (const auto& [series, want] : t.values) {
    if (series.rfind("insa_py_checksums_total", 0) && series.rfind("insa_py_fib_calls_total", 0) &&
        series.rfind("insa_py_lookups_total", 0))
      continue;
    ++n;
    ASSERT_TRUE(got.count(series)) << "missing " << series << "\n" << exp.log();
    EXPECT_EQ(got.at(series), want) << series;
  }
  EXPECT_EQ(n, 5u);
  expect_histogram(got, "insa_py_checksum_bytes", "", t.observed.at("insa_py_checksum_bytes"), {100, 200}, true);
  EXPECT_EQ(got.at("insa_exporter_abandoned_calls_total{probe=\"py_fib\"}"), 0);
}

INSTANTIATE_TEST_SUITE_P(Interpreters, PythonProbe, ::testing::ValuesIn(interpreters()),
                         [](const auto& info) { return std::string(info.param.name); });

// An interpreter without a known layout is refused in one line, never guessed.
TEST(PythonProbeRefusals, UnsupportedInterpreterRefused) {
  require_root();
  const std::string old = pyenv_python("3.10.13");
  ASSERT_TRUE(file_exists(old)) << old;
  auto [st, out] = run_capture({binary_dir() + "/insa-exporter", "check", make_config("old", old)});
  EXPECT_EQ(WEXITSTATUS(st), 1) << out;
  EXPECT_NE(out.find("is not a CPython 3.11+ interpreter"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

}  // namespace
}  // namespace insa::testing
