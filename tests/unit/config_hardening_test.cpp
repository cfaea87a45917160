// SPDX-License-Identifier: Apache-2.0
// Hostile and malformed configs: each gets one located line saying what, where and
// what to do, and nothing blocks, throws or dies. Every case here once produced a
// misleading message ("bad file", "bad conversion", "no 'probes' list" at 1:1), was
// silently accepted (duplicate keys, a second document), hung (a FIFO), killed the
// agent (a symlink loop) or took minutes (a config with 1.5 M metrics).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "attach/plan.h"
#include "config/config.h"
#include "python/source.h"

namespace insa::config {
namespace {

namespace fs = std::filesystem;
constexpr const char* kFile = "probes.yaml";
const std::string kWorker = std::string(INSA_BINARY_DIR) + "/tests/workers/request_worker";
const std::string kExporter = std::string(INSA_BINARY_DIR) + "/insa-exporter";

std::string at(const std::string& text, const std::string& needle, int nth = 1) {
  std::string lc = insa::test::line_col(text, needle, nth);
  if (lc == "?:?") ADD_FAILURE() << "'" << needle << "' (#" << nth << ") not in the test text";
  return lc;
}

std::string error_of(const std::string& text, const std::string& file = kFile) {
  auto r = parse_config(text, file);
  if (r.ok()) return "<accepted>";
  return r.error().message;
}

std::string msg(const std::string& text, const std::string& needle, const std::string& what, int nth = 1) {
  return std::string(kFile) + ":" + at(text, needle, nth) + ": " + what;
}

/// A fresh directory under /tmp, removed at the end of the test.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/insa_cfg_hardening_XXXXXX";
    path = mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

/// Kills the test binary (a visible failure) if a call blocks for 10 s instead of hanging CI.
struct Watchdog {
  Watchdog() { alarm(10); }
  ~Watchdog() { alarm(0); }
};

const std::string kCounter = "metrics:\n  - {name: insa_calls_total, type: counter, labels: [kind]}\n";

TEST(ConfigHardening, DeepNestingSaysHowDeep) {
  // 499 levels made yaml-cpp say "bad file"; a config needs 7.
  const std::string text = "probes: " + std::string(499, '[') + std::string(499, ']') + "\n";
  EXPECT_EQ(error_of(text), std::string(kFile) + ":1:72: YAML nested more than 64 levels deep (a config needs 7): "
                                                 "close the open brackets or fix the indentation");
  // The same through block indentation.
  std::string block = "probes:\n";
  for (int i = 0; i < 100; ++i) block += std::string(2 * i + 2, ' ') + "- \n";
  EXPECT_NE(error_of(block).find("YAML nested more than 64 levels deep"), std::string::npos) << error_of(block);
}

TEST(ConfigHardening, NonScalarKey) {
  const std::string top = "? [probes]\n: []\n";
  EXPECT_EQ(error_of(top), msg(top, "[probes]", "a key must be a plain name, not a list or mapping (write 'name: value')"));
  const std::string label = kCounter +
                            "probes:\n  - name: p\n    binary: /bin/true\n    function: main\n"
                            "    metrics: [{metric: insa_calls_total, labels: {{kind: x}: a}}]\n";
  EXPECT_EQ(error_of(label),
            msg(label, "{kind: x}", "a key must be a plain name, not a list or mapping (write 'name: value')"));
  const std::string empty = "probes: []\n: x\n";
  EXPECT_EQ(error_of(empty), msg(empty, ": x", "a key must be a plain name, not empty (write 'name: value')"));
}

TEST(ConfigHardening, UnterminatedQuotePointsAtTheQuote) {
  // yaml-cpp ended the string at the end of the file: everything after it became the
  // help text, and the error was "no 'probes' list" at 1:1.
  const std::string text = "metrics:\n  - name: insa_calls_total\n    type: counter\n    help: \"calls of\nprobes:\n"
                           "  - name: p\n";
  EXPECT_EQ(error_of(text), msg(text, "\"calls", "the string opened here with \" is never closed: add the closing \""));
  const std::string single = "probes:\n  - name: 'p\n";
  EXPECT_EQ(error_of(single), msg(single, "'p", "the string opened here with ' is never closed: add the closing '"));
  // Closed strings with escaped quotes inside stay valid.
  EXPECT_EQ(error_of("metrics:\n  - {name: a_total, type: counter, help: \"say \\\"hi\\\"\"}\n"
                     "  - {name: b_total, type: counter, help: 'it''s'}\nprobes: []\n"),
            "<accepted>");
}

TEST(ConfigHardening, MapAsLabelKey) {
  const std::string text = kCounter +
                           "probes:\n  - name: p\n    binary: /bin/true\n    function: main\n"
                           "    metrics:\n      - metric: insa_calls_total\n        labels:\n          ? {a: 1}\n"
                           "          : x\n";
  EXPECT_EQ(error_of(text), msg(text, "{a: 1}", "a key must be a plain name, not a list or mapping (write 'name: value')"));
}

TEST(ConfigHardening, CounterNamedOnlyTotal) {
  const std::string text = "metrics:\n  - {name: _total, type: counter}\nprobes: []\n";
  EXPECT_EQ(error_of(text),
            msg(text, "_total", "counter '_total' is only the suffix: name what it counts, e.g. insa_requests_total"));
}

TEST(ConfigHardening, DuplicateKeysAreRefused) {
  const std::string metric = "metrics:\n  - {name: a_total, type: counter, type: gauge}\nprobes: []\n";
  EXPECT_EQ(error_of(metric), msg(metric, "type", "duplicate key 'type' (first at probes.yaml:" + at(metric, "type") +
                                                      "); YAML keeps only one: remove or merge the other",
                                  2));
  const std::string top = "probes: []\nmetrics: []\nprobes: []\n";
  EXPECT_EQ(error_of(top), msg(top, "probes", "duplicate key 'probes' (first at probes.yaml:1:1); YAML keeps only one: "
                                              "remove or merge the other",
                               2));
  const std::string labels = kCounter +
                             "probes:\n  - name: p\n    binary: /bin/true\n    function: main\n"
                             "    metrics: [{metric: insa_calls_total, labels: {kind: a, kind: b}}]\n";
  EXPECT_EQ(error_of(labels), msg(labels, "kind", "duplicate key 'kind' (first at probes.yaml:" + at(labels, "kind", 2) +
                                                      "); YAML keeps only one: remove or merge the other",
                                  3));
  // Two spellings of one integer in a label's value map.
  const std::string map = kCounter +
                          "probes:\n  - name: p\n    binary: /bin/true\n    function: main\n"
                          "    metrics: [{metric: insa_calls_total, labels: {kind: {value: $arg1, map: {1: a, 0x1: b}}}}]\n";
  EXPECT_EQ(error_of(map), msg(map, "0x1", "map key '0x1' is the integer 1 again: give each integer one name"));
}

TEST(ConfigHardening, SecondDocumentIsRefused) {
  const std::string text = "probes: []\n---\nprobes: [x]\n";
  EXPECT_EQ(error_of(text), msg(text, "---",
                                "a second YAML document (after '---' or '...'): a config is one document; remove the "
                                "separator or merge the two"));
  // One document with its optional start and end markers is fine.
  EXPECT_EQ(error_of("---\nprobes: []\n...\n"), "<accepted>");
}

TEST(ConfigHardening, ListenAddress) {
  for (const char* bad : {"9091", "localhost:", ":65536", ":http", "::1:9091", "[::1]x:9091", "a b:9091", ":-1"}) {
    const std::string text = std::string("exporter:\n  listen_address: \"") + bad + "\"\nprobes: []\n";
    EXPECT_EQ(error_of(text), msg(text, "\"" + std::string(bad),
                                  "'listen_address' is [host]:port with a port from 0 to 65535, e.g. :9091, "
                                  "127.0.0.1:9091 or [::1]:9091, got '" + std::string(bad) + "'"))
        << bad;
  }
  for (const char* good : {":9091", "127.0.0.1:9100", "[::1]:9091", "[::]:0", "node-1.example.com:65535"}) {
    auto r = parse_config(std::string("exporter:\n  listen_address: \"") + good + "\"\nprobes: []\n", kFile);
    ASSERT_TRUE(r.ok()) << good << ": " << r.error().message;
    EXPECT_EQ(r->listen_address, good);
  }
}

TEST(ConfigHardening, SizeLimits) {
  std::string big = "probes: []\n# " + std::string(kMaxConfigBytes, 'x') + "\n";
  EXPECT_EQ(error_of(big), "probes.yaml: " + std::to_string(big.size()) +
                               " bytes, more than the 1048576 (1 MiB) a config may have (512 probes fit in about "
                               "300 KiB): remove what no probe uses");

  std::ostringstream metrics;
  metrics << "metrics:\n";
  for (size_t i = 0; i <= kMaxMetrics; ++i) metrics << "  - {name: m" << i << "_total, type: counter}\n";
  metrics << "probes: []\n";
  EXPECT_EQ(error_of(metrics.str()),
            msg(metrics.str(), "{name: m4096_total", "more than 4096 metrics: declare only the metrics probes update "
                                                    "(labels tell series of one metric apart)"));

  std::ostringstream probes;
  probes << "metrics: [{name: c_total, type: counter}]\nprobes:\n";
  for (size_t i = 0; i <= kMaxProbes; ++i)
    probes << "  - {name: p" << i << ", binary: /bin/true, function: main, metrics: [{metric: c_total}]}\n";
  EXPECT_EQ(error_of(probes.str()),
            msg(probes.str(), "{name: p512,", "more than 512 probes (the kernel's probe table holds 512): run a second "
                                              "exporter for the rest"));

  std::ostringstream workers;
  workers << "workers:\n";
  for (size_t i = 0; i <= kMaxWorkers; ++i) workers << "  - {name: w" << i << ", binary: /bin/true}\n";
  workers << "probes: []\n";
  EXPECT_EQ(error_of(workers.str()),
            msg(workers.str(), "{name: w1024,", "more than 1024 workers: one entry per worker program, not per process"));
}

TEST(ConfigHardening, ManyMetricsAreLookedUpByName) {
  // Every metric and every update looked the metric up by scanning all of them: time grew
  // with the square of the config. The index must agree with the scan.
  std::ostringstream text;
  text << "metrics:\n";
  for (size_t i = 0; i < kMaxMetrics; ++i) text << "  - {name: m" << i << "_total, type: counter}\n";
  text << "probes: []\n";
  const auto t0 = std::chrono::steady_clock::now();
  auto r = parse_config(text.str(), kFile);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // A figure, not a timed assertion: 40000 metrics took 20 s before the index (1 s for 10000).
  std::printf("[ figure   ] parse %zu metrics (%zu KiB): %.0f ms\n", kMaxMetrics, text.str().size() / 1024, ms);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->metrics.size(), kMaxMetrics);
  ASSERT_EQ(r->metric_index.size(), kMaxMetrics);
  EXPECT_EQ(r->metric("m4095_total"), &r->metrics[4095]);
  EXPECT_EQ(r->metric("m0_total"), &r->metrics[0]);
  EXPECT_EQ(r->metric("m4096_total"), nullptr);
  // A config changed after parsing (as tests do) still finds its metrics.
  r->metrics.insert(r->metrics.begin(), MetricDef{"first_total"});
  EXPECT_EQ(r->metric("m0_total"), &r->metrics[1]);
  EXPECT_EQ(r->metric("first_total"), &r->metrics[0]);
  const std::string dup = "metrics:\n  - {name: a_total, type: counter}\n  - {name: a_total, type: counter}\nprobes: []\n";
  EXPECT_EQ(error_of(dup), msg(dup, "a_total", "duplicate metric 'a_total' (first at probes.yaml:2:5)", 2));
}

TEST(ConfigHardening, LongPythonNameIsRefusedBeforeTheRegex) {
  // std::regex recursed once per character: a long name exhausted the stack.
  const std::string name(200000, 'a');
  const std::string text = kCounter + "probes:\n  - name: p\n    python: {script: w.py, function: " + name +
                           "}\n    metrics: [{metric: insa_calls_total, labels: {kind: x}}]\n";
  EXPECT_EQ(error_of(text), msg(text, name, "qualified name longer than 63 bytes"));
}

TEST(ConfigHardening, MessagesStayOneLine) {
  // A quoted key can carry a newline or an escape into the message: it is written out.
  const std::string text = "probes: []\n\"a\\nb\\x01\": 1\n";
  EXPECT_EQ(error_of(text), msg(text, "\"a", "unknown key 'a\\nb\\x01' in the top level (allowed: exporter, metrics, "
                                             "workers, probes)"));
  EXPECT_EQ(one_line("a\r\nb\tc\x7f"), "a\\r\\nb\tc\\x7f");
}

TEST(ConfigHardening, DurationBeyondTheKernelRange) {
  EXPECT_EQ(parse_duration_ns("1e300s"), std::nullopt);
  EXPECT_EQ(parse_duration_ns("9300000000s"), std::nullopt);       // 9.3e18 ns: beyond 2^63
  EXPECT_EQ(parse_duration_ns("9000000000s"), 9000000000000000000);  // 285 years still fit
  const std::string text = "metrics: [{name: c_total, type: counter}]\nprobes:\n  - name: p\n    binary: /bin/true\n"
                           "    function: main\n    status: [{if: duration > 1e300s, then: slow}]\n"
                           "    metrics: [{metric: c_total}]\n";
  EXPECT_EQ(error_of(text), msg(text, "duration >", "'1e300s' is not a duration (e.g. 100ms, 2s)"));
}

TEST(ConfigHardening, PythonSourceWithAHugeNameIsScanned) {
  // The plan builder scans the `source:` of a Python probe with std::regex: a 60000-
  // character def or class name overflowed the stack.
  const std::string name(60000, 'a');
  auto funcs = python::scan_source("def " + name + "(x):\n    pass\nclass " + name + ":\n    pass\ndef ok(a, b):\n    pass\n");
  ASSERT_EQ(funcs.size(), 1u);
  EXPECT_EQ(funcs[0].qualname, "ok");
  EXPECT_EQ(funcs[0].params, (std::vector<std::string>{"a", "b"}));
}

TEST(ConfigHardening, PythonSourceThatIsAFifoDoesNotBlock) {
  TempDir dir;
  const std::string fifo = dir.path + "/worker.py";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Watchdog w;
  auto r = python::scan_file(fifo);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "Python source '" + fifo + "' is a FIFO, not a .py file: give the path of the script");
  ASSERT_TRUE(fs::exists(kExporter)) << "build the tree first";
  // list-probes on it answered nothing, ever.
  const std::string out = insa::test::run_command("timeout 20 " + kExporter + " list-probes " + fifo + " 2>&1; echo rc=$?");
  EXPECT_EQ(out, "insa-exporter: Python source '" + fifo + "' is a FIFO, not a .py file: give the path of the script\nrc=1\n");
}

