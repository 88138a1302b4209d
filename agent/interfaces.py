"""Protocols every engine, transport and channel implements.

Streams are async iterators (call `aclose()` on early exit). Engines do their blocking work in
threads; base classes in `agent.engine` own retries, timeouts, metrics and error mapping.

Optional capabilities are declared here as Protocols (`Startable`, `Warmable`, `Preparable`,
`SessionBound`, `ReplyPaced`, `SessionHooks`, `EventPublisher`, `Interruptible`) and tested with
`isinstance`, never found by `getattr`. Observers of a session subclass `SessionObserver` and override
the callbacks they need.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agent.commands import Command
from agent.frames import (
    AgentState,
    AudioChunk,
    ControlChunk,
    SpeechChunk,
    TextDelta,
    ToolCall,
    Transcript,
    VadEvent,
    VideoChunk,
)
from flowact.api import Generator

__all__ = [
    "ASR",
    "LLM",
    "TTS",
    "VAD",
    "AudioInput",
    "ChatMessage",
    "ControlChannel",
    "EventPublisher",
    "Generator",
    "Interruptible",
    "Preparable",
    "ReplyPaced",
    "SessionBound",
    "SessionHooks",
    "SessionObserver",
    "SessionView",
    "Served",
    "Sink",
    "Startable",
    "TextInput",
    "ToolSpec",
    "Warmable",
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


# --- optional capabilities ----------------------------------------------------------------------
@runtime_checkable
class Startable(Protocol):
    """An engine or channel that loads models / connects before the session listens."""

    async def start(self) -> None: ...


@runtime_checkable
class Warmable(Protocol):
    """An LLM that can prime its prompt cache (system prompt, tools) before the first turn.
    `cache_behind`: its latest reply was said as written (a tool's line, the knowledge base's
    sentences), so its cache does not hold the conversation: prime it while the reply plays."""

    cache_behind: bool

    async def warmup(self, messages: Sequence[ChatMessage]) -> None: ...


@runtime_checkable
class Preparable(Protocol):
    """An engine that runs one throw-away call at start, so the first real turn is not cold."""

    async def prepare(self) -> None: ...


@runtime_checkable
class SessionView(Protocol):
    """What an input may ask of the session it feeds."""

    async def wait_idle(self, timeout: float | None = None) -> None: ...  # noqa: ASYNC109

    async def wait_reply(self, after_turn: int, timeout: float | None = None) -> None: ...  # noqa: ASYNC109

    @property
    def turn_count(self) -> int: ...


@runtime_checkable
class SessionBound(Protocol):
    """An input that paces itself on the session (a scripted user waits for the agent's reply)."""

    def bind_session(self, session: SessionView) -> None: ...


@runtime_checkable
class ReplyPaced(Protocol):
    """A text input that sends its next line only after the agent finished the previous reply."""

    wait_for_reply: bool


@runtime_checkable
class SessionHooks(Protocol):
    """A sink that shows the conversation (preview page, LiveKit room): state, captions, metrics."""

    async def on_state(self, state: AgentState) -> None: ...

    async def on_transcript(self, role: str, text: str, final: bool) -> None: ...

    async def on_metrics(self, payload: Mapping[str, Any]) -> None: ...


@runtime_checkable
class EventPublisher(Protocol):
    """A sink that also tells its viewers about some session events (a LiveKit room gets `handoff`
    as data). `event_kinds` names them; the session's fan-out calls `publish_event` for those only."""

    @property
    def event_kinds(self) -> frozenset[str]: ...

    async def publish_event(self, kind: str, payload: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Interruptible(Protocol):
    """A sink that queues media ahead of playout (LiveKit room): when speech is cut (barge-in,
    interrupt) it drops what it has queued, so the listener hears silence now, not after the queue.
    Called on the event loop; must not block. Audio and video queued together are dropped together."""

    def drop_queued_media(self) -> None: ...


@runtime_checkable
class Served(Protocol):
    """A sink people open in a browser (the preview page): `url` once started."""

    url: str


class SessionObserver:
    """Base of in-process observers of a session: override what you need (all default to nothing).

    Callbacks run on the event loop and must not block; an exception is logged, never raised.
    """

    def on_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        """A session event: transcript, state, turn, interrupt, error, command, ..."""

    def on_state(self, state: AgentState) -> None:
        """The agent's state changed."""

    def on_control(self, chunk: ControlChunk) -> None:
        """A control chunk was built for the media timeline."""

    def on_video(self, chunk: VideoChunk) -> None:
        """A video chunk (frames + audio) was written to the sink."""

    def on_metrics(self, snapshot: Mapping[str, Any]) -> None:
        """The once-a-second metrics snapshot."""
