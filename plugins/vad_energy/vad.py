"""Adaptive energy VAD: speech when frame RMS is `threshold_db` above a tracked noise floor."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agent.frames import AudioChunk, VadEvent

__all__ = ["EnergyVAD", "EnergyVADConfig"]


class EnergyVADConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold_db: float = Field(12.0, gt=0, description="speech must be this far above the noise floor")
    min_level_db: float = Field(-50.0, description="absolute floor below which nothing is speech")
    min_speech_ms: int = Field(120, ge=10)
    end_silence_ms: int = Field(600, ge=50, description="trailing silence that ends the user's turn")
    pre_roll_ms: int = Field(200, ge=0)
    max_utterance_s: float = Field(30.0, gt=1)


class EnergyVAD:
    Config = EnergyVADConfig

    def __init__(self, config: EnergyVADConfig, *, sample_rate: int = 16000) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.frame = sample_rate // 100  # 10 ms analysis frames
        self.reset()

    def reset(self) -> None:
        self._rest = np.zeros(0, np.int16)
        self._noise_db = -60.0
        self._speaking = False
        self._run_speech = 0
        self._run_silence = 0
        self._t = 0.0
        pre = max(1, self.config.pre_roll_ms // 10)
        self._pre: deque[np.ndarray] = deque(maxlen=pre)
        self._utt: list[np.ndarray] = []
        self._utt_start = 0.0

    async def feed(self, chunk: AudioChunk) -> Sequence[VadEvent]:
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(f"EnergyVAD expects {self.sample_rate} Hz audio, got {chunk.sample_rate} Hz")
        data = np.concatenate([self._rest, chunk.samples])
        n = len(data) // self.frame
        self._rest = data[n * self.frame :]
        events: list[VadEvent] = []
        cfg = self.config
        for i in range(n):
            f = data[i * self.frame : (i + 1) * self.frame]
            rms = float(np.sqrt(np.mean((f.astype(np.float32) / 32768.0) ** 2)) + 1e-9)
            db = 20.0 * np.log10(rms)
            voiced = db > max(cfg.min_level_db, self._noise_db + cfg.threshold_db)
            if not voiced:  # track the floor only on non-speech frames
                self._noise_db += (db - self._noise_db) * (0.05 if db > self._noise_db else 0.3)
            self._t += 0.01
            if self._speaking:
                self._utt.append(f)
                self._run_silence = 0 if voiced else self._run_silence + 1
                too_long = len(self._utt) * 0.01 > cfg.max_utterance_s
                if self._run_silence * 10 >= cfg.end_silence_ms or too_long:
                    self._speaking = False
                    self._run_speech = 0
                    audio = AudioChunk(np.concatenate(self._utt), self.sample_rate, pts=self._utt_start)
                    self._utt = []
                    events.append(VadEvent(speaking=False, t=self._t, audio=audio))
            else:
                self._pre.append(f)
                self._run_speech = self._run_speech + 1 if voiced else 0
                if self._run_speech * 10 >= cfg.min_speech_ms:
                    self._speaking = True
                    self._run_silence = 0
                    self._utt = list(self._pre)
                    self._utt_start = self._t - len(self._utt) * 0.01
                    self._pre.clear()
                    events.append(VadEvent(speaking=True, t=self._t))
        return events
