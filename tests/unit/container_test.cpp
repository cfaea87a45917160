// SPDX-License-Identifier: Apache-2.0
// Processes in containers against a fake proc root: which processes have their own
// mount namespace or root, the executable as they see it, the file the exporter opens
// for it (through PROC/PID/root), libraries they map, and a probe on a path that
// exists only inside containers planned per file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "../test_util.h"
#include "attach/plan.h"
#include "config/config.h"
#include "elf/elf_file.h"
#include "elf/plt.h"
#include "process/containers.h"

namespace insa::process {
namespace {

namespace fs = std::filesystem;

/// A fake /proc: "self" and processes with exe/root/ns links and maps files.
class ContainerProc : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("insa-ctr-unit-" + std::to_string(getpid()));
    fs::remove_all(base_);
    proc_ = (base_ / "proc").string();
    fs::create_directories(proc_ + "/self/ns");
    fs::create_symlink("mnt:[4026531841]", proc_ + "/self/ns/mnt");
  }
  void TearDown() override { fs::remove_all(base_); }

  /// A root file system with `file` holding `content`.
  std::string rootfs(const std::string& name, const std::string& file, const std::string& content) {
    const std::string r = (base_ / name).string();
    fs::create_directories(fs::path(r + file).parent_path());
    std::ofstream(r + file) << content;
    return r;
  }
  /// Process `pid`: exe link to `exe` (its own view), mount namespace `ns`, root link `root`.
  void process(int pid, const std::string& exe, const std::string& ns, const std::string& root,
               const std::string& maps = "") {
    const std::string d = proc_ + "/" + std::to_string(pid);
    fs::create_directories(d + "/ns");
    fs::create_symlink(exe, d + "/exe");
    fs::create_symlink(ns, d + "/ns/mnt");
    fs::create_symlink(root, d + "/root");
    std::ofstream(d + "/maps") << maps;
  }

  fs::path base_;
  std::string proc_;
};

TEST_F(ContainerProc, RootOnlyForAnotherMountNamespaceOrChroot) {
  const std::string host = rootfs("host", "/srv/w", "host build");
  process(100, host + "/srv/w", "mnt:[4026531841]", "/");
  process(200, "/app/worker", "mnt:[4026532200]", rootfs("ctr", "/app/worker", "ctr build"));
  process(300, "/srv/w", "mnt:[4026531841]", base_ / "host");  // chroot, same namespace
  EXPECT_EQ(process_root(100, proc_), "");
  EXPECT_EQ(process_root(200, proc_), proc_ + "/200/root");
  EXPECT_EQ(process_root(300, proc_), proc_ + "/300/root");
  EXPECT_EQ(process_root(999, proc_), "");  // no such process: nothing to reach through
}

TEST_F(ContainerProc, ExeIsTheProcessOwnViewWithoutDeleted) {
  process(200, "/app/worker (deleted)", "mnt:[4026532200]", rootfs("ctr", "/app/worker", "x"));
  process(201, "/app/worker", "mnt:[4026532201]", rootfs("ctr2", "/app/worker", "y"));
  EXPECT_EQ(process_exe(200, proc_), "/app/worker");
  EXPECT_EQ(process_exe(201, proc_), "/app/worker");
  EXPECT_EQ(process_exe(999, proc_), "");
}

TEST_F(ContainerProc, TwoContainersSamePathAreTwoFiles) {
  const std::string host = rootfs("host", "/srv/w", "host build");
  const std::string a = rootfs("ctr-a", "/app/worker", "build A");
  const std::string b = rootfs("ctr-b", "/app/worker", "build B, another size");
  process(100, host + "/srv/w", "mnt:[4026531841]", "/");
  process(200, "/app/worker", "mnt:[4026532200]", a);
  process(300, "/app/worker", "mnt:[4026532300]", b);
  auto procs = scan_executables(proc_);
  std::sort(procs.begin(), procs.end(), [](const auto& x, const auto& y) { return x.pid < y.pid; });
  ASSERT_EQ(procs.size(), 3u);
  EXPECT_EQ(procs[0].pid, 100);
  EXPECT_EQ(procs[0].root, "");
  EXPECT_EQ(procs[0].host_path(), host + "/srv/w");
  EXPECT_EQ(procs[1].exe, "/app/worker");
  EXPECT_EQ(procs[1].host_path(), proc_ + "/200/root/app/worker");
  EXPECT_EQ(procs[2].host_path(), proc_ + "/300/root/app/worker");
  struct stat sa {}, sb {};
  ASSERT_EQ(stat((a + "/app/worker").c_str(), &sa), 0);
  ASSERT_EQ(stat((b + "/app/worker").c_str(), &sb), 0);
  EXPECT_EQ(procs[1].ino, sa.st_ino);
  EXPECT_EQ(procs[2].ino, sb.st_ino);
  EXPECT_NE(procs[1].ino, procs[2].ino);
  // Opened from the exporter, each path reads its own container's file.
  std::ifstream fa(procs[1].host_path()), fb(procs[2].host_path());
  std::string ca, cb;
  std::getline(fa, ca);
  std::getline(fb, cb);
  EXPECT_EQ(ca, "build A");
  EXPECT_EQ(cb, "build B, another size");
}

