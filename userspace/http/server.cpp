// SPDX-License-Identifier: Apache-2.0
#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <linux/capability.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>

#include "http/web_config.h"

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

Result<void> keep_thread_capabilities(uint64_t keep) {
  // The raw syscalls act on the calling thread only; libcap's cap_set_proc would too,
  // but this keeps the agent free of another library for two calls.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return Error::from_errno("cannot read the thread's capabilities");
  const uint64_t permitted = data[0].permitted | (static_cast<uint64_t>(data[1].permitted) << 32);
  const uint64_t mask = permitted & keep;
  for (int i = 0; i < 2; ++i) {
    data[i].permitted = data[i].effective = static_cast<uint32_t>(mask >> (32 * i));
    data[i].inheritable = 0;
  }
  if (syscall(SYS_capset, &hdr, data) != 0) return Error::from_errno("cannot drop the thread's capabilities");
  return {};
}

Result<void> drop_thread_capabilities() { return keep_thread_capabilities(0); }

bool thread_permits(int cap) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return false;
  return (data[cap / 32].permitted >> (cap % 32)) & 1;
}

namespace {

using Clock = std::chrono::steady_clock;

pid_t thread_id() { return static_cast<pid_t>(syscall(SYS_gettid)); }

/// Header line length above which httplib refuses a header (its CPPHTTPLIB_HEADER_MAX_LENGTH).
constexpr size_t kHeaderLineMax = 8192;

/// One connection: a non-blocking socket (optionally TLS) read through a buffer that
/// lives as long as the connection, so pipelined requests are not lost between requests.
/// Every wait also watches the server's stop eventfd.
class Conn : public httplib::Stream {
 public:
  Conn(int fd, int wake, const Options& o) : fd_(fd), wake_(wake), opt_(o) {}
  ~Conn() override {
    if (ssl_) {
      SSL_shutdown(ssl_);
      SSL_free(ssl_);
    }
  }

  bool is_readable() const override {
    return roff_ < rlen_ || (ssl_ && SSL_pending(ssl_) > 0) || wait(POLLIN, read_deadline_);
  }
  bool is_writable() const override { return !broken_; }

