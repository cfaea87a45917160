// SPDX-License-Identifier: Apache-2.0
// The HTTP server on 127.0.0.1:0 spoken to over a raw socket: status lines,
// headers, bodies, methods, the port-in-use message (and its Pushgateway hint
// for 9091), and listen-address parsing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "http/server.h"

namespace insa::http {
namespace {

/// Sends `request` to 127.0.0.1:port and reads until the server closes.
std::string roundtrip(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "<socket: " + std::string(strerror(errno)) + ">";
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::string e = strerror(errno);
    close(fd);
    return "<connect: " + e + ">";
  }
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string get(int port, const std::string& path) {
  return roundtrip(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

/// A listening socket on 127.0.0.1:port (0: any free port); -1 when it cannot bind.
int occupy(int port, int* bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 1) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *bound = ntohs(a.sin_port);
  return fd;
}

class HttpServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Server::listen("127.0.0.1:0");
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(s).value();
    ASSERT_GT(server_->port(), 0);
    server_->handle("/metrics", [this] {
      ++scrapes_;
      return Response{200, "text/plain; version=0.0.4; charset=utf-8", "insa_up 1\n"};
    });
    server_->handle("/-/ready", [] { return Response{503, "text/plain; charset=utf-8", "not attached\n"}; });
    server_->handle("/empty", [] { return Response{}; });
    server_->start();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  std::unique_ptr<Server> server_;
  std::atomic<int> scrapes_{0};
};

TEST_F(HttpServer, Get200) {
  EXPECT_EQ(get(server_->port(), "/metrics"),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 10\r\n"
            "Connection: close\r\n"
            "\r\n"
            "insa_up 1\n");
  EXPECT_EQ(scrapes_.load(), 1);
}

TEST_F(HttpServer, QueryStringIgnored) {
  auto r = get(server_->port(), "/metrics?name[]=insa_up");
  EXPECT_EQ(r.substr(0, 17), "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(r.substr(r.size() - 10), "insa_up 1\n");
}

TEST_F(HttpServer, NotFound404) {
  EXPECT_EQ(get(server_->port(), "/nope"),
            "HTTP/1.1 404 Not Found\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 24\r\n"
            "Connection: close\r\n"
            "\r\n"
            "not found; try /metrics\n");
  EXPECT_EQ(scrapes_.load(), 0);
}

TEST_F(HttpServer, MethodNotAllowed405) {
  EXPECT_EQ(roundtrip(server_->port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 9\r\n"
            "Connection: close\r\n"
            "\r\n"
            "only GET\n");
  EXPECT_EQ(scrapes_.load(), 0);
}

TEST_F(HttpServer, HeadHasHeadersOnly) {
  EXPECT_EQ(roundtrip(server_->port(), "HEAD /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 10\r\n"
            "Connection: close\r\n"
            "\r\n");
}

TEST_F(HttpServer, HandlerStatusAndEmptyBody) {
  EXPECT_EQ(get(server_->port(), "/-/ready"),
            "HTTP/1.1 503 Service Unavailable\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 13\r\n"
            "Connection: close\r\n"
            "\r\n"
            "not attached\n");
  EXPECT_EQ(get(server_->port(), "/empty"),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 0\r\n"
            "Connection: close\r\n"
            "\r\n");
}

TEST_F(HttpServer, ManyRequestsInARow) {
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get(server_->port(), "/metrics").substr(0, 17), "HTTP/1.1 200 OK\r\n") << i;
  EXPECT_EQ(scrapes_.load(), 20);
}

TEST_F(HttpServer, RequestSplitAcrossPackets) {
  // The head is read until the blank line, however it arrives.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(server_->port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(send(fd, "GET /met", 8, 0), 8);
  usleep(20000);
  ASSERT_EQ(send(fd, "rics HTTP/1.1\r\n\r\n", 17, 0), 17);
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_EQ(out.substr(out.size() - 10), "insa_up 1\n");
}

TEST_F(HttpServer, StopIsIdempotentAndClosesThePort) {
  const int port = server_->port();
  server_->stop();
  server_->stop();
  server_.reset();
  EXPECT_EQ(get(port, "/metrics"), "<connect: Connection refused>");
}

TEST(HttpListen, AllAddressesPort0) {
  auto s = Server::listen(":0");
  ASSERT_TRUE(s.ok()) << s.error().message;
  (*s)->handle("/metrics", [] { return Response{200, "text/plain", "x"}; });
  (*s)->start();
  EXPECT_EQ(get((*s)->port(), "/metrics"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
}

TEST(HttpListen, PortInUse) {
  int port = 0;
  int fd = occupy(0, &port);
  ASSERT_GE(fd, 0) << strerror(errno);
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  auto s = Server::listen(addr);
  close(fd);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "cannot listen on " + addr +
                                   ": Address already in use (stop the other process or pass "
                                   "--web.listen-address :PORT)");
  EXPECT_EQ(s.error().err, EADDRINUSE);
}

TEST(HttpListen, PortInUse9091MentionsThePushgateway) {
  int port = 0;
  int fd = occupy(9091, &port);
  if (fd < 0) {
    GTEST_SKIP() << "127.0.0.1:9091 is taken by another process on this machine, so this test cannot hold it "
                    "itself; the Pushgateway hint for 9091 is not checked in this run (PortInUse checks the "
                    "generic message)";
  }
  auto s = Server::listen("127.0.0.1:9091");
  close(fd);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message,
            "cannot listen on 127.0.0.1:9091: Address already in use (9091 is also the Prometheus Pushgateway's "
            "default port; stop the other process or pass --web.listen-address :PORT)");
  EXPECT_EQ(s.error().err, EADDRINUSE);
}

TEST(HttpListen, InvalidAddress) {
  auto s = Server::listen("127.0.0.1:http");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "invalid listen address '127.0.0.1:http': expected [host]:port, e.g. :9091");
}

TEST(ParseAddress, Forms) {
  using P = std::pair<std::string, int>;
  auto ok = [](const std::string& a) {
    auto r = parse_address(a);
    EXPECT_TRUE(r.ok()) << a << ": " << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : P{"<error>", -1};
  };
  EXPECT_EQ(ok(":9091"), (P{"", 9091}));
  EXPECT_EQ(ok("9091"), (P{"", 9091}));
  EXPECT_EQ(ok("127.0.0.1:8080"), (P{"127.0.0.1", 8080}));
  EXPECT_EQ(ok("localhost:0"), (P{"localhost", 0}));
  EXPECT_EQ(ok("[::1]:9091"), (P{"::1", 9091}));
  EXPECT_EQ(ok("[::]:65535"), (P{"::", 65535}));
  EXPECT_EQ(ok(":0"), (P{"", 0}));
}

TEST(ParseAddress, Errors) {
  for (const char* a : {"", ":", "host:", ":abc", ":80x", ":65536", ":-1", "[::1]", "localhost"}) {
    auto r = parse_address(a);
    ASSERT_FALSE(r.ok()) << "'" << a << "' accepted";
    EXPECT_EQ(r.error().message, "invalid listen address '" + std::string(a) + "': expected [host]:port, e.g. :9091");
  }
}

}  // namespace
}  // namespace insa::http
