"""ScriptedLLM: replies from a list or regex rules, streamed in small deltas with a set pace.

For orchestration tests on a fake clock (turns, barge-in, timing). It never claims to be a model:
tests of the real LLM path use plugins.llm_openai against a real llama.cpp server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import EngineError
from agent.frames import TextDelta, ToolCall
from agent.interfaces import ChatMessage, ToolSpec
from flowact.clock import Clock, RealClock

__all__ = ["ScriptedLLM", "ScriptedLLMConfig"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: str
    reply: str


class ScriptedLLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replies: list[str] = Field(default_factory=lambda: ["[smile] Hello! How can I help you today?"])
    rules: list[Rule] = Field(default_factory=list, description="first regex that matches the user text wins")
    first_token_s: float = Field(0.2, ge=0)
    delta_chars: int = Field(6, ge=1)
    delta_s: float = Field(0.02, ge=0)
    fail_with: str | None = Field(None, description="raise EngineError(this message) instead of replying")


class ScriptedLLM:
    Config = ScriptedLLMConfig

    def __init__(self, config: ScriptedLLMConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or RealClock()
        self._i = 0
        self.calls: list[list[ChatMessage]] = []

    def _reply(self, messages: Sequence[ChatMessage]) -> str:
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        for rule in self.config.rules:
            if re.search(rule.match, user, re.IGNORECASE):
                return rule.reply
        reply = self.config.replies[self._i % len(self.config.replies)]
        self._i += 1
        return reply

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[TextDelta | ToolCall]:
        self.calls.append(list(messages))
        reply = self._reply(messages)
        await self.clock.sleep(self.config.first_token_s)
        if self.config.fail_with:
            raise EngineError("scripted-llm", self.config.fail_with, retryable=False)
        step = self.config.delta_chars
        for i in range(0, len(reply), step):
            if i:
                await self.clock.sleep(self.config.delta_s)
            yield TextDelta(reply[i : i + step])
        await asyncio.sleep(0)

    async def aclose(self) -> None:
        return None
