"""Base classes for engines (ASR, LLM, TTS): the template methods own the cross-cutting work.

A plugin implements only its engine call (`_transcribe`, `_chat`, `_synthesize`: one attempt,
raising whatever its vendor raises). The base class wraps it with

* error mapping: vendor exceptions become `EngineError(engine, ..., retryable=...)` through
  `map_error` (plugins override it for their vendor's exception types, `raise X from e` kept);
* retries with exponential backoff, for retryable errors only and only before the first item
  reached the caller (a half-spoken answer is never repeated);
* timeouts: one for the first item, one between items (a stalled engine never hangs a turn);
* cancellation: closing or cancelling the outer stream closes the engine's stream at once;
* per-call metrics in `EngineStats` (calls, errors, retries, time to first item, busy time,
  audio seconds in/out for real-time factors).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np

from agent.errors import EngineError, FlowActError
from agent.frames import AudioChunk, SpeechChunk, TextDelta, ToolCall, Transcript
from agent.interfaces import ChatMessage, ToolSpec
from flowact.clock import Clock, RealClock

__all__ = ["BaseASR", "BaseLLM", "BaseTTS", "Engine", "EngineStats", "RetryPolicy", "map_common_error"]

T = TypeVar("T")
log = logging.getLogger("agent.engine")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries (retryable errors only, before the first item), backoff and timeouts in seconds."""

    retries: int = 2
    backoff_s: float = 0.25
    max_backoff_s: float = 4.0
    first_item_timeout_s: float | None = 30.0
    idle_timeout_s: float | None = 30.0


