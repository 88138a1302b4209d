"""WebrtcVAD: libwebrtc's GMM voice detector per 10/20/30 ms frame + shared endpointing.

Frames below an absolute level floor are never speech; decisions are smoothed by a majority over
the last `smooth_frames` frames (single-frame flips are common in webrtcvad), then
`agent.endpointing.Endpointer` turns them into onset (barge-in) and end-of-turn events (on silence
or on the Smart Turn model's verdict: `end_of_turn`). Costs a few microseconds per frame, so it runs
inline on the event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.endpointing import EndpointedVAD, FrameBuffer
from agent.errors import ConfigError
from agent.frames import AudioChunk, VadEvent
from flowact.audio import int16_to_float
from flowact.clock import Clock, RealClock
from plugins.turn_smart import build_endpointer
from plugins.vad_webrtc.config import WebrtcVADConfig

__all__ = ["WebrtcVAD", "WebrtcVADConfig"]

RATES = (8000, 16000, 32000, 48000)


class WebrtcVAD(EndpointedVAD):
    Config = WebrtcVADConfig

    def __init__(
        self, config: WebrtcVADConfig | None = None, *, sample_rate: int = 16000, clock: Clock | None = None
    ) -> None:
        self.clock: Clock = clock or RealClock()
        if sample_rate not in RATES:
            raise ConfigError(f"vad: webrtc needs an input rate of {', '.join(map(str, RATES))} Hz, got {sample_rate}")
        try:
            import webrtcvad
        except ImportError as e:
            raise ConfigError("vad: webrtc needs `pip install webrtcvad-wheels` (extra `vad`)") from e
        self.config = config or WebrtcVADConfig()
        self.sample_rate = sample_rate
        self.frame = sample_rate * self.config.frame_ms // 1000
        self._vad: Any = webrtcvad.Vad(self.config.aggressiveness)
        # the majority vote keeps saying "voiced" for smooth_frames // 2 frames after the voice stops
        lag = (self.config.smooth_frames // 2) * self.config.frame_ms / 1000
        self.endpointer = build_endpointer(
            self.config, sample_rate=sample_rate, frame_samples=self.frame, voiced_lag_s=lag
        )
        self.buffer = FrameBuffer(sample_rate=sample_rate, frame_samples=self.frame, name="WebrtcVAD")
        self.reset()

    def reset(self) -> None:
        self.buffer.reset()
        self._votes: deque[bool] = deque(maxlen=self.config.smooth_frames)
        self.endpointer.reset()

    def is_speech(self, frame: np.ndarray) -> bool:
        """Raw webrtcvad decision for one int16 frame of exactly `self.frame` samples."""
        return bool(self._vad.is_speech(np.ascontiguousarray(frame, dtype="<i2").tobytes(), self.sample_rate))

    async def feed(self, chunk: AudioChunk) -> Sequence[VadEvent]:
        events: list[VadEvent] = []
        for f in self.buffer.frames(chunk):
            rms = float(np.sqrt(np.mean(np.square(int16_to_float(f)))))
            loud = 20.0 * np.log10(rms + 1e-9) > self.config.min_level_db
            self._votes.append(loud and self.is_speech(f))
            voiced = 2 * sum(self._votes) > len(self._votes)
            ev = await self.endpointer.push(f, voiced)
            if ev is not None:
                events.append(ev)
        return events

