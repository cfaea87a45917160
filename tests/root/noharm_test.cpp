// SPDX-License-Identifier: Apache-2.0
// Root tests of issue 3, "never harm the worker": every fixture scenario (C++
// exceptions 1, 2 and 5 frames below the catch, rethrow, exceptions through a
// probed recursive function, tail calls, several returns, longjmp, a thread
// exiting inside a call, process exit inside a call, a worker SIGKILLed
// mid-request) runs in every build variant (PIE / non-PIE, -O0 / -O2) twice:
// without and with the exporter attached. The two runs must end the same way
// and print the same output; the exported counts by status, duration buckets,
// in-flight gauge and abandoned counter must equal the fixture's own ground
// truth exactly. Also: `insa-exporter check` reports each probe's return sites
// (checked against objdump) and refuses undecodable functions on one line.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <regex>
#include <set>

#include "../test_util.h"
#include "harness.h"

namespace insa::testing {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kVariants{"pie_O0", "pie_O2", "nopie_O0", "nopie_O2"};
/// C++ only: libstdc++ linked statically, so its catch is inside the binary;
/// and stripped -O2 -rdynamic, as distributions ship daemons: the throw paths
/// are unnamed cold parts known only from .eh_frame.
const std::vector<std::string> kCppVariants{"static_O2", "stripped_O2"};
const std::vector<double> kDurationLe{0.001, 0.01, 0.1, 1};

/// One probed function; `status` holds YAML status rules (empty: the defaults,
/// success on return and error on an exception).
struct Fn {
  std::string name;
  std::string status;
};

struct Scenario {
  std::string test;  ///< gtest name part
  std::string lang;  ///< "c" or "cpp": fixture_c or fixture_cpp
  std::string mode;
  int n;
  std::vector<Fn> fns;
  bool blocks = false;  ///< never exits: SIGKILLed once its ground truth is printed
};

const std::string kRetStatus = "[{if: \"ret:i32 < 0\", then: error}, {if: \"ret:i32 == 0\", then: empty}, {else: success}]";

const std::vector<Scenario> kScenarios{
    // C++ exceptions: counted as error at the catch, once per unwound probed call.
    {"throw1", "cpp", "throw1", 20, {{"insa_fx::catcher"}, {"insa_fx::descend"}, {"insa_fx::boom"}}},
    {"throw2", "cpp", "throw2", 20, {{"insa_fx::catcher"}, {"insa_fx::descend"}, {"insa_fx::boom"}}},
    // 5 frames: through 4 levels of the probed recursive descend().
    {"throw5", "cpp", "throw5", 20, {{"insa_fx::catcher"}, {"insa_fx::descend"}, {"insa_fx::boom"}}},
    {"rethrow", "cpp", "rethrow", 20, {{"insa_fx::catch_rethrow"}, {"insa_fx::rethrower"}, {"insa_fx::boom"}}},
    {"mixed", "cpp", "mixed", 30, {{"insa_fx::maybe_throw"}}},
    // A throwing member function (stripped: a .dynsym name, an unnamed cold part).
    {"method", "cpp", "method", 30, {{"insa_fx::Parser::parse"}}},
    {"slow_throw", "cpp", "slow_throw", 6, {{"insa_fx::nap_then_throw"}}},
    {"cpp_kill", "cpp", "block", 3, {{"insa_fx::blocked_call"}}, true},
    // C: several returns (status from $ret at each return site), tail calls, recursion.
    {"returns", "c", "returns_status", 50, {{"several_returns", kRetStatus}}},
    {"tail", "c", "tail", 30, {{"tail_caller"}, {"tail_callee"}}},
    {"indirect_tail", "c", "indirect", 30, {{"indirect_tail"}, {"tail_callee"}}},
    // rax is -7 at fx_tail_neg's tail jmp, but its return value is tail_callee's (>= 0): a
    // rule on $ret is skipped at a tail-jmp exit, so the status is the default.
    {"tail_no_ret", "c", "tail_neg", 30, {{"fx_tail_neg", "[{if: \"ret:i32 < 0\", then: error}, {else: success}]"}}},
    {"recurse", "c", "recurse", 10, {{"recurse"}}},
    {"slow", "c", "slow", 6, {{"slow_call"}}},
    // Calls that never return: reclaimed, counted as abandoned.
    {"longjmp", "c", "longjmp", 10, {{"long_jumper"}}},
    {"thread_exit", "c", "thread_exit", 5, {{"thread_exiter"}}},
    {"process_exit", "c", "die", 1, {{"die_now"}}},
    {"c_kill", "c", "block", 3, {{"blocked_call"}}, true},
};

/// The fixture's ground truth, parsed from its output.
struct Expected {
  std::map<std::string, std::map<std::string, double>> calls;  ///< probe → status → count
  std::map<std::string, double> abandoned;
  std::map<std::string, double> inflight;  ///< while blocked (block mode)
  std::map<std::string, std::vector<double>> durations;
};

std::string probe_of(const std::string& line) {
  static const std::regex re("probe=\"([^\"]*)\"");
  std::smatch m;
  return std::regex_search(line, m, re) ? m[1].str() : "";
}

Expected parse_truth(const std::string& out) {
  Expected e;
  std::istringstream in(out);
  std::string line;
  static const std::regex status_re("status=\"([^\"]*)\"");
  while (std::getline(in, line)) {
    auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    double v = std::stod(line.substr(sp + 1));
    std::smatch m;
    if (line.rfind("calls{", 0) == 0 && std::regex_search(line, m, status_re))
      e.calls[probe_of(line)][m[1].str()] += v;
    else if (line.rfind("abandoned{", 0) == 0)
      e.abandoned[probe_of(line)] += v;
    else if (line.rfind("inflight{", 0) == 0)
      e.inflight[probe_of(line)] += v;
    else if (line.rfind("observe duration{", 0) == 0)
      e.durations[probe_of(line)].push_back(v);
  }
  return e;
}

double value_or0(const Samples& s, const std::string& key) {
  auto it = s.find(key);
  return it == s.end() ? 0 : it->second;
}

std::string config_text(const std::string& binary, const std::vector<Fn>& fns) {
  std::ostringstream y;
  y << "# Generated by tests/root/noharm_test.cpp\n"
       "metrics:\n"
       "  - name: calls_total\n    type: counter\n    help: Probed calls by outcome.\n    labels: [probe, status]\n"
       "  - name: call_duration_seconds\n    type: histogram\n    labels: [probe]\n"
       "    buckets: [0.001, 0.01, 0.1, 1]\n"
       "  - name: inflight_calls\n    type: gauge\n    labels: [probe]\n"
       "probes:\n";
  for (const auto& f : fns) {
    y << "  - name: \"" << f.name << "\"\n    binary: " << binary << "\n    function: \"" << f.name << "\"\n";
    if (!f.status.empty()) y << "    status: " << f.status << "\n";
    y << "    metrics:\n"
      << "      - {metric: calls_total, labels: {probe: \"" << f.name << "\", status: $status}}\n"
      << "      - {metric: call_duration_seconds, observe: $duration, labels: {probe: \"" << f.name << "\"}}\n"
      << "      - {metric: inflight_calls, inflight: true, labels: {probe: \"" << f.name << "\"}}\n";
  }
  return y.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A private directory under /tmp, removed at the end of the test.
struct TempDir {
  explicit TempDir(const std::string& p) : path(p) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string path;
};

/// Runs a fixture that blocks until killed: waits for `lines` lines of output,
/// calls `during` (the scrape while calls are in flight), SIGKILLs it and
/// returns {wait status, output}.
std::pair<int, std::string> run_until_killed(const std::vector<std::string>& argv, const std::string& out_file,
                                             size_t lines, const std::function<void()>& during) {
  std::remove(out_file.c_str());
  Child c = Child::spawn(argv, out_file);
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    auto text = read_file(out_file);
    if (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) >= lines) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  during();
  c.signal(SIGKILL);
  int st = c.wait();
  return {st, read_file(out_file)};
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return std::string("signal ") + strsignal(WTERMSIG(st));
  return "status " + std::to_string(st);
}

using Param = std::tuple<size_t, size_t>;  // scenario index, variant index

class NoHarmMatrix : public ::testing::TestWithParam<Param> {};
std::vector<Param> matrix();

TEST_P(NoHarmMatrix, SameBehaviourAndExactCounts) {
  require_root();
  const auto [si, vi] = GetParam();
  const Scenario& sc = kScenarios[si];
  const std::string& variant = vi < kVariants.size() ? kVariants[vi] : kCppVariants[vi - kVariants.size()];
  const auto all = matrix();
  const int port = 19500 + static_cast<int>(std::find(all.begin(), all.end(), GetParam()) - all.begin());
  ASSERT_LT(port, 19600);
  TempDir dir("/tmp/insa-noharm-" + std::to_string(port));
  // A private copy: probes attach by binary, so other tests running the shared
  // fixture at the same time cannot add to our counts.
  const std::string fixture = "fixture_" + sc.lang + "_" + variant;
  const std::string bin = dir.path + "/" + fixture;
  std::error_code ec;
  fs::copy_file(binary_dir() + "/tests/fixtures/" + fixture, bin, ec);
  ASSERT_FALSE(ec) << "cannot copy " << fixture << " (being rebuilt? run cmake --build build): " << ec.message();
  const std::string config = dir.path + "/noharm.yaml";
  write_file(config, config_text(bin, sc.fns));
  const std::vector<std::string> argv{bin, sc.mode, std::to_string(sc.n)};
  const std::string out_file = dir.path + "/out.txt";
  const size_t block_lines = 2;  // block mode prints inflight and abandoned

  // Run 1: no exporter.
  auto plain = sc.blocks ? run_until_killed(argv, out_file, block_lines, [] {}) : run_capture(argv);
  if (!sc.blocks) {
    ASSERT_TRUE(WIFEXITED(plain.first)) << describe_status(plain.first) << "\n" << plain.second;
    ASSERT_EQ(WEXITSTATUS(plain.first), 0) << plain.second;
  }
  const Expected want = parse_truth(plain.second);
  ASSERT_FALSE(want.calls.empty() && want.abandoned.empty()) << "fixture printed no ground truth:\n" << plain.second;

  // Run 2: the exporter attached to every probed function.
  Exporter exp(config, port);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  Samples mid;
  auto traced = sc.blocks ? run_until_killed(argv, out_file, block_lines, [&] { mid = exp.scrape(); })
                          : run_capture(argv);
  EXPECT_EQ(describe_status(traced.first), describe_status(plain.first)) << traced.second;
  EXPECT_EQ(traced.second, plain.second);
  // A killed process's threads run the exit tracepoint before wait returns;
  // nothing is asynchronous, but allow the scrape a moment anyway.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const Samples got = exp.scrape();
  ASSERT_FALSE(got.empty()) << exp.log();
  const std::string log = "\n" + exp.log();

  for (const auto& f : sc.fns) {
    SCOPED_TRACE("probe " + f.name);
    const std::string pl = "probe=\"" + f.name + "\"";
    EXPECT_EQ(value_or0(got, "insa_exporter_probe_attached{" + pl + "}"), 1) << "attached";

    // Counts by status: exactly the fixture's, and no other status.
    std::map<std::string, double> want_calls = want.calls.count(f.name) ? want.calls.at(f.name)
                                                                        : std::map<std::string, double>{};
    std::map<std::string, double> got_calls;
    const std::string prefix = "calls_total{" + pl + ",status=\"";
    for (const auto& [k, v] : got)
      if (k.rfind(prefix, 0) == 0 && v != 0) got_calls[k.substr(prefix.size(), k.size() - prefix.size() - 2)] = v;
    EXPECT_EQ(got_calls, want_calls) << "calls_total{" << pl << ",status=...} by status";

    double closed = 0, errors = 0;
    for (const auto& [st, v] : want_calls) closed += v;
    if (want_calls.count("error")) errors = want_calls.at("error");
    const double abandoned = want.abandoned.count(f.name) ? want.abandoned.at(f.name) : 0;
    auto expect = [&](const Samples& s, const std::string& family, const std::string& labels, double v,
                      const char* when) {
      const std::string key = family + "{" + labels + "}";
      EXPECT_EQ(value_or0(s, key), v) << key << " " << when;
    };

    // Every closed call observes one duration; abandoned calls none.
    expect(got, "call_duration_seconds_count", pl, closed, "after the run");
    if (want.durations.count(f.name)) {
      auto buckets = expected_buckets(want.durations.at(f.name), kDurationLe);
      for (size_t i = 0; i <= kDurationLe.size(); ++i)
        expect(got, "call_duration_seconds_bucket",
               pl + ",le=\"" + (i == kDurationLe.size() ? "+Inf" : le_str(kDurationLe[i])) + "\"", buckets[i],
               "after the run");
    }
    expect(got, "inflight_calls", pl, 0, "after the run");
    if (sc.blocks) {
      ASSERT_TRUE(want.inflight.count(f.name));
      expect(mid, "inflight_calls", pl, want.inflight.at(f.name), "while blocked");
      expect(mid, "insa_exporter_abandoned_calls_total", pl, 0, "while blocked");
    }
    expect(got, "insa_exporter_abandoned_calls_total", pl, abandoned, "after the run");
    // In these fixtures every error is a C++ exception.
    expect(got, "insa_exporter_exception_exits_total", pl, sc.lang == "cpp" ? errors : 0, "after the run");
    expect(got, "insa_exporter_probe_events_total", pl, closed + abandoned, "after the run");
    expect(got, "insa_exporter_unmatched_exits_total", pl, 0, "after the run");
    expect(got, "insa_exporter_untracked_calls_total", pl, 0, "after the run");
  }
  if (HasFailure()) std::cerr << "exporter log (" << fixture << " " << sc.mode << "):" << log << "\n";
}

/// Every scenario in every variant; C++ scenarios also with static libstdc++ and stripped.
std::vector<Param> matrix() {
  std::vector<Param> out;
  for (size_t si = 0; si < kScenarios.size(); ++si) {
    for (size_t vi = 0; vi < kVariants.size(); ++vi) out.emplace_back(si, vi);
    if (kScenarios[si].lang == "cpp")
      for (size_t k = 0; k < kCppVariants.size(); ++k) out.emplace_back(si, kVariants.size() + k);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(NoHarm, NoHarmMatrix, ::testing::ValuesIn(matrix()),
                         [](const ::testing::TestParamInfo<Param>& i) {
                           const size_t vi = std::get<1>(i.param);
                           return kScenarios[std::get<0>(i.param)].test + "_" +
                                  (vi < kVariants.size() ? kVariants[vi] : kCppVariants[vi - kVariants.size()]);
                         });

// ---- two probes on one function -------------------------------------------------

struct TwoProbes {
  std::string lang, variant, mode;
  int n;
  std::string fn;
};

// Both probes see every entry and every exit (each probe pairs its own frame, in
// whatever order the kernel runs the two exit probes), through returns, recursion,
// tail calls and C++ exceptions.
TEST(NoHarmTwoProbes, EachProbeOnOneFunctionCountsEveryCall) {
  require_root();
  const std::vector<TwoProbes> cases{
      {"cpp", "pie_O2", "mixed", 30, "insa_fx::maybe_throw"},
      {"cpp", "stripped_O2", "throw5", 10, "insa_fx::descend"},
      {"c", "pie_O2", "recurse", 10, "recurse"},
      {"c", "nopie_O2", "tail", 20, "tail_caller"},
  };
  int port = 19620;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.fn + " in " + c.lang + "_" + c.variant);
    TempDir dir("/tmp/insa-noharm-two-" + std::to_string(port));
    const std::string bin = dir.path + "/fixture";
    std::error_code ec;
    fs::copy_file(binary_dir() + "/tests/fixtures/fixture_" + c.lang + "_" + c.variant, bin, ec);
    ASSERT_FALSE(ec) << ec.message();
    std::ostringstream y;
    y << "metrics:\n  - name: calls_total\n    type: counter\n    labels: [probe, status]\nprobes:\n";
    for (const char* name : {"first", "second"})
      y << "  - name: " << name << "\n    binary: " << bin << "\n    function: \"" << c.fn << "\"\n"
        << "    metrics: [{metric: calls_total, labels: {probe: " << name << ", status: $status}}]\n";
    const std::string config = dir.path + "/two.yaml";
    write_file(config, y.str());
    const std::vector<std::string> argv{bin, c.mode, std::to_string(c.n)};
    auto plain = run_capture(argv);
    ASSERT_EQ(plain.first, 0) << plain.second;
    const Expected want = parse_truth(plain.second);
    ASSERT_TRUE(want.calls.count(c.fn)) << plain.second;

    Exporter exp(config, port++);
    ASSERT_TRUE(exp.wait_ready()) << exp.log();
    auto traced = run_capture(argv);
    EXPECT_EQ(traced, plain);
    const Samples got = exp.scrape();
    for (const std::string name : {"first", "second"}) {
      SCOPED_TRACE(name);
      std::map<std::string, double> got_calls;
      const std::string prefix = "calls_total{probe=\"" + name + "\",status=\"";
      for (const auto& [k, v] : got)
        if (k.rfind(prefix, 0) == 0 && v != 0) got_calls[k.substr(prefix.size(), k.size() - prefix.size() - 2)] = v;
      EXPECT_EQ(got_calls, want.calls.at(c.fn));
      const std::string pl = "{probe=\"" + name + "\"}";
      EXPECT_EQ(value_or0(got, "insa_exporter_unmatched_exits_total" + pl), 0);
      EXPECT_EQ(value_or0(got, "insa_exporter_abandoned_calls_total" + pl), 0);
    }
    if (HasFailure()) std::cerr << exp.log() << "\n";
  }
}

// ---- calls that never return, in user metrics -----------------------------------

// With `abandoned_status: error`, a call left by longjmp (or whose thread ends inside
// it) counts in the user's status-labelled counter, exactly once; it observes no
// duration (its end is not known) and the in-flight gauge returns to 0.
TEST(NoHarmAbandoned, AbandonedStatusCountsInUserMetrics) {
  require_root();
  struct Case {
    std::string mode, fn;
    int n;
  };
  int port = 19624;
  for (const Case& c : {Case{"longjmp", "long_jumper", 12}, Case{"thread_exit", "thread_exiter", 5}}) {
    SCOPED_TRACE(c.mode);
    TempDir dir("/tmp/insa-noharm-abandoned-" + std::to_string(port));
    const std::string bin = dir.path + "/fixture";
    std::error_code ec;
    fs::copy_file(binary_dir() + "/tests/fixtures/fixture_c_pie_O2", bin, ec);
    ASSERT_FALSE(ec) << ec.message();
    const std::string config = dir.path + "/abandoned.yaml";
    write_file(config, "metrics:\n"
                       "  - name: calls_total\n    type: counter\n    labels: [status]\n"
                       "  - name: call_duration_seconds\n    type: histogram\n    buckets: [0.001, 1]\n"
                       "  - name: inflight_calls\n    type: gauge\n"
                       "probes:\n  - name: p\n    binary: " + bin + "\n    function: " + c.fn + "\n"
                       "    abandoned_status: error\n"
                       "    metrics:\n"
                       "      - {metric: calls_total, labels: {status: $status}}\n"
                       "      - {metric: call_duration_seconds, observe: $duration}\n"
                       "      - {metric: inflight_calls, inflight: true}\n");
    const std::vector<std::string> argv{bin, c.mode, std::to_string(c.n)};
    auto plain = run_capture(argv);
    ASSERT_EQ(plain.first, 0) << plain.second;
    const Expected want = parse_truth(plain.second);
    ASSERT_EQ(want.abandoned.count(c.fn), 1u) << plain.second;
    ASSERT_EQ(want.abandoned.at(c.fn), c.n);
    Exporter exp(config, port++);
    ASSERT_TRUE(exp.wait_ready()) << exp.log();
    auto traced = run_capture(argv);
    EXPECT_EQ(traced, plain);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const Samples got = exp.scrape();
    EXPECT_EQ(value_or0(got, "calls_total{status=\"error\"}"), c.n) << exp.log();
    EXPECT_EQ(value_or0(got, "calls_total{status=\"success\"}"), 0);
    EXPECT_EQ(value_or0(got, "call_duration_seconds_count"), 0);
    EXPECT_EQ(value_or0(got, "inflight_calls"), 0);
    EXPECT_EQ(value_or0(got, "insa_exporter_abandoned_calls_total{probe=\"p\"}"), c.n);
    EXPECT_EQ(value_or0(got, "insa_exporter_unmatched_exits_total{probe=\"p\"}"), 0);
  }
}

// ---- insa-exporter check ------------------------------------------------------

/// Runs a program; returns {wait status, stdout, stderr}.
struct RunResult {
  int status;
  std::string out, err;
};
RunResult run_split(const std::vector<std::string>& argv, const std::string& tmp) {
  const std::string o = tmp + "/stdout", e = tmp + "/stderr";
  pid_t pid = fork();
  if (pid == 0) {
    int fo = open(o.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(e.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fo, 1);
    dup2(fe, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return {st, read_file(o), read_file(e)};
}


/// Independent truth: the exits of `mangled` (and its .cold part) counted in
/// objdump's disassembly: every ret, every jmp whose target is outside the
/// function, every indirect jmp (none of the functions used has a jump table).
size_t objdump_exits(const std::string& bin, const std::string& mangled) {
  std::istringstream in(insa::test::run_command("objdump -d --no-show-raw-insn -M att '" + bin + "'"));
  static const std::regex header("^[0-9a-f]+ <([^>]+)>:$");
  static const std::regex insn("^\\s*[0-9a-f]+:\\s+(.*)$");
  static const std::regex ret("^(rep |repz |bnd )?ret[q]?\\b.*");
  static const std::regex jmp_direct("^(bnd )?jmp[q]?\\s+[0-9a-f]+ <([^>+]+)(\\+0x[0-9a-f]+)?>.*");
  static const std::regex jmp_indirect("^(notrack |bnd )*jmp[q]?\\s+\\*.*");
  auto mine = [&](const std::string& sym) { return sym == mangled || sym == mangled + ".cold"; };
  bool inside = false;
  size_t n = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, header)) {
      inside = mine(m[1].str());
      continue;
    }
    if (!inside || !std::regex_match(line, m, insn)) continue;
    std::string text = m[1].str();
    if (std::regex_match(text, ret) || std::regex_match(text, jmp_indirect)) {
      ++n;
    } else if (std::regex_match(text, m, jmp_direct) && !mine(m[2].str())) {
      ++n;
    }
  }
  return n;
}

struct CheckFn {
  std::string lang, name, mangled;
};

TEST(NoHarmCheck, ReportsReturnSitesPerProbeAsObjdumpCounts) {
  require_root();
  TempDir dir("/tmp/insa-noharm-check-sites");
  const std::vector<CheckFn> fns{
      {"c", "several_returns", "several_returns"},
      {"c", "tail_caller", "tail_caller"},
      {"c", "tail_callee", "tail_callee"},
      {"c", "indirect_tail", "indirect_tail"},
      {"c", "recurse", "recurse"},
      {"c", "slow_call", "slow_call"},
      {"c", "blocked_call", "blocked_call"},
      {"c", "long_jumper", "long_jumper"},
      {"c", "thread_exiter", "thread_exiter"},
      {"c", "nop5_entry", "nop5_entry"},
      {"c", "die_now", "die_now"},
      {"cpp", "insa_fx::catcher", "_ZN7insa_fx7catcherEi"},
      {"cpp", "insa_fx::descend", "_ZN7insa_fx7descendEi"},
      {"cpp", "insa_fx::boom", "_ZN7insa_fx4boomEi"},
      {"cpp", "insa_fx::rethrower", "_ZN7insa_fx9rethrowerEi"},
      {"cpp", "insa_fx::catch_rethrow", "_ZN7insa_fx13catch_rethrowEi"},
      {"cpp", "insa_fx::maybe_throw", "_ZN7insa_fx11maybe_throwEi"},
      {"cpp", "insa_fx::nap_then_throw", "_ZN7insa_fx14nap_then_throwEi"},
  };
  for (const auto& variant : kVariants) {
    SCOPED_TRACE(variant);
    std::ostringstream y;
    y << "metrics:\n  - name: calls_total\n    type: counter\n    labels: [probe, status]\nprobes:\n";
    std::map<std::string, size_t> want;
    for (const auto& f : fns) {
      const std::string bin = binary_dir() + "/tests/fixtures/fixture_" + f.lang + "_" + variant;
      const std::string name = f.lang + ":" + f.name;
      want[name] = objdump_exits(bin, f.mangled);
      y << "  - name: \"" << name << "\"\n    binary: " << bin << "\n    function: \"" << f.name << "\"\n"
        << "    metrics: [{metric: calls_total, labels: {probe: x, status: $status}}]\n";
    }
    const std::string config = dir.path + "/sites_" + variant + ".yaml";
    write_file(config, y.str());
    RunResult r = run_split({binary_dir() + "/insa-exporter", "check", config}, dir.path);
    ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.out << r.err;
    std::map<std::string, size_t> got;
    static const std::regex line_re("^probe (\\S+)\\s+.*, ([0-9]+) return sites?$");
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if (std::regex_match(line, m, line_re)) got[m[1].str()] = std::stoul(m[2].str());
    }
    EXPECT_EQ(got, want) << r.out;
    EXPECT_NE(r.out.find("OK: " + std::to_string(fns.size()) + " probes"), std::string::npos) << r.out;
    EXPECT_EQ(want.at("c:die_now"), 0u);  // noreturn: entry only, reclaimed at exit
    EXPECT_EQ(want.at("c:nop5_entry"), 1u);
  }
}

