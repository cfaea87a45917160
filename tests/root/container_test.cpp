// SPDX-License-Identifier: Apache-2.0
// Workers in real podman containers (runc), from images built here out of the
// project's own build (a binary plus its `ldd` closure, `podman import`; nothing is
// pulled): probes name the binaries by their path inside the containers, which does
// not exist on the host. Two containers run different builds at the same path (two
// targets, each analysed from its own file), one starts after the exporter; counts,
// statuses (C++ exceptions through each container's own libstdc++) and host PIDs are
// exact per container. The catch hook traps only targeted processes: an unrelated C++
// program's __cxa_begin_catch carries no breakpoint. Lifecycle: a container killed and
// replaced counts a restart; removed, its links are released and health drops to 0.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>

#include "elf/elf_file.h"
#include "elf/plt.h"
#include "harness.h"

namespace insa::testing {
namespace {

namespace fs = std::filesystem;

const std::string kPodman = "/usr/bin/podman";

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

/// podman with the flags this VM needs (GUIDE: runc, bounded ulimits, no network).
std::pair<int, std::string> podman(std::vector<std::string> args) {
  args.insert(args.begin(), {kPodman, "--runtime", "runc"});
  return run_capture(args);
}

/// An image holding `files` (host file → path in the image) and each one's `ldd`
/// closure at the same paths, imported as `image`.
void make_image(const std::string& image, const std::vector<std::pair<std::string, std::string>>& files) {
  const std::string root = "/tmp/insa-ct-rootfs-" + std::regex_replace(image, std::regex("[^a-z0-9]"), "-");
  fs::remove_all(root);
  fs::create_directories(root + "/out");
  fs::create_directories(root + "/tmp");
  for (const auto& [host, in] : files) {
    fs::create_directories(fs::path(root + in).parent_path());
    fs::copy_file(host, root + in);
    auto [st, out] = run_capture({"/usr/bin/ldd", host});
    ASSERT_EQ(st, 0) << out;
    static const std::regex lib(R"((/[^ \t]+) \(0x)");
    for (auto it = std::sregex_iterator(out.begin(), out.end(), lib); it != std::sregex_iterator(); ++it) {
      const std::string p = (*it)[1];
      if (fs::exists(root + p)) continue;
      fs::create_directories(fs::path(root + p).parent_path());
      fs::copy_file(fs::canonical(p), root + p);
    }
  }
  podman({"rmi", "-f", image});
  auto [st, out] = run_capture({"/bin/sh", "-c", "tar -C " + root + " -c . | " + kPodman + " import - " + image});
  ASSERT_EQ(st, 0) << out;
}

/// A podman container, removed (SIGKILL) on destruction.
struct Container {
  std::string name, out;  ///< out: host directory mounted at /out
  int pid = 0;            ///< host PID of its process
  Container(const std::string& n, const std::string& image, const std::vector<std::string>& cmd,
            const std::vector<std::string>& extra = {})
      : name(n) {
    out = "/tmp/" + n;
    fs::remove_all(out);
    fs::create_directories(out);
    podman({"rm", "-f", "-t", "0", name});
    std::vector<std::string> args = {"run",  "-d", "--name", name, "--ulimit", "nofile=1024:1024", "--ulimit",
                                     "nproc=1024:1024", "--network", "none", "-v", out + ":/out"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(image);
    args.insert(args.end(), cmd.begin(), cmd.end());
    auto [st, o] = podman(args);
    EXPECT_EQ(st, 0) << "podman run " << name << ": " << o;
    pid = std::atoi(trim(podman({"inspect", "-f", "{{.State.Pid}}", name}).second).c_str());
    EXPECT_GT(pid, 0) << name;
  }
  ~Container() { podman({"rm", "-f", "-t", "0", name}); }
  /// Waits for its process to exit; returns the exit code podman reports.
  int wait() { return std::atoi(trim(podman({"wait", name}).second).c_str()); }
  std::string logs() { return podman({"logs", name}).second; }
};

/// The first byte of __cxa_begin_catch in the libstdc++ that `pid` maps, as its memory
/// holds it: 0xcc while a uprobe is installed there for this process.
int catch_byte(int pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("libstdc++.so") == std::string::npos || line.find(" r-xp ") == std::string::npos) continue;
    std::istringstream in(line);
    std::string range, perms, off;
    in >> range >> perms >> off;
    const std::string path = line.substr(line.find('/'));
    auto file = elf::ElfFile::open("/proc/" + std::to_string(pid) + "/root" + path);
    if (!file) return -1;
    auto sym = file->find_function("__cxa_begin_catch");
    if (!sym) return -1;
    const uint64_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    const uint64_t end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    const uint64_t foff = std::stoull(off, nullptr, 16);
    if (sym->file_offset < foff || sym->file_offset >= foff + (end - start)) continue;
    int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY);
    unsigned char b = 0;
    ssize_t n = pread(fd, &b, 1, static_cast<off_t>(start + sym->file_offset - foff));
    close(fd);
    return n == 1 ? b : -1;
  }
  return -1;
}