TEST(ConfigHardening, LoadConfigRefusesWhatIsNotARegularFile) {
  TempDir dir;
  const std::string fifo = dir.path + "/probes.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  {
    Watchdog w;  // opening a FIFO without a writer blocked forever
    auto r = load_config(fifo);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "config file '" + fifo +
                                     "' is a FIFO, not a regular file (pass --config.file PATH; see probes.yaml in the "
                                     "repository)");
    auto d = load_config(dir.path);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().message, "config file '" + dir.path +
                                     "' is a directory, not a regular file (pass --config.file PATH; see probes.yaml in "
                                     "the repository)");
  }
  const std::string big = dir.path + "/big.yaml";
  {
    std::ofstream out(big);
    out << "probes: []\n# " << std::string(kMaxConfigBytes, 'x') << "\n";
  }
  auto b = load_config(big);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message, big + ": " + std::to_string(fs::file_size(big)) +
                                   " bytes, more than the 1048576 (1 MiB) a config may have (512 probes fit in about "
                                   "300 KiB): remove what no probe uses");
  const std::string ok = dir.path + "/ok.yaml";
  std::ofstream(ok) << "probes: []\n";
  EXPECT_TRUE(load_config(ok).ok());
}

// ---- the plan builder meets the filesystem ---------------------------------