TEST_F(ContainerProc, MappedLibraryAndLoaderFallback) {
  const std::string r = rootfs("ctr", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "lib");
  process(200, "/app/worker", "mnt:[4026532200]", r,
          "55d0c0000000-55d0c0001000 r--p 00000000 00:2c 1090001                    /app/worker\n"
          "7f0000000000-7f0000001000 r--p 00000000 00:2c 1090500                    "
          "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30\n"
          "7f0000100000-7f0000101000 r--p 00000000 00:2c 1090501                    "
          "/usr/lib/x86_64-linux-gnu/libstdc++fs.so.6\n"
          "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n");
  auto is_stdcxx = [](const std::string& p) { return is_library_file(p, "libstdc++.so.6"); };
  EXPECT_EQ(mapped_file(200, is_stdcxx, proc_), "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30");
  EXPECT_EQ(mapped_file(200, [](const std::string& p) { return is_library_file(p, "libsqlite3.so.0"); }, proc_), "");
  EXPECT_TRUE(is_library_file("/lib/libstdc++.so.6", "libstdc++.so.6"));
  EXPECT_FALSE(is_library_file("/lib/libstdc++.so.6-gdb.py", "libstdc++.so.6"));
  EXPECT_FALSE(is_library_file("/lib/libstdc++fs.so.6", "libstdc++.so.6"));
  EXPECT_EQ(find_library_in_root(proc_ + "/200/root", "libstdc++.so.6"),
            proc_ + "/200/root/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
  EXPECT_EQ(find_library_in_root(proc_ + "/200/root", "libsqlite3.so.0"), "");
}

const char* kContainerProbe = R"(metrics:
  - name: insa_agent_requests_total
    type: counter
    labels: [status]
probes:
  - name: request
    binary: /insa-no-such-dir/app/request_worker
    function: insa_demo::handle_request
    status:
      - {if: ret < 0, then: error}
      - {else: success}
    metrics:
      - metric: insa_agent_requests_total
        labels: {status: $status}
)";

TEST(ContainerPlan, PathOnlyInContainersWaitsThenPlansEachFile) {
  auto cfg = config::parse_config(kContainerProbe, "/tmp/probes.yaml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  auto p = plan::build_plan(*cfg);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->probes.size(), 1u);
  const auto& pp = p->probes[0];
  EXPECT_FALSE(pp.host_file);
  EXPECT_EQ(pp.own_path, "/insa-no-such-dir/app/request_worker");
  EXPECT_EQ(pp.binary, "/insa-no-such-dir/app/request_worker");
  EXPECT_TRUE(pp.points.empty());
  EXPECT_EQ(pp.target,
            "insa_demo::handle_request (in containers: /insa-no-such-dir/app/request_worker; not on this host and no "
            "process runs it yet: checked and attached when one starts)");
  EXPECT_TRUE(p->needs_catch);
  EXPECT_TRUE(p->catch_points.empty());  // libstdc++.so is hooked per targeted process only
  ASSERT_EQ(p->specs.size(), 1u);
  EXPECT_TRUE(p->specs[0].flags & INSA_PROBE_TRACKED);
  // One container's file (here the build tree's worker): analysed alone, same cookie.
  const std::string file = std::string(INSA_BINARY_DIR) + "/tests/workers/request_worker";
  auto fp = plan::plan_probe_file(*cfg, 0, file);
  ASSERT_TRUE(fp) << fp.error().message;
  ASSERT_GE(fp->probe.points.size(), 2u);
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(fp->probe.points[0].role, plan::Role::Entry);
  for (const auto& pt : fp->probe.points) {
    EXPECT_EQ(pt.binary, file);
    EXPECT_EQ(pt.ino, st.st_ino);
    EXPECT_EQ(pt.cookie & 0xffff, 0u);
  }
  EXPECT_EQ(fp->entry_sp_delta, 0);
  auto bad = plan::plan_probe_file(*cfg, 0, std::string(INSA_BINARY_DIR) + "/tests/fixtures/fixture_c_pie_O2");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("handle_request"), std::string::npos) << bad.error().message;
}

