// SPDX-License-Identifier: Apache-2.0
/// @file agent_message_bus.cpp
/// The bus daemon: one FIFO queue per registered agent, served over a Unix SOCK_SEQPACKET
/// socket at RUN_DIR/bus.sock (protocol in bus/bus.h). Queues outlive their agent's
/// connection, so messages to a restarting worker wait for it.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/lifecycle.h"
#include "common/observable.h"
#include "common/truth.h"

namespace insa_bus {

struct Queued {
  std::string from, type;
  long id, bytes;
};

static std::map<std::string, std::deque<Queued>> g_queues;

/// Queues one message for `to_agent`; returns the queue depth after.
INSA_OBSERVABLE long enqueue(const char* from_agent, const char* to_agent,
                             const char* message_type, long message_id, long payload_bytes) {
  auto& q = g_queues[to_agent];
  q.push_back({from_agent, message_type, message_id, payload_bytes});
  return static_cast<long>(q.size());
}

/// Removes `count` messages from the head of `agent_type`'s queue; returns the depth after.
INSA_OBSERVABLE long dequeue(const char* agent_type, long count) {
  auto& q = g_queues[agent_type];
  for (long i = 0; i < count && !q.empty(); ++i) q.pop_front();
  return static_cast<long>(q.size());
}

/// Called with an agent's queue depth after it is created and after every change.
INSA_OBSERVABLE void queue_depth(const char* agent_type, long depth) {
  (void)agent_type;
  INSA_MARKER_BODY(depth);
}

}  // namespace insa_bus

using namespace insa_bus;
using namespace insa_demo;

static const char* kUsage =
    "usage: agent_message_bus --run-dir DIR [--truth FILE] [--environment ENV]\n"
    "  serves DIR/bus.sock until SIGTERM/SIGINT\n";

int main(int argc, char** argv) {
  Args args(argc, argv, {"run-dir", "truth", "environment", "seed"}, {}, kUsage);
  if (!args.has("run-dir")) {
    std::fprintf(stderr, "agent_message_bus: --run-dir is required\n%s", kUsage);
    return 2;
  }
  install_stop_handler();
  const std::string path = args.str("run-dir", "") + "/bus.sock";
  Truth truth;
  truth.comment("insa-demo truth v1 program=agent_message_bus pid=" + std::to_string(getpid()));

  int lfd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "agent_message_bus: socket path too long: %s\n", path.c_str());
    return 1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(lfd, 64) < 0) {
    std::fprintf(stderr, "agent_message_bus: cannot listen on %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  system_info("0.1.0", args.str("environment", "demo").c_str(), "linux-x86_64");
  worker_started("agent_message_bus", "bus");

  auto depth_changed = [&](const std::string& agent, long depth) {
    queue_depth(agent.c_str(), depth);
    truth.set("insa_message_bus_queue_depth", {{"agent_type", agent}}, static_cast<double>(depth));
  };

  std::map<int, std::string> agent_of;  // fd -> agent name ("" before HELLO)
  std::vector<pollfd> fds;
  while (!g_stop.load()) {
    fds.clear();
    fds.push_back({lfd, POLLIN, 0});
    for (auto& [fd, _] : agent_of) fds.push_back({fd, POLLIN, 0});
    int r = ::poll(fds.data(), fds.size(), 200);
    if (r < 0) continue;  // EINTR: re-check g_stop
    if (fds[0].revents & POLLIN) {
      int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) agent_of[c] = "";
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      int fd = fds[i].fd;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      if (n <= 0) {
        ::close(fd);
        agent_of.erase(fd);
        continue;
      }
      buf[n] = 0;
      std::istringstream in(buf);
      std::string cmd, reply;
      in >> cmd;
      if (cmd == "HELLO") {
        std::string agent;
        in >> agent;
        agent_of[fd] = agent;
        bool fresh = !g_queues.count(agent);
        long depth = static_cast<long>(g_queues[agent].size());
        if (fresh) depth_changed(agent, depth);
        reply = "OK " + std::to_string(depth);
      } else if (cmd == "SEND") {
        std::string from, to, type;
        long id = 0, bytes = 0;
        in >> from >> to >> type >> id >> bytes;
        long depth = enqueue(from.c_str(), to.c_str(), type.c_str(), id, bytes);
        depth_changed(to, depth);
        reply = "OK " + std::to_string(depth);
      } else if (cmd == "BCAST") {
        std::string from, type;
        long id = 0, bytes = 0;
        in >> from >> type >> id >> bytes;
        std::vector<std::string> targets;
        for (auto& [agent, _] : g_queues)
          if (agent != from) targets.push_back(agent);
        for (auto& to : targets)
          depth_changed(to, enqueue(from.c_str(), to.c_str(), type.c_str(), id, bytes));
        reply = "OK " + std::to_string(targets.size());
      } else if (cmd == "FETCH") {
        long max = 0;
        in >> max;
        const std::string& agent = agent_of[fd];
        auto& q = g_queues[agent];
        long take = std::min<long>(max, static_cast<long>(q.size()));
        std::ostringstream out;
        out << "MSGS " << take << "\n";
        for (long k = 0; k < take; ++k)
          out << q[k].from << ' ' << q[k].type << ' ' << q[k].id << ' ' << q[k].bytes << '\n';
        if (take > 0) depth_changed(agent, dequeue(agent.c_str(), take));
        reply = out.str();
      } else {
        reply = "ERR unknown command";
      }
      ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
  }
  for (auto& [fd, _] : agent_of) ::close(fd);
  ::close(lfd);
  ::unlink(path.c_str());
  worker_stopped("agent_message_bus", 0);
  if (!truth.write(args.str("truth", ""))) {
    std::perror("agent_message_bus: writing truth");
    return 1;
  }
  return 0;
}
