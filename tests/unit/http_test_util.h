// SPDX-License-Identifier: Apache-2.0
/// @file Raw-socket HTTP client helpers for the server tests: connect, send, read
/// to EOF, and read exactly one response (Content-Length framed) off a kept-alive
/// connection.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>

namespace insa::http::testutil {

/// A blocking TCP connection to 127.0.0.1:port; -1 on failure (errno set).
inline int connect_local(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

inline bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

/// Waits up to `ms` for data; false on timeout.
inline bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

/// Reads until the peer closes or `ms` pass without data (then "<timeout>" is appended).
inline std::string read_all(int fd, int ms) {
  std::string out;
  char buf[65536];
  for (;;) {
    if (!readable(fd, ms)) return out + "<timeout>";
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

struct HttpResponse {
  int status = 0;  ///< 0: no complete response
  std::map<std::string, std::string> headers;
  std::string body;
  std::string raw;
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

/// Reads one response; bytes past it stay in a per-fd carry-over buffer.
inline HttpResponse read_response(int fd, int ms, bool head = false) {
  static thread_local std::map<int, std::string> carry;
  std::string& buf = carry[fd];
  HttpResponse r;
  auto fill = [&]() {
    if (!readable(fd, ms)) return false;
    char tmp[65536];
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    return true;
  };
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) {
      r.raw = buf;
      buf.clear();
      return r;
    }
  std::string head_text = buf.substr(0, end + 2);
  size_t pos = head_text.find("\r\n");
  std::string status_line = head_text.substr(0, pos);
  pos += 2;
  while (pos < head_text.size()) {
    size_t e = head_text.find("\r\n", pos);
    std::string line = head_text.substr(pos, e - pos);
    auto c = line.find(':');
    if (c != std::string::npos) r.headers[line.substr(0, c)] = line.substr(line.find_first_not_of(' ', c + 1));
    pos = e + 2;
  }
  size_t len = head ? 0 : std::strtoul(r.header("Content-Length").c_str(), nullptr, 10);
  while (buf.size() < end + 4 + len)
    if (!fill()) break;
  if (buf.size() < end + 4 + len) {
    r.raw = buf;
    buf.clear();
    return r;
  }
  r.raw = buf.substr(0, end + 4 + len);
  r.body = buf.substr(end + 4, len);
  buf.erase(0, end + 4 + len);
  if (status_line.size() >= 12) r.status = std::atoi(status_line.c_str() + 9);
  return r;
}

}  // namespace insa::http::testutil
