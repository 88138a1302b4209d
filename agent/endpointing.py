"""End-of-turn detection shared by every VAD: per-frame voiced/unvoiced -> onset and end events.

Onset after `min_speech_ms` of voiced frames (the barge-in trigger). The end of a turn carries the
utterance audio and `last_voiced_t`, the end of the last voiced frame (the user's last word), on the
same clock as `VadEvent.t`. The audio starts `pre_roll_ms` before the first voiced frame of the run
that made the onset (not before the onset decision, which comes `min_speech_ms` later): a soft first
word the VAD scores unvoiced ("I" in "I don't know") or a word before a short gap stays in, and
Whisper hears a little silence before the speech, as it was trained to.

Two end-of-turn policies:
- silence (default): the turn ends after `end_silence_ms` of unvoiced frames;
- a `TurnCompletion` model (e.g. Smart Turn): after a short pause (`pause_ms`) the utterance is
  judged in a worker thread; a complete turn ends as soon as the verdict is in, an incomplete one
  after `max_silence_ms`. If the model fails, `end_silence_ms` applies to that turn.
  When the words so far read as a finished turn (`words_complete()`: the early transcript, see
  `agent.text.reads_finished`), an incomplete verdict waits only `text_silence_ms` (Smart Turn read
  "Thank you. That is all." in a synthetic voice as unfinished and waited 1.5 s in 4 of 6 sessions).
  The feed never waits for the model unless the verdict is still out `verdict_wait_ms` after
  the pause (audio arriving faster than real time): then `push` awaits it (without blocking the
  event loop), so decisions do not depend on how fast the audio comes.

Early transcription: with `early_ms`, `early_ms` of silence after a voiced frame (once per pause)
yield a pause event (`VadEvent(speaking=True, pause=True)`) carrying the utterance so far and its
`last_voiced_t`: the ASR can start on it while the end of turn is still being decided. The end
event that follows with the same `last_voiced_t` carries the same speech (plus silence); a different
one means the user went on. A voiced frame after a pause event yields a resume event
(`VadEvent(speaking=True, resumed=True)`, not an onset) at once, so whatever was begun on that pause
(a transcript, a held answer) is dropped then, not only at the next pause or the end.

Utterances are capped at `max_utterance_s`. No I/O, bounded memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.errors import InputError
from agent.frames import AudioChunk, VadEvent
from flowact.types import Int16Array

__all__ = ["CompletionPolicy", "EndpointedVAD", "Endpointer", "EndpointingConfig", "FrameBuffer", "TurnCompletion"]

log = logging.getLogger("agent.endpointing")


class FrameBuffer:
    """Cuts a stream of audio chunks into fixed analysis frames; a remainder waits for the next chunk.

    Every VAD feeds its chunks through one of these: the rate is checked (a clear `InputError`, not
    a wrong decision) and the frames come out as rows of an (n, frame_samples) int16 array.
    """

    def __init__(self, *, sample_rate: int, frame_samples: int, name: str) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self.name = name
        self._rest = np.zeros(0, np.int16)

    def frames(self, chunk: AudioChunk) -> np.ndarray:
        if chunk.sample_rate != self.sample_rate:
            raise InputError(
                f"vad: {self.name} expects {self.sample_rate} Hz audio, got {chunk.sample_rate} Hz "
                "(feed it audio at session.input_sample_rate; the session resamples its inputs)"
            )
        data = np.concatenate([self._rest, chunk.samples])
        n = len(data) // self.frame_samples
        self._rest = data[n * self.frame_samples :]
        return data[: n * self.frame_samples].reshape(n, self.frame_samples)

    def reset(self) -> None:
        self._rest = np.zeros(0, np.int16)


class EndpointingConfig(Protocol):
    min_speech_ms: int
    end_silence_ms: int
    pre_roll_ms: int
    max_utterance_s: float


class TurnCompletion(Protocol):
    """An end-of-turn model: probability (0..1) that `audio` (the utterance so far, ending in a short
    pause) is a finished turn. Blocking; the endpointer calls it in its own worker thread."""

    window_s: float  # only this much of the utterance's end is passed

    def __call__(self, audio: Int16Array, sample_rate: int) -> float: ...

    def warmup(self) -> None:
        """One call on silence so the first real call is not the slow one (blocking)."""


@dataclass(frozen=True, slots=True)
class CompletionPolicy:
    """End the turn on a model's verdict instead of a fixed silence (see the module doc)."""

    model: TurnCompletion
    pause_ms: int = 200  # silence before the model is asked
    max_silence_ms: int = 2500  # an incomplete turn still ends after this much silence
    threshold: float = 0.5  # probability at or above which the turn is complete
    verdict_wait_ms: int = 300  # after pause_ms + this, the feed waits for the verdict
    text_silence_ms: int | None = 600  # an incomplete verdict on words that read as finished waits this long


