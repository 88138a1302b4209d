"""End-of-turn detection shared by every VAD: per-frame voiced/unvoiced -> onset and end events.

Onset after `min_speech_ms` of voiced frames (the barge-in trigger); end of turn after
`end_silence_ms` of unvoiced frames, carrying the utterance audio (with a pre-roll so the first
syllable is not clipped). Utterances are capped at `max_utterance_s`. No I/O, bounded memory.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from agent.frames import AudioChunk, VadEvent

__all__ = ["Endpointer", "EndpointingConfig"]


class EndpointingConfig(Protocol):
    min_speech_ms: int
    end_silence_ms: int
    pre_roll_ms: int
    max_utterance_s: float


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
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_s = frame_samples / sample_rate
        self.min_speech = max(1, round(min_speech_ms / 1000 / self.frame_s))
        self.end_silence = max(1, round(end_silence_ms / 1000 / self.frame_s))
        self.max_frames = int(max_utterance_s / self.frame_s)
        self._pre: deque[np.ndarray] = deque(maxlen=max(1, round(pre_roll_ms / 1000 / self.frame_s)))
        self.reset()

    @classmethod
    def from_config(cls, config: EndpointingConfig, *, sample_rate: int, frame_samples: int) -> Endpointer:
        """Build from a VAD plugin's config (every VAD config carries these four fields)."""
        return cls(
            sample_rate=sample_rate, frame_samples=frame_samples, min_speech_ms=config.min_speech_ms,
            end_silence_ms=config.end_silence_ms, pre_roll_ms=config.pre_roll_ms,
            max_utterance_s=config.max_utterance_s,
        )

    def reset(self) -> None:
        self.speaking = False
        self._voiced_run = 0
        self._silent_run = 0
        self._utt: list[np.ndarray] = []
        self._start = 0.0
        self.t = 0.0
        self._pre.clear()

    def update(self, frame: np.ndarray, voiced: bool) -> VadEvent | None:
        """Feed one analysis frame (int16); returns an event on an edge."""
        self.t += self.frame_s
        if self.speaking:
            self._utt.append(frame)
            self._silent_run = 0 if voiced else self._silent_run + 1
            if self._silent_run >= self.end_silence or len(self._utt) >= self.max_frames:
                self.speaking = False
                self._voiced_run = 0
                audio = AudioChunk(np.concatenate(self._utt), self.sample_rate, pts=self._start)
                self._utt = []
                return VadEvent(speaking=False, t=self.t, audio=audio)
            return None
        self._pre.append(frame)
        self._voiced_run = self._voiced_run + 1 if voiced else 0
        if self._voiced_run >= self.min_speech:
            self.speaking = True
            self._silent_run = 0
            self._utt = list(self._pre)
            self._start = self.t - len(self._utt) * self.frame_s
            self._pre.clear()
            return VadEvent(speaking=True, t=self.t)
        return None
