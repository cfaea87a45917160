// SPDX-License-Identifier: Apache-2.0
// The server under hostile load on 127.0.0.1 (bounded counts and times): 500 idle
// connections, 50 slowloris clients and a client that never reads a large /metrics,
// while a fresh client still scrapes within 1 s; then the deadlines drop the
// slowloris and never-reading clients and their threads retire.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <thread>
#include <vector>

#include "http/server.h"
#include "http_test_util.h"

namespace insa::http {
namespace {

using namespace testutil;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

TEST(HttpLoad, FreshScrapeWithin1sUnderIdleSlowlorisAndNonReadingClients) {
  // 500 + 50 + 1 client sockets and as many on the server side: raise the fd limit.
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_GE(rl.rlim_max, 4096u) << "the hard fd limit (" << rl.rlim_max << ") is too low for 1100 sockets";
  rlimit want{std::max<rlim_t>(rl.rlim_cur, 4096), rl.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &want), 0);

  Options o;
  o.read_timeout = std::chrono::milliseconds(3000);
  o.write_timeout = std::chrono::milliseconds(3000);
  o.idle_timeout = std::chrono::milliseconds(20000);
  auto s = Server::listen("127.0.0.1:0", o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto& server = **s;
  std::string big;
  for (int i = 0; big.size() < (16u << 20); ++i) big += "insa_big_series{i=\"" + std::to_string(i) + "\"} 1\n";
  server.handle("/metrics", [] { return Response{200, "text/plain; version=0.0.4; charset=utf-8", "insa_up 1\n"}; });
  server.handle("/big", [&big] { return Response{200, "text/plain; charset=utf-8", big}; });
  server.start();
  const int port = server.port();

  std::vector<int> idle, slow;
  for (int i = 0; i < 500; ++i) {
    int fd = connect_local(port);
    ASSERT_GE(fd, 0) << "idle connection " << i << ": " << strerror(errno);
    // Half stay silent from the start (dropped at the read deadline, like Go's
    // ReadHeaderTimeout); half make one request and then idle on keep-alive.
    if (i % 2 == 0) {
      ASSERT_TRUE(send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
      ASSERT_EQ(read_response(fd, 2000).status, 200) << "idle connection " << i;
    }
    idle.push_back(fd);
  }
  for (int i = 0; i < 50; ++i) {
    int fd = connect_local(port);
    ASSERT_GE(fd, 0) << "slowloris " << i << ": " << strerror(errno);
    ASSERT_TRUE(send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n"));
    slow.push_back(fd);
  }
  // A client that asks for 16 MiB and never reads: its small receive buffer fills.
  int stuck = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 4096;
  setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(stuck, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ASSERT_TRUE(send_all(stuck, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));

  // Keep the slowloris clients trickling (one header byte every 100 ms) while fresh
  // clients scrape.
  std::atomic<bool> trickle{true};
  std::thread t([&] {
    while (trickle) {
      for (int fd : slow) (void)!send(fd, "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  double worst = 0;
  for (int i = 0; i < 10; ++i) {
    const auto t0 = Clock::now();
    int fd = connect_local(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    auto r = read_response(fd, 1000);
    close(fd);
    const double took = since(t0);
    worst = std::max(worst, took);
    ASSERT_EQ(r.status, 200) << "fresh scrape " << i << " failed (" << took << " s): " << r.raw.substr(0, 200);
    EXPECT_EQ(r.body, "insa_up 1\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_LT(worst, 1.0) << "slowest fresh scrape";
  std::printf("[ figures  ] slowest of 10 fresh scrapes under load: %.1f ms; %zu HTTP threads\n", worst * 1000,
              server.stats().threads.load());
  EXPECT_GE(server.stats().open_connections.load(), 550u);

  // The read deadline (3 s for a whole request) drops every slowloris client though it
  // keeps sending; the write deadline drops the client that never reads.
  const auto t0 = Clock::now();
  size_t dropped = 0;
  for (int fd : slow) {
    auto rest = read_all(fd, 5000);
    if (rest.find("<timeout>") == std::string::npos) ++dropped;
  }
  trickle = false;
  t.join();
  EXPECT_EQ(dropped, slow.size()) << "slowloris clients still connected after " << since(t0) << " s";
  EXPECT_LT(since(t0), 5.0);
  {
    // Drain what the never-reading client got: the connection ends well before 16 MiB.
    std::string got = read_all(stuck, 5000);
    EXPECT_EQ(got.find("<timeout>"), std::string::npos) << "the never-reading client was not dropped";
    EXPECT_LT(got.size(), big.size());
  }
  EXPECT_GE(server.stats().timeouts.load(), 51u + 250u);
  // Idle keep-alive connections are still open (idle timeout 20 s) and still usable.
  ASSERT_TRUE(send_all(idle[0], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(read_response(idle[0], 1000).status, 200);

  for (int fd : idle) close(fd);
  for (int fd : slow) close(fd);
  close(stuck);
  const auto stop0 = Clock::now();
  server.stop();
  EXPECT_LT(since(stop0), 3.0) << "stop() with 500 open connections";
  setrlimit(RLIMIT_NOFILE, &rl);
}

TEST(HttpLoad, OverMaxConnectionsGets503AndClose) {
  Options o;
  o.max_connections = 4;
  auto s = Server::listen("127.0.0.1:0", o);
  ASSERT_TRUE(s.ok()) << s.error().message;
  (*s)->handle("/metrics", [] { return Response{200, "text/plain", "x"}; });
  (*s)->start();
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) held.push_back(connect_local((*s)->port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int extra = connect_local((*s)->port());
  EXPECT_EQ(read_all(extra, 2000),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 22\r\nConnection: close\r\n\r\ntoo many connections\r\n");
  close(extra);
  EXPECT_EQ((*s)->stats().rejected_connections.load(), 1u);
  for (int fd : held) close(fd);
}

}  // namespace
}  // namespace insa::http
