"""SpokenScriptInput: a scripted conversation spoken by a synthetic user voice, like a live mic.

Each user line is synthesized with a TTS plugin (a different voice from the agent's), played into
the session in real time, then the input keeps feeding silence until the agent has answered, as a
polite person would. Used by `flowact-agent demo` and end-to-end tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import ConfigError, InputError
from agent.frames import AudioChunk
from agent.interfaces import SessionView
from agent.registry import load_plugin, plugin_config_class
from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.clock import Clock, Pacer, RealClock
from plugins.input_local.inputs import load_script

__all__ = ["SpokenScriptInput", "SpokenScriptInputConfig"]


class SpokenScriptInputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="YAML list of user lines: strings or {text: ..., pause_s: ...}")
    voice: dict[str, Any] = Field(
        default_factory=lambda: {"type": "piper", "length_scale": 1.1, "timeout_s": 300.0},
        description="TTS plugin section for the user's voice (a generous timeout: nobody waits on it, and a "
        "busy machine must slow the script down, not end it)",
    )
    chunk_ms: int = Field(20, ge=5, le=200)
    reply_timeout_s: float = Field(60.0, gt=0)


class SpokenScriptInput:
    Config = SpokenScriptInputConfig

    def __init__(self, config: SpokenScriptInputConfig, *, sample_rate: int = 16000, clock: Clock | None = None):
        self.config = config
        self.sample_rate = sample_rate
        self.clock = clock or RealClock()
        self.lines = load_script(config.path)
        voice = dict(config.voice)
        name = str(voice.pop("type", ""))
        cls = load_plugin("tts", name)
        try:
            self._tts = cls(plugin_config_class(cls).model_validate(voice), sample_rate=sample_rate)
        except ValidationError as e:
            raise ConfigError(f"input.voice: {e}") from e
        self._session: SessionView | None = None

    def bind_session(self, session: SessionView) -> None:
        self._session = session

    async def _synthesize(self, text: str) -> np.ndarray:
        parts: list[np.ndarray] = []
        async for speech in self._tts.synthesize(text):
            pcm = int16_to_float(speech.audio.samples)
            parts.append(resample(pcm, speech.audio.sample_rate, self.sample_rate))
        if not parts:
            raise InputError(f"the user voice produced no audio for {text!r}")
        return float_to_int16(np.concatenate(parts))

    async def audio(self) -> AsyncIterator[AudioChunk]:
        n = self.sample_rate * self.config.chunk_ms // 1000
        self._pacer = Pacer(self.clock, n / self.sample_rate)  # every block is n samples long
        self._sent = 0
        for text, pause in self.lines:
            speech = await self._synthesize(text)
            async for c in self._silence(pause):
                yield c
            # a polite user lets the agent finish (a greeting, a late answer) before speaking
            async for c in self._silence_until(self._wait_idle(), "spoken-script-idle"):
                yield c
            before = self._session.turn_count if self._session else 0
            for start in range(0, len(speech), n):
                block = speech[start : start + n]
                if len(block) < n:
                    block = np.concatenate([block, np.zeros(n - len(block), np.int16)])
                yield await self._paced(block)
            # keep the mic open (silence) until the agent has answered this line
            async for c in self._silence_until(self._wait_reply(before), "spoken-script-wait"):
                yield c
        async for c in self._silence(0.5):
            yield c
        await self._tts.aclose()

    async def _silence(self, seconds: float) -> AsyncIterator[AudioChunk]:
        n = self.sample_rate * self.config.chunk_ms // 1000
        for _ in range(int(seconds * 1000 / self.config.chunk_ms)):
            yield await self._paced(np.zeros(n, np.int16))

    async def _paced(self, block: np.ndarray) -> AudioChunk:
        await self._pacer.wait()
        chunk = AudioChunk(block, self.sample_rate, pts=self._sent / self.sample_rate)
        self._sent += len(block)
        return chunk

    async def _silence_until(self, wait: Coroutine[Any, Any, None], name: str) -> AsyncIterator[AudioChunk]:
        """Paced silence (the mic stays open) until `wait` ends."""
        n = self.sample_rate * self.config.chunk_ms // 1000
        waiter = asyncio.create_task(wait, name=name)
        try:
            while not waiter.done():
                yield await self._paced(np.zeros(n, np.int16))
        finally:
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)

    async def _wait_idle(self) -> None:
        if self._session is not None:
            with contextlib.suppress(TimeoutError):  # never idle in time: the script goes on
                await self._session.wait_idle(timeout=self.config.reply_timeout_s)

    async def _wait_reply(self, turns_before: int) -> None:
        if self._session is None:
            await self.clock.sleep(5.0)
            return
        with contextlib.suppress(TimeoutError):  # no reply in time: the script goes on
            await self._session.wait_reply(turns_before, timeout=self.config.reply_timeout_s)
