// SPDX-License-Identifier: Apache-2.0
/// @file The HTTP(S) server for /metrics and the operational endpoints, on
/// cpp-httplib (Debian's libcpp-httplib-dev): the library parses requests,
/// routes and compresses (gzip/br when the client accepts it); this file owns
/// what an agent running on every host needs around it:
///  - one thread per connection from an elastic pool (idle workers retire), so an
///    idle, slow or never-reading client holds only its own thread;
///  - a deadline for a whole request head (slowloris), an idle keep-alive timeout,
///    a total write deadline per response, a bound on request bytes and on
///    connections; a buffered stream kept across requests (pipelining);
///  - status conventions: 400 malformed, 405 + Allow, 414, 431, 505, and
///    `Connection: close` after every error;
///  - TLS and basic auth from an exporter-toolkit web config (web_config.h);
///  - the threads that parse HTTP drop every capability (see README, Privileges).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace insa::http {

class WebConfigSource;

/// What a handler sees of a request.
struct Request {
  std::string method;  ///< "GET", "HEAD" (routed to the GET handler) or "POST"
  std::string path;    ///< without the query string
  std::string remote_addr;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers
};

using Handler = std::function<Response()>;
using RequestHandler = std::function<Response(const Request&)>;

/// Limits and timeouts; the defaults are what the agent uses.
struct Options {
  /// Time allowed for one whole request (line, headers, body) once its first byte arrived.
  std::chrono::milliseconds read_timeout{10000};
  /// Time a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{30000};
  /// Time allowed to write one whole response (a client that never reads is dropped).
  std::chrono::milliseconds write_timeout{30000};
  /// Time allowed for a TLS handshake.
  std::chrono::milliseconds handshake_timeout{10000};
  size_t max_request_bytes = 64 * 1024;  ///< request line + headers + body
  size_t max_connections = 1024;         ///< beyond this, new connections get 503 and close
  size_t keep_alive_max_requests = 1000;
  /// Drop every capability in the threads that accept and serve connections.
  bool drop_capabilities = true;
};

/// Counters of the server's own behaviour (tests, self metrics).
struct Stats {
  std::atomic<uint64_t> connections{0};           ///< accepted
  std::atomic<uint64_t> rejected_connections{0};  ///< over max_connections
  std::atomic<uint64_t> tls_handshake_errors{0};
  std::atomic<uint64_t> timeouts{0};  ///< read, idle or write deadline reached
  std::atomic<uint64_t> requests{0};
  std::atomic<size_t> open_connections{0};
  std::atomic<size_t> threads{0};  ///< live worker threads
};

class Server {
 public:
  /// Binds and listens on "host:port", ":port" (all addresses) or "port".
  /// Port 0 picks a free port (tests). Fails with one line when the port is taken.
  static Result<std::unique_ptr<Server>> listen(const std::string& address, Options options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Registers a GET (and HEAD) handler for an exact path. Call before start().
  void handle(const std::string& path, Handler h);
  /// Registers a handler for an exact path and the given methods ("GET" implies HEAD).
  void handle(const std::string& path, std::set<std::string> methods, RequestHandler h);
  /// TLS, basic auth and headers from a web config; call before start().
  void set_web_config(std::shared_ptr<WebConfigSource> web);
  void start();
  /// Stops accepting, wakes every connection and joins every thread. Idempotent.
  void stop();
  int port() const { return port_; }
  const Stats& stats() const;
  /// Thread ids (gettid) of the listener and live workers (capability tests).
  std::vector<pid_t> thread_ids() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

/// Splits "host:port"; the host is "" for ":port" and "port".
Result<std::pair<std::string, int>> parse_address(const std::string& address);

/// Clears the effective, permitted and inheritable capability sets of the calling
/// thread only (capabilities are per thread on Linux). Threads it creates inherit none.
Result<void> drop_thread_capabilities();

/// Keeps only the capabilities in `keep` (a mask of 1 << CAP_*) that the calling thread
/// has in its permitted set, effective and permitted; clears the rest and inheritable.
Result<void> keep_thread_capabilities(uint64_t keep);

/// Whether the calling thread has capability `cap` (CAP_*) in its permitted set.
bool thread_permits(int cap);

}  // namespace insa::http
