"""The conversation the LLM remembers: whole exchanges, bounded by turns and by characters.

One place bounds the prompt (and the memory): the session keeps a `ConversationHistory` and asks
it for the messages of each turn. The oldest exchanges (user line + reply) are dropped first, so
the remembered conversation always starts with a user message.

Past a bound, the oldest exchanges go **in a block**, down to half the bounds, not one per turn: a
local LLM (llama.cpp) reuses the prompt prefix it evaluated last time, and a window sliding by one
exchange changes the prompt right after the system prompt on every turn, so every turn re-reads
the whole history (measured, Qwen2.5-0.5B on one thread with 8 short exchanges: first token 3.5 s
a turn instead of 0.4-0.6 s). Dropping half at once keeps the prefix for the next turns;
`append` says when it dropped, so the caller can re-prime the cache while nobody waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

from agent.interfaces import ChatMessage

__all__ = ["ConversationHistory", "before_last_user"]


def before_last_user(messages: Sequence[ChatMessage], message: ChatMessage) -> list[ChatMessage]:
    """`messages` with `message` (a turn's instruction or knowledge) right before the last user message."""
    out = list(messages)
    last_user = max((i for i, m in enumerate(out) if m.role == "user"), default=len(out))
    out.insert(last_user, message)
    return out


class ConversationHistory:
    """Past exchanges, at most `max_turns` of them and `max_chars` characters of text in all; past
    either bound, the oldest are dropped down to half of both (at least the newest exchange is kept
    when it fits the bounds on its own)."""

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

    def append(self, user: str, reply: str) -> bool:
        """Remember one exchange; past a bound, drop the oldest down to half the bounds. True when
        exchanges were dropped (the prompt's beginning changed)."""
        turn = (user, reply.strip())
        self._turns.append(turn)
        self._chars += len(turn[0]) + len(turn[1])
        if len(self._turns) <= self.max_turns and self._chars <= self.max_chars:
            return False
        keep_turns, keep_chars = max(1, self.max_turns // 2), self.max_chars // 2
        while len(self._turns) > 1 and (len(self._turns) > keep_turns or self._chars > keep_chars):
            self._drop_oldest()
        if len(self._turns) > self.max_turns or self._chars > self.max_chars:
            self._drop_oldest()  # the newest alone is beyond a bound (or max_turns is 0)
        return True

    def _drop_oldest(self) -> None:
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
