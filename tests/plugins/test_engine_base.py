"""agent.engine base classes: retries only for retryable errors and only before the first item,
timeouts, cancellation closing the engine's stream, error mapping, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from agent.engine import BaseLLM, BaseTTS, RetryPolicy
from agent.errors import EngineError
from agent.frames import AudioChunk, SpeechChunk, TextDelta, ToolCall
from agent.interfaces import ChatMessage, ToolSpec
from flowact.clock import FakeClock


class FlakyLLM(BaseLLM):
    """Fails `fail` times with `exc` (before or after `before` items), then streams 'a b c'."""

    engine_name = "flaky"

    def __init__(self, exc: BaseException, fail: int, before: int = 0, policy: RetryPolicy | None = None) -> None:
        super().__init__(policy=policy or RetryPolicy(retries=3, backoff_s=0.5), clock=FakeClock())
        self.exc, self.fail, self.before = exc, fail, before
        self.attempts = 0
        self.closed = 0

    async def _chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        self.attempts += 1
        try:
            for i, w in enumerate(["a", "b", "c"]):
                if i == self.before and self.attempts <= self.fail:
                    raise self.exc
                yield TextDelta(w)
                await asyncio.sleep(0)
        finally:
            self.closed += 1


MSGS = [ChatMessage("user", "hi")]


async def test_retryable_errors_are_retried_with_backoff() -> None:
    llm = FlakyLLM(ConnectionResetError("reset"), fail=2)
    t0 = llm.clock.now()
    out = [d.text async for d in llm.chat(MSGS) if isinstance(d, TextDelta)]
    assert out == ["a", "b", "c"]
    assert llm.attempts == 3 and llm.stats.retries == 2 and llm.stats.errors == 2
    assert llm.clock.now() - t0 == pytest.approx(0.5 + 1.0)  # exponential backoff on the injected clock
    assert llm.closed == 3


async def test_non_retryable_errors_are_mapped_and_not_retried() -> None:
    llm = FlakyLLM(ValueError("bad prompt"), fail=5)
    with pytest.raises(EngineError, match="flaky: ValueError: bad prompt") as e:
        [d async for d in llm.chat(MSGS)]
    assert not e.value.retryable and llm.attempts == 1
    assert isinstance(e.value.__cause__, ValueError)


async def test_no_retry_after_the_first_item() -> None:
    llm = FlakyLLM(ConnectionResetError("reset"), fail=5, before=1)
    got = []
    with pytest.raises(EngineError) as e:
        async for d in llm.chat(MSGS):
            got.append(d)
    assert len(got) == 1 and e.value.retryable and llm.attempts == 1


async def test_retries_exhausted_raise_the_last_error() -> None:
    llm = FlakyLLM(TimeoutError(), fail=9, policy=RetryPolicy(retries=1, backoff_s=0.1))
    with pytest.raises(EngineError, match="timed out") as e:
        [d async for d in llm.chat(MSGS)]
    assert e.value.retryable and llm.attempts == 2


class StallingTTS(BaseTTS):
    engine_name = "stall"

    def __init__(self) -> None:
        super().__init__(policy=RetryPolicy(retries=0, first_item_timeout_s=5, idle_timeout_s=0.2))
        self.closed = asyncio.Event()

    async def _synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        try:
            yield SpeechChunk(AudioChunk(np.zeros(2400, np.int16), 24000), text)
            await asyncio.sleep(3600)  # the engine hangs
            yield SpeechChunk(AudioChunk(np.zeros(2400, np.int16), 24000), text)
        finally:
            self.closed.set()


async def test_idle_timeout_ends_a_stalled_stream_with_a_clear_error() -> None:
    tts = StallingTTS()
    got = []
    with pytest.raises(EngineError, match="no item within 0.2 s"):
        async for c in tts.synthesize("hello"):
            got.append(c)
    assert len(got) == 1 and tts.closed.is_set() and tts.stats.timeouts == 1
    assert tts.stats.audio_out_s == pytest.approx(0.1)


async def test_cancelling_the_consumer_closes_the_engine_stream() -> None:
    tts = StallingTTS()
    tts.policy = RetryPolicy(retries=0, idle_timeout_s=None)

    async def consume() -> None:
        async for _ in tts.synthesize("hello"):
            pass

    task = asyncio.create_task(consume(), name="consume")
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tts.closed.is_set() and tts.stats.cancelled == 1
    assert tts.stats.snapshot()["calls"] == 1


async def test_empty_text_is_not_an_engine_call() -> None:
    tts = StallingTTS()
    assert [c async for c in tts.synthesize("   ")] == [] and tts.stats.calls == 0
