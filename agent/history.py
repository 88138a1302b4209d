"""The remembered conversation: bounded by turns and by characters (one place for trimming)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from agent.interfaces import ChatMessage

__all__ = ["ConversationHistory"]


class ConversationHistory:
    """User/assistant exchanges kept for the LLM's context, oldest dropped first."""

    def __init__(self, *, max_turns: int = 8, max_chars: int = 6000) -> None:
        if max_turns < 0 or max_chars < 0:
            raise ValueError("history bounds must be >= 0")
        self.max_turns = max_turns
        self.max_chars = max_chars
        self._messages: deque[ChatMessage] = deque()

    def append(self, user_text: str, reply: str) -> None:
        """Remember one exchange, then trim to the bounds."""
        self._messages.append(ChatMessage("user", user_text))
        self._messages.append(ChatMessage("assistant", reply.strip()))
        while len(self._messages) > 2 * self.max_turns:
            self._messages.popleft()
        while self._messages and sum(len(m.content) for m in self._messages) > self.max_chars:
            self._messages.popleft()

    def messages(self, system_prompt: str, user_text: str) -> list[ChatMessage]:
        """The LLM's input: system prompt, remembered exchanges, the new user text."""
        return [ChatMessage("system", system_prompt), *self._messages, ChatMessage("user", user_text)]

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[ChatMessage]:
        return iter(self._messages)

    def __getitem__(self, index: int) -> ChatMessage:
        return self._messages[index]
