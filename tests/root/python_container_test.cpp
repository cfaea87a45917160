// SPDX-License-Identifier: Apache-2.0
// Python workers in containers (their own mount namespace): the interpreter and the
// script are at a path that does not exist on the host, so the exporter must reach
// them through /proc/PID/root; two containers running different interpreter files at
// the same path are two targets, each analysed from its own file, each counted exactly.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>

#include "harness.h"

namespace insa::testing {
namespace {

namespace fs = std::filesystem;

const char* kMountPoint = "/opt/insa-py-ctr-test";  // empty on the host

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename F>
bool eventually(F pred, int seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

/// A "container": a directory with its own copy of the interpreter and the worker,
/// bind-mounted at kMountPoint in a private mount namespace.
struct Container {
  std::string dir;
  Child child;
  std::string log, truth;
};

Container start(const std::string& name, const std::string& go) {
  Container c;
  c.dir = "/tmp/insa-py-ctr-" + name;
  fs::remove_all(c.dir);
  fs::create_directories(c.dir);
  fs::copy_file("/usr/bin/python3.11", c.dir + "/python3.11");  // a file of its own: another inode
  fs::permissions(c.dir + "/python3.11", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                             fs::perms::others_read | fs::perms::others_exec);
  fs::copy_file(source_dir() + "/tests/fixtures/python/py_worker.py", c.dir + "/py_worker.py");
  c.log = c.dir + "/worker.log";
  c.truth = "/tmp/insa-py-ctr-truth-" + name;
  std::remove(c.truth.c_str());
  const std::string m = kMountPoint;
  c.child = Child::spawn({"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                          "mount --bind " + c.dir + " " + m + " && exec " + m + "/python3.11 " + m +
                              "/py_worker.py --seed " + std::to_string(name.size() * 7) +
                              " --threads 2 --requests 20 --go " + go + " --truth " + c.truth},
                         c.log);
  return c;
}

TEST(PythonContainers, WorkersInMountNamespacesExact) {
  require_root();
  fs::create_directories(kMountPoint);
  ASSERT_TRUE(fs::is_empty(kMountPoint)) << kMountPoint << " must be empty on the host";
  const std::string go = "/tmp/insa-py-ctr-go";
  std::remove(go.c_str());
  Container a = start("a", go), b = start("bb", go);
  for (auto* c : {&a, &b})
    ASSERT_TRUE(eventually([&] { return slurp(c->log).find("waiting") != std::string::npos; }, 20)) << slurp(c->log);
  // The config names the script as the containers see it.
  std::ifstream in(source_dir() + "/tests/root/configs/python.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string cfg = std::regex_replace(ss.str(), std::regex("source: \\.\\./\\.\\./fixtures/python/py_worker\\.py"),
                                       "source: " + source_dir() + "/tests/fixtures/python/py_worker.py");
  std::ofstream("/tmp/insa-py-ctr.yaml") << cfg;
  Exporter exp("/tmp/insa-py-ctr.yaml", 19761);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  for (auto* c : {&a, &b}) {
    const std::string want = "python: hooked pid " + std::to_string(c->child.pid()) + " (CPython 3.11.2, /proc/" +
                             std::to_string(c->child.pid()) + "/root" + kMountPoint + "/python3.11)";
    ASSERT_TRUE(eventually([&] { return exp.log().find(want) != std::string::npos; }, 10)) << want << "\n" << exp.log();
  }
  std::ofstream(go) << "go\n";
  for (auto* c : {&a, &b}) {
    int st = c->child.wait();
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp(c->log);
  }
  Truth t = read_truth({a.truth, b.truth});
  Samples got = exp.scrape();
  size_t n = 0;
  for (const auto& [series, want] : t.values) {
    if (series.rfind("insa_py_requests_total", 0) && series.rfind("insa_py_records_total", 0)) continue;
    ++n;
    ASSERT_TRUE(got.count(series)) << "missing " << series << "\n" << exp.log();
    EXPECT_EQ(got.at(series), want) << series;
  }
  EXPECT_GE(n, 6u);
  EXPECT_EQ(got.at("insa_py_request_size_bytes_count{agent_type=\"fixture\"}"),
            t.observed.at("insa_py_request_size_bytes{agent_type=\"fixture\"}").size());
}

}  // namespace
}  // namespace insa::testing