@dataclass(slots=True)
class EngineStats:
    """Counters of one engine instance; `snapshot()` is what the session's metrics publish."""

    calls: int = 0
    errors: int = 0
    retries: int = 0
    timeouts: int = 0
    cancelled: int = 0
    items: int = 0
    busy_s: float = 0.0
    first_item_s: list[float] = field(default_factory=list)
    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    last_error: str = ""

    def snapshot(self) -> dict[str, float | int | str]:
        ttfi = sorted(self.first_item_s)
        audio = self.audio_in_s or self.audio_out_s
        return {
            "calls": self.calls, "errors": self.errors, "retries": self.retries, "timeouts": self.timeouts,
            "cancelled": self.cancelled, "items": self.items, "busy_s": round(self.busy_s, 4),
            "first_item_p50_s": round(ttfi[len(ttfi) // 2], 4) if ttfi else 0.0,
            "audio_in_s": round(self.audio_in_s, 3), "audio_out_s": round(self.audio_out_s, 3),
            "rtf": round(self.busy_s / audio, 4) if audio > 0 else 0.0, "last_error": self.last_error,
        }


def map_common_error(engine: str, exc: BaseException) -> EngineError:
    """Default mapping: timeouts and connection/OS failures are retryable; anything else is not."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, FlowActError):
        return EngineError(engine, str(exc), retryable=exc.retryable)
    if isinstance(exc, TimeoutError):
        return EngineError(engine, f"timed out: {exc}" if str(exc) else "timed out", retryable=True)
    if isinstance(exc, ConnectionError | OSError):
        return EngineError(engine, f"{type(exc).__name__}: {exc}", retryable=True)
    return EngineError(engine, f"{type(exc).__name__}: {exc}", retryable=False)


class Engine:
    """Shared machinery; subclasses set `engine_name` and may override `map_error`."""

    engine_name = "engine"

    def __init__(self, *, policy: RetryPolicy | None = None, clock: Clock | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self.clock: Clock = clock or RealClock()
        self.stats = EngineStats()

    def map_error(self, exc: BaseException) -> EngineError:
        """Turn a vendor exception into our error (override for vendor-specific types)."""
        return map_common_error(self.engine_name, exc)

    async def run_blocking(self, fn: Callable[..., T], *args: Any, limit_s: float | None = None) -> T:
        """Run blocking engine work in a worker thread, with an optional timeout."""
        async with asyncio.timeout(limit_s):  # not wait_for: on 3.11 it can swallow a cancellation
            return await asyncio.to_thread(fn, *args)

    async def _next(self, it: AsyncIterator[T], limit_s: float | None) -> T:
        async with asyncio.timeout(limit_s):  # not wait_for: on 3.11 it can swallow a cancellation
            return await it.__anext__()

    async def guarded(self, make: Callable[[], AsyncIterator[T]], *, what: str = "call") -> AsyncIterator[T]:
        """Run `make()` (one attempt of the engine call) with mapping, retries, timeouts, metrics."""
        p, st = self.policy, self.stats
        st.calls += 1
        t0 = self.clock.now()
        delay = p.backoff_s
        yielded = False
        try:
            for attempt in range(p.retries + 1):
                it = make()
                try:
                    while True:
                        timeout = p.idle_timeout_s if yielded else p.first_item_timeout_s
                        try:
                            item = await self._next(it, timeout)
                        except StopAsyncIteration:
                            return
                        if not yielded:
                            st.first_item_s.append(self.clock.now() - t0)
                            yielded = True
                        st.items += 1
                        yield item
                except Exception as e:  # vendor errors of any type are mapped here
                    if isinstance(e, TimeoutError):
                        st.timeouts += 1
                        e = TimeoutError(f"{what}: no {'item' if yielded else 'first item'} within "
                                         f"{p.idle_timeout_s if yielded else p.first_item_timeout_s} s")
                    err = self.map_error(e)
                    st.errors += 1
                    st.last_error = str(err)
                    if yielded or not err.retryable or attempt == p.retries:
                        raise err from e
                    st.retries += 1
                    log.warning("%s %s failed (%s); retry %d in %.2f s", self.engine_name, what, err,
                                attempt + 1, delay)
                finally:
                    aclose = getattr(it, "aclose", None)
                    if aclose is not None:
                        with contextlib.suppress(Exception):
                            await aclose()  # cancellation / early exit closes the engine stream now
                await self.clock.sleep(delay)
                delay = min(delay * 2, p.max_backoff_s)
        except (asyncio.CancelledError, GeneratorExit):
            st.cancelled += 1
            raise
        finally:
            st.busy_s += self.clock.now() - t0


class BaseASR(Engine):
    """ASR template: implement `_transcribe(audio)` yielding partials then one final Transcript."""

    engine_name = "asr"
    sample_rate = 16000

    def transcribe(self, audio: AudioChunk) -> AsyncIterator[Transcript]:
        self.stats.audio_in_s += audio.duration
        return self.guarded(lambda: self._transcribe(audio), what="transcribe")

    def _transcribe(self, audio: AudioChunk) -> AsyncIterator[Transcript]:
        raise NotImplementedError

    async def prepare(self) -> None:
        """One throw-away transcription (a second of faint noise) so the first real one is warm."""
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(self.sample_rate) * 30).astype(np.int16)
        async for _ in self._transcribe(AudioChunk(noise, self.sample_rate)):
            pass

    async def aclose(self) -> None:
        return None


class BaseTTS(Engine):
    """TTS template: implement `_synthesize(text)` yielding SpeechChunks at `self.sample_rate`."""

    engine_name = "tts"
    sample_rate = 24000

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        if not text.strip():
            return
        # aclosing: closing this stream closes the engine's stream at once, not at garbage collection
        gen = cast("AsyncGenerator[SpeechChunk, None]", self.guarded(lambda: self._synthesize(text), what="synthesize"))
        async with contextlib.aclosing(gen) as stream:
            async for chunk in stream:
                self.stats.audio_out_s += chunk.audio.duration
                yield chunk

    def _synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        raise NotImplementedError

    async def prepare(self) -> None:
        """One throw-away synthesis so the first real sentence is warm."""
        async for _ in self._synthesize("Hello."):
            pass

    async def aclose(self) -> None:
        return None


class BaseLLM(Engine):
    """LLM template: implement `_chat(messages, tools)` streaming TextDelta / ToolCall."""

    engine_name = "llm"

    def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[TextDelta | ToolCall]:
        return self.guarded(lambda: self._chat(messages, tools), what="chat")

    def _chat(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AsyncIterator[TextDelta | ToolCall]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None
