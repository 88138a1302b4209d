"""Hot-path values that flow between the session's stages (frozen, slotted dataclasses).

Speech, intent tags, ControlChunk, VideoChunk and friends are defined in `flowact.types` (the
generator and its control builder must be usable without `agent`) and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowact.types import (
    AgentState,
    AudioChunk,
    ControlChunk,
    ControlEvent,
    FloatArray,
    IntentTag,
    PhonemeTiming,
    SpeechChunk,
    VideoChunk,
    VideoFrame,
    WordTiming,
)

__all__ = [
    "AgentState",
    "AudioChunk",
    "ControlChunk",
    "ControlEvent",
    "FloatArray",
    "IntentTag",
    "PhonemeTiming",
    "SpeechChunk",
    "TextDelta",
    "ToolCall",
    "Transcript",
    "VadEvent",
    "VideoChunk",
    "VideoFrame",
    "WordTiming",
]


@dataclass(frozen=True, slots=True)
class VadEvent:
    """Voice-activity edge: `speaking=True` at onset (barge-in trigger), False at end of turn; with
    `pause`, a pause inside the turn (see `agent.endpointing`: early transcription), not an edge; with
    `resumed`, the voice went on after such a pause (its early transcript is stale), not an onset."""

    speaking: bool
    t: float
    audio: AudioChunk | None = None  # the whole utterance on end of turn
    last_voiced_t: float | None = None  # end of turn: end of the user's last voiced frame (same clock as t)
    pause: bool = False  # speaking=True: not an onset but a pause (audio so far, for early ASR)
    resumed: bool = False  # speaking=True: not an onset but the voice going on after a pause event


@dataclass(frozen=True, slots=True)
class Transcript:
    """ASR output; `final=False` for partial results of a long utterance."""

    text: str
    final: bool
    t: float = 0.0
    language: str = "en"


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed LLM text (may split words or tags anywhere)."""

    text: str
    turn: int = 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call requested by the LLM (arguments as a JSON string)."""

    name: str
    arguments: str
    call_id: str = ""