  ssize_t read(char* ptr, size_t size) override {
    if (roff_ == rlen_ && !fill(read_deadline_)) return broken_ ? -1 : 0;
    size_t n = std::min(size, rlen_ - roff_);
    if (request_bytes_ + n > opt_.max_request_bytes) {
      too_large_ = true;
      return -1;
    }
    for (size_t i = 0; i < n; ++i) {
      if (rbuf_[roff_ + i] == '\n')
        line_ = 0;
      else if (++line_ > kHeaderLineMax)
        long_line_ = true;
    }
    std::memcpy(ptr, rbuf_ + roff_, n);
    roff_ += n;
    request_bytes_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!writing_) {
      writing_ = true;
      write_deadline_ = Clock::now() + opt_.write_timeout;
    }
    size_t off = 0;
    while (off < size) {
      ssize_t n;
      int want = POLLOUT;
      if (ssl_) {
        int r = SSL_write(ssl_, ptr + off, static_cast<int>(std::min<size_t>(size - off, 1 << 30)));
        if (r > 0)
          n = r;
        else {
          int e = SSL_get_error(ssl_, r);
          if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return fail();
          want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
          n = -1;
          errno = EAGAIN;
        }
      } else {
        n = send(fd_, ptr + off, size - off, MSG_NOSIGNAL);
      }
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait(want, write_deadline_)) return fail();
        continue;
      }
      return fail();
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { name(getpeername, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { name(getsockname, ip, port); }
  socket_t socket() const override { return fd_; }

  /// Waits for the first byte of the next request; false on timeout, EOF-less stop or error.
  bool await_request(std::chrono::milliseconds timeout) {
    if (roff_ < rlen_ || (ssl_ && SSL_pending(ssl_) > 0)) return true;
    return wait(POLLIN, Clock::now() + timeout);
  }
  /// Starts the clock and byte count of one request.
  void begin_request() {
    read_deadline_ = Clock::now() + opt_.read_timeout;
    request_bytes_ = 0;
    line_ = 0;
    long_line_ = too_large_ = writing_ = false;
  }
  bool head_too_large() const { return too_large_ || long_line_; }
  bool broken() const { return broken_; }
  bool timed_out() const { return timed_out_; }

  /// First byte, waiting up to `timeout`; -1 when none came.
  int peek_first(std::chrono::milliseconds timeout) {
    if (!wait(POLLIN, Clock::now() + timeout)) return -1;
    unsigned char b;
    ssize_t n = recv(fd_, &b, 1, MSG_PEEK);
    return n == 1 ? b : -1;
  }

  /// Server side of a TLS handshake within `timeout`.
  bool handshake(SSL_CTX* ctx, std::chrono::milliseconds timeout, std::string* why) {
    ssl_ = SSL_new(ctx);
    if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) return false;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      ERR_clear_error();
      int r = SSL_accept(ssl_);
      if (r == 1) return true;
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (!wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
          *why = timed_out_ ? "handshake timed out" : "stopped";
          return false;
        }
        continue;
      }
      char buf[256];
      unsigned long code = ERR_get_error();
      ERR_error_string_n(code, buf, sizeof buf);
      *why = code ? buf : "connection closed during handshake";
      return false;
    }
  }

 private:
  using NameFn = int (*)(int, sockaddr*, socklen_t*);
  void name(NameFn fn, std::string& ip, int& port) const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ip.clear();
    port = -1;
    if (fn(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      port = ntohs(a->sin6_port);
    } else if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
      port = ntohs(a->sin_port);
    }
    ip = buf;
    if (ip.rfind("::ffff:", 0) == 0) ip = ip.substr(7);
  }

  ssize_t fail() {
    broken_ = true;
    return -1;
  }

  /// Waits for `events` on the socket until `deadline`; false on timeout or stop.
  bool wait(int events, Clock::time_point deadline) const {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        timed_out_ = true;
        return false;
      }
      pollfd p[2] = {{fd_, static_cast<short>(events), 0}, {wake_, POLLIN, 0}};
      int r = poll(p, 2, static_cast<int>(std::min<long long>(left, 1000)));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return false;
      if (p[1].revents) return false;
      if (p[0].revents) return true;
    }
  }

  /// Refills the buffer; false on EOF, timeout or error.
  bool fill(Clock::time_point deadline) {
    roff_ = rlen_ = 0;
    for (;;) {
      ssize_t n;
      int want = POLLIN;
      if (ssl_) {
        ERR_clear_error();
        int r = SSL_read(ssl_, rbuf_, sizeof rbuf_);
        if (r > 0)
          n = r;
        else {
          int e = SSL_get_error(ssl_, r);
          if (e == SSL_ERROR_ZERO_RETURN) return false;
          if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return fail(), false;
          want = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
          n = -1;
          errno = EAGAIN;
        }
      } else {
        n = recv(fd_, rbuf_, sizeof rbuf_, 0);
      }
      if (n > 0) {
        rlen_ = static_cast<size_t>(n);
        return true;
      }
      if (n == 0) return false;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait(want, deadline)) return fail(), false;
        continue;
      }
      return fail(), false;
    }
  }

  int fd_;
  int wake_;
  const Options& opt_;
  SSL* ssl_ = nullptr;
  char rbuf_[16384];
  size_t roff_ = 0, rlen_ = 0;
  size_t request_bytes_ = 0, line_ = 0;
  bool long_line_ = false, too_large_ = false, writing_ = false, broken_ = false;
  mutable bool timed_out_ = false;
  Clock::time_point read_deadline_ = Clock::now(), write_deadline_ = Clock::now();
};

/// What the handlers of this thread's current connection need.
struct ConnContext {
  Conn* conn = nullptr;
  const WebState* web = nullptr;
  bool routed = false;       ///< the request reached our router (not a parse error)
  bool close_after = false;  ///< close the connection after this response
};
thread_local ConnContext tl;

const char* reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 416:
      return "Range Not Satisfiable";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return status < 500 ? "Client Error" : "Server Error";
  }
}

