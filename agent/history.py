"""The conversation the LLM remembers: whole exchanges, bounded by turns and by characters.

One place bounds the prompt (and the memory): the session keeps a `ConversationHistory` and asks
it for the messages of each turn. The oldest exchange (user line + reply) is dropped first, so
the remembered conversation always starts with a user message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from agent.interfaces import ChatMessage

__all__ = ["ConversationHistory"]


class ConversationHistory:
    """Past exchanges, at most `max_turns` of them and `max_chars` characters of text in all."""

    def __init__(self, max_turns: int = 8, max_chars: int = 6000) -> None:
        if max_turns < 0 or max_chars < 0:
            raise ValueError(f"max_turns and max_chars must be >= 0, got {max_turns}, {max_chars}")
        self.max_turns = max_turns
        self.max_chars = max_chars
        self._turns: deque[tuple[str, str]] = deque()
        self._chars = 0

    def __len__(self) -> int:
        """Remembered exchanges."""
        return len(self._turns)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Remembered exchanges (user line, reply), oldest first."""
        return iter(self._turns)

    @property
    def chars(self) -> int:
        return self._chars

    def append(self, user: str, reply: str) -> None:
        """Remember one exchange, then drop the oldest ones beyond the bounds."""
        turn = (user, reply.strip())
        self._turns.append(turn)
        self._chars += len(turn[0]) + len(turn[1])
        while self._turns and (len(self._turns) > self.max_turns or self._chars > self.max_chars):
            old_user, old_reply = self._turns.popleft()
            self._chars -= len(old_user) + len(old_reply)

    def clear(self) -> None:
        self._turns.clear()
        self._chars = 0

    def messages(self, system: str, user_text: str) -> list[ChatMessage]:
        """The prompt of a turn: the system prompt, the remembered exchanges, the new user line."""
        out = [ChatMessage("system", system)]
        for user, reply in self._turns:
            out += [ChatMessage("user", user), ChatMessage("assistant", reply)]
        out.append(ChatMessage("user", user_text))
        return out