/// The byte at `file_offset` of the file mapped by `pid` whose path ends with `suffix`, as
/// its memory holds it (-1: not mapped there).
int byte_at(int pid, const std::string& suffix, uint64_t file_offset) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() < suffix.size() || line.compare(line.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    std::istringstream in(line);
    std::string range, perms, off;
    in >> range >> perms >> off;
    const uint64_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    const uint64_t end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    const uint64_t foff = std::stoull(off, nullptr, 16);
    if (file_offset < foff || file_offset >= foff + (end - start)) continue;
    int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY);
    unsigned char b = 0;
    ssize_t n = pread(fd, &b, 1, static_cast<off_t>(start + file_offset - foff));
    close(fd);
    return n == 1 ? b : -1;
  }
  return -1;
}

/// "@0x1234" of the exporter's "attached to pid N" line (the entry offset in that file).
std::string attached_offset(const std::string& log, const std::string& probe, int pid) {
  std::smatch m;
  std::regex re("probe '" + probe + "' attached to pid " + std::to_string(pid) + " in a container: [^ ]+ \\([^@]*@(0x[0-9a-f]+)");
  return std::regex_search(log, m, re) ? m[1].str() : "";
}

std::string thrower(const std::string& bin) { return binary_dir() + "/tests/fixtures/" + bin; }

class Containers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    make_image("localhost/insa-ct-thrower:a", {{thrower("ctr_thrower_a"), "/app/ctr_thrower"}});
    make_image("localhost/insa-ct-thrower:b", {{thrower("ctr_thrower_b"), "/app/ctr_thrower"}});
    make_image("localhost/insa-ct-request:1",
               {{binary_dir() + "/tests/workers/request_worker", "/app/request_worker"}});
  }
  std::string config() { return source_dir() + "/tests/root/configs/container.yaml"; }
};

std::vector<std::string> thrower_cmd(const std::string& tag, int calls, int every) {
  return {"/app/ctr_thrower", "--tag", tag, "--calls", std::to_string(calls), "--every", std::to_string(every),
          "--go", "/out/go", "--truth", "/out/truth"};
}