/// Standard base64 (RFC 4648) to bytes; "" when malformed.
std::string base64_decode(const std::string& in) {
  std::string s = in;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  if (s.empty() || s.size() % 4 != 0 || s.size() > 4096) return "";
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return "";
  size_t pad = (s[s.size() - 1] == '=') + (s[s.size() - 2] == '=');
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace

/// Threads created on demand, one per running connection, up to a bound; a thread idle
/// for 10 s exits. Threads are created by the listener thread, so they inherit its
/// (dropped) capabilities.
class ElasticPool : public httplib::TaskQueue {
 public:
  ElasticPool(size_t max, Stats& stats, std::function<void()> on_thread_start, std::function<void()> on_thread_end)
      : max_(max), stats_(stats), on_start_(std::move(on_thread_start)), on_end_(std::move(on_thread_end)) {}
  ~ElasticPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    reap();
    tasks_.push_back(std::move(fn));
    if (idle_ < tasks_.size() && threads_.size() < max_) spawn();
    cv_.notify_one();
  }

  void shutdown() override {
    std::list<std::thread> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_all();
      all.splice(all.end(), threads_);
      all.splice(all.end(), done_);
    }
    for (auto& t : all)
      if (t.joinable()) t.join();
  }

 private:
  void spawn() {
    threads_.emplace_back();
    auto it = std::prev(threads_.end());
    ++idle_;
    *it = std::thread([this, it] { work(it); });
    stats_.threads = threads_.size();
  }
  void reap() {
    for (auto& t : done_)
      if (t.joinable()) t.join();
    done_.clear();
  }
  void work(std::list<std::thread>::iterator self) {
    pthread_setname_np(pthread_self(), "insa-http-conn");
    on_start_();
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      bool woke = cv_.wait_for(lock, std::chrono::seconds(10), [&] { return stop_ || !tasks_.empty(); });
      if (!tasks_.empty()) {
        auto fn = std::move(tasks_.front());
        tasks_.pop_front();
        --idle_;
        lock.unlock();
        fn();
        lock.lock();
        ++idle_;
        continue;
      }
      if (stop_) break;
      if (!woke) {  // idle for 10 s: retire
        --idle_;
        done_.splice(done_.end(), threads_, self);
        stats_.threads = threads_.size();
        lock.unlock();
        on_end_();
        return;
      }
    }
    --idle_;
    lock.unlock();
    on_end_();
  }

  const size_t max_;
  Stats& stats_;
  std::function<void()> on_start_, on_end_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::list<std::thread> threads_, done_;
  size_t idle_ = 0;
  bool stop_ = false;
};

struct Route {
  std::set<std::string> methods;
  RequestHandler handler;
};

