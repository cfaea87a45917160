// SPDX-License-Identifier: Apache-2.0
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include "bus/bus.h"

namespace insa_bus {

long send_message(const char* from_agent, const char* to_agent, const char* message_type,
                  long message_id, long payload_bytes, Client* client) {
  char req[512];
  if (std::strcmp(to_agent, "broadcast") == 0)
    std::snprintf(req, sizeof req, "BCAST %s %s %ld %ld", from_agent, message_type, message_id,
                  payload_bytes);
  else
    std::snprintf(req, sizeof req, "SEND %s %s %s %ld %ld", from_agent, to_agent, message_type,
                  message_id, payload_bytes);
  std::string reply;
  if (!client->exchange(req, &reply) || reply.rfind("OK", 0) != 0) return -1;
  return 0;
}

long dispatch(const char* agent_type, const char* from_agent, const char* message_type,
              long message_id, const Handler* handler, const Message* message) {
  (void)agent_type, (void)from_agent, (void)message_type, (void)message_id;
  return (*handler)(*message);
}

std::unique_ptr<Client> Client::connect(const std::string& run_dir, const std::string& agent,
                                        int timeout_ms, insa_demo::Truth* truth) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = run_dir + "/bus.sock";
  if (path.size() >= sizeof addr.sun_path) return nullptr;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      std::unique_ptr<Client> c(new Client(fd, agent, truth));
      std::string reply;
      if (c->exchange("HELLO " + agent, &reply) && reply.rfind("OK", 0) == 0) return c;
      return nullptr;
    }
    ::close(fd);
    if (std::chrono::steady_clock::now() >= deadline) return nullptr;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Client::~Client() { ::close(fd_); }

bool Client::exchange(const std::string& request, std::string* reply) {
  if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) < 0) return false;
  char buf[65536];
  ssize_t n;
  do n = ::recv(fd_, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  reply->assign(buf, static_cast<size_t>(n));
  return true;
}

long Client::send(const std::string& to, const std::string& type, long id, long bytes) {
  if (truth_)
    truth_->add("insa_message_bus_messages_total",
                {{"from_agent", agent_}, {"to_agent", to}, {"message_type", type}});
  return send_message(agent_.c_str(), to.c_str(), type.c_str(), id, bytes, this);
}

long Client::broadcast(const std::string& type, long id, long bytes) {
  return send("broadcast", type, id, bytes);
}

std::vector<Message> Client::fetch(int max) {
  std::vector<Message> out;
  std::string reply;
  if (!exchange("FETCH " + std::to_string(max), &reply)) return out;
  std::istringstream in(reply);
  std::string word;
  int n = 0;
  in >> word >> n;
  for (int i = 0; i < n; ++i) {
    Message m;
    if (!(in >> m.from >> m.type >> m.id >> m.bytes)) break;
    out.push_back(std::move(m));
  }
  return out;
}

long Client::process(const Message& m, const Handler& handler, double planned_s) {
  if (truth_)
    truth_->observe("insa_message_bus_processing_duration_seconds", {{"agent_type", agent_}},
                    planned_s);
  return dispatch(agent_.c_str(), m.from.c_str(), m.type.c_str(), m.id, &handler, &m);
}

}  // namespace insa_bus