TEST_F(Containers, TwoBuildsSamePathAndLateStartExact) {
  require_root();
  ASSERT_FALSE(fs::exists("/app/ctr_thrower")) << "the test needs /app/ctr_thrower absent on the host";
  Container a("insa-ct-a", "localhost/insa-ct-thrower:a", thrower_cmd("a", 200, 5));
  Container b("insa-ct-b", "localhost/insa-ct-thrower:b", thrower_cmd("b", 150, 3));
  Container req("insa-ct-req", "localhost/insa-ct-request:1",
                {"/app/request_worker", "--seed", "7", "--requests", "60", "--threads", "2", "--agent", "ctr_req",
                 "--errors", "throw", "--start-delay-ms", "12000", "--truth", "/out/truth"});
  // An unrelated C++ program on the host (another path, not targeted), waiting to throw.
  const std::string host_go = "/tmp/insa-ct-host-go";
  std::remove(host_go.c_str());
  Child unrelated = Child::spawn({thrower("ctr_thrower_a"), "--tag", "host", "--calls", "20000", "--every", "1",
                                  "--go", host_go},
                                 "/tmp/insa-ct-host.log");
  for (auto* c : {&a, &b})
    ASSERT_TRUE(eventually([&] { return c->logs().find("waiting") != std::string::npos; }, 20)) << c->logs();

  Exporter exp(config(), 19701);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  for (auto* c : {&a, &b})
    ASSERT_TRUE(eventually([&] { return !attached_offset(exp.log(), "ct_run", c->pid).empty(); }, 10))
        << c->name << " pid " << c->pid << "\n" << exp.log();
  ASSERT_TRUE(eventually([&] { return !attached_offset(exp.log(), "ct_request", req.pid).empty(); }, 10)) << exp.log();
  // Two builds at one path: two files, each analysed from its own (different offsets).
  EXPECT_NE(attached_offset(exp.log(), "ct_run", a.pid), attached_offset(exp.log(), "ct_run", b.pid));

  // A container started after the exporter: picked up from its exec event.
  Container c("insa-ct-c", "localhost/insa-ct-thrower:a", thrower_cmd("c", 120, 4));
  ASSERT_TRUE(eventually([&] { return !attached_offset(exp.log(), "ct_run", c.pid).empty(); }, 10)) << exp.log();
  ASSERT_TRUE(eventually([&] { return c.logs().find("waiting") != std::string::npos; }, 20)) << c.logs();

  // The catch hook is on each targeted process's own file (its PLT stub of
  // __cxa_begin_catch, which every catch of that file calls), for that process only;
  // no breakpoint anywhere in the unrelated program, nor in anyone's libstdc++.
  uint64_t stub = 0;
  for (auto* x : {&a, &b, &c}) {
    const std::string p = std::to_string(x->pid);
    std::smatch m;
    const std::regex re("C\\+\\+ exceptions: catch hook for pid " + p + " on /proc/" + p +
                        "/root/app/ctr_thrower __cxa_begin_catch @0x([0-9a-f]+)");
    ASSERT_TRUE(eventually([&] { const std::string l = exp.log(); return std::regex_search(l, m, re); }, 10))
        << exp.log();
    const uint64_t off = std::stoull(m[1].str(), nullptr, 16);
    if (x == &a) stub = off;
    EXPECT_EQ(byte_at(x->pid, "/app/ctr_thrower", off), 0xcc) << x->name;
    EXPECT_NE(catch_byte(x->pid), 0xcc) << x->name << ": its own stub suffices";
  }
  auto host_a = elf::ElfFile::open(thrower("ctr_thrower_a"));
  ASSERT_TRUE(host_a);
  auto host_stub = elf::plt_stub_offset(*host_a, "__cxa_begin_catch");
  ASSERT_TRUE(host_stub);
  EXPECT_EQ(*host_stub, stub);  // build a's stub: at the same offset in the unrelated copy...
  EXPECT_EQ(byte_at(unrelated.pid(), "/ctr_thrower_a", *host_stub), 0xff);  // ...untouched: jmp *GOT(%rip)
  EXPECT_NE(catch_byte(unrelated.pid()), 0xcc);
  EXPECT_NE(catch_byte(unrelated.pid()), -1) << "the unrelated program maps libstdc++";
  EXPECT_EQ(exp.log().find("catch hook for pid " + std::to_string(unrelated.pid()) + " "), std::string::npos);

  for (auto* x : {&a, &b, &c}) std::ofstream(x->out + "/go") << "go\n";
  std::ofstream(host_go) << "go\n";
  for (auto* x : {&a, &b, &c}) EXPECT_EQ(x->wait(), 0) << x->logs();
  EXPECT_EQ(req.wait(), 0) << req.logs();
  int st = unrelated.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_NE(slurp("/tmp/insa-ct-host.log").find("tag host success 0 error 20000"), std::string::npos);

  Samples got = exp.scrape();
  struct Want {
    Container* c;
    std::string tag;
    int success, error;
  };
  for (const auto& w : {Want{&a, "a", 160, 40}, Want{&b, "b", 100, 50}, Want{&c, "c", 90, 30}}) {
    EXPECT_NE(slurp(w.c->out + "/truth").find("tag " + w.tag + " success " + std::to_string(w.success) + " error " +
                                              std::to_string(w.error)),
              std::string::npos);
    for (const auto& [status, n] : {std::make_pair(std::string("success"), w.success), std::make_pair(std::string("error"), w.error)}) {
      const std::string key = "insa_ct_calls_total{tag=\"" + w.tag + "\",status=\"" + status + "\",pid=\"" +
                              std::to_string(w.c->pid) + "\"}";
      ASSERT_TRUE(got.count(key)) << "missing " << key << "\n" << http_get(exp.port(), "/metrics").second;
      EXPECT_EQ(got.at(key), n) << key;
      // $container: the podman name, from the process's cgroup and its conmon parent.
      const std::string by_name = "insa_ct_container_calls_total{container=\"" + w.c->name +
                                  "\",pod=\"\",namespace=\"\",status=\"" + status + "\"}";
      ASSERT_TRUE(got.count(by_name)) << "missing " << by_name << "\n" << http_get(exp.port(), "/metrics").second;
      EXPECT_EQ(got.at(by_name), n) << by_name;
    }
  }
  size_t series = 0;
  for (const auto& [k, v] : got)
    if (k.rfind("insa_ct_calls_total{", 0) == 0) ++series;
  EXPECT_EQ(series, 6u) << "only the containers' calls (no tag=\"host\")";
  Truth t = read_truth({req.out + "/truth"});
  size_t n = 0;
  for (const auto& [s, want] : t.values) {
    if (s.rfind("insa_agent_requests_total{", 0) != 0) continue;
    ++n;
    ASSERT_TRUE(got.count(s)) << "missing " << s << "\n" << exp.log();
    EXPECT_EQ(got.at(s), want) << s;
  }
  EXPECT_GE(n, 2u);
  EXPECT_EQ(got.at("insa_exporter_abandoned_calls_total{probe=\"ct_run\"}"), 0);
  EXPECT_EQ(got.at("insa_exporter_unmatched_exits_total{probe=\"ct_run\"}"), 0);
}