const std::string kId = "b888aff265db4558e3c22a77308f7be017a11359aa65c8af2bb10cfe39d2c8c6";
const std::string kUid = "0e5d3a43-5c4e-4d1e-9d4b-2f0c6c1b7a11";

TEST(Cgroup, PodmanCgroupfsHybridAsOnThisVm) {
  // cgroup v1 controllers plus the unified hierarchy (what podman writes here).
  auto c = parse_cgroup("9:name=systemd:/libpod_parent/libpod-" + kId + "\n4:memory:/libpod_parent/libpod-" + kId +
                        "\n0::/libpod_parent/libpod-" + kId + "\n");
  EXPECT_EQ(c.container_id, kId);
  EXPECT_EQ(c.runtime, "podman");
  EXPECT_EQ(c.path, "/libpod_parent/libpod-" + kId);
  EXPECT_EQ(c.pod_uid, "");
}

TEST(Cgroup, PodmanAndDockerSystemdScopes) {
  auto p = parse_cgroup("0::/machine.slice/libpod-" + kId + ".scope/container\n");
  EXPECT_EQ(p.container_id, kId);
  EXPECT_EQ(p.runtime, "podman");
  auto d = parse_cgroup("0::/system.slice/docker-" + kId + ".scope\n");
  EXPECT_EQ(d.container_id, kId);
  EXPECT_EQ(d.runtime, "docker");
  auto v1 = parse_cgroup("12:pids:/docker/" + kId + "\n11:cpu,cpuacct:/docker/" + kId + "\n0::/\n");
  EXPECT_EQ(v1.container_id, kId);
  EXPECT_EQ(v1.runtime, "docker");
  EXPECT_EQ(v1.path, "/docker/" + kId);
}

TEST(Cgroup, KubernetesContainerdAndCrio) {
  std::string uid_ = kUid;
  std::replace(uid_.begin(), uid_.end(), '-', '_');
  auto sd = parse_cgroup("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ +
                         ".slice/cri-containerd-" + kId + ".scope\n");
  EXPECT_EQ(sd.container_id, kId);
  EXPECT_EQ(sd.runtime, "containerd");
  EXPECT_EQ(sd.pod_uid, kUid);
  auto guaranteed = parse_cgroup("0::/kubepods.slice/kubepods-pod" + uid_ + ".slice/crio-" + kId + ".scope\n");
  EXPECT_EQ(guaranteed.runtime, "crio");
  EXPECT_EQ(guaranteed.pod_uid, kUid);
  auto fs1 = parse_cgroup("11:memory:/kubepods/besteffort/pod" + kUid + "/" + kId + "\n");
  EXPECT_EQ(fs1.container_id, kId);
  EXPECT_EQ(fs1.runtime, "");
  EXPECT_EQ(fs1.pod_uid, kUid);
  // CRI-O's monitor and the pod's own cgroup are no container.
  EXPECT_EQ(parse_cgroup("0::/kubepods.slice/kubepods-pod" + uid_ + ".slice/crio-conmon-" + kId + ".scope\n").container_id, "");
  EXPECT_EQ(parse_cgroup("0::/user.slice/user-0.slice/session-3.scope\n").container_id, "");
  EXPECT_EQ(parse_cgroup("0::/libpod_parent/libpod-" + kId.substr(1) + "\n").container_id, "");  // 63 digits
  EXPECT_EQ(parse_cgroup("").container_id, "");
}

