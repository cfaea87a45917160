// SPDX-License-Identifier: Apache-2.0
/// @file resilience.h
/// Retries, a circuit breaker and a dead-letter queue (libinsa_resilience.so), keyed by the
/// downstream agent they protect. Breaker states travel as integers: 0 closed, 1 open,
/// 2 half_open. All counts are in calls, not time, so a seeded workload trips the breaker
/// at the same calls on every run.
#pragma once

#include <deque>
#include <string>

#include "common/observable.h"
#include "common/truth.h"

namespace insa_resilience {

enum BreakerState : long { kClosed = 0, kOpen = 1, kHalfOpen = 2 };

/// Called once per retry (retry_number 1, 2, ...; never for the first try), before the retry
/// runs. Sleeps a 1 ms x retry_number backoff. Returns retry_number.
INSA_OBSERVABLE long retry_attempt(const char* agent_type, long retry_number);
/// Called once when retry number `retry_number` succeeded.
INSA_OBSERVABLE void retry_succeeded(const char* agent_type, long retry_number);
/// Called once per breaker state change.
INSA_OBSERVABLE void breaker_transition(const char* agent_type, long from_state, long to_state);
/// Called with the breaker state when it is created (0) and after every transition.
INSA_OBSERVABLE void breaker_state(const char* agent_type, long state);
/// Pushes one message id onto `queue`; returns the DLQ size after the push.
INSA_OBSERVABLE long dlq_push(const char* agent_type, long message_id, std::deque<long>* queue);
/// Pops the oldest message id of `queue` into *message_id; returns the DLQ size after the pop.
INSA_OBSERVABLE long dlq_pop(const char* agent_type, long* message_id, std::deque<long>* queue);
/// Called with the DLQ size when the DLQ is created (0) and after every push and pop.
INSA_OBSERVABLE void dlq_size(const char* agent_type, long size);
/// Replays one dead message through `op(message_id, ctx)`. Returns 0 when the replay
/// succeeded, 1 when it failed (the message is pushed back).
INSA_OBSERVABLE long dlq_replay(const char* agent_type, long message_id,
                                long (*op)(long message_id, void* ctx), void* ctx);

/// Names used in truth files for breaker states and replay results.
const char* state_name(long state);

/// Opens after `threshold` consecutive failures; an open breaker rejects `cooldown_calls`
/// calls, then lets one trial call through half-open.
class CircuitBreaker {
 public:
  CircuitBreaker(std::string agent, int threshold, int cooldown_calls, insa_demo::Truth* truth);
  /// True when the call may go ahead (may move open -> half_open).
  bool allow();
  void on_success();
  void on_failure();
  long state() const { return state_; }

 private:
  void move_to(long to);
  std::string agent_;
  int threshold_, cooldown_calls_;
  insa_demo::Truth* truth_;
  long state_ = kClosed;
  int failures_ = 0, rejected_ = 0;
};

/// FIFO of message ids that could not be delivered.
class DeadLetterQueue {
 public:
  DeadLetterQueue(std::string agent, insa_demo::Truth* truth);
  void push(long message_id);
  /// Pops the oldest message and replays it; returns false when the queue was empty.
  bool replay_one(long (*op)(long message_id, void* ctx), void* ctx);
  long size() const { return static_cast<long>(q_.size()); }

 private:
  void publish();
  std::string agent_;
  insa_demo::Truth* truth_;
  std::deque<long> q_;
};

/// Runs op(attempt) once and then up to `max_retries` more times until it returns >= 0.
/// Returns the last result.
long with_retries(const std::string& agent, int max_retries, long (*op)(long attempt, void* ctx),
                  void* ctx, insa_demo::Truth* truth);

}  // namespace insa_resilience
