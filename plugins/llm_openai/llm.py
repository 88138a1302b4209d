"""OpenAILLM: streaming chat completions from any OpenAI-compatible server.

The `agent.engine.BaseLLM` template owns retries (retryable failures only, before the first token
reached the caller), first-token/idle timeouts, metrics and cancellation (closing the stream closes
the HTTP response at once); this module implements one attempt and maps openai/httpx errors.
User tools declared in config (`agent.tools`) run here. With `tool_mode: router` (the default for the
local server) a JSON-schema-constrained step picks the tool and its arguments (`agent.tool_router`;
on the local server its own process, `route_server`, feeds the route's fixed parts as one batch);
with `native` the API's tool calls do. The tool runs (ToolStatus `started`/`finished` items are
yielded; a filler line is spoken if it is slow), then a plain completion answers with the result in
context, or the tool's `say` line is spoken. When no tool runs and the knowledge base sent sentences
that answer the user (`agent.kb.QUOTE`), those are spoken as written (`quote_knowledge`; a small
model rewording them bends their facts). Every text delta passes the streaming `SpeechGuard`, so
tool syntax, JSON, code or markup never reaches TTS. `set_expression` calls pass to the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from agent.engine import BaseLLM, RetryPolicy
from agent.errors import ConfigError, EngineError
from agent.frames import TextDelta, ToolCall
from agent.history import before_last_user
from agent.interfaces import ChatMessage, ToolSpec
from agent.kb import QUOTE, quote_of
from agent.speech_guard import SpeechGuard
from agent.tasks import retrieve
from agent.tool_router import (
    accepts_person_offer,
    facts_message,
    flat_arguments,
    grounded,
    hopeless_route,
    last_agent_line,
    parse_route,
    route_messages,
    router_schema,
    said_digits,
    settled_route,
)
from agent.tools import HANDOFF, ToolRegistry, ToolResult, ToolStatus
from flowact.clock import Clock
from plugins.llm_openai.config import OpenAILLMConfig
from plugins.llm_openai.http_client import one_idle_connection_client
from plugins.llm_openai.local_server import LocalLlamaServer
from plugins.llm_openai.route_server import supported

__all__ = ["OpenAILLM"]

log = logging.getLogger("plugins.llm_openai")
_TAGS = re.compile(r"\[[^\]]*\]?")
ROUTER_MAX_TOKENS = 96
ROUTE_SERVER = "plugins.llm_openai.route_server"
ROUTER_N_BATCH = 128  # the router's prompts are short: its server's logits buffer (n_batch x vocab) stays small


def _has_words(text: str) -> bool:
    """Whether text has a letter or digit outside its `[intent tags]`."""
    return any(ch.isalnum() for ch in _TAGS.sub("", text))


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
        self._router_client: Any = None
        self.registry = ToolRegistry.from_config(c.tools)  # a tool module that does not import: ConfigError
        slow = [t.name for t in c.tools if t.timeout_s >= c.timeout_s]
        if slow:  # the stream's idle timeout would end the turn before the tool's own timeout
            raise ConfigError(f"llm.tools {slow}: timeout_s must be below llm.timeout_s ({c.timeout_s} s)")
        self.router = c.tool_mode == "router" or (c.tool_mode == "auto" and c.local_server is not None)
        # the router step's own local server: llama.cpp keeps one prompt's cache, and the router's prompt
        # and the answer's share no prefix, so on one server each evaluated the other's whole prompt
        # again every turn (a support bot's plain answer 8-10 s after the question, 1.4-2.7 s apart)
        self.handoffs = {name for name, t in self.registry.tools.items() if t.cfg.builtin == HANDOFF}
        # its route JSON written with the fixed parts fed, not generated (route_server), when it can
        fast = c.local_server is not None and c.local_server.fast_router and all(
            supported(s.parameters) for s in self.registry.specs if s.name not in self.handoffs)
        self.router_server = (
            LocalLlamaServer(c.local_server, n_batch=ROUTER_N_BATCH,
                             module=ROUTE_SERVER if fast else "llama_cpp.server")
            if self.server is not None and c.local_server is not None and c.local_server.router_server
            and self.router and self.registry.tools else None
        )
        self.fast_router = fast and self.router_server is not None  # routes are asked with `_post_route`
        self._route_http: httpx.AsyncClient | None = None
        self.quote = c.quote_knowledge == "always" or (c.quote_knowledge == "auto" and c.local_server is not None)
        self.last_tool_calls: list[ToolCall] = []  # user tools run during the latest chat()
        # the latest reply was said as written (a tool's line, the knowledge base's sentences) instead of
        # completed by the answer's server: that server's prompt cache does not hold the conversation
        self.cache_behind = False
        self.server_restarts = 0  # the local server died (crash, OOM kill) and was started again
        self._restarts: dict[int, asyncio.Task[None]] = {}  # id(server) -> its restart
        self._closed = False
        self._router_warm = False

    def _servers(self) -> list[LocalLlamaServer]:
        return [s for s in (self.server, self.router_server) if s is not None]

    async def start(self) -> None:
        todo = [s.start() for s in self._servers() if s.proc is None]
        results = await asyncio.gather(*todo, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:  # one did not start: stop the other, report the first failure
            await asyncio.gather(*(s.stop() for s in self._servers()))
            raise failed
        # the clients, off the event loop: importing openai and making a client (its TLS context) took
        # 0.57 s there, and the avatar's media timeline slipped by as much
        await asyncio.to_thread(self._make_clients)

    def _make_clients(self) -> None:
        self._make_client()
        if self.router_server is not None:
            self._make_router_client()

    async def warmup(self, messages: Sequence[ChatMessage]) -> None:
        """Prime the server's prompt cache with the system prompt (llama.cpp reuses the prefix)."""
        if self.server is None:
            return
        client = self._make_client()
        wire = self._wire_messages([*messages, ChatMessage("user", "Hello")])
        calls = [client.chat.completions.create(  # the whole prompt is evaluated: the first token's timeout
            model=self.config.model, messages=wire, max_tokens=1, timeout=self.config.first_token_timeout_s)]
        warm_router = self.router_server is not None and not self._router_warm
        if warm_router:  # the router's tool list, once (its prefix stays)
            hello = route_messages(self.registry.specs, [], "Hello")
            if self.fast_router:
                calls.append(self._post_route(hello, ""))
            else:
                calls.append(self._make_router_client().chat.completions.create(
                    model=self.config.model, messages=hello, max_tokens=1, timeout=self.config.first_token_timeout_s))
        results = await asyncio.gather(*calls, return_exceptions=True)
        if warm_router and not isinstance(results[-1], BaseException):
            self._router_warm = True

    def _make_client(self) -> Any:
        if self._client is None:
            base = self.server.base_url if self.server is not None else self.config.base_url
            self._client = self._new_client(base)
        return self._client

    def _make_router_client(self) -> Any:
        """The router step's client: its own server's, or the answer's when there is none."""
        if self.router_server is None:
            return self._make_client()
        if self._router_client is None:
            self._router_client = self._new_client(self.router_server.base_url)
        return self._router_client

    def _new_client(self, base_url: str | None) -> Any:
        from openai import AsyncOpenAI

        key = os.environ.get(self.config.api_key_env) or "not-needed-for-local"
        return AsyncOpenAI(base_url=base_url, api_key=key, timeout=self.config.timeout_s, max_retries=0,
                           http_client=one_idle_connection_client())

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
        first_system = True
        for m in messages:  # the session bounds the history (agent.history.ConversationHistory)
            content = m.content
            if m.role == "system" and first_system:  # the vocabulary once, in the main system prompt
                first_system = False
                content = content + extra if extra and extra not in content else content
            msg: dict[str, Any] = {"role": m.role, "content": content}
            if m.tool_call_id:
                msg["tool_call_id"] = m.tool_call_id
            out.append(msg)
        return out

    def _tools(self, tools: Sequence[ToolSpec], *, user: bool = True) -> list[dict[str, Any]]:
        specs = list(tools)
        if self.config.expression_tool:
            try:
                from agent.intents import SET_EXPRESSION_TOOL
            except ImportError:
                log.warning("agent.intents.SET_EXPRESSION_TOOL unavailable; set_expression not offered")
            else:
                specs.append(SET_EXPRESSION_TOOL)
        if user:
            specs += self.registry.specs
        return [{"type": "function", "function": {"name": s.name, "description": s.description,
                                                  "parameters": s.parameters}} for s in specs]

    async def _ensure_server(self) -> None:
        """A local server (the answer's or the router's) that died (crash, OOM kill, kill -9) is started
        again on its port before the next attempt: the base class's retry then reaches it. One restart
        per server at a time, shielded (an attempt that times out does not cancel it; the next attempt
        waits for the same one)."""
        if self._closed:
            return
        for server in self._servers():
            restart = self._restarts.get(id(server))
            died = server.proc is not None and server.proc.returncode is not None
            failed = restart is not None and restart.done() and server.proc is None
            if (died or failed) and (restart is None or restart.done()):
                code = server.proc.returncode if server.proc is not None else None
                log.warning("llama.cpp %sserver %s (exit code %s); restarting it on port %d",
                            "router " if server is self.router_server else "",
                            "died" if died else "is down after a failed restart", code, server.port)
                self.server_restarts += 1
                self._router_warm = self._router_warm and server is not self.router_server  # a cold cache
                restart = asyncio.create_task(server.restart(), name="llama-server-restart")
                restart.add_done_callback(retrieve)  # the attempt awaiting it reports a failure
                self._restarts[id(server)] = restart
            if restart is not None and not restart.done():
                await asyncio.shield(restart)

    async def _chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        self.last_tool_calls = []
        self.cache_behind = False
        await self._ensure_server()
        guard = SpeechGuard()
        said = ""  # what was passed on, until it has a word outside the intent tags
        called = False
        async for item in self._reply(messages, tools):
            if isinstance(item, TextDelta):
                text = guard.feed(item.text)
                if text:
                    said = said if _has_words(said) else said + text
                    yield TextDelta(text, item.turn)
            else:
                called = True
                yield item
        rest = guard.flush()
        if rest:
            said = said if _has_words(said) else said + rest
            yield TextDelta(rest)
        if not called and not _has_words(said) and self.config.empty_reply_retry:
            log.warning("the reply had no words (%r): asking once more", said[:80])
            async for text in self._words_again(messages):
                said = said if _has_words(said) else said + text
                yield TextDelta(text)
        if not called and not _has_words(said) and self.config.empty_reply_line:
            log.warning("the reply had no words (%r): saying the empty-reply line", said[:80])
            yield TextDelta(" " + self.config.empty_reply_line)

    async def _words_again(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """A second plain answer after one with no words (the 0.5B model sometimes answers "I'm fine,
        thanks." with a lone `[neutral]`), asked to say something, a little warmer; guarded as the first."""
        nudge = ChatMessage("system", "Reply to the user's next message with one short spoken sentence in words.")
        wire = self._wire_messages(before_last_user(messages, nudge))
        guard = SpeechGuard()
        async for item in self._stream(wire, [], "auto", temperature=max(0.7, self.config.temperature)):
            if isinstance(item, TextDelta) and (text := guard.feed(item.text)):
                yield text
        if rest := guard.flush():
            yield rest

    def expected_reply(self, messages: Sequence[ChatMessage]) -> str | None:
        """The reply `chat(messages)` gives unless a tool answers (the knowledge base's sentences, said
        as written): the turn runner synthesizes its first piece while the router decides."""
        return quote_of(messages) if self.quote else None

    async def _reply(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        """Unguarded reply: route (or native tool round), run the tool, answer."""
        quote = quote_of(messages) if self.quote else None  # the knowledge base's sentences, said as written
        if not self.registry.tools and quote is not None:
            self.cache_behind = True
            yield TextDelta(quote)
            return
        if not self.registry.tools:
            specs = self._tools(tools)
            async for item in self._stream(self._wire_messages(messages), specs, self._tool_choice(specs)):
                yield item
            return
        call: ToolCall | None = None
        if self.router:
            call = await self._route(messages)
            answer_tools = self._tools(tools, user=False)
        else:
            native_text, probe = False, SpeechGuard()  # speakable text? (a leaked call is not)
            async for item in self._stream(self._wire_messages(messages), self._tools(tools),
                                           self._tool_choice(self._tools(tools))):
                if isinstance(item, ToolCall) and item.name in self.registry and call is None:
                    call = item
                elif isinstance(item, ToolCall):
                    yield item
                elif call is None:
                    native_text = native_text or bool(probe.feed(item.text).strip())
                    yield item
            if call is None and (native_text or probe.flush().strip()):
                return
            answer_tools = []
        if call is None and quote is not None:  # no tool (the router said so): the knowledge base's sentences
            self.cache_behind = True
            yield TextDelta(quote)
            return
        if call is None:  # no tool: a plain answer (no tool syntax offered, so none to leak)
            async for item in self._stream(self._wire_messages(messages), answer_tools, "auto"):
                yield item
            return
        results: list[ToolResult] = []
        async for item in self._run_tool(call, results):
            yield item
        result = results[0]
        tool = self.registry.tools[call.name]
        if tool.cfg.builtin == HANDOFF:
            self.cache_behind = True
            yield TextDelta(self.config.handoff_line)
            return
        if not result.ok:
            self.cache_behind = True
            yield TextDelta(result.content)  # the tool's short apology
            return
        line = self.registry.spoken_result(call, result)
        if line is not None:
            self.cache_behind = True
            yield TextDelta(line)
            return
        before = [m for m in messages[:-1] if m.name != QUOTE]  # the tool answers, not the knowledge base
        history = [*before, facts_message(call, result.content), messages[-1]] if messages else []
        async for item in self._stream(self._wire_messages(history), answer_tools, "auto"):
            yield item

    async def _route(self, messages: Sequence[ChatMessage]) -> ToolCall | None:
        """The router step: one schema-constrained JSON completion -> a grounded ToolCall or None."""
        user_msgs = [m.content for m in messages if m.role == "user"]
        if not user_msgs:
            return None
        specs, handoffs = self.registry.specs, self.handoffs
        # "Yes, please." to a colleague the agent offered
        if handoffs and accepts_person_offer(last_agent_line(messages[:-1]), user_msgs[-1]):
            log.info("router: the user accepted the offer of a colleague")
            return ToolCall(min(handoffs), json.dumps({"reason": "accepted the offer of a colleague"}),
                            f"route_{len(user_msgs)}")
        route = route_messages(specs, messages[:-1], user_msgs[-1])
        if self.fast_router:
            reply = await self._post_route(route, user_msgs[-1])
            if reply["cut"]:
                log.info("router began %r, which the user's words cannot ground: no tool", reply["reply"][:80])
                return None
            return self._grounded_call(reply["reply"], user_msgs)
        schema = router_schema(specs, bare=handoffs)
        fmt: dict[str, Any] = (
            {"type": "json_object", "schema": schema} if self.config.structured_output == "llama_cpp"
            else {"type": "json_schema", "json_schema": {"name": "route", "schema": schema}}
        )
        client = self._make_router_client()
        stream: Any = await client.chat.completions.create(
            model=self.config.model, messages=route,
            temperature=0.0, max_tokens=ROUTER_MAX_TOKENS, response_format=fmt, stream=True,
        )
        text, flat = "", flat_arguments(specs)
        try:
            async for chunk in stream:  # streamed: a call that cannot be grounded is cut short
                text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
                if hopeless_route(text, user_msgs[-1], handoffs, flat=flat):
                    log.info("router began %r, which the user's words cannot ground: no tool", text[:80])
                    return None
                if (whole := settled_route(text, specs, handoffs)) is not None:
                    text = whole  # only closing braces would follow
                    break
        finally:
            await stream.close()
        return self._grounded_call(text, user_msgs)

    async def _post_route(self, messages: list[dict[str, str]], user_text: str) -> dict[str, Any]:
        """One route from the route server: {"reply": JSON text, "cut": given up at an unsaid digit}."""
        assert self.router_server is not None
        if self._route_http is None:
            self._route_http = httpx.AsyncClient(timeout=self.config.first_token_timeout_s)
        said = said_digits(user_text)
        tools = [{"name": s.name, "parameters": s.parameters} for s in self.registry.specs]
        r = await self._route_http.post(f"{self.router_server.base_url}/route", json={
            "messages": messages, "tools": tools, "bare": sorted(self.handoffs), "said": said})
        if r.status_code != 200:
            raise EngineError("llama.cpp", f"route server answered {r.status_code}: {r.text[:200]}")
        data: dict[str, Any] = r.json()
        return data

    def _grounded_call(self, text: str, user_msgs: list[str]) -> ToolCall | None:
        """The router's JSON -> the call, if the user's words ground it (digits said now, a person asked)."""
        call = parse_route(text, self.registry.specs, call_id=f"route_{len(user_msgs)}")
        # said now (not a number of an earlier turn); a hand-off only when a person is asked for
        if call is not None and not grounded(call, user_msgs[-1:], handoff=call.name in self.handoffs):
            log.info("router picked %s(%s), not grounded in the user's words: no tool", call.name, call.arguments)
            return None
        log.info("router: %s", f"{call.name}({call.arguments})" if call else "none")
        return call

    async def _run_tool(self, call: ToolCall, results: list[ToolResult]) -> AsyncIterator[TextDelta | ToolCall]:
        """Run a tool; yield `started`, a filler line if it is slow, then `finished`."""
        tool = self.registry.get(call.name)
        filler = (tool.cfg.filler if tool is not None and tool.cfg.filler is not None else self.config.tool_filler)
        speak_filler = bool(filler) and self.config.speak_filler
        yield ToolStatus(call.name, call.arguments, call.call_id, phase="started",
                         filler="" if speak_filler else filler)
        task = asyncio.create_task(self.registry.run(call), name=f"tool-{call.name}")
        try:
            done, _ = await asyncio.wait({task}, timeout=self.config.filler_after_s)
            if not done and speak_filler:
                yield TextDelta(filler + " ")
            result = await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        results.append(result)
        self.last_tool_calls.append(call)
        yield ToolStatus(call.name, call.arguments, call.call_id, phase="finished", ok=result.ok,
                         result=result.content, duration_s=result.duration_s, error=result.error,
                         handoff=tool is not None and tool.cfg.builtin == HANDOFF)

    def _tool_choice(self, tools: list[dict[str, Any]]) -> str | dict[str, Any]:
        choice = self.config.tool_choice
        if choice in ("auto", "none", "required"):
            return choice
        if not any(t["function"]["name"] == choice for t in tools):
            raise ConfigError(f"llm.tool_choice: {choice!r} is not an offered tool")
        return {"type": "function", "function": {"name": choice}}

    async def _stream(
        self, wire: list[dict[str, Any]], tools: list[dict[str, Any]], choice: str | dict[str, Any] = "auto",
        *, temperature: float | None = None,
    ) -> AsyncIterator[TextDelta | ToolCall]:
        """One streaming completion (one attempt; the base class retries and times out)."""
        client = self._make_client()
        kwargs: dict[str, Any] = {
            "model": self.config.model, "messages": wire, "stream": True,
            "temperature": self.config.temperature if temperature is None else temperature,
            "max_tokens": self.config.max_tokens,
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
        self._closed = True
        for restart in self._restarts.values():
            restart.cancel()
        await asyncio.gather(*self._restarts.values(), return_exceptions=True)
        for client in (self._client, self._router_client):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
        if self._route_http is not None:
            await self._route_http.aclose()
        self._client = self._router_client = self._route_http = None
        await asyncio.gather(*(s.stop() for s in self._servers()))
