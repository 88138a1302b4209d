"""Protocols every engine, transport and channel implements.

Streams are async iterators (call `aclose()` on early exit). Engines do their blocking work in
threads; base classes in `agent.engine` own retries, timeouts, metrics and error mapping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agent.commands import Command
from agent.frames import AudioChunk, SpeechChunk, TextDelta, ToolCall, Transcript, VadEvent, VideoChunk
from flowact.api import Generator

__all__ = [
    "ASR",
    "LLM",
    "TTS",
    "VAD",
    "AudioInput",
    "ChatMessage",
    "ControlChannel",
    "Generator",
    "Sink",
    "TextInput",
    "ToolSpec",
]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # system | user | assistant | tool
    content: str
    name: str = ""
    tool_call_id: str = ""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the LLM may call (JSON-schema parameters)."""

    name: str
    description: str
    parameters: dict[str, Any]


@runtime_checkable
class VAD(Protocol):
    """Voice activity detection with endpointing: onset events (barge-in) and end-of-turn events."""

    sample_rate: int

    async def feed(self, chunk: AudioChunk) -> Sequence[VadEvent]: ...

    def reset(self) -> None: ...


@runtime_checkable
class ASR(Protocol):
    """Speech -> text. Yields zero or more partial transcripts, then exactly one final."""

    sample_rate: int

    def transcribe(self, audio: AudioChunk) -> AsyncIterator[Transcript]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LLM(Protocol):
    """Streaming chat: text deltas (with inline intent tags) and tool calls."""

    def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[TextDelta | ToolCall]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class TTS(Protocol):
    """Text (one sentence, tags already stripped) -> speech chunks with timings where available."""

    sample_rate: int

    def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Where synced audio + video goes: an MP4 file, a LiveKit room, a preview page."""

    async def start(self, *, width: int, height: int, fps: int, sample_rate: int) -> None: ...

    async def write(self, chunk: VideoChunk) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AudioInput(Protocol):
    """The user's microphone (room track, WAV file, ...) as 16 kHz mono chunks."""

    def audio(self) -> AsyncIterator[AudioChunk]: ...


@runtime_checkable
class TextInput(Protocol):
    """Typed user messages (stdin, room chat, preview page)."""

    def text(self) -> AsyncIterator[str]: ...


@runtime_checkable
class ControlChannel(Protocol):
    """External control in (say, emotion, gesture, interrupt, state) and telemetry/events out."""

    def commands(self) -> AsyncIterator[Command]: ...

    async def publish_event(self, kind: str, payload: dict[str, Any]) -> None: ...

    async def publish_telemetry(self, payload: dict[str, Any]) -> None: ...

    async def aclose(self) -> None: ...
