"""SileroVAD: streaming speech probability per 32 ms window + shared endpointing.

The model file is `faster_whisper/assets/silero_vad_v6.onnx` (MIT), run with onnxruntime on one
thread: no torch, no download (the `silero-vad` package would pull a CUDA torch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.endpointing import EndpointedVAD, FrameBuffer
from agent.errors import ConfigError
from agent.frames import AudioChunk, VadEvent
from flowact.audio import int16_to_float
from flowact.clock import Clock, RealClock
from plugins.turn_smart import build_endpointer
from plugins.vad_silero.config import SileroVADConfig

__all__ = ["SileroVAD"]

WINDOW = 512  # samples at 16 kHz
CONTEXT = 64


def _default_model() -> Path:
    try:
        import faster_whisper
    except ImportError as e:
        raise ConfigError("vad: silero needs faster-whisper (it ships the ONNX model)") from e
    return Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"


class SileroVAD(EndpointedVAD):
    Config = SileroVADConfig

    def __init__(
        self, config: SileroVADConfig | None = None, *, sample_rate: int = 16000, clock: Clock | None = None
    ) -> None:
        self.clock: Clock = clock or RealClock()
        if sample_rate != 16000:
            raise ConfigError("vad: silero runs on 16 kHz input (session.input_sample_rate: 16000)")
        self.config = config or SileroVADConfig()
        self.sample_rate = sample_rate
        path = Path(self.config.model_path) if self.config.model_path else _default_model()
        if not path.is_file():
            raise ConfigError(f"vad.model_path: {path} not found")
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self.session: Any = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=opts
        )
        # the speech probability trails the voice by about one window (measured +16..+49 ms on piper/espeak)
        self.endpointer = build_endpointer(
            self.config, sample_rate=sample_rate, frame_samples=WINDOW, voiced_lag_s=WINDOW / sample_rate
        )
        self.buffer = FrameBuffer(sample_rate=sample_rate, frame_samples=WINDOW, name="SileroVAD")
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self.buffer.reset()
        self.endpointer.reset()
        self.last_prob = 0.0

    def _prob(self, window: np.ndarray) -> float:
        x = int16_to_float(window)
        inp = np.concatenate([self._context, x])[None, :]
        out, self._h, self._c = self.session.run(None, {"input": inp, "h": self._h, "c": self._c})
        self._context = x[-CONTEXT:]
        return float(np.asarray(out).reshape(-1)[0])

    def _probs(self, windows: np.ndarray) -> list[float]:
        return [self._prob(w) for w in windows]

    async def feed(self, chunk: AudioChunk) -> Sequence[VadEvent]:
        windows = self.buffer.frames(chunk)
        n = len(windows)
        # ~0.1 ms per window: fine inline; larger batches go to a thread
        probs = self._probs(windows) if n <= 4 else await asyncio.to_thread(self._probs, windows)
        events: list[VadEvent] = []
        for w, p in zip(windows, probs, strict=True):
            self.last_prob = p
            thr = self.config.threshold - (0.15 if self.endpointer.speaking else 0.0)  # hysteresis
            ev = await self.endpointer.push(w, p >= thr)
            if ev is not None:
                events.append(ev)
        return events

    async def aclose(self) -> None:
        await super().aclose()
        self.session = None