std::string probe_on(const std::string& binary) {
  return "metrics:\n  - {name: calls_total, type: counter}\nprobes:\n  - name: p\n    binary: " + binary +
         "\n    function: main\n    metrics: [{metric: calls_total}]\n";
}

Result<plan::Plan> plan_of(const std::string& yaml, const std::string& file) {
  auto c = parse_config(yaml, file);
  if (!c) return c.error();
  return plan::build_plan(*c);
}

TEST(ConfigHardening, SymlinkLoopInBinaryPathIsOneLine) {
  // fs::exists threw std::filesystem_error here: on start the agent died with
  // "terminate called", on reload the exporter was gone.
  TempDir dir;
  ASSERT_EQ(symlink((dir.path + "/b").c_str(), (dir.path + "/a").c_str()), 0);
  ASSERT_EQ(symlink((dir.path + "/a").c_str(), (dir.path + "/b").c_str()), 0);
  const std::string cfg = dir.path + "/probes.yaml";
  for (const std::string& bin : std::vector<std::string>{"a/worker", dir.path + "/a/worker", "./a"}) {
    const std::string yaml = probe_on(bin);
    auto p = plan_of(yaml, cfg);
    ASSERT_FALSE(p.ok()) << bin;
    const std::string abs = bin[0] == '/' ? bin : dir.path + "/" + bin;
    EXPECT_EQ(p.error().message, cfg + ":" + at(yaml, bin) + ": binary '" + bin +
                                     "' cannot be resolved: Too many levels of symbolic links at '" + abs +
                                     "': fix the path or the symbolic links in it");
    EXPECT_EQ(p.error().err, ELOOP);
  }
  auto direct = plan::resolve_binary("a/worker", cfg);
  ASSERT_FALSE(direct.ok());
  EXPECT_EQ(direct.error().err, ELOOP);
}

