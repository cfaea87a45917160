// SPDX-License-Identifier: Apache-2.0
// Bad input of every kind, through the real binary: each is exactly one line on
// stderr saying what, where (probes.yaml:line:col) and what to do, and exit 1.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <regex>

#include "harness.h"

namespace insa::testing {
namespace {

std::string write_file(const std::string& name, const std::string& text) {
  std::string path = "/tmp/insa-cli-" + std::to_string(getpid()) + "-" + name;
  std::ofstream(path) << text;
  return path;
}

const std::string kMetrics = R"(metrics:
  - name: insa_agent_requests_total
    type: counter
    labels: [agent_type, status]
)";

std::string probe(const std::string& binary, const std::string& function, const std::string& name = "request") {
  return "  - name: " + name + "\n    binary: " + binary + "\n    function: " + function +
         "\n    metrics:\n      - metric: insa_agent_requests_total\n        labels: {agent_type: a, status: $status}\n";
}

std::string worker() { return binary_dir() + "/tests/workers/request_worker"; }

/// Runs the exporter with args; returns {exit code, stderr+stdout}.
std::pair<int, std::string> exporter(const std::vector<std::string>& args, const std::vector<std::string>& prefix = {}) {
  std::vector<std::string> argv = prefix;
  argv.push_back(binary_dir() + "/insa-exporter");
  argv.insert(argv.end(), args.begin(), args.end());
  auto [st, out] = run_capture(argv);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

/// The message must be a single line, prefixed "insa-exporter: ".
void expect_one_line(const std::string& out, const std::string& want) {
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(out, "insa-exporter: " + want + "\n");
}

TEST(Cli, MissingConfigFile) {
  require_root();
  auto [code, out] = exporter({"--config.file", "/nonexistent/probes.yaml", "--web.listen-address", "127.0.0.1:0"});
  EXPECT_EQ(code, 1);
  expect_one_line(out, "cannot read config file '/nonexistent/probes.yaml': No such file or directory "
                       "(pass --config.file PATH; see probes.yaml in the repository)");
}

TEST(Cli, UnknownKeyNamesLineAndColumn) {
  require_root();
  auto f = write_file("unknown.yaml", kMetrics + "probes:\n" + probe(worker(), "insa_demo::handle_request") +
                                          "    retrun: 1\n");
  auto [code, out] = exporter({"check", f});
  EXPECT_EQ(code, 1);
  expect_one_line(out, f + ":12:5: unknown key 'retrun' in a probe (allowed: name, binary, pid, function, usdt, "
                           "offset, exit, status, exception_status, abandoned_status, metrics, python, select)");
}

TEST(Cli, WrongType) {
  require_root();
  auto f = write_file("type.yaml", "exporter:\n  label_limit: many\n" + kMetrics + "probes:\n" +
                                       probe(worker(), "insa_demo::handle_request"));
  auto [code, out] = exporter({"check", f});
  EXPECT_EQ(code, 1);
  expect_one_line(out, f + ":2:16: 'label_limit' must be an integer, got 'many'");
}

TEST(Cli, MissingBinary) {
  require_root();
  // (An absolute path missing here names a file inside containers: container_test.cpp.)
  auto f = write_file("nobin.yaml", kMetrics + "probes:\n" + probe("srv/none/worker", "main"));
  auto [code, out] = exporter({"check", f});
  EXPECT_EQ(code, 1);
  expect_one_line(out, f + ":7:13: binary 'srv/none/worker' not found: No such file or directory "
                           "(paths are relative to the config file's directory)");
}

TEST(Cli, MissingSymbolSuggestsCloseNames) {
  require_root();
  auto f = write_file("nosym.yaml", kMetrics + "probes:\n" + probe(worker(), "handle_reqest"));
  auto [code, out] = exporter({"check", f});
  EXPECT_EQ(code, 1);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(out.rfind("insa-exporter: " + f + ":8:15: function 'handle_reqest' not found in '" + worker() + "'", 0), 0u)
      << out;
  EXPECT_NE(out.find("list-probes"), std::string::npos) << out;
}

TEST(Cli, DuplicateProbeName) {
  require_root();
  auto f = write_file("dup.yaml", kMetrics + "probes:\n" + probe(worker(), "insa_demo::handle_request") +
                                      probe(worker(), "insa_demo::handle_request"));
  auto [code, out] = exporter({"check", f});
  EXPECT_EQ(code, 1);
  expect_one_line(out, f + ":12:11: duplicate probe name 'request' (first at " + f + ":6:5)");
}

TEST(Cli, PortInUse) {
  require_root();
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  int zero = 0;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(19611);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  auto f = write_file("port.yaml", kMetrics + "probes:\n" + probe(worker(), "insa_demo::handle_request"));
  auto [code, out] = exporter({"--config.file", f, "--web.listen-address", ":19611"});
  close(fd);
  EXPECT_EQ(code, 1);
  expect_one_line(out, "cannot listen on :19611: Address already in use "
                       "(stop the other process or pass --web.listen-address :PORT)");
}

TEST(Cli, NotRoot) {
  require_root();
  auto f = write_file("noroot.yaml", kMetrics + "probes:\n" + probe(worker(), "insa_demo::handle_request"));
  chmod(f.c_str(), 0644);
  auto [code, out] = exporter({"--config.file", f, "--web.listen-address", "127.0.0.1:0"},
                              {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"});
  EXPECT_EQ(code, 1);
  expect_one_line(out, "not running as root and missing CAP_BPF, CAP_PERFMON: run with sudo, or grant CAP_BPF, "
                       "CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH "
                       "(see deploy/systemd/insa-exporter.service)");
}

TEST(Cli, CheckAcceptsAValidConfigAndReportsReturnSites) {
  require_root();
  auto [code, out] = exporter({"check", source_dir() + "/tests/root/configs/request.yaml"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("probe request                      " + worker() +
                     ": insa_demo::handle_request(long, char const*, long) (_ZN9insa_demo14handle_requestElPKcl)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("1 return site\n"), std::string::npos) << out;
  // Where the entry uprobe sits, how the kernel runs it, and each exit (offsets from nm/objdump
  // are checked by the plan unit tests; here the format).
  EXPECT_TRUE(std::regex_search(out, std::regex("\n      entry @0x[0-9a-f]+ push rbp \\(emulated\\); exits @0x[0-9a-f]+ ret\n")))
      << out;
  EXPECT_NE(out.find("OK: 2 probes, 5 metrics, BPF programs verified by the kernel"), std::string::npos) << out;
}

// While an exporter has probes attached, the kernel puts int3 into every executable
// mapping of the probed file. `check` must read the file itself and report the same.
TEST(Cli, CheckWhileAnotherExporterIsAttachedSeesTheFileNotBreakpoints) {
  require_root();
  const std::string config = source_dir() + "/tests/root/configs/request.yaml";
  auto [code0, before] = exporter({"check", config});
  ASSERT_EQ(code0, 0) << before;
  Exporter running(config, 19612);
  ASSERT_TRUE(running.wait_ready()) << running.log();
  auto [code1, during] = exporter({"check", config});
  EXPECT_EQ(code1, 0) << during;
  EXPECT_EQ(during, before);
}

}  // namespace
}  // namespace insa::testing