TEST_F(ContainerProc, PodIdentityFromKubeletLogDirectories) {
  const std::string logs = (base_ / "log").string();
  fs::create_directories(logs + "/pods/shop_checkout-7d9f_" + kUid + "/worker");
  fs::create_directories(logs + "/pods/shop_checkout-7d9f_" + kUid + "/sidecar");
  fs::create_directories(logs + "/pods/other_x_11111111-2222-3333-4444-555555555555/app");
  fs::create_directories(logs + "/containers");
  std::ofstream(logs + "/containers/checkout-7d9f_shop_worker-" + kId + ".log") << "";
  std::ofstream(logs + "/containers/checkout-7d9f_shop_sidecar-" + std::string(64, 'a') + ".log") << "";
  auto id = pod_identity(kUid, kId, logs);
  EXPECT_EQ(id.namespace_, "shop");
  EXPECT_EQ(id.pod, "checkout-7d9f");
  EXPECT_EQ(id.container, "worker");
  // Without a log link, a pod's only container directory names it.
  auto one = pod_identity("11111111-2222-3333-4444-555555555555", kId, logs);
  EXPECT_EQ(one.namespace_, "other");
  EXPECT_EQ(one.pod, "x");
  EXPECT_EQ(one.container, "app");
  auto none = pod_identity("99999999-2222-3333-4444-555555555555", kId, logs);
  EXPECT_EQ(none.pod, "");
  // From a fake proc root: the process's cgroup file.
  const std::string d = proc_ + "/500";
  fs::create_directories(d);
  std::ofstream(d + "/cgroup") << "0::/kubepods/burstable/pod" << kUid << "/" << kId << "\n";
  auto c = process_cgroup(500, proc_);
  EXPECT_EQ(c.pod_uid, kUid);
  EXPECT_EQ(c.container_id, kId);
}

TEST_F(ContainerProc, LabelsFromPodmanConmonAndKubelet) {
  // podman: the container process's parent is conmon, whose command line names it.
  fs::create_directories(proc_ + "/700");
  fs::create_directories(proc_ + "/699");
  std::ofstream(proc_ + "/700/cgroup") << "0::/libpod_parent/libpod-" << kId << "\n";
  std::ofstream(proc_ + "/700/stat") << "700 (ctr thrower) S 699 700 700 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 4242 0\n";
  const std::string conmon[] = {"/usr/bin/conmon", "--api-version", "1", "-c", kId, "-u", kId, "-n", "insa-ct-a"};
  std::ofstream cl(proc_ + "/699/cmdline", std::ios::binary);
  for (const auto& a : conmon) cl << a << '\0';
  cl.close();
  EXPECT_EQ(resolve_container_labels(700, proc_, (base_ / "nolog").string()), (ContainerLabels{"insa-ct-a", "", ""}));
  // Without a conmon parent: the short id.
  std::ofstream(proc_ + "/700/stat") << "700 (w) S 1 700 700 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 4242 0\n";
  EXPECT_EQ(resolve_container_labels(700, proc_, (base_ / "nolog").string()),
            (ContainerLabels{kId.substr(0, 12), "", ""}));
  // Kubernetes: names from the kubelet's log directories.
  const std::string logs = (base_ / "log").string();
  fs::create_directories(logs + "/pods/shop_checkout-7d9f_" + kUid + "/worker");
  fs::create_directories(proc_ + "/800");
  std::ofstream(proc_ + "/800/cgroup") << "0::/kubepods/burstable/pod" << kUid << "/" << kId << "\n";
  EXPECT_EQ(resolve_container_labels(800, proc_, logs), (ContainerLabels{"worker", "checkout-7d9f", "shop"}));
  // Docker: the name in its config.
  fs::create_directories(proc_ + "/900");
  std::ofstream(proc_ + "/900/cgroup") << "0::/system.slice/docker-" << kId << ".scope\n";
  fs::create_directories(base_ / "docker" / "containers" / kId);
  std::ofstream((base_ / "docker" / "containers" / kId / "config.v2.json").string())
      << R"({"ID":")" << kId << R"(","Name":"/billing-worker","State":{}})";
  EXPECT_EQ(resolve_container_labels(900, proc_, logs, (base_ / "docker").string()),
            (ContainerLabels{"billing-worker", "", ""}));
  // A host process: no container labels.
  fs::create_directories(proc_ + "/100");
  std::ofstream(proc_ + "/100/cgroup") << "0::/user.slice/user-0.slice/session-3.scope\n";
  EXPECT_EQ(resolve_container_labels(100, proc_, logs), ContainerLabels{});
}

