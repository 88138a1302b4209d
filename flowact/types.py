"""The generator's contract types: speech and intent tags in, control chunks, video chunks out.

These live in `flowact` (not `agent`) so the generator library is usable on its own; `agent.frames`
re-exports them. `flowact.control.ControlBuilder` turns `SpeechChunk`s and `IntentTag`s into
`ControlChunk`s. Hot-path values are frozen, slotted dataclasses holding numpy arrays; the pydantic
wire form (JSON + JSON schema) is in `flowact.wire`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

CONTROL_VERSION = 1
"""Version of the ControlChunk format. Bump on any incompatible change."""

FloatArray = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]

# Oculus/Meta 15-viseme set (documented in flowact.motion.visemes with the phoneme table).
VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)
# Expression channels the renderer understands; intent-tag emotions map onto these.
EXPRESSIONS: tuple[str, ...] = (
    "happy", "sad", "surprised", "concerned", "thinking", "angry",
)
N_MELS = 40
"""Log-mel bands per video frame in ControlChunk.mel."""


class AgentState(enum.StrEnum):
    """What the agent is doing; drives idle/listening/thinking/speaking behaviour."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """A one-shot gesture/event (nod, blink, wink, ...) at a frame offset inside a chunk."""

    frame: int
    name: str
    intensity: float = 1.0


@dataclass(frozen=True, slots=True)
class ControlChunk:
    """Everything the generator needs for `n_frames` video frames starting at `pts` (seconds).

    Per-frame arrays have `n_frames` rows. `audio` is the exact mono int16 slice (at `sample_rate`)
    that must play with these frames: `n_frames * sample_rate / fps` samples.
    """

    index: int
    pts: float
    fps: int
    n_frames: int
    sample_rate: int
    audio: Int16Array  # (n_samples,)
    mel: FloatArray  # (n_frames, N_MELS) log-mel
    energy: FloatArray  # (n_frames,) RMS energy 0..1
    visemes: FloatArray  # (n_frames, len(VISEMES)) weights 0..1
    expressions: FloatArray  # (n_frames, len(EXPRESSIONS)) weights 0..1
    head_pose: FloatArray  # (n_frames, 3) yaw, pitch, roll in degrees
    blink: FloatArray  # (n_frames,) 0 open .. 1 closed
    gaze: FloatArray  # (n_frames, 2) x, y in -1..1 (right, down positive)
    state: AgentState = AgentState.IDLE
    events: tuple[ControlEvent, ...] = ()
    interrupt: bool = False  # first chunk after a barge-in: ease back to listening
    version: int = CONTROL_VERSION

    def __post_init__(self) -> None:
        n = self.n_frames
        if n <= 0 or self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError("ControlChunk needs n_frames, fps and sample_rate > 0")
        shapes = {
            "mel": (self.mel.shape, (n, N_MELS)),
            "energy": (self.energy.shape, (n,)),
            "visemes": (self.visemes.shape, (n, len(VISEMES))),
            "expressions": (self.expressions.shape, (n, len(EXPRESSIONS))),
            "head_pose": (self.head_pose.shape, (n, 3)),
            "blink": (self.blink.shape, (n,)),
            "gaze": (self.gaze.shape, (n, 2)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"ControlChunk.{name} has shape {got}, expected {want}")
        want_samples = round(n * self.sample_rate / self.fps)
        if self.audio.shape != (want_samples,):
            raise ValueError(
                f"ControlChunk.audio has shape {self.audio.shape}, expected ({want_samples},)"
            )

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One RGB frame (H, W, 3) uint8 with its presentation time in seconds."""

    pts: float
    image: UInt8Array
    index: int = 0


@dataclass(frozen=True, slots=True)
class VideoChunk:
    """The frames rendered for one ControlChunk, plus the audio slice that plays with them."""

    index: int
    pts: float
    fps: int
    frames: tuple[VideoFrame, ...]
    audio: Int16Array
    sample_rate: int
    state: AgentState = AgentState.IDLE
    render_ms: float = 0.0


# --- speech and intent: what the control builder consumes ----------------------------------------


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
        from flowact.audio import int16_to_float  # flowact.audio imports this module

        return int16_to_float(self.samples)


@dataclass(frozen=True, slots=True)
class IntentTag:
    """An expression/gesture intent, anchored to a character offset in the spoken text.

    `time` is filled in (seconds from the start of the utterance) once TTS timings are known.
    Names come from the vocabulary in `flowact.control.vocabulary`.
    """

    name: str
    intensity: float = 1.0
    char_offset: int = 0
    time: float | None = None
    source: str = "llm"  # llm | tool | mqtt | command


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
