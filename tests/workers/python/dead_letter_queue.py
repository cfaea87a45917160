# SPDX-License-Identifier: Apache-2.0
"""Dead-letter queue per downstream agent: messages that could not be delivered wait here
and are replayed oldest first. No metrics code: dlq_size() is called at creation and after
every push and pop; replay() is one coroutine per replayed message, run as an asyncio task,
returning True when the message was delivered (False: pushed back)."""
import collections


def dlq_size(agent_type, size):
    """agent_type's dead-letter queue now holds `size` messages."""
    return size


class DeadLetterQueue:
    def __init__(self, agent_type, truth):
        self.agent_type = agent_type
        self._items = collections.deque()
        self._truth = truth
        self._publish()

    def _publish(self):
        dlq_size(self.agent_type, len(self._items))
        self._truth.set("insa_dead_letter_queue_size", (("agent_type", self.agent_type),),
                        len(self._items))

    def __len__(self):
        return len(self._items)

    def push(self, message_id):
        self._items.append(message_id)
        self._publish()

    def pop(self):
        message_id = self._items.popleft()
        self._publish()
        return message_id

    async def replay(self, agent_type, message_id, deliver):
        """Replays one message through `deliver` (a coroutine function raising
        ConnectionError on failure); a failed message goes back to the queue."""
        try:
            await deliver(message_id)
        except ConnectionError:
            self.push(message_id)
            self._truth.add("insa_dead_letter_replay_total",
                            (("agent_type", agent_type), ("status", "failure")))
            return False
        self._truth.add("insa_dead_letter_replay_total",
                        (("agent_type", agent_type), ("status", "success")))
        return True