TEST_F(Containers, RestartAndRemovalInHealthAndLinks) {
  require_root();
  Exporter exp(config(), 19702);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto health = [&] {
    auto s = exp.scrape();
    auto it = s.find("insa_worker_health_status{worker_name=\"ct-thrower\",worker_type=\"fixture\"}");
    return it == s.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(health(), 0);
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_attached{probe=\"ct_run\"}"), 0);  // waiting for a container
  int first = 0;
  {
    Container d("insa-ct-d", "localhost/insa-ct-thrower:a", thrower_cmd("d", 10, 2));
    first = d.pid;
    ASSERT_TRUE(eventually([&] { return health() == 1; }, 10)) << exp.log();
    ASSERT_TRUE(eventually([&] { return !attached_offset(exp.log(), "ct_run", d.pid).empty(); }, 10)) << exp.log();
    EXPECT_EQ(exp.scrape().at("insa_exporter_probe_attached{probe=\"ct_run\"}"), 1);
    podman({"kill", "-s", "KILL", d.name});
    EXPECT_EQ(d.wait(), 137);
  }
  // Its links go with it; the probe waits for the next container.
  ASSERT_TRUE(eventually([&] { return exp.log().find("pid " + std::to_string(first) + " exited") != std::string::npos; }, 10))
      << exp.log();
  ASSERT_TRUE(eventually([&] { return health() == 0; }, 10));
  Container e("insa-ct-e", "localhost/insa-ct-thrower:b", thrower_cmd("e", 10, 2));
  ASSERT_TRUE(eventually([&] { return health() == 1; }, 10)) << exp.log();
  ASSERT_TRUE(eventually([&] { return !attached_offset(exp.log(), "ct_run", e.pid).empty(); }, 10)) << exp.log();
  ASSERT_TRUE(eventually(
      [&] { return exp.scrape().count("insa_worker_restarts_total{worker_name=\"ct-thrower\",reason=\"SIGKILL\"}"); }, 10));
  EXPECT_EQ(exp.scrape().at("insa_worker_restarts_total{worker_name=\"ct-thrower\",reason=\"SIGKILL\"}"), 1);
  std::ofstream(e.out + "/go") << "go\n";
  EXPECT_EQ(e.wait(), 0) << e.logs();
  ASSERT_TRUE(eventually([&] { return health() == 0; }, 10));
  ASSERT_TRUE(eventually([&] { return exp.scrape().at("insa_exporter_probe_attached{probe=\"ct_run\"}") == 0; }, 10));
  Samples got = exp.scrape();
  const std::string pid = std::to_string(e.pid);
  EXPECT_EQ(got.at("insa_ct_calls_total{tag=\"e\",status=\"success\",pid=\"" + pid + "\"}"), 5);
  EXPECT_EQ(got.at("insa_ct_calls_total{tag=\"e\",status=\"error\",pid=\"" + pid + "\"}"), 5);
  // First read after its process exited: the container is still known (cached while it ran).
  EXPECT_EQ(got.at("insa_ct_container_calls_total{container=\"insa-ct-e\",pod=\"\",namespace=\"\",status=\"success\"}"), 5);
  EXPECT_EQ(got.at("insa_ct_container_calls_total{container=\"insa-ct-e\",pod=\"\",namespace=\"\",status=\"error\"}"), 5);
  EXPECT_EQ(got.count("insa_worker_restarts_total{worker_name=\"ct-thrower\",reason=\"exit_code_0\"}"), 0u);
}