class Endpointer:
    def __init__(
        self,
        *,
        sample_rate: int,
        frame_samples: int,
        min_speech_ms: int = 120,
        end_silence_ms: int = 600,
        pre_roll_ms: int = 200,
        max_utterance_s: float = 30.0,
        policy: CompletionPolicy | None = None,
        voiced_lag_s: float = 0.0,
        early_ms: int | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_s = frame_samples / sample_rate
        self.min_speech = max(1, round(min_speech_ms / 1000 / self.frame_s))
        self.end_silence = self._frames(end_silence_ms)
        self.max_frames = int(max_utterance_s / self.frame_s)
        self.policy = policy
        self.completion = policy.model if policy else None
        self.pause = self._frames(policy.pause_ms if policy else 0)
        self.max_silence = max(self.pause + 1, self._frames(policy.max_silence_ms if policy else 0))
        self.wait_after = self.pause + self._frames(policy.verdict_wait_ms if policy else 0)
        self.threshold = policy.threshold if policy else 1.0
        text_ms = policy.text_silence_ms if policy else None
        self.text_silence = self._frames(text_ms) if text_ms else 0  # 0: the words are not consulted
        self._words_complete = False  # this pause's words read as a finished turn
        self.voiced_lag_s = voiced_lag_s  # the voiced decision's delay (e.g. smoothing), taken off last_voiced_t
        self.early = self._frames(early_ms) if early_ms else 0  # silence frames before a pause event (0: none)
        # the onset's own voiced run plus `pre_roll_ms` before it
        self._pre: deque[np.ndarray] = deque(maxlen=self.min_speech + round(pre_roll_ms / 1000 / self.frame_s))
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[float] | None = None
        self.last_probability: float | None = None  # verdict of the last check (for logs and benches)
        self.last_end_reason = ""  # silence | complete | incomplete | words_complete | max_utterance | model_error
        self._model_failed = False
        self._waited = False
        self.reset()

    def _frames(self, ms: float) -> int:
        return max(1, round(ms / 1000 / self.frame_s))

    @classmethod
    def from_config(
        cls, config: EndpointingConfig, *, sample_rate: int, frame_samples: int,
        policy: CompletionPolicy | None = None, voiced_lag_s: float = 0.0, early_ms: int | None = None,
    ) -> Endpointer:
        """Build from a VAD plugin's config (every VAD config carries these four fields)."""
        return cls(
            sample_rate=sample_rate, frame_samples=frame_samples, min_speech_ms=config.min_speech_ms,
            end_silence_ms=config.end_silence_ms, pre_roll_ms=config.pre_roll_ms,
            max_utterance_s=config.max_utterance_s, policy=policy, voiced_lag_s=voiced_lag_s, early_ms=early_ms,
        )

    def reset(self) -> None:
        self.speaking = False
        self._voiced_run = 0
        self._silent_run = 0
        self._utt: list[np.ndarray] = []
        self._start = 0.0
        self._last_voiced = 0.0
        self.t = 0.0
        self._pre.clear()
        self._drop_check()

    def warmup(self) -> None:
        """Warm the end-of-turn model, if any (blocking: run it in a thread before listening)."""
        if self.completion is not None:
            self.completion.warmup()

    def close(self) -> None:
        """Stop the model's worker thread (a running call finishes on its own)."""
        self._drop_check()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def waiting_for_verdict(self) -> bool:
        """A model check is out and the pause has grown past `verdict_wait_ms`: `push` awaits it."""
        return self._pending is not None and not self._pending.done() and self._silent_run >= self.wait_after

    async def push(self, frame: np.ndarray, voiced: bool) -> VadEvent | None:
        """`update`, first awaiting an overdue model verdict (see the module doc). A model that hangs
        is awaited once, at most until `max_silence_ms` would end the turn anyway."""
        if self.waiting_for_verdict and not self._waited:
            assert self._pending is not None
            self._waited = True
            timeout = (self.max_silence - self._silent_run) * self.frame_s
            await asyncio.wait({asyncio.wrap_future(self._pending)}, timeout=timeout)
        return self.update(frame, voiced)

    def update(self, frame: np.ndarray, voiced: bool) -> VadEvent | None:
        """Feed one analysis frame (int16); returns an event on an edge. Never blocks."""
        self.t += self.frame_s
        if self.speaking:
            self._utt.append(frame)
            resumed = False
            if voiced:
                resumed = bool(self.early) and self._silent_run >= self.early  # a pause event was out
                self._silent_run = 0
                self._words_complete = False
                self._last_voiced = self.t
                self._drop_check()
            else:
                self._silent_run += 1
            reason = self._end_reason()
            if reason:
                return self._end(reason)
            if resumed:
                return VadEvent(speaking=True, t=self.t, resumed=True)
            if self.early and self._silent_run == self.early:
                audio, last = self._audio(), self._last_word()
                return VadEvent(speaking=True, t=self.t, audio=audio, last_voiced_t=last, pause=True)
            return None
        self._pre.append(frame)
        self._voiced_run = self._voiced_run + 1 if voiced else 0
        if self._voiced_run >= self.min_speech:
            self.speaking = True
            self._silent_run = 0
            self._utt = list(self._pre)
            self._start = self.t - len(self._utt) * self.frame_s
            self._last_voiced = self.t
            self._pre.clear()
            self.last_probability = None
            return VadEvent(speaking=True, t=self.t)
        return None

    def _end_reason(self) -> str:
        if len(self._utt) >= self.max_frames:
            return "max_utterance"
        if self.completion is None:
            return "silence" if self._silent_run >= self.end_silence else ""
        if self._silent_run == self.pause:
            self._submit_check()
        if self._silent_run >= self.max_silence:
            return "incomplete" if self.last_probability is not None else "silence"
        if self._words_complete and self.text_silence and self._silent_run >= max(self.pause, self.text_silence):
            return "words_complete"
        fut = self._pending
        if fut is not None and fut.done():
            try:
                p = fut.result()
            except Exception as e:  # a broken model must not end the session: fall back to silence
                log.warning("end-of-turn model failed (%s); plain silence for this turn", e)
                self._pending = None
                self.last_probability = None
                self._model_failed = True
                return ""
            self.last_probability = p
            if p >= self.threshold:
                self._pending = None
                return "complete"
        if self._model_failed and self._silent_run >= self.end_silence:
            return "model_error"
        return ""

    def words_complete(self) -> None:
        """The words of the current pause read as a finished turn: an incomplete verdict waits only
        `text_silence_ms` (a voiced frame clears this)."""
        if self.speaking and self._silent_run > 0:
            self._words_complete = True

    def _submit_check(self) -> None:
        assert self.completion is not None
        self._drop_check()
        n_frames = max(1, int(self.completion.window_s / self.frame_s) + 1)
        audio = np.concatenate(self._utt[-n_frames:])
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turn-model")
        self._pending = self._executor.submit(self.completion, audio, self.sample_rate)
        self._waited = False

    def _drop_check(self) -> None:
        if self._pending is not None:
            self._pending.cancel()  # too late for a running call: its result is ignored
        self._pending = None
        self._model_failed = False

    def _end(self, reason: str) -> VadEvent:
        self.speaking = False
        self._words_complete = False
        self._voiced_run = 0
        self.last_end_reason = reason
        self._drop_check()
        audio = self._audio()
        self._utt = []
        return VadEvent(speaking=False, t=self.t, audio=audio, last_voiced_t=self._last_word())

    def _audio(self) -> AudioChunk:
        """The utterance so far (pre-roll included)."""
        return AudioChunk(np.concatenate(self._utt), self.sample_rate, pts=self._start)

    def _last_word(self) -> float:
        """End of the last voiced frame, less the voiced decision's lag."""
        return max(self._start, self._last_voiced - self.voiced_lag_s)


class EndpointedVAD:
    """What every VAD that decides its turns with an `Endpointer` shares: the end-of-turn model's
    warm-up off the event loop, the early transcript's hint, and closing the endpointer's worker."""

    endpointer: Endpointer

    async def start(self) -> None:
        await asyncio.to_thread(self.endpointer.warmup)

    def words_complete(self) -> None:
        """The early transcript reads as a finished turn (see the module's docstring)."""
        self.endpointer.words_complete()

    async def aclose(self) -> None:
        self.endpointer.close()