TEST(ConfigHardening, BinaryThatIsAFifoDoesNotBlock) {
  TempDir dir;
  const std::string fifo = dir.path + "/worker";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0700), 0);
  const std::string yaml = probe_on(fifo);
  Watchdog w;
  auto p = plan_of(yaml, dir.path + "/probes.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message, dir.path + "/probes.yaml:" + at(yaml, fifo) + ": binary '" + fifo +
                                   "' is a FIFO, not a regular file: give the path of the executable or shared library");
  auto d = plan_of(probe_on(dir.path), dir.path + "/probes.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().message, dir.path + "/probes.yaml:" + at(probe_on(dir.path), dir.path) + ": binary '" + dir.path +
                                   "' is a directory, not a regular file: give the path of the executable or shared "
                                   "library");
}

TEST(ConfigHardening, TooManyStatusNames) {
  ASSERT_TRUE(fs::exists(kWorker)) << "build the tree first: missing " << kWorker;
  // Each probe brings 5 status names: 52 probes make 260, more than a kernel byte holds.
  std::ostringstream y;
  y << "metrics: [{name: calls_total, type: counter, labels: [status]}]\nprobes:\n";
  for (int i = 0; i < 52; ++i)
    y << "  - name: p" << i << "\n    binary: " << kWorker << "\n    function: insa_demo::handle_request\n"
      << "    exception_status: e" << i << "\n    status: [{if: \"ret < 0\", then: a" << i << "}, {if: \"ret == 1\", then: b"
      << i << "}, {if: \"ret == 2\", then: c" << i << "}, {else: d" << i << "}]\n"
      << "    metrics: [{metric: calls_total, labels: {status: $status}}]\n";
  auto p = plan_of(y.str(), kFile);
  ASSERT_FALSE(p.ok());
  // p0 adds 5 names (0..4), ... p51 brings the count from 255 to 260.
  EXPECT_EQ(p.error().message, msg(y.str(), "name: p51", "more than 256 distinct status names across the probes (the kernel "
                                                        "keeps a status in one byte): reuse names such as success and error"));
}