TEST_F(Containers, SelectorAttachesOnlyMatchingContainers) {
  require_root();
  // ct_sel: the path inside containers, only container insa-ct-sa. ct_host: a host file,
  // only where container insa-ct-sc runs it (bind-mounted at the same path).
  const std::string host_b = thrower("ctr_thrower_b");
  const std::string cfg = "/tmp/insa-ct-select.yaml";
  std::ofstream(cfg) << R"(metrics:
  - name: insa_ct_calls_total
    type: counter
    labels: [tag, status]
probes:
  - name: ct_sel
    binary: /app/ctr_thrower
    function: insa_ct::run_one
    select: {container: insa-ct-sa}
    metrics:
      - metric: insa_ct_calls_total
        labels: {tag: $arg3:str16, status: $status}
  - name: ct_host
    binary: )" << host_b << R"(
    function: insa_ct::run_one
    select: {container: "insa-ct-s[c]", cgroup: "/libpod_parent/libpod-*"}
    metrics:
      - metric: insa_ct_calls_total
        labels: {tag: $arg3:str16, status: $status}
)";
  Container sa("insa-ct-sa", "localhost/insa-ct-thrower:a", thrower_cmd("sa", 50, 5));
  Container sb("insa-ct-sb", "localhost/insa-ct-thrower:a", thrower_cmd("sb", 60, 6));
  Container sc("insa-ct-sc", "localhost/insa-ct-thrower:a",
               {host_b, "--tag", "sc", "--calls", "30", "--every", "3", "--go", "/out/go", "--truth", "/out/truth"},
               {"-v", host_b + ":" + host_b + ":ro"});
  const std::string host_go = "/tmp/insa-ct-select-go";
  std::remove(host_go.c_str());
  Child on_host = Child::spawn({host_b, "--tag", "hb", "--calls", "40", "--every", "4", "--go", host_go},
                               "/tmp/insa-ct-select-host.log");
  for (auto* c : {&sa, &sb, &sc})
    ASSERT_TRUE(eventually([&] { return c->logs().find("waiting") != std::string::npos; }, 20)) << c->logs();
  Exporter exp(cfg, 19703);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  ASSERT_TRUE(eventually([&] { return !attached_offset(exp.log(), "ct_sel", sa.pid).empty(); }, 10)) << exp.log();
  ASSERT_TRUE(eventually([&] { return exp.log().find("probe 'ct_host' attached to pid " + std::to_string(sc.pid)) != std::string::npos; }, 10))
      << exp.log();
  const std::string log = exp.log();
  EXPECT_EQ(log.find("attached to pid " + std::to_string(sb.pid)), std::string::npos) << log;
  EXPECT_EQ(log.find("attached to pid " + std::to_string(on_host.pid())), std::string::npos) << log;
  // The host file's stub: a breakpoint in the selected container's process only.
  auto f = elf::ElfFile::open(host_b);
  ASSERT_TRUE(f);
  auto stub = elf::plt_stub_offset(*f, "__cxa_begin_catch");
  ASSERT_TRUE(stub);
  EXPECT_EQ(byte_at(sc.pid, "/ctr_thrower_b", *stub), 0xcc);
  EXPECT_EQ(byte_at(on_host.pid(), "/ctr_thrower_b", *stub), 0xff);
  for (auto* c : {&sa, &sb, &sc}) std::ofstream(c->out + "/go") << "go\n";
  std::ofstream(host_go) << "go\n";
  for (auto* c : {&sa, &sb, &sc}) EXPECT_EQ(c->wait(), 0) << c->logs();
  int st = on_host.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  Samples got = exp.scrape();
  EXPECT_EQ(got.at("insa_ct_calls_total{tag=\"sa\",status=\"success\"}"), 40);
  EXPECT_EQ(got.at("insa_ct_calls_total{tag=\"sa\",status=\"error\"}"), 10);
  EXPECT_EQ(got.at("insa_ct_calls_total{tag=\"sc\",status=\"success\"}"), 20);
  EXPECT_EQ(got.at("insa_ct_calls_total{tag=\"sc\",status=\"error\"}"), 10);
  size_t series = 0;
  for (const auto& [k, v] : got)
    if (k.rfind("insa_ct_calls_total{", 0) == 0) ++series;
  EXPECT_EQ(series, 4u) << "nothing from insa-ct-sb nor the host's process";
}