// A stripped -O2 -rdynamic C++ build: the throw paths are unnamed cold parts (only
// .eh_frame knows them); `check` counts the same return sites as objdump on the
// unstripped build of the same source, marks unnamed cold exits, and says how each
// probe's exit is seen. A uretprobe there is refused on one line, naming the reason.
TEST(NoHarmCheck, StrippedCxxExitMethodAndUretprobeRefusal) {
  require_root();
  TempDir dir("/tmp/insa-noharm-check-stripped");
  const std::string stripped = binary_dir() + "/tests/fixtures/fixture_cpp_stripped_O2";
  const std::string named = binary_dir() + "/tests/fixtures/fixture_cpp_pie_O2";
  const std::vector<CheckFn> fns{
      {"cpp", "insa_fx::boom", "_ZN7insa_fx4boomEi"},
      {"cpp", "insa_fx::maybe_throw", "_ZN7insa_fx11maybe_throwEi"},
      {"cpp", "insa_fx::catcher", "_ZN7insa_fx7catcherEi"},
      {"cpp", "insa_fx::rethrower", "_ZN7insa_fx9rethrowerEi"},
      {"cpp", "insa_fx::nap_then_throw", "_ZN7insa_fx14nap_then_throwEi"},
      {"cpp", "insa_fx::Parser::parse", "_ZN7insa_fx6Parser5parseEi"},
  };
  std::ostringstream y;
  y << "metrics:\n  - name: calls_total\n    type: counter\n    labels: [probe, status]\nprobes:\n";
  std::map<std::string, size_t> want;
  for (const auto& f : fns) {
    want[f.name] = objdump_exits(named, f.mangled);
    y << "  - name: \"" << f.name << "\"\n    binary: " << stripped << "\n    function: \"" << f.name << "\"\n"
      << "    metrics: [{metric: calls_total, labels: {probe: x, status: $status}}]\n";
  }
  const std::string config = dir.path + "/stripped.yaml";
  write_file(config, y.str());
  RunResult r = run_split({binary_dir() + "/insa-exporter", "check", config}, dir.path);
  ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.out << r.err;
  std::map<std::string, size_t> got;
  static const std::regex line_re("^probe (\\S+)\\s+.*, ([0-9]+) return sites?$");
  std::istringstream in(r.out);
  std::string line;
  size_t methods = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, line_re)) got[m[1].str()] = std::stoul(m[2].str());
    if (line == "      exit: return sites (default: probes on the function's own ret and tail-jmp instructions; C++ "
                "exceptions closed at the catch)")
      ++methods;
  }
  EXPECT_EQ(got, want) << r.out;
  EXPECT_EQ(methods, fns.size()) << r.out;
  EXPECT_EQ(r.out.find("tail-jmp (cold"), std::string::npos) << r.out;  // jumps into cold parts are not exits

  // exit: uretprobe on the stripped C++ binary: refused where 'exit:' is written.
  const std::string ur = dir.path + "/uret.yaml";
  write_file(ur, "metrics:\n  - name: calls_total\n    type: counter\n    labels: [status]\nprobes:\n"
                 "  - name: mt\n    binary: " + stripped + "\n    function: insa_fx::maybe_throw\n"
                 "    exit: uretprobe\n"
                 "    metrics: [{metric: calls_total, labels: {status: $status}}]\n");
  r = run_split({binary_dir() + "/insa-exporter", "check", ur}, dir.path);
  ASSERT_TRUE(WIFEXITED(r.status)) << r.err;
  EXPECT_EQ(WEXITSTATUS(r.status), 1) << r.out << r.err;
  EXPECT_EQ(r.err, "insa-exporter: " + ur + ":9:11: 'exit: uretprobe' refused for probe 'mt': '" + stripped +
                       "' needs libstdc++.so.6 (C++ code), and a C++ exception unwinding through a uretprobe's "
                       "return trampoline ends in std::terminate; remove 'exit:' (return sites, the default, follow "
                       "exceptions)\n");
  // On C code it is allowed, and check says why.
  const std::string c_ur = dir.path + "/c_uret.yaml";
  write_file(c_ur, "metrics:\n  - name: calls_total\n    type: counter\n    labels: [status]\nprobes:\n"
                   "  - name: sr\n    binary: " + binary_dir() + "/tests/fixtures/fixture_c_pie_O2" +
                   "\n    function: several_returns\n    exit: uretprobe\n"
                   "    metrics: [{metric: calls_total, labels: {status: $status}}]\n");
  r = run_split({binary_dir() + "/insa-exporter", "check", c_ur}, dir.path);
  ASSERT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\n      exit: uretprobe ('exit: uretprobe'; allowed: C code, no C++ runtime in the binary "
                       "and no exception tables at the function)\n"),
            std::string::npos)
      << r.out;
}