// ---- `insa-exporter check` --------------------------------------------------

struct CheckRun {
  int status = -1;
  std::string err;
};

CheckRun check(const std::string& config) {
  const std::string errf = config + ".err";
  CheckRun r;
  r.status = std::system(("timeout 20 " + kExporter + " check " + config + " >/dev/null 2>" + errf).c_str());
  std::ifstream in(errf);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  return r;
}

TEST(ConfigHardening, CheckResolvesWorkers) {
  ASSERT_TRUE(fs::exists(kExporter) && fs::exists(kWorker)) << "build the tree first";
  TempDir dir;
  const std::string cfg = dir.path + "/probes.yaml";
  const std::string yaml = "metrics:\n  - {name: calls_total, type: counter}\nworkers:\n  - name: api\n"
                           "    binary: /nonexistent/api\nprobes:\n  - name: p\n    binary: " + kWorker +
                           "\n    function: insa_demo::handle_request\n    metrics: [{metric: calls_total}]\n";
  std::ofstream(cfg) << yaml;
  CheckRun r = check(cfg);
  EXPECT_EQ(WEXITSTATUS(r.status), 1);
  EXPECT_EQ(r.err, "insa-exporter: " + cfg + ":" + at(yaml, "name: api") +
                       ": worker 'api': binary '/nonexistent/api' not found: No such file or directory (paths are "
                       "relative to the config file's directory)\n");
}

