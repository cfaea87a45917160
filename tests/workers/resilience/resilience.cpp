// SPDX-License-Identifier: Apache-2.0
#include "resilience/resilience.h"

#include <chrono>
#include <thread>

namespace insa_resilience {

using insa_demo::Truth;

long retry_attempt(const char* agent_type, long retry_number) {
  (void)agent_type;
  std::this_thread::sleep_for(std::chrono::milliseconds(retry_number));
  return retry_number;
}
void retry_succeeded(const char* agent_type, long retry_number) {
  (void)agent_type;
  INSA_MARKER_BODY(retry_number);
}
void breaker_transition(const char* agent_type, long from_state, long to_state) {
  (void)agent_type, (void)from_state;
  INSA_MARKER_BODY(to_state);
}
void breaker_state(const char* agent_type, long state) {
  (void)agent_type;
  INSA_MARKER_BODY(state);
}
long dlq_push(const char* agent_type, long message_id, std::deque<long>* queue) {
  (void)agent_type;
  queue->push_back(message_id);
  return static_cast<long>(queue->size());
}
long dlq_pop(const char* agent_type, long* message_id, std::deque<long>* queue) {
  (void)agent_type;
  *message_id = queue->front();
  queue->pop_front();
  return static_cast<long>(queue->size());
}
void dlq_size(const char* agent_type, long size) {
  (void)agent_type;
  INSA_MARKER_BODY(size);
}
long dlq_replay(const char* agent_type, long message_id, long (*op)(long, void*), void* ctx) {
  (void)agent_type;
  return op(message_id, ctx) >= 0 ? 0 : 1;
}

const char* state_name(long state) {
  switch (state) {
    case kClosed: return "closed";
    case kOpen: return "open";
    case kHalfOpen: return "half_open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(std::string agent, int threshold, int cooldown_calls, Truth* truth)
    : agent_(std::move(agent)), threshold_(threshold), cooldown_calls_(cooldown_calls),
      truth_(truth) {
  breaker_state(agent_.c_str(), state_);
  if (truth_) truth_->set("insa_circuit_breaker_state", {{"agent_type", agent_}}, 0);
}

void CircuitBreaker::move_to(long to) {
  breaker_transition(agent_.c_str(), state_, to);
  if (truth_)
    truth_->add("insa_circuit_breaker_transitions_total",
                {{"agent_type", agent_}, {"from_state", state_name(state_)},
                 {"to_state", state_name(to)}});
  state_ = to;
  breaker_state(agent_.c_str(), state_);
  if (truth_)
    truth_->set("insa_circuit_breaker_state", {{"agent_type", agent_}},
                static_cast<double>(state_));
}

bool CircuitBreaker::allow() {
  if (state_ != kOpen) return true;
  if (++rejected_ <= cooldown_calls_) return false;
  move_to(kHalfOpen);
  return true;
}

void CircuitBreaker::on_success() {
  failures_ = 0;
  if (state_ == kHalfOpen) move_to(kClosed);
}

void CircuitBreaker::on_failure() {
  if (state_ == kHalfOpen || ++failures_ >= threshold_) {
    failures_ = 0;
    rejected_ = 0;
    move_to(kOpen);
  }
}

DeadLetterQueue::DeadLetterQueue(std::string agent, Truth* truth)
    : agent_(std::move(agent)), truth_(truth) {
  publish();
}

void DeadLetterQueue::publish() {
  dlq_size(agent_.c_str(), size());
  if (truth_)
    truth_->set("insa_dead_letter_queue_size", {{"agent_type", agent_}},
                static_cast<double>(size()));
}

void DeadLetterQueue::push(long message_id) {
  dlq_push(agent_.c_str(), message_id, &q_);
  publish();
}

bool DeadLetterQueue::replay_one(long (*op)(long, void*), void* ctx) {
  if (q_.empty()) return false;
  long id = 0;
  dlq_pop(agent_.c_str(), &id, &q_);
  publish();
  long status = dlq_replay(agent_.c_str(), id, op, ctx);
  if (truth_)
    truth_->add("insa_dead_letter_replay_total",
                {{"agent_type", agent_}, {"status", status == 0 ? "success" : "failure"}});
  if (status != 0) push(id);
  return true;
}

long with_retries(const std::string& agent, int max_retries, long (*op)(long, void*), void* ctx,
                  Truth* truth) {
  long r = op(0, ctx);
  for (long n = 1; r < 0 && n <= max_retries; ++n) {
    retry_attempt(agent.c_str(), n);
    if (truth)
      truth->add("insa_retry_attempts_total",
                 {{"agent_type", agent}, {"retry_number", std::to_string(n)}});
    r = op(n, ctx);
    if (r >= 0) {
      retry_succeeded(agent.c_str(), n);
      if (truth)
        truth->add("insa_retry_success_total",
                   {{"agent_type", agent}, {"retry_number", std::to_string(n)}});
    }
  }
  return r;
}

}  // namespace insa_resilience
