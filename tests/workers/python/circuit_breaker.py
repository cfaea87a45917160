# SPDX-License-Identifier: Apache-2.0
"""Circuit breaker per downstream agent: closed -> open after `threshold` consecutive
failed calls; open rejects the next `cooldown_calls` calls, then half_open lets one trial
through (success: closed, failure: open). States are 0 closed, 1 open, 2 half_open.
No metrics code: state_changed() is called at creation and after every transition,
transition() once per transition."""

CLOSED, OPEN, HALF_OPEN = 0, 1, 2
NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}


def state_changed(agent_type, state):
    """agent_type's breaker is now in `state`."""
    return state


def transition(agent_type, from_state, to_state):
    """agent_type's breaker moves from from_state to to_state."""
    return to_state


class CircuitBreaker:
    def __init__(self, agent_type, threshold, cooldown_calls, truth):
        self.agent_type = agent_type
        self._threshold = threshold
        self._cooldown = cooldown_calls
        self._truth = truth
        self._state = CLOSED
        self._failures = 0
        self._rejected = 0
        self._publish()

    def _publish(self):
        state_changed(self.agent_type, self._state)
        self._truth.set("insa_circuit_breaker_state", (("agent_type", self.agent_type),), self._state)

    def _move(self, to_state):
        transition(self.agent_type, self._state, to_state)
        self._truth.add("insa_circuit_breaker_transitions_total",
                        (("agent_type", self.agent_type), ("from_state", NAMES[self._state]),
                         ("to_state", NAMES[to_state])))
        self._state = to_state
        self._failures = 0
        self._rejected = 0
        self._publish()

    def allow(self):
        """True if a call may go through now."""
        if self._state == OPEN:
            if self._rejected < self._cooldown:
                self._rejected += 1
                return False
            self._move(HALF_OPEN)
        return True

    def on_success(self):
        if self._state == HALF_OPEN:
            self._move(CLOSED)
        self._failures = 0

    def on_failure(self):
        if self._state == HALF_OPEN:
            self._move(OPEN)
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._move(OPEN)
