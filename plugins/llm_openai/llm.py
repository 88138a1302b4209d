"""OpenAILLM: streaming chat completions from any OpenAI-compatible server.

Retries (with backoff) only retryable failures and only before the first token reached the caller;
cancellation closes the HTTP stream at once. User tools declared in config are answered here and
the conversation continues; `set_expression` calls are passed to the session as ToolCalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agent.errors import EngineError
from agent.frames import TextDelta, ToolCall
from agent.interfaces import ChatMessage, ToolSpec
from plugins.llm_openai.config import OpenAILLMConfig, UserTool
from plugins.llm_openai.local_server import LocalLlamaServer

__all__ = ["OpenAILLM"]

log = logging.getLogger("plugins.llm_openai")
MAX_TOOL_ROUNDS = 3


class OpenAILLM:
    Config = OpenAILLMConfig

    def __init__(self, config: OpenAILLMConfig | None = None) -> None:
        self.config = config or OpenAILLMConfig(local_server=None, base_url="http://127.0.0.1:8080/v1")
        if self.config.base_url is None and self.config.local_server is None:
            from agent.errors import ConfigError

            raise ConfigError("llm: set `base_url` (any OpenAI-compatible server) or `local_server: {}`")
        self.server = LocalLlamaServer(self.config.local_server) if self.config.local_server is not None else None
        self._client: Any = None
        self.stats = {"calls": 0, "retries": 0, "errors": 0}

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

    def _system_extra(self) -> str:
        if not self.config.intent_tags:
            return ""
        from agent.intents import prompt_snippet

        return "\n\n" + prompt_snippet()

    def _wire_messages(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        extra = self._system_extra()
        for m in messages:
            content = m.content + extra if m.role == "system" and extra and extra not in m.content else m.content
            msg: dict[str, Any] = {"role": m.role, "content": content}
            if m.tool_call_id:
                msg["tool_call_id"] = m.tool_call_id
            out.append(msg)
        return out

    def _tools(self, tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
        specs = list(tools)
        if self.config.expression_tool:
            from agent.intents import SET_EXPRESSION_TOOL

            specs.append(SET_EXPRESSION_TOOL)
        specs += [ToolSpec(t.name, t.description, t.parameters) for t in self.config.tools]
        return [{"type": "function", "function": {"name": s.name, "description": s.description,
                                                  "parameters": s.parameters}} for s in specs]

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[TextDelta | ToolCall]:
        wire = self._wire_messages(messages)
        tool_specs = self._tools(tools)
        self.stats["calls"] += 1
        for _round in range(MAX_TOOL_ROUNDS):
            calls: list[ToolCall] = []
            async for item in self._stream(wire, tool_specs):
                if isinstance(item, ToolCall):
                    calls.append(item)
                    if item.name == "set_expression":
                        yield item
                else:
                    yield item
            user_calls = [c for c in calls if c.name != "set_expression"]
            if not user_calls:
                return
            wire.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in user_calls]})
            for c in user_calls:
                wire.append({"role": "tool", "tool_call_id": c.call_id, "content": self._run_tool(c)})

    def _run_tool(self, call: ToolCall) -> str:
        tool: UserTool | None = next((t for t in self.config.tools if t.name == call.name), None)
        if tool is None:
            return f"error: unknown tool {call.name}"
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            return "error: arguments are not JSON"
        for value in (args.values() if isinstance(args, dict) else []):
            key = str(value)
            if key in tool.responses:
                return tool.responses[key]
        return tool.default

    async def _stream(
        self, wire: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        import openai

        client = self._make_client()
        delay = 0.5
        for attempt in range(self.config.retries + 1):
            yielded = False
            stream: Any = None
            try:
                kwargs: dict[str, Any] = {
                    "model": self.config.model, "messages": wire, "stream": True,
                    "temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
                }
                if tools:
                    kwargs["tools"] = tools
                stream = await asyncio.wait_for(
                    client.chat.completions.create(**kwargs), self.config.first_token_timeout_s
                )
                pending: dict[int, dict[str, str]] = {}
                async for event in stream:
                    if not event.choices:
                        continue
                    delta = event.choices[0].delta
                    if delta.content:
                        yielded = True
                        yield TextDelta(delta.content)
                    for tc in delta.tool_calls or []:
                        slot = pending.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function is not None:
                            slot["name"] += tc.function.name or ""
                            slot["args"] += tc.function.arguments or ""
                for i, slot in sorted(pending.items()):
                    yield ToolCall(slot["name"], slot["args"], slot["id"] or f"call_{i}")
                return
            except (openai.APIConnectionError, openai.APITimeoutError, TimeoutError) as e:
                err = EngineError("openai", f"{type(e).__name__}: {e}", retryable=True)
            except openai.APIStatusError as e:
                err = EngineError("openai", f"HTTP {e.status_code}: {e.message}", retryable=e.status_code >= 500)
            finally:
                if stream is not None:
                    with contextlib.suppress(Exception):
                        await stream.close()  # cancellation closes the HTTP stream at once
            self.stats["errors"] += 1
            if yielded or not err.retryable or attempt == self.config.retries:
                raise err
            self.stats["retries"] += 1
            log.warning("LLM call failed (%s); retry %d in %.1f s", err, attempt + 1, delay)
            await asyncio.sleep(delay)
            delay *= 2

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
        if self.server is not None:
            await self.server.stop()