struct Server::Impl : public httplib::Server {
  Impl(int fd, http::Options o) : opt(std::move(o)) {
    svr_sock_ = fd;
    wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    set_keep_alive_max_count(opt.keep_alive_max_requests);
    set_keep_alive_timeout(std::chrono::duration_cast<std::chrono::seconds>(opt.idle_timeout).count());
    set_payload_max_length(opt.max_request_bytes);
    new_task_queue = [this] {
      return new ElasticPool(
          opt.max_connections + 16, stats,
          [this] {
            std::lock_guard<std::mutex> lock(tids_mu);
            tids.insert(thread_id());
          },
          [this] {
            std::lock_guard<std::mutex> lock(tids_mu);
            tids.erase(thread_id());
          });
    };
    set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return route(req, res); });
    set_error_handler(HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!tl.routed && res.status == 400) {
        const bool http1 = req.version == "HTTP/1.1" || req.version == "HTTP/1.0";
        if (!req.version.empty() && !http1 && req.version.rfind("HTTP/", 0) == 0)
          res.status = 505;
        else if (tl.conn && tl.conn->head_too_large())
          res.status = 431;
      }
      if (res.body.empty()) res.set_content(std::string(reason(res.status)) + "\n", "text/plain; charset=utf-8");
      // A request we could not parse leaves the stream in an unknown state: close it.
      if (!tl.routed && req.get_header_value("Connection") != "close") res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }));
    set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("http: {} {}: handler failed: {}", req.method, req.path, what);
      res.status = 500;
      res.set_content("internal error: " + what + "\n", "text/plain; charset=utf-8");
    });
    set_logger([](const httplib::Request& req, const httplib::Response& res) {
      spdlog::debug("http: {} {} {} {}", req.remote_addr, req.method, req.target, res.status);
    });
  }
  ~Impl() override {
    if (wake >= 0) close(wake);
  }
  void close_unstarted() {
    int fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) close(fd);
  }

  httplib::Server::HandlerResponse route(const httplib::Request& req, httplib::Response& res) {
    tl.routed = true;
    ++stats.requests;
    // Bodies are never read (no endpoint takes one): a request with a body is answered
    // and its connection closed, so the unread body is never parsed as a request.
    const bool chunked = req.has_header("Transfer-Encoding");
    const size_t body_len = chunked ? 0 : std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10);
    if (chunked || body_len > 0) {
      tl.close_after = true;
      if (req.get_header_value("Connection") != "close") res.set_header("Connection", "close");
      if (body_len > opt.max_request_bytes) {
        res.status = 413;
        res.set_content("request body over " + std::to_string(opt.max_request_bytes) + " bytes\n",
                        "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    const WebState* web = tl.web;
    if (web)
      for (const auto& [k, v] : web->cfg.headers) res.set_header(k, v);
    if (web && !web->cfg.users.empty()) {
      bool ok = false;
      const auto auth = req.get_header_value("Authorization");
      if (auth.size() > 6 && strncasecmp(auth.c_str(), "Basic ", 6) == 0) {
        std::string dec = base64_decode(auth.substr(6));
        auto colon = dec.find(':');
        if (colon != std::string::npos && this->web)
          ok = this->web->check_password(*web, dec.substr(0, colon), dec.substr(colon + 1));
      }
      if (!ok) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Basic");
        res.set_content("Unauthorized\n", "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    auto it = routes.find(req.path);
    if (it == routes.end()) {
      res.status = 404;
      res.set_content("not found; try /metrics\n", "text/plain; charset=utf-8");
      return httplib::Server::HandlerResponse::Handled;
    }
    const auto& r = it->second;
    const std::string method = req.method == "HEAD" ? "GET" : req.method;
    if (!r.methods.count(method)) {
      std::string allow;
      for (const auto& m : r.methods) allow += (allow.empty() ? "" : ", ") + m + (m == "GET" ? ", HEAD" : "");
      res.status = 405;
      res.set_header("Allow", allow);
      res.set_content("method " + req.method + " not allowed; allowed: " + allow + "\n", "text/plain; charset=utf-8");
      return httplib::Server::HandlerResponse::Handled;
    }
    Request q{req.method, req.path, req.remote_addr};
    Response out = r.handler(q);
    res.status = out.status;
    for (auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(std::move(out.body), out.content_type.c_str());
    return httplib::Server::HandlerResponse::Handled;
  }

  bool process_and_close_socket(socket_t sock) override {
    ++stats.connections;
    ++stats.open_connections;
    serve(sock);
    --stats.open_connections;
    ::shutdown(sock, SHUT_RDWR);
    close(sock);
    return true;
  }

  void serve(int sock) {
    if (stats.open_connections > opt.max_connections) {
      ++stats.rejected_connections;
      static const char busy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Content-Length: 22\r\nConnection: close\r\n\r\ntoo many connections\r\n";
      (void)!send(sock, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      return;
    }
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::shared_ptr<const WebState> state = web ? web->current() : nullptr;
    Conn conn(sock, wake, opt);
    if (state && state->tls) {
      // Like Go: a plain HTTP request on the TLS port gets a plain 400 saying so.
      int first = conn.peek_first(opt.handshake_timeout);
      if (first < 0) {
        if (conn.timed_out()) ++stats.timeouts;
        return;
      }
      if (first != 0x16) {
        static const char msg[] =
            "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
            "Client sent an HTTP request to an HTTPS server.\n";
        (void)!send(sock, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        return;
      }
      std::string why;
      if (!conn.handshake(state->tls.get(), opt.handshake_timeout, &why)) {
        ++stats.tls_handshake_errors;
        std::string ip;
        int port;
        conn.get_remote_ip_and_port(ip, port);
        spdlog::debug("http: TLS handshake with {}:{} failed: {}", ip, port, why);
        return;
      }
    }
    tl = ConnContext{&conn, state.get(), false};
    auto first_wait = opt.read_timeout;
    for (size_t n = 0; n < opt.keep_alive_max_requests; ++n) {
      if (!conn.await_request(n == 0 ? first_wait : opt.idle_timeout)) {
        if (conn.timed_out()) ++stats.timeouts;
        break;
      }
      if (n == 0 && !(state && state->tls) && conn.peek_first(opt.read_timeout) == 0x16) {
        // A TLS ClientHello on the plain port: say so instead of waiting for a line end.
        static const char msg[] =
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 55\r\n\r\nClient sent a TLS handshake to a plain HTTP endpoint.\r\n";
        (void)!send(sock, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
      }
      conn.begin_request();
      tl.routed = tl.close_after = false;
      bool closed = false;
      const bool last = n + 1 == opt.keep_alive_max_requests || stopping;
      bool ok = process_request(conn, last, closed, [](httplib::Request&) {});
      if (conn.timed_out()) ++stats.timeouts;
      if (!ok || closed || !tl.routed || tl.close_after || conn.broken() || last) break;
    }
    tl = ConnContext{};
  }

  http::Options opt;
  Stats stats;
  int wake = -1;
  std::atomic<bool> stopping{false};
  std::map<std::string, Route> routes;
  std::shared_ptr<WebConfigSource> web;
  std::thread listener;
  std::mutex tids_mu;
  std::set<pid_t> tids;
  std::atomic<bool> started{false};
};

Result<std::unique_ptr<Server>> Server::listen(const std::string& address, Options options) {
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
    if (getaddrinfo(nullptr, ps.c_str(), &hints, &res) != 0) return Error{"invalid listen address '" + address + "'"};
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) {
    freeaddrinfo(res);
    return Error::from_errno("cannot create a socket");
  }
  int one = 1, zero = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (res->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
    int e = errno;
    freeaddrinfo(res);
    close(fd);
    std::string hint = e == EADDRINUSE ? (port == 9091 ? " (9091 is also the Prometheus Pushgateway's default port; "
                                                         "stop the other process or pass --web.listen-address :PORT)"
                                                       : " (stop the other process or pass --web.listen-address :PORT)")
                       : e == EACCES   ? " (ports below 1024 need privileges; pick another port)"
                                       : "";
    return Error{"cannot listen on " + address + ": " + strerror(e) + hint, e};
  }
  freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return std::unique_ptr<Server>(new Server(std::make_unique<Impl>(fd, std::move(options)), bound));
}

Server::Server(std::unique_ptr<Impl> impl, int port) : impl_(std::move(impl)), port_(port) {}

Server::~Server() {
  stop();
  if (!impl_->started) {
    impl_->close_unstarted();
  }
}

void Server::handle(const std::string& path, Handler h) {
  impl_->routes[path] = Route{{"GET"}, [h = std::move(h)](const Request&) { return h(); }};
}

void Server::handle(const std::string& path, std::set<std::string> methods, RequestHandler h) {
  impl_->routes[path] = Route{std::move(methods), std::move(h)};
}

void Server::set_web_config(std::shared_ptr<WebConfigSource> web) { impl_->web = std::move(web); }

void Server::start() {
  if (impl_->started.exchange(true)) return;
  auto* impl = impl_.get();
  impl->listener = std::thread([impl] {
    pthread_setname_np(pthread_self(), "insa-http");
    {
      std::lock_guard<std::mutex> lock(impl->tids_mu);
      impl->tids.insert(thread_id());
    }
    if (impl->opt.drop_capabilities) {
      if (auto r = drop_thread_capabilities(); !r) spdlog::warn("http: {}", r.error().message);
    }
    impl->listen_after_bind();
    std::lock_guard<std::mutex> lock(impl->tids_mu);
    impl->tids.erase(thread_id());
  });
  // httplib::Server::stop() is a no-op until the accept loop runs: wait for it.
  while (!impl->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void Server::stop() {
  auto* impl = impl_.get();
  if (!impl->started || impl->stopping.exchange(true)) return;
  uint64_t one = 1;
  (void)!::write(impl->wake, &one, sizeof one);  // wakes every connection's poll
  impl->httplib::Server::stop();
  if (impl->listener.joinable()) impl->listener.join();
}

const Stats& Server::stats() const { return impl_->stats; }

std::vector<pid_t> Server::thread_ids() const {
  std::lock_guard<std::mutex> lock(impl_->tids_mu);
  return {impl_->tids.begin(), impl_->tids.end()};
}

}  // namespace insa::http