TEST(ContainerConfig, ContainerLabelValuesShareThePidSlot) {
  auto cfg = config::parse_config(R"(metrics:
  - name: calls_total
    type: counter
    labels: [container, pod, namespace, pid]
probes:
  - name: p
    binary: /insa-no-such-dir/app/request_worker
    function: f
    metrics:
      - metric: calls_total
        labels: {container: $container, pod: $pod, namespace: $namespace, pid: $pid}
)",
                                  "/tmp/probes.yaml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  auto p = plan::build_plan(*cfg);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->series.size(), 1u);
  const auto& l = p->series[0].labels;
  ASSERT_EQ(l.size(), 4u);
  using K = plan::LabelDecoder::Kind;
  using F = plan::LabelDecoder::Field;
  EXPECT_EQ(l[0].kind, K::Container);
  EXPECT_EQ(l[0].field, F::Container);
  EXPECT_EQ(l[1].field, F::Pod);
  EXPECT_EQ(l[2].field, F::Namespace);
  EXPECT_EQ(l[3].kind, K::Int);
  for (const auto& d : l) EXPECT_EQ(d.offset, 0u);  // one 8-byte PID slot
  ASSERT_EQ(p->specs[0].nactions, 1);
  EXPECT_EQ(p->specs[0].actions[0].nlabels, 1);
  EXPECT_EQ(p->specs[0].actions[0].labels[0].src, INSA_SRC_PID);
  auto bad = config::parse_config(R"(metrics:
  - name: x_total
    type: counter
probes:
  - name: p
    binary: /insa-no-such-dir/w
    function: f
    metrics:
      - metric: x_total
        add: $container
)",
                                  "/tmp/probes.yaml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "/tmp/probes.yaml:10:14: a metric value must be an integer, not a string");
}

TEST(ContainerSelect, GlobsOnNameIdCgroupAndPod) {
  CgroupInfo podman{"/libpod_parent/libpod-" + kId, "podman", kId, ""};
  ContainerLabels a{"insa-ct-a", "", ""};
  auto sel = [](std::string container, std::string cgroup = "", std::string ns = "", std::string pod = "") {
    config::Selector s;
    s.container = container;
    s.cgroup = cgroup;
    s.namespace_ = ns;
    s.pod = pod;
    return s;
  };
  EXPECT_TRUE(selector_matches(sel("insa-ct-a"), podman, a, "/app/w"));
  EXPECT_TRUE(selector_matches(sel("insa-ct-*"), podman, a, "/app/w"));
  EXPECT_FALSE(selector_matches(sel("insa-ct-b"), podman, a, "/app/w"));
  EXPECT_TRUE(selector_matches(sel(kId.substr(0, 12)), podman, a, "/app/w"));   // id prefix, 12+ digits
  EXPECT_FALSE(selector_matches(sel(kId.substr(0, 11)), podman, a, "/app/w"));  // too short for an id
  EXPECT_TRUE(selector_matches(sel("", "/libpod_parent/*"), podman, a, "/app/w"));
  EXPECT_FALSE(selector_matches(sel("", "/kubepods/*"), podman, a, "/app/w"));
  EXPECT_FALSE(selector_matches(sel("insa-ct-a", "", "shop"), podman, a, "/app/w"));  // every key must match
  CgroupInfo k8s{"/kubepods/burstable/pod" + kUid + "/" + kId, "", kId, kUid};
  ContainerLabels w{"worker", "checkout-7d9f", "shop"};
  EXPECT_TRUE(selector_matches(sel("worker", "", "shop", "checkout-*"), k8s, w, "/app/w"));
  EXPECT_FALSE(selector_matches(sel("", "", "shop", "billing-*"), k8s, w, "/app/w"));
  EXPECT_FALSE(selector_matches(sel("", "/*"), CgroupInfo{}, ContainerLabels{}, "/app/w"));  // a host process: never
  // executable alone: host processes too (a library probe naming its processes).
  config::Selector exe;
  exe.executable = "/usr/bin/python3*";
  EXPECT_TRUE(selector_matches(exe, CgroupInfo{}, ContainerLabels{}, "/usr/bin/python3.11"));
  EXPECT_FALSE(selector_matches(exe, CgroupInfo{}, ContainerLabels{}, "/usr/bin/sqlite3"));
  exe.container = "insa-ct-a";
  EXPECT_FALSE(selector_matches(exe, CgroupInfo{}, ContainerLabels{}, "/usr/bin/python3.11"));
  EXPECT_TRUE(selector_matches(exe, podman, a, "/usr/bin/python3.11"));
}