/// A running child of `ppid` executing `exe` (0 when none yet).
int child_running(int ppid, const std::string& exe) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string n = e.path().filename();
    if (n.empty() || n[0] < '1' || n[0] > '9') continue;
    std::ifstream st(e.path() / "stat");
    std::string line;
    std::getline(st, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(line.substr(close + 2));
    std::string state;
    int parent = 0;
    in >> state >> parent;
    std::error_code ec;
    if (parent == ppid && fs::read_symlink(e.path() / "exe", ec) == exe) return std::stoi(n);
  }
  return 0;
}

// A probe in a shared library names its processes (select: executable): the selected
// Python process is attached (PID filter) and counted exactly; the sqlite3 shell, which
// maps the same library, carries no breakpoint and appears nowhere.
TEST(ContainersLibrary, SelectByExecutableTrapsOnlyThoseProcesses) {
  require_root();
  const std::string cfg = "/tmp/insa-ct-library.yaml";
  std::ofstream(cfg) << R"(metrics:
  - name: insa_ct_sqlite_opens_total
    type: counter
    labels: [pid]
probes:
  - name: sq_open
    binary: libsqlite3.so.0
    function: sqlite3_open_v2
    select: {executable: "/usr/bin/python3*"}
    metrics:
      - metric: insa_ct_sqlite_opens_total
        labels: {pid: $pid}
)";
  const std::string go = "/tmp/insa-ct-sq-go";
  std::remove(go.c_str());
  std::remove("/tmp/insa-ct-sq-py.log");
  Child py = Child::spawn({"/usr/bin/python3.11", "-c",
                           "import os, sqlite3, time\nprint('waiting', flush=True)\n"
                           "while not os.path.exists('" + go + "'): time.sleep(0.02)\n"
                           "for i in range(7): sqlite3.connect(':memory:').close()\n"},
                          "/tmp/insa-ct-sq-py.log");
  Child shell = Child::spawn({"/bin/sh", "-c", "sleep 60 | /usr/bin/sqlite3 :memory:"});
  int cli = 0;
  ASSERT_TRUE(eventually([&] { return (cli = child_running(shell.pid(), "/usr/bin/sqlite3")) > 0; }, 10));
  const std::string lib = fs::canonical("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0").string();
  auto f = elf::ElfFile::open(lib);
  ASSERT_TRUE(f);
  auto sym = f->find_function("sqlite3_open_v2");
  ASSERT_TRUE(sym);
  const std::string suffix = "/" + fs::path(lib).filename().string();
  ASSERT_TRUE(eventually([&] { return byte_at(py.pid(), suffix, sym->file_offset) >= 0; }, 10)) << "python maps libsqlite3";
  const int original = byte_at(cli, suffix, sym->file_offset);
  ASSERT_GE(original, 0) << "the sqlite3 shell maps libsqlite3";
  ASSERT_NE(original, 0xcc);

  Exporter exp(cfg, 19704);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const std::string attached = "probe 'sq_open' attached to pid " + std::to_string(py.pid());
  ASSERT_TRUE(eventually([&] { return exp.log().find(attached) != std::string::npos; }, 10)) << exp.log();
  EXPECT_EQ(byte_at(py.pid(), suffix, sym->file_offset), 0xcc);
  EXPECT_EQ(byte_at(cli, suffix, sym->file_offset), original);
  EXPECT_EQ(exp.log().find("attached to pid " + std::to_string(cli)), std::string::npos);
  std::ofstream(go) << "go\n";
  const int py_pid = py.pid();
  int st = py.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  Samples got = exp.scrape();
  size_t series = 0;
  for (const auto& [k, v] : got)
    if (k.rfind("insa_ct_sqlite_opens_total{", 0) == 0) ++series;
  EXPECT_EQ(series, 1u);
  EXPECT_EQ(got.at("insa_ct_sqlite_opens_total{pid=\"" + std::to_string(py_pid) + "\"}"), 7);
  kill(-shell.pid(), SIGKILL);  // its process group: sh, sleep and the sqlite3 shell
}

TEST(ContainersCheck, PointsOutHostWideLibraryProbes) {
  require_root();
  const std::string cfg = "/tmp/insa-ct-check.yaml";
  const std::string body = R"(metrics:
  - name: x_total
    type: counter
probes:
  - name: sql
    binary: libsqlite3.so.0
    function: sqlite3_exec
    metrics: [{metric: x_total}]
)";
  std::ofstream(cfg) << body;
  auto [st, out] = run_capture({binary_dir() + "/insa-exporter", "check", cfg});
  ASSERT_EQ(st, 0) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("\n      host-wide: every process on this host that maps "
                                                "/[^ ]*/libsqlite3\\.so\\.0[.0-9]* traps on this probe; narrow it "
                                                "with pid: or select:\n")))
      << out;
  std::ofstream(cfg) << body << "    select: {container: \"billing-*\"}\n";
  auto [st2, out2] = run_capture({binary_dir() + "/insa-exporter", "check", cfg});
  ASSERT_EQ(st2, 0) << out2;
  EXPECT_EQ(out2.find("host-wide"), std::string::npos) << out2;
  EXPECT_NE(out2.find("(per process: selected containers only)"), std::string::npos) << out2;
}

}  // namespace
}  // namespace insa::testing