struct Refusal {
  std::string fn, reason;
};

TEST(NoHarmCheck, RefusesUndecodableFunctionsOnOneLine) {
  require_root();
  TempDir dir("/tmp/insa-noharm-check-refuse");
  const std::vector<Refusal> cases{
      {"fx_bad_bytes", "do not decode as x86-64 instructions"},
      {"fx_cond_tail", "conditional jump leaves the function"},
      {"fx_spin", "no ret or tail jump found"},
      {"fx_odd_table", "looks like a jump table whose targets cannot be verified"},
      {"fx_computed_goto", "computed goto"},
  };
  for (const auto& variant : kVariants) {
    for (const auto& c : cases) {
      SCOPED_TRACE(variant + " " + c.fn);
      const std::string bin = binary_dir() + "/tests/fixtures/fixture_c_" + variant;
      // A good probe first, so the refusal points at the right probe's line.
      const std::string config = dir.path + "/probes.yaml";
      write_file(config,
                 "metrics:\n"
                 "  - name: calls_total\n"
                 "    type: counter\n"
                 "    labels: [probe, status]\n"
                 "probes:\n"
                 "  - name: good\n"
                 "    binary: " + bin + "\n"
                 "    function: several_returns\n"
                 "    metrics: [{metric: calls_total, labels: {probe: good, status: $status}}]\n"
                 "  - name: bad\n"
                 "    binary: " + bin + "\n"
                 "    function: " + c.fn + "\n"  // line 12, value at column 15
                 "    metrics: [{metric: calls_total, labels: {probe: bad, status: $status}}]\n");
      RunResult r = run_split({binary_dir() + "/insa-exporter", "check", config}, dir.path);
      ASSERT_TRUE(WIFEXITED(r.status)) << r.err;
      EXPECT_EQ(WEXITSTATUS(r.status), 1) << r.out << r.err;
      ASSERT_FALSE(r.err.empty());
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
      EXPECT_EQ(r.err.rfind("insa-exporter: " + config + ":12:15: ", 0), 0u) << r.err;
      EXPECT_NE(r.err.find(c.fn), std::string::npos) << r.err;
      EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("not probing it"), std::string::npos) << r.err;
    }
  }
}

}  // namespace
}  // namespace insa::testing