TEST(ContainerSelect, ConfigAndPlan) {
  const std::string head = R"(metrics:
  - name: x_total
    type: counter
probes:
  - name: p
    binary: )" + std::string(INSA_BINARY_DIR) + R"(/tests/workers/request_worker
    function: insa_demo::handle_request
    metrics: [{metric: x_total}]
)";
  auto cfg = config::parse_config(head + "    select: {container: \"shop-*\", cgroup: \"/kubepods/*\"}\n", "/tmp/p.yaml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  ASSERT_TRUE(cfg->probes[0].select);
  EXPECT_EQ(cfg->probes[0].select->container, "shop-*");
  EXPECT_EQ(cfg->probes[0].select->cgroup, "/kubepods/*");
  auto p = plan::build_plan(*cfg);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->probes[0].host_file);
  EXPECT_TRUE(p->probes[0].per_process());
  EXPECT_FALSE(p->probes[0].points.empty());
  EXPECT_NE(p->probes[0].target.find("(per process: selected containers only)"), std::string::npos);
  auto empty = config::parse_config(head + "    select: {}\n", "/tmp/p.yaml");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message,
            "/tmp/p.yaml:9:13: probe 'p': 'select' needs at least one of container, cgroup, namespace, pod, executable");
  auto bad = config::parse_config(head + "    select: {name: x}\n", "/tmp/p.yaml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "/tmp/p.yaml:9:14: unknown key 'name' in 'select' (allowed: container, cgroup, namespace, pod, executable)");
}

// The catch hook of a dynamically linked C++ binary sits on its PLT stub of
// __cxa_begin_catch (only its processes run it): the stub objdump names.
TEST(PltStub, CxaBeginCatchIsTheStubObjdumpNames) {
  const std::string f = std::string(INSA_BINARY_DIR) + "/tests/fixtures/ctr_thrower_a";
  auto file = elf::ElfFile::open(f);
  ASSERT_TRUE(file) << file.error().message;
  auto off = elf::plt_stub_offset(*file, "__cxa_begin_catch");
  ASSERT_TRUE(off) << off.error().message;
  const std::string dis = insa::test::run_command("objdump -d -j .plt -j .plt.sec " + f);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dis, m, std::regex("([0-9a-f]+) <__cxa_begin_catch@plt>:"))) << dis;
  const uint64_t stub = std::stoull(m[1].str(), nullptr, 16);
  auto vaddr = file->offset_to_vaddr(*off);
  ASSERT_TRUE(vaddr);
  EXPECT_GE(*vaddr, stub);
  EXPECT_LT(*vaddr, stub + 16);
  // The instruction there is the stub's `jmp *GOT(%rip)` (with a bnd prefix in .plt.sec).
  auto b = file->bytes_at_offset(*off, 3);
  ASSERT_TRUE(b);
  const bool jmp = ((*b)[0] == 0xff && (*b)[1] == 0x25) || ((*b)[0] == 0xf2 && (*b)[1] == 0xff && (*b)[2] == 0x25);
  EXPECT_TRUE(jmp);
  // Its own copy (-static-libstdc++) is no import; a C program imports none.
  auto st = elf::ElfFile::open(std::string(INSA_BINARY_DIR) + "/tests/fixtures/fixture_cpp_static_O2");
  ASSERT_TRUE(st);
  EXPECT_FALSE(elf::plt_stub_offset(*st, "__cxa_begin_catch"));
  auto c = elf::ElfFile::open(std::string(INSA_BINARY_DIR) + "/tests/fixtures/fixture_c_pie_O2");
  ASSERT_TRUE(c);
  auto none = elf::plt_stub_offset(*c, "__cxa_begin_catch");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "no PLT stub of __cxa_begin_catch in " + std::string(INSA_BINARY_DIR) +
                                      "/tests/fixtures/fixture_c_pie_O2 (not imported)");
}

}  // namespace
}  // namespace insa::process
