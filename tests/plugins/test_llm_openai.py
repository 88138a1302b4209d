"""The openai plugin against a real llama.cpp OpenAI-compatible server (shipped Qwen2.5 0.5B GGUF,
started once per session): streaming, tool calls (a user tool answered by the plugin and the
avatar's set_expression passed on), cancellation mid-stream, timeouts, prompt and history rules."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from agent.errors import ConfigError, EngineError
from agent.frames import TextDelta, ToolCall
from agent.interfaces import ChatMessage
from agent.tools import ToolConfig, ToolStatus
from plugins.llm_openai import OpenAILLM, OpenAILLMConfig
from tests.fixtures.llm_server import LlmServer, llm_server, make_llm

__all__ = ["llm_server"]

SLOW = 120.0  # first-token limit: prompt evaluation on 2 shared cores can be slow
ORDER_TOOL = ToolConfig(
    name="lookup_order", description="Look up the status of a customer's order by its order number.",
    parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    responses={"4711": "Order 4711 shipped on Monday and arrives on Thursday."},
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


async def test_streams_text_in_many_deltas(llm_server: LlmServer) -> None:
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False)
    msgs = [ChatMessage("system", "You are a helpful assistant."),
            ChatMessage("user", "Name three colours of the rainbow.")]
    deltas = [d async for d in llm.chat(msgs)]
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert len(deltas) > 3 and len(words(text)) >= 3, text
    snap = llm.stats.snapshot()
    assert snap["calls"] == 1 and snap["items"] == len(deltas) and 0 < float(snap["first_item_p50_s"]) < SLOW
    await llm.aclose()


async def test_user_tool_is_called_answered_and_the_model_continues(llm_server: LlmServer) -> None:
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False, tools=[ORDER_TOOL],
                   tool_choice="lookup_order", max_tokens=40)
    msgs = [ChatMessage("system", "You are a customer support agent. Answer briefly."),
            ChatMessage("user", "Where is my order 4711?")]
    out = [d async for d in llm.chat(msgs)]
    assert [c.name for c in llm.last_tool_calls] == ["lookup_order"]
    assert json.loads(llm.last_tool_calls[0].arguments) == {"order_id": "4711"}
    # user tools run inside the plugin; the stream only reports their progress
    assert [(d.name, d.phase) for d in out if isinstance(d, ToolCall)] == [
        ("lookup_order", "started"), ("lookup_order", "finished")]
    assert all(isinstance(d, ToolStatus) for d in out if isinstance(d, ToolCall))
    assert words("".join(d.text for d in out if isinstance(d, TextDelta)))  # then it answers in text
    await llm.aclose()


async def test_set_expression_is_passed_to_the_session(llm_server: LlmServer) -> None:
    from agent.intents import SET_EXPRESSION_TOOL

    llm = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False, expression_tool=True,
                   tool_choice="set_expression")
    msgs = [ChatMessage("system", "You are a friendly avatar."), ChatMessage("user", "I just got great news!")]
    calls = [d async for d in llm.chat(msgs) if isinstance(d, ToolCall)]
    assert [c.name for c in calls] == ["set_expression"]
    args = json.loads(calls[0].arguments)
    assert set(args) <= set(SET_EXPRESSION_TOOL.parameters["properties"]) and args
    await llm.aclose()


async def test_a_reply_without_words_says_the_empty_reply_line(llm_server: LlmServer) -> None:
    """A reply the listener would not hear a word of (here JSON, which the guard withholds; the 0.5B
    model also answers with a lone `[neutral]` at times) ends with `empty_reply_line` instead of silence."""
    msgs = [ChatMessage("system", 'Reply with exactly this JSON and nothing else: {"ok": true}'),
            ChatMessage("user", "Status?")]
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False, max_tokens=12, empty_reply_retry=False)
    text = "".join(d.text for d in [d async for d in llm.chat(msgs)] if isinstance(d, TextDelta))
    assert text.strip() == "Sorry, could you say that another way?", text
    quiet = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False, max_tokens=12, empty_reply_line="",
                     empty_reply_retry=False)
    assert not words("".join(d.text for d in [d async for d in quiet.chat(msgs)] if isinstance(d, TextDelta)))
    await llm.aclose()
    await quiet.aclose()


async def test_a_reply_without_words_is_asked_for_once_more(llm_server: LlmServer,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """By default a reply with no words is asked for once more (nudged to say something): the turn
    ends with words, the model's or the empty-reply line, and never with the withheld syntax."""
    msgs = [ChatMessage("system", 'Reply with exactly this JSON and nothing else: {"ok": true}'),
            ChatMessage("user", "Status?")]
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False, max_tokens=12)
    with caplog.at_level(logging.WARNING, logger="plugins.llm_openai"):
        text = "".join(d.text for d in [d async for d in llm.chat(msgs)] if isinstance(d, TextDelta))
    await llm.aclose()
    assert "asking once more" in caplog.text
    assert words(text) and "{" not in text and '"ok"' not in text, text


