// SPDX-License-Identifier: Apache-2.0
// The real exporter's serving side: the threads that parse HTTP hold no
// capabilities (read from /proc/PID/task/TID/status) while the main thread keeps
// them; a bad config edit (SIGHUP and POST /-/reload) keeps the old config serving
// and counting exactly, never fails a scrape, and is reported by the reload
// metrics; --web.telemetry-path, --log.format json and the process_* metrics.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <thread>

#include "harness.h"

namespace insa::testing {
namespace {

/// The request probe config with absolute paths, written into `dir`.
std::string request_config(const std::string& dir) {
  const std::string path = dir + "/probes.yaml";
  std::ofstream(path) << request_yaml();
  return path;
}

struct TempDir {
  TempDir() {
    std::string t = "/tmp/insa-serving-XXXXXX";
    path_ = mkdtemp(t.data());
  }
  ~TempDir() { (void)!system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }
  std::string path_;
};

std::string status_field(pid_t pid, pid_t tid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return line.substr(line.find_first_not_of(" \t", field.size() + 1));
  return "";
}

TEST(Serving, HttpThreadsHoldNoCapabilities) {
  require_root();
  TempDir dir;
  Exporter exp(request_config(dir.path()), 19371);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  // Keep a connection open so a connection thread is alive while /proc is read.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(19371);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  char buf[4096];
  ASSERT_GT(read(fd, buf, sizeof buf), 0);
  const pid_t pid = exp.child().pid();
  std::map<std::string, std::vector<std::string>> caps_by_name;  // thread name → CapEff of each
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const pid_t tid = std::atoi(e->d_name);
    std::string name = status_field(pid, tid, "Name");
    caps_by_name[tid == pid ? "<main>" : name].push_back(status_field(pid, tid, "CapEff"));
  }
  closedir(d);
  close(fd);
  ASSERT_EQ(caps_by_name["insa-http"].size(), 1u);
  ASSERT_GE(caps_by_name["insa-http-conn"].size(), 1u);
  for (const char* n : {"insa-http", "insa-http-conn"})
    for (const auto& c : caps_by_name[n]) EXPECT_EQ(c, "0000000000000000") << n;
  // Kernel maps are read on one thread that keeps CAP_BPF only (map lookups need it on
  // kernels before 6.5 when unprivileged BPF is disabled).
  ASSERT_EQ(caps_by_name["insa-scrape"].size(), 1u);
  EXPECT_EQ(caps_by_name["insa-scrape"][0], "0000008000000000");
  // The main thread keeps what attaching needs (root: everything).
  EXPECT_NE(caps_by_name["<main>"].at(0), "0000000000000000");
  EXPECT_EQ(status_field(pid, pid, "CapPrm"), status_field(getpid(), getpid(), "CapPrm"));
}

TEST(Serving, BadEditKeepsTheOldConfigCountingAndScrapesNeverFail) {
  require_root();
  TempDir dir;
  const std::string cfg = request_config(dir.path());
  const std::string good = slurp(cfg);
  Exporter exp(cfg, 19372, {"--web.enable-lifecycle"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const double t0 = exp.scrape().at("insa_exporter_config_last_reload_success_timestamp_seconds");
  EXPECT_EQ(exp.scrape().at("insa_exporter_config_last_reload_successful"), 1);

  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0}, failed{0};
  std::thread scraper([&] {
    while (!stop) {
      auto [code, body] = http_get(19372, "/metrics");
      ++scrapes;
      if (code != 200 || body.find("insa_exporter_probe_events_total{probe=\"request\"}") == std::string::npos)
        ++failed;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  auto run_worker = [&](int n) {
    auto [st, out] =
        run_capture({binary_dir() + "/tests/workers/request_worker", "--seed", "5", "--requests", std::to_string(n)});
    ASSERT_EQ(st, 0) << out;
  };
  run_worker(10);
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_events_total{probe=\"request\"}"), 10);

  // A bad edit and SIGHUP: the old config keeps serving and counting.
  std::ofstream(cfg) << good << "  - name: broken\n    binary: /nonexistent/worker\n    function: f\n";
  exp.child().signal(SIGHUP);
  for (int i = 0; i < 100 && exp.log().find("reload failed") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_config_last_reload_successful"), 0);
  EXPECT_EQ(s.at("insa_exporter_config_last_reload_success_timestamp_seconds"), t0);
  EXPECT_EQ(s.at("insa_exporter_probe_attached{probe=\"request\"}"), 1);
  run_worker(5);
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_events_total{probe=\"request\"}"), 15);
  EXPECT_NE(exp.log().find("reload failed, the previous config stays in force: " + cfg), std::string::npos)
      << exp.log();

  // The same over HTTP: a 500 that says why.
  auto bad = post_reload(19372);
  EXPECT_EQ(bad.substr(0, 36), "HTTP/1.1 500 Internal Server Error\r\n") << bad;
  EXPECT_NE(bad.find("failed to reload config, the previous one stays in force: " + cfg), std::string::npos) << bad;
  run_worker(5);
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_events_total{probe=\"request\"}"), 20);

  // Fixed: the reload succeeds, the metrics say so.
  std::ofstream(cfg) << good;
  auto ok = post_reload(19372);
  EXPECT_EQ(ok.substr(0, 17), "HTTP/1.1 200 OK\r\n") << ok;
  s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_config_last_reload_successful"), 1);
  EXPECT_GT(s.at("insa_exporter_config_last_reload_success_timestamp_seconds"), t0);
  EXPECT_EQ(s.at("insa_exporter_probe_attached{probe=\"request\"}"), 1);
  run_worker(3);
  // The reloaded config is the one in force: every probe is unchanged and keeps counting
  // (see README, Reloads).
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_events_total{probe=\"request\"}"), 23);
  stop = true;
  scraper.join();
  EXPECT_GT(scrapes.load(), 20);
  EXPECT_EQ(failed.load(), 0) << "of " << scrapes.load() << " scrapes during the reloads";
  // Without --web.enable-lifecycle there is no reload endpoint.
  Exporter plain(cfg, 19373);
  ASSERT_TRUE(plain.wait_ready()) << plain.log();
  EXPECT_EQ(http_raw(19373, "POST /-/reload HTTP/1.1\r\nConnection: close\r\n\r\n").substr(0, 24),
            "HTTP/1.1 404 Not Found\r\n");
}

TEST(Serving, ReloadMeetingASymlinkLoopKeepsRunning) {
  require_root();
  TempDir dir;
  const std::string cfg = request_config(dir.path());
  const std::string good = slurp(cfg);
  Exporter exp(cfg, 19376);
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  ASSERT_EQ(symlink((dir.path() + "/b").c_str(), (dir.path() + "/a").c_str()), 0);
  ASSERT_EQ(symlink((dir.path() + "/a").c_str(), (dir.path() + "/b").c_str()), 0);
  std::string looped = good;
  const std::string bin = binary_dir() + "/tests/workers/request_worker";
  looped.replace(looped.find(bin), bin.size(), dir.path() + "/a/request_worker");
  std::ofstream(cfg) << looped;
  exp.child().signal(SIGHUP);
  for (int i = 0; i < 100 && exp.log().find("reload failed") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(exp.child().running()) << exp.log();
  const std::string log = exp.log();
  const auto at = log.find("reload failed, the previous config stays in force: ");
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_NE(log.find(dir.path() + "/a/request_worker", at), std::string::npos) << log.substr(at, 400);
  Samples s = exp.scrape();
  EXPECT_EQ(s.at("insa_exporter_config_last_reload_successful"), 0);
  EXPECT_EQ(s.at("insa_exporter_probe_attached{probe=\"request\"}"), 1);
  auto [st, out] = run_capture({bin, "--seed", "5", "--requests", "4"});
  ASSERT_EQ(st, 0) << out;
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_events_total{probe=\"request\"}"), 4);
}


TEST(Serving, FiftyReloadsUnderScrapingLeakNothing) {
  require_root();
  TempDir dir;
  Exporter exp(request_config(dir.path()), 19375, {"--web.enable-lifecycle"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  const pid_t pid = exp.child().pid();
  auto reload = [&] { return post_reload(19375); };
  ASSERT_EQ(reload().substr(0, 17), "HTTP/1.1 200 OK\r\n");  // warm: one reload before measuring
  const size_t fds0 = count_entries("/proc/" + std::to_string(pid) + "/fd");
  const auto bpf0 = bpf_fds(pid);
  const double rss0 = exp.scrape().at("process_resident_memory_bytes");
  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0}, failed{0};
  std::thread scraper([&] {
    while (!stop) {
      auto [code, body] = http_get(19375, "/metrics");
      ++scrapes;
      if (code != 200 || body.find("insa_exporter_build_info") == std::string::npos) ++failed;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  for (int i = 0; i < 50; ++i) ASSERT_EQ(reload().substr(0, 17), "HTTP/1.1 200 OK\r\n") << "reload " << i;
  stop = true;
  scraper.join();
  const size_t fds1 = count_entries("/proc/" + std::to_string(pid) + "/fd");
  const auto bpf1 = bpf_fds(pid);
  const double rss1 = exp.scrape().at("process_resident_memory_bytes");
  std::printf("[ figures  ] 50 reloads: %d scrapes, fds %zu -> %zu, BPF programs %zu -> %zu, RSS %.1f -> %.1f MiB\n",
              scrapes.load(), fds0, fds1, bpf0.count("anon_inode:bpf-prog") ? bpf0.at("anon_inode:bpf-prog") : 0,
              bpf1.count("anon_inode:bpf-prog") ? bpf1.at("anon_inode:bpf-prog") : 0, rss0 / 1048576, rss1 / 1048576);
  EXPECT_EQ(failed.load(), 0) << "of " << scrapes.load();
  EXPECT_GT(scrapes.load(), 50);
  EXPECT_LE(fds1, fds0 + 2);  // a scrape connection may be open
  EXPECT_EQ(bpf1, bpf0);      // programs, maps and links: as many as after the first reload
  EXPECT_GT(bpf0.at("anon_inode:bpf-prog"), 0u);
  EXPECT_LT(rss1, rss0 + 16 * 1048576);
  EXPECT_EQ(exp.scrape().at("insa_exporter_probe_attached{probe=\"request\"}"), 1);
}

TEST(Serving, TelemetryPathJsonLogsAndProcessMetrics) {
  require_root();
  TempDir dir;
  Exporter exp(request_config(dir.path()), 19374, {"--web.telemetry-path", "/custom", "--log.format", "json"});
  ASSERT_TRUE(exp.wait_ready()) << exp.log();
  auto [code, body] = http_get(19374, "/custom");
  EXPECT_EQ(code, 200);
  Samples s = parse_exposition(body);
  EXPECT_EQ(s.at("insa_exporter_build_info{version=\"" INSA_VERSION "\"}"), 1);
  EXPECT_EQ(http_get(19374, "/metrics").first, 404);
  // The server's own counters: 3 requests (one a 404, one malformed) and the scrape itself.
  const Samples before = parse_exposition(http_get(19374, "/custom").second);
  EXPECT_EQ(http_get(19374, "/-/healthy").first, 200);
  EXPECT_EQ(http_get(19374, "/nope").first, 404);
  EXPECT_EQ(http_raw(19374, "garbage\r\n\r\n").substr(0, 26), "HTTP/1.1 400 Bad Request\r\n");
  const Samples after = parse_exposition(http_get(19374, "/custom").second);
  EXPECT_EQ(after.at("insa_exporter_http_connections_total") - before.at("insa_exporter_http_connections_total"), 4);
  EXPECT_EQ(after.at("insa_exporter_http_requests_total") - before.at("insa_exporter_http_requests_total"), 3);
  EXPECT_EQ(after.at("insa_exporter_http_connections_rejected_total"), 0);
  EXPECT_EQ(after.at("insa_exporter_http_tls_handshake_errors_total"), 0);
  EXPECT_EQ(after.at("insa_exporter_http_open_connections"), 1);  // the scrape's own
  EXPECT_NE(http_get(19374, "/").second.find("<a href=\"/custom\">/custom</a>"), std::string::npos);
  // process_*: against /proc of the exporter as ground truth.
  const pid_t pid = exp.child().pid();
  EXPECT_EQ(s.at("process_max_fds"), [&] {
    std::string lim = slurp("/proc/" + std::to_string(pid) + "/limits");
    std::smatch m;
    std::regex_search(lim, m, std::regex("Max open files +([0-9]+)"));
    return std::stod(m[1]);
  }());
  EXPECT_GT(s.at("process_resident_memory_bytes"), 1e6);
  EXPECT_GT(s.at("process_virtual_memory_bytes"), s.at("process_resident_memory_bytes"));
  EXPECT_GT(s.at("process_open_fds"), 3);
  EXPECT_GE(s.at("process_cpu_seconds_total"), 0);
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LT(s.at("process_start_time_seconds"), now);
  EXPECT_GT(s.at("process_start_time_seconds"), now - 60);
  // Every log line is one JSON object with ts, level and msg.
  std::istringstream log(exp.log());
  std::string line;
  int lines = 0;
  const std::regex json(R"re(\{"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z","level":"[a-z]+","msg":".*"\})re");
  while (std::getline(log, line)) {
    ++lines;
    EXPECT_TRUE(std::regex_match(line, json)) << line;
  }
  EXPECT_GT(lines, 2);
}

TEST(Serving, BadFlagsAreOneLine) {
  require_root();
  auto [st, out] = run_capture({binary_dir() + "/insa-exporter", "--web.telemetry-path", "metrics"});
  EXPECT_EQ(out,
            "insa-exporter: --web.telemetry-path 'metrics' is not a path of its own: give one starting with '/', "
            "e.g. /metrics (not /, not under /-/, no '?', '#' or spaces)\n");
  EXPECT_EQ(WEXITSTATUS(st), 1);
  TempDir dir;
  auto [st2, out2] = run_capture({binary_dir() + "/insa-exporter", "--config.file", request_config(dir.path()),
                                  "--web.config.file", dir.path() + "/none.yml"});
  EXPECT_EQ(out2, "insa-exporter: cannot read web config " + dir.path() +
                      "/none.yml (check --web.config.file): No such file or directory\n");
  EXPECT_EQ(WEXITSTATUS(st2), 1);
}

}  // namespace
}  // namespace insa::testing
