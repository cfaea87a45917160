// SPDX-License-Identifier: Apache-2.0
#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace insa::http {

Result<std::pair<std::string, int>> parse_address(const std::string& address) {
  std::string host, port = address;
  if (auto c = address.rfind(':'); c != std::string::npos) {
    host = address.substr(0, c);
    port = address.substr(c + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    size_t used = 0;
    int p = std::stoi(port, &used);
    if (used != port.size() || p < 0 || p > 65535) throw std::out_of_range("port");
    return std::make_pair(host, p);
  } catch (const std::exception&) {
    return Error{"invalid listen address '" + address + "': expected [host]:port, e.g. :9091"};
  }
}

Result<std::unique_ptr<Server>> Server::listen(const std::string& address) {
  auto hp = parse_address(address);
  if (!hp) return hp.error();
  auto [host, port] = *hp;
  addrinfo hints{};
  hints.ai_family = host.empty() ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string ps = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), ps.c_str(), &hints, &res); rc != 0)
    return Error{"invalid listen address '" + address + "': " + gai_strerror(rc)};
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
  if (fd < 0 && host.empty()) {  // no IPv6: fall back to IPv4 any
    freeaddrinfo(res);
    hints.ai_family = AF_INET;
    getaddrinfo(nullptr, ps.c_str(), &hints, &res);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) {
    freeaddrinfo(res);
    return Error::from_errno("cannot create a socket");
  }
  int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (res->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    int e = errno;
    freeaddrinfo(res);
    close(fd);
    std::string hint = e == EADDRINUSE ? (port == 9091 ? " (9091 is also the Prometheus Pushgateway's default port; "
                                                         "stop the other process or pass --web.listen-address :PORT)"
                                                       : " (stop the other process or pass --web.listen-address :PORT)")
                       : e == EACCES ? " (ports below 1024 need privileges; pick another port)"
                                     : "";
    return Error{"cannot listen on " + address + ": " + strerror(e) + hint, e};
  }
  freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return std::unique_ptr<Server>(new Server(fd, bound));
}

Server::Server(int fd, int port) : fd_(fd), port_(port) {
  if (pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
}

Server::~Server() {
  stop();
  close(fd_);
  if (wake_[0] >= 0) close(wake_[0]);
  if (wake_[1] >= 0) close(wake_[1]);
}

void Server::start() {
  running_ = true;
  thread_ = std::thread([this] { loop(); });
}

void Server::stop() {
  if (!running_.exchange(false)) return;
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
}

void Server::loop() {
  while (running_) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("http: poll: {}", strerror(errno));
      return;
    }
    if (p[1].revents) return;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    serve(conn);
    close(conn);
  }
}

namespace {
bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}
const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}
}  // namespace

void Server::serve(int conn) {
  timeval tv{5, 0};
  setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req;
  char buf[4096];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
    ssize_t n = recv(conn, buf, sizeof buf, 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  auto sp1 = req.find(' ');
  auto sp2 = req.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return;
  std::string method = req.substr(0, sp1);
  std::string path = req.substr(sp1 + 1, sp2 - sp1 - 1);
  if (auto q = path.find('?'); q != std::string::npos) path.resize(q);
  Response r;
  if (method != "GET" && method != "HEAD") {
    r = {405, "text/plain; charset=utf-8", "only GET\n"};
  } else if (auto it = handlers_.find(path); it != handlers_.end()) {
    r = it->second();
  } else {
    r = {404, "text/plain; charset=utf-8", "not found; try /metrics\n"};
  }
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) +
                     "\r\nContent-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                     "\r\nConnection: close\r\n\r\n";
  if (send_all(conn, head) && method != "HEAD") send_all(conn, r.body);
}

}  // namespace insa::http
