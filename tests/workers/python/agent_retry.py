# SPDX-License-Identifier: Apache-2.0
"""Retries of a call to a downstream agent. The first try is attempt 0 and is not a
retry; retry_attempt() is called once per retry (retry_number 1, 2, ...) and
retry_succeeded() once when a retry succeeded. No metrics code."""


def retry_attempt(agent_type, retry_number):
    """About to retry the call to agent_type for the retry_number-th time."""
    return retry_number


def retry_succeeded(agent_type, retry_number):
    """The retry_number-th retry of the call to agent_type succeeded."""
    return retry_number


async def with_retries(agent_type, max_retries, op, truth):
    """Awaits op(attempt) until it does not raise, at most 1 + max_retries times.
    Re-raises the last failure."""
    for attempt in range(max_retries + 1):
        if attempt > 0:
            retry_attempt(agent_type, attempt)
            truth.add("insa_retry_attempts_total",
                      (("agent_type", agent_type), ("retry_number", attempt)))
        try:
            result = await op(attempt)
        except ConnectionError:
            if attempt == max_retries:
                raise
            continue
        if attempt > 0:
            retry_succeeded(agent_type, attempt)
            truth.add("insa_retry_success_total",
                      (("agent_type", agent_type), ("retry_number", attempt)))
        return result