async def test_cancel_mid_stream_closes_the_http_stream_at_once(llm_server: LlmServer) -> None:
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False, max_tokens=120)
    msgs = [ChatMessage("user", "Count from one to fifty in words.")]
    stream = llm.chat(msgs)
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    t0 = time.monotonic()
    await stream.aclose()  # type: ignore[attr-defined]
    assert time.monotonic() - t0 < 1.0 and llm.stats.cancelled == 1
    again = [d async for d in make_llm(llm_server, first_token_timeout_s=SLOW, max_tokens=4).chat(msgs)]
    assert again  # the server was not left busy with the abandoned answer
    await llm.aclose()


async def test_overlapping_requests_leave_at_most_one_idle_connection(llm_server: LlmServer) -> None:
    """A session's requests may overlap (the history's cache re-prime, a plain completion, beside an
    answer): once they are done, one keep-alive connection to the server stays open, not one per
    request that ever overlapped (openai's default client keeps up to 100)."""
    import asyncio
    from urllib.parse import urlsplit

    import psutil

    port = urlsplit(llm_server.base_url).port
    llm = make_llm(llm_server, first_token_timeout_s=SLOW, intent_tags=False, max_tokens=4)
    client = llm._make_client()  # the plugin's own client, as its warmup (the re-prime) uses it

    def open_to_server() -> int:
        return sum(1 for c in psutil.Process().net_connections(kind="tcp")
                   if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)

    async def complete(n: int) -> str:
        r = await client.chat.completions.create(
            model=llm.config.model, max_tokens=2, messages=[{"role": "user", "content": f"Say {n}."}])
        return str(r.choices[0].message.content)

    before = open_to_server()  # other tests' clients in this process may still hold one
    for _ in range(2):
        done = await asyncio.gather(*(complete(n) for n in range(3)))
        assert len(done) == 3
        assert open_to_server() - before <= 1
    await llm.aclose()
    assert open_to_server() <= before


async def test_first_token_timeout_is_a_clear_retryable_error(llm_server: LlmServer) -> None:
    llm = make_llm(llm_server, first_token_timeout_s=0.001, retries=1, backoff_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="no first item within") as e:
        [d async for d in llm.chat([ChatMessage("user", "Hello")])]
    assert e.value.retryable and llm.stats.retries == 1 and time.monotonic() - t0 < 5
    await llm.aclose()


async def test_unreachable_server_fails_fast_after_retries() -> None:
    llm = OpenAILLM(OpenAILLMConfig(base_url="http://127.0.0.1:9/v1", retries=2, backoff_s=0.05))
    with pytest.raises(EngineError, match="openai: APIConnectionError") as e:
        [d async for d in llm.chat([ChatMessage("user", "Hello")])]
    assert e.value.retryable and llm.stats.retries == 2
    await llm.aclose()


async def test_start_makes_its_clients_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing openai and making a client (its TLS context) took 0.57 s: on the event loop the avatar's
    media timeline slipped by as much while the agent started."""
    import threading

    llm = OpenAILLM(OpenAILLMConfig(base_url="http://127.0.0.1:9/v1"))
    made: list[str] = []
    real = llm._new_client

    def spy(base_url: str | None) -> object:
        made.append(threading.current_thread().name)
        return real(base_url)

    monkeypatch.setattr(llm, "_new_client", spy)
    await llm.start()
    assert made and threading.current_thread().name not in made, made
    assert llm._make_client() is llm._make_client()  # made once, at start
    await llm.aclose()


def test_prompt_has_the_intent_vocabulary_and_the_whole_history() -> None:
    from agent.intents import prompt_snippet

    llm = OpenAILLM(OpenAILLMConfig(base_url="http://127.0.0.1:9/v1"))
    msgs = [ChatMessage("system", "Be kind."), *[ChatMessage("user", f"m{i}") for i in range(10)]]
    wire = llm._wire_messages(msgs)
    assert wire[0]["role"] == "system" and prompt_snippet() in wire[0]["content"]
    assert [m["content"] for m in wire[1:]] == [f"m{i}" for i in range(10)]  # the session bounds it
    with pytest.raises(ConfigError, match="not an offered tool"):
        OpenAILLM(OpenAILLMConfig(base_url="http://x/v1", tool_choice="nope"))._tool_choice([])


def test_a_tool_slower_than_the_stream_timeout_is_a_config_error() -> None:
    slow = ToolConfig(name="t", description="d", timeout_s=60)
    with pytest.raises(ConfigError, match="timeout_s must be below llm.timeout_s"):
        OpenAILLM(OpenAILLMConfig(base_url="http://x/v1", timeout_s=30, tools=[slow]))
