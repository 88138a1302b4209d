"""Hot-path values that flow between the session's stages (frozen, slotted dataclasses).

ControlChunk, VideoChunk and friends are defined in `flowact.types` (the generator must be usable
without `agent`) and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flowact.types import (
    AgentState,
    ControlChunk,
    ControlEvent,
    FloatArray,
    Int16Array,
    VideoChunk,
    VideoFrame,
)

__all__ = [
    "AgentState",
    "AudioChunk",
    "ControlChunk",
    "ControlEvent",
    "FloatArray",
    "IntentTag",
    "Interrupt",
    "PhonemeTiming",
    "SpeechChunk",
    "SpeechEnd",
    "TextDelta",
    "ToolCall",
    "Transcript",
    "VadEvent",
    "VideoChunk",
    "VideoFrame",
    "WordTiming",
]


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Mono int16 PCM with its presentation time (seconds, on the session's media timeline)."""

    samples: Int16Array
    sample_rate: int
    pts: float = 0.0

    def __post_init__(self) -> None:
        if self.samples.ndim != 1 or self.samples.dtype != np.int16:
            raise ValueError("AudioChunk.samples must be a 1-D int16 array")
        if self.sample_rate <= 0:
            raise ValueError("AudioChunk.sample_rate must be > 0")

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def as_float(self) -> FloatArray:
        return (self.samples.astype(np.float32) / 32768.0).astype(np.float32)


@dataclass(frozen=True, slots=True)
class VadEvent:
    """Voice-activity edge: `speaking=True` at onset (barge-in trigger), False at end of turn."""

    speaking: bool
    t: float
    audio: AudioChunk | None = None  # the whole utterance on end of turn
    last_voiced_t: float | None = None  # end of turn: end of the user's last voiced frame (same clock as t)


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


@dataclass(frozen=True, slots=True)
class IntentTag:
    """An expression/gesture intent, anchored to a character offset in the spoken text.

    `time` is filled in (seconds from the start of the utterance) once TTS timings are known.
    """

    name: str
    intensity: float = 1.0
    char_offset: int = 0
    time: float | None = None
    source: str = "llm"  # llm | tool | mqtt


@dataclass(frozen=True, slots=True)
class PhonemeTiming:
    """One phoneme (IPA or engine symbol) with start and duration in seconds from chunk start."""

    phoneme: str
    start: float
    duration: float


@dataclass(frozen=True, slots=True)
class WordTiming:
    word: str
    start: float
    duration: float
    char_offset: int = 0


@dataclass(frozen=True, slots=True)
class SpeechChunk:
    """Synthesized speech for one sentence (or part), with the timings the engine gave."""

    audio: AudioChunk
    text: str
    turn: int = 0
    phonemes: tuple[PhonemeTiming, ...] = ()
    words: tuple[WordTiming, ...] = ()
    tags: tuple[IntentTag, ...] = ()
    text_offset: int = 0  # offset of `text` within the turn's clean text
    extras: dict[str, float] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Marks the end of a turn's speech stream."""

    turn: int


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Barge-in: everything queued for `turn` is void; the face returns to listening."""

    turn: int
    t: float
    reason: str = "barge-in"
