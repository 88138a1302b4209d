"""OpenAILLM: streaming chat completions from any OpenAI-compatible server.

The `agent.engine.BaseLLM` template owns retries (retryable failures only, before the first token
reached the caller), first-token/idle timeouts, metrics and cancellation (closing the stream closes
the HTTP response at once); this module implements one attempt and maps openai/httpx errors.
User tools declared in config are answered here and the conversation continues; `set_expression`
calls are passed to the session as ToolCalls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agent.commands import loads_json
from agent.engine import BaseLLM, RetryPolicy
from agent.errors import ConfigError, EngineError
from agent.frames import TextDelta, ToolCall
from agent.interfaces import ChatMessage, ToolSpec
from flowact.clock import Clock
from plugins.llm_openai.config import OpenAILLMConfig, UserTool
from plugins.llm_openai.local_server import LocalLlamaServer

__all__ = ["OpenAILLM"]

log = logging.getLogger("plugins.llm_openai")
MAX_TOOL_ROUNDS = 3


class OpenAILLM(BaseLLM):
    Config = OpenAILLMConfig
    engine_name = "openai"

    def __init__(self, config: OpenAILLMConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = c = config or OpenAILLMConfig(local_server=None, base_url="http://127.0.0.1:8080/v1")
        super().__init__(policy=RetryPolicy(
            retries=c.retries, backoff_s=c.backoff_s, first_item_timeout_s=c.first_token_timeout_s,
            idle_timeout_s=c.timeout_s,
        ), clock=clock)
        if c.base_url is None and c.local_server is None:
            raise ConfigError("llm: set `base_url` (any OpenAI-compatible server) or `local_server: {}`")
        self.server = LocalLlamaServer(c.local_server) if c.local_server is not None else None
        self._client: Any = None
        self.last_tool_calls: list[ToolCall] = []  # user tools run during the latest chat()

    async def start(self) -> None:
        if self.server is not None and self.server.proc is None:
            await self.server.start()
        self._make_client()

    async def warmup(self, messages: Sequence[ChatMessage]) -> None:
        """Prime the server's prompt cache with the system prompt (llama.cpp reuses the prefix)."""
        if self.server is None:
            return
        client = self._make_client()
        wire = self._wire_messages([*messages, ChatMessage("user", "Hello")])
        with contextlib.suppress(Exception):
            await client.chat.completions.create(model=self.config.model, messages=wire, max_tokens=1)

    def _make_client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            base = self.server.base_url if self.server is not None else self.config.base_url
            key = os.environ.get(self.config.api_key_env) or "not-needed-for-local"
            self._client = AsyncOpenAI(base_url=base, api_key=key, timeout=self.config.timeout_s, max_retries=0)
        return self._client

    def map_error(self, exc: BaseException) -> EngineError:
        import httpx
        import openai

        if isinstance(exc, openai.APIStatusError):
            retry = exc.status_code >= 500 or exc.status_code in (408, 409, 429)
            return EngineError("openai", self._redact(f"HTTP {exc.status_code}: {exc.message}"), retryable=retry)
        if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError | httpx.TransportError):
            return EngineError("openai", self._redact(f"{type(exc).__name__}: {exc}"), retryable=True)
        if isinstance(exc, openai.OpenAIError):
            return EngineError("openai", self._redact(f"{type(exc).__name__}: {exc}"), retryable=False)
        return super().map_error(exc)

    def _redact(self, message: str) -> str:
        """Some OpenAI-compatible servers echo the bearer key in their error bodies: never pass it on."""
        key = os.environ.get(self.config.api_key_env)
        return message.replace(key, "[api key]") if key and len(key) >= 8 else message

    def _system_extra(self) -> str:
        if not self.config.intent_tags:
            return ""
        try:  # the intent vocabulary lives in agent.intents; without it the prompt stays plain
            from agent.intents import prompt_snippet
        except ImportError:
            log.warning("agent.intents.prompt_snippet unavailable; system prompt without intent tags")
            return ""
        return "\n\n" + prompt_snippet()

    def _wire_messages(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        extra = self._system_extra()
        for m in messages:  # the session bounds the history (agent.history.ConversationHistory)
            content = m.content + extra if m.role == "system" and extra and extra not in m.content else m.content
            msg: dict[str, Any] = {"role": m.role, "content": content}
            if m.tool_call_id:
                msg["tool_call_id"] = m.tool_call_id
            out.append(msg)
        return out

    def _tools(self, tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
        specs = list(tools)
        if self.config.expression_tool:
            try:
                from agent.intents import SET_EXPRESSION_TOOL
            except ImportError:
                log.warning("agent.intents.SET_EXPRESSION_TOOL unavailable; set_expression not offered")
            else:
                specs.append(SET_EXPRESSION_TOOL)
        specs += [ToolSpec(t.name, t.description, t.parameters) for t in self.config.tools]
        return [{"type": "function", "function": {"name": s.name, "description": s.description,
                                                  "parameters": s.parameters}} for s in specs]

    async def _chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        wire = self._wire_messages(messages)
        tool_specs = self._tools(tools)
        self.last_tool_calls = []
        for round_ in range(MAX_TOOL_ROUNDS):
            calls: list[ToolCall] = []
            # a forced first call must not force again; small local models then answer in text
            later = "auto" if self.config.tool_choice == "auto" else "none"
            choice = self._tool_choice(tool_specs) if round_ == 0 else later
            async for item in self._stream(wire, tool_specs, choice):
                if isinstance(item, ToolCall):
                    calls.append(item)
                    if item.name == "set_expression":
                        yield item
                else:
                    yield item
            user_calls = [c for c in calls if c.name != "set_expression"]
            if not user_calls:
                return
            wire.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in user_calls]})
            self.last_tool_calls += user_calls
            for c in user_calls:
                wire.append({"role": "tool", "tool_call_id": c.call_id, "content": self._run_tool(c)})

    def _tool_choice(self, tools: list[dict[str, Any]]) -> str | dict[str, Any]:
        choice = self.config.tool_choice
        if choice in ("auto", "none", "required"):
            return choice
        if not any(t["function"]["name"] == choice for t in tools):
            raise ConfigError(f"llm.tool_choice: {choice!r} is not an offered tool")
        return {"type": "function", "function": {"name": choice}}

    def _run_tool(self, call: ToolCall) -> str:
        tool: UserTool | None = next((t for t in self.config.tools if t.name == call.name), None)
        if tool is None:
            return f"error: unknown tool {call.name}"
        try:
            args = loads_json(call.arguments or "{}")
        except json.JSONDecodeError:
            return "error: arguments are not JSON"
        for value in (args.values() if isinstance(args, dict) else []):
            key = str(value)
            if key in tool.responses:
                return tool.responses[key]
        return tool.default

    async def _stream(
        self, wire: list[dict[str, Any]], tools: list[dict[str, Any]], choice: str | dict[str, Any] = "auto"
    ) -> AsyncIterator[TextDelta | ToolCall]:
        """One streaming completion (one attempt; the base class retries and times out)."""
        client = self._make_client()
        kwargs: dict[str, Any] = {
            "model": self.config.model, "messages": wire, "stream": True,
            "temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
        }
        if tools:
            kwargs["tools"] = tools
            kwargs["tool_choice"] = choice
        stream: Any = await client.chat.completions.create(**kwargs)
        try:
            pending: dict[int, dict[str, str]] = {}
            async for event in stream:
                if not event.choices:
                    continue
                delta = event.choices[0].delta
                if delta.content:
                    yield TextDelta(delta.content)
                for tc in delta.tool_calls or []:
                    slot = pending.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function is not None:
                        name = tc.function.name or ""
                        if name and name != slot["name"]:  # llama.cpp repeats the name in every delta
                            slot["name"] += name
                        slot["args"] += tc.function.arguments or ""
            for i, slot in sorted(pending.items()):
                yield ToolCall(slot["name"], slot["args"], slot["id"] or f"call_{i}")
        finally:
            with contextlib.suppress(Exception):
                await stream.close()  # cancellation closes the HTTP stream at once

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
        if self.server is not None:
            await self.server.stop()
