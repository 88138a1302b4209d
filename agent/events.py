"""Typed events that join the session's stages.

Inputs (VAD, ASR, typed text, control commands) and the media loop report what happened as these
values; the conversation stage (`agent.conversation`) is the only place that turns them into turn
state. Handlers run synchronously on the event loop, in order, so a stage never re-enters another.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.frames import AudioChunk

__all__ = [
    "InterruptRequested",
    "MediaEvent",
    "SayRequested",
    "SessionEvent",
    "SpeechDrained",
    "SpeechStarted",
    "SpeechWritten",
    "UserMessage",
    "UserSpeechEnded",
    "UserSpeechResumed",
    "UserSpeechStarted",
]


@dataclass(frozen=True, slots=True)
class UserSpeechStarted:
    """Voice onset of the user (may barge in)."""

    t: float


@dataclass(frozen=True, slots=True)
class UserSpeechResumed:
    """The user's voice went on after a pause inside the turn (not an onset): what was begun on the
    pause (an early transcript, an early answer) is for words the user had not finished."""

    t: float


@dataclass(frozen=True, slots=True)
class UserSpeechEnded:
    """End of the user's turn as the endpointer judged it; `audio` goes to ASR.

    `last_voiced_t` is the acoustic end of speech (the last voiced frame) when the VAD knows it,
    on the session clock; `t` is when the end was decided.
    """

    t: float
    audio: AudioChunk | None = None
    last_voiced_t: float | None = None


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A final transcript or a typed line. `t_end` is when the user stopped speaking or typed it."""

    text: str
    t_end: float
    t_final: float | None = None  # when the final transcript was ready (spoken input)
    last_word: float | None = None  # acoustic end of the user's speech, when known
    typed: bool = False


@dataclass(frozen=True, slots=True)
class SayRequested:
    """Speak a text without the LLM (greeting, `say` command)."""

    text: str
    interrupt: bool = False


@dataclass(frozen=True, slots=True)
class InterruptRequested:
    reason: str = "interrupt"


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The media loop built the first chunk of a run of speech; `run` numbers these runs."""

    run: int


@dataclass(frozen=True, slots=True)
class SpeechDrained:
    """The media loop built a chunk without speech after run `run`: the queued speech ran out."""

    run: int


@dataclass(frozen=True, slots=True)
class SpeechWritten:
    """An unmuted chunk of speech run `run` reached the sink at `t`: the run's first chunk, then
    each next one until the first with audible audio (`audible`)."""

    run: int
    t: float
    audible: bool


MediaEvent = SpeechStarted | SpeechDrained | SpeechWritten
SessionEvent = (
    UserSpeechStarted | UserSpeechResumed | UserSpeechEnded | UserMessage | SayRequested | InterruptRequested
    | MediaEvent
)
