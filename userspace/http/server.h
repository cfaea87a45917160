// SPDX-License-Identifier: Apache-2.0
/// @file A small HTTP/1.1 server for /metrics and the operational endpoints.
/// One thread, one request per connection; scrapes are rare and short, so
/// this keeps the agent small and its errors (port in use) under our control.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"

namespace insa::http {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response()>;

class Server {
 public:
  /// Binds and listens on "host:port", ":port" (all addresses) or "port".
  /// Port 0 picks a free port (tests). Fails with one line when the port is taken.
  static Result<std::unique_ptr<Server>> listen(const std::string& address);
  ~Server();

  /// Registers a GET handler for an exact path. Call before start().
  void handle(const std::string& path, Handler h) { handlers_[path] = std::move(h); }
  void start();
  void stop();
  int port() const { return port_; }

 private:
  Server(int fd, int port);
  void loop();
  void serve(int conn);

  int fd_;
  int port_;
  int wake_[2] = {-1, -1};
  std::map<std::string, Handler> handlers_;
  std::thread thread_;
  std::atomic<bool> running_{false};
};

/// Splits "host:port"; the host is "" for ":port" and "port".
Result<std::pair<std::string, int>> parse_address(const std::string& address);

}  // namespace insa::http
