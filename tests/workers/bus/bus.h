// SPDX-License-Identifier: Apache-2.0
/// @file bus.h
/// Client of the agent_message_bus daemon (libinsa_bus.so). Agents connect over a Unix
/// SOCK_SEQPACKET socket at RUN_DIR/bus.sock, send direct or broadcast messages, fetch the
/// messages queued for them and dispatch each to a handler.
///
/// Wire protocol (one text packet per request and per reply):
///   HELLO agent                      -> OK depth
///   SEND from to type id bytes       -> OK depth_of_to | ERR reason
///   BCAST from type id bytes         -> OK recipients
///   FETCH max                        -> MSGS n\nfrom type id bytes\n...
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/observable.h"
#include "common/truth.h"

namespace insa_bus {

/// One message as delivered to an agent.
struct Message {
  std::string from;
  std::string type;
  long id = 0;
  long bytes = 0;
};

/// Handles one message; returns >= 0 on success, < 0 on failure.
using Handler = std::function<long(const Message&)>;

class Client;

/// Sends one message; to_agent is "broadcast" for a broadcast. Called exactly once per
/// message sent. Returns 0, or -1 when the bus cannot be reached.
INSA_OBSERVABLE long send_message(const char* from_agent, const char* to_agent,
                                  const char* message_type, long message_id, long payload_bytes,
                                  Client* client);

/// Runs `handler` on one fetched message for `agent_type`. Entry to exit is the processing
/// duration. Returns the handler's result (< 0 = failed).
INSA_OBSERVABLE long dispatch(const char* agent_type, const char* from_agent,
                              const char* message_type, long message_id, const Handler* handler,
                              const Message* message);

/// A connection of one agent to the bus.
class Client {
 public:
  /// Connects to RUN_DIR/bus.sock as `agent`, retrying for up to `timeout_ms`.
  /// `truth` (may be null) receives insa_message_bus_messages_total and processing samples.
  static std::unique_ptr<Client> connect(const std::string& run_dir, const std::string& agent,
                                         int timeout_ms, insa_demo::Truth* truth);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Direct message to one agent.
  long send(const std::string& to, const std::string& type, long id, long bytes);
  /// Message to every registered agent except this one.
  long broadcast(const std::string& type, long id, long bytes);
  /// Takes up to `max` queued messages for this agent from the daemon.
  std::vector<Message> fetch(int max);
  /// Dispatches through insa_bus::dispatch; `planned_s` is the intended processing time
  /// recorded in the truth file.
  long process(const Message& m, const Handler& handler, double planned_s);

  const std::string& agent() const { return agent_; }
  /// One request/reply exchange; internal to the library but used by send_message.
  bool exchange(const std::string& request, std::string* reply);

 private:
  Client(int fd, std::string agent, insa_demo::Truth* truth)
      : fd_(fd), agent_(std::move(agent)), truth_(truth) {}
  int fd_;
  std::string agent_;
  insa_demo::Truth* truth_;
};

}  // namespace insa_bus