TEST(ConfigHardening, CheckOnAFifoBinaryAnswers) {
  ASSERT_TRUE(fs::exists(kExporter)) << "build the tree first";
  TempDir dir;
  const std::string fifo = dir.path + "/worker";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0700), 0);
  const std::string cfg = dir.path + "/probes.yaml";
  const std::string yaml = probe_on(fifo);
  std::ofstream(cfg) << yaml;
  CheckRun r = check(cfg);  // `timeout 20` answers 124 if it blocks
  EXPECT_EQ(WEXITSTATUS(r.status), 1);
  EXPECT_EQ(r.err, "insa-exporter: " + cfg + ":" + at(yaml, fifo) + ": binary '" + fifo +
                       "' is a FIFO, not a regular file: give the path of the executable or shared library\n");
}

TEST(ConfigHardening, CheckOnASymlinkLoopIsOneLine) {
  // The start path (and `check`) died with "terminate called after throwing an instance
  // of std::filesystem::filesystem_error".
  ASSERT_TRUE(fs::exists(kExporter)) << "build the tree first";
  TempDir dir;
  ASSERT_EQ(symlink((dir.path + "/b").c_str(), (dir.path + "/a").c_str()), 0);
  ASSERT_EQ(symlink((dir.path + "/a").c_str(), (dir.path + "/b").c_str()), 0);
  const std::string cfg = dir.path + "/probes.yaml";
  const std::string yaml = probe_on("a/worker");
  std::ofstream(cfg) << yaml;
  CheckRun r = check(cfg);
  EXPECT_EQ(WEXITSTATUS(r.status), 1);
  EXPECT_EQ(r.err, "insa-exporter: " + cfg + ":" + at(yaml, "a/worker") +
                       ": binary 'a/worker' cannot be resolved: Too many levels of symbolic links at '" + dir.path +
                       "/a/worker': fix the path or the symbolic links in it\n");
}

}  // namespace
}  // namespace insa::config
