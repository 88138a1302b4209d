"""Adaptive energy VAD: speech when frame RMS is `threshold_db` above a tracked noise floor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agent.endpointing import EndpointedVAD, FrameBuffer
from agent.frames import AudioChunk, VadEvent
from flowact.audio import int16_to_float
from flowact.clock import Clock, RealClock
from plugins.turn_smart import EndOfTurnConfig, build_endpointer

__all__ = ["EnergyVAD", "EnergyVADConfig"]


class EnergyVADConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold_db: float = Field(12.0, gt=0, description="speech must be this far above the noise floor")
    min_level_db: float = Field(-50.0, description="absolute floor below which nothing is speech")
    min_speech_ms: int = Field(120, ge=10)
    end_silence_ms: int = Field(600, ge=50, description="trailing silence that ends the user's turn")
    pre_roll_ms: int = Field(200, ge=0)
    max_utterance_s: float = Field(30.0, gt=1)
    end_of_turn: EndOfTurnConfig = Field(
        default_factory=EndOfTurnConfig, description="silence (default) or smart_turn (model-judged end of turn)"
    )


class EnergyVAD(EndpointedVAD):
    Config = EnergyVADConfig

    def __init__(
        self, config: EnergyVADConfig | None = None, *, sample_rate: int = 16000, clock: Clock | None = None
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.config = config or EnergyVADConfig()
        self.sample_rate = sample_rate
        self.frame = sample_rate // 100  # 10 ms analysis frames
        self.endpointer = build_endpointer(self.config, sample_rate=sample_rate, frame_samples=self.frame)
        self.buffer = FrameBuffer(sample_rate=sample_rate, frame_samples=self.frame, name="EnergyVAD")
        self.reset()

    def reset(self) -> None:
        self.buffer.reset()
        self._noise_db = -60.0
        self.endpointer.reset()

    async def feed(self, chunk: AudioChunk) -> Sequence[VadEvent]:
        events: list[VadEvent] = []
        cfg = self.config
        for f in self.buffer.frames(chunk):
            rms = float(np.sqrt(np.mean(int16_to_float(f) ** 2)) + 1e-9)
            db = 20.0 * np.log10(rms)
            voiced = db > max(cfg.min_level_db, self._noise_db + cfg.threshold_db)
            if not voiced:  # track the floor only on non-speech frames
                self._noise_db += (db - self._noise_db) * (0.05 if db > self._noise_db else 0.3)
            ev = await self.endpointer.push(f, voiced)
            if ev is not None:
                events.append(ev)
        return events

