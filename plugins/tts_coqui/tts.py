"""CoquiTTS: sentence-level synthesis with a Coqui model, resampled to the session rate.

Each sentence is synthesized in a worker thread (`model.synthesize`, Coqui's own per-sentence call,
then its vocoder when the model has one) and yielded as soon as it is ready, so speech starts after
the first sentence. Models that expose token durations (VITS and its relatives return `durations`
in frames) give PhonemeTimings: phonemes when the model was trained on phonemes, characters otherwise.

Coqui needs torch 2.9.1 + torchaudio 2.9 (+ torchcodec): it does not load beside the main venv's
torch 2.13, so it lives in its own venv (`.venv-coqui`); in an env without it, constructing the
plugin raises a ConfigError that says what to install.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.engine import BaseTTS, RetryPolicy
from agent.errors import ConfigError, EngineError
from agent.frames import AudioChunk, PhonemeTiming, SpeechChunk
from flowact.audio import float_to_int16, resample
from flowact.clock import Clock
from plugins.tts_coqui.config import CoquiTTSConfig

__all__ = ["CoquiTTS", "split_sentences"]

INSTALL_HINT = (
    "tts.type coqui needs coqui-tts with torch 2.9.1 + torchaudio 2.9 (torchaudio does not load with "
    "torch 2.13): python3.11 -m venv .venv-coqui && .venv-coqui/bin/pip install torch==2.9.1 "
    "'torchaudio==2.9.*' 'torchcodec==0.8.*' coqui-tts==0.28.0 && .venv-coqui/bin/pip install -e '.[coqui]', "
    "then run the agent with .venv-coqui/bin/python"
)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def split_sentences(text: str) -> list[str]:
    """Split on sentence punctuation followed by space; empty pieces are dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


@dataclass(frozen=True, slots=True)
class _Sentence:
    audio: np.ndarray  # float32 at `rate`
    rate: int
    phonemes: tuple[PhonemeTiming, ...]


def _import_coqui() -> Any:
    try:
        from TTS.api import TTS
    except Exception as e:  # ImportError, or torchaudio's OSError/RuntimeError on a mismatched torch
        raise ConfigError(f"{INSTALL_HINT} ({type(e).__name__}: {e})") from e
    return TTS


class CoquiTTS(BaseTTS):
    Config = CoquiTTSConfig
    engine_name = "coqui"

    def __init__(
        self, config: CoquiTTSConfig | None = None, *, sample_rate: int = 24000, clock: Clock | None = None
    ) -> None:
        if config is None:
            raise ConfigError("tts: coqui needs `model_name` or `model_path` in its config")
        self.config = config
        super().__init__(policy=RetryPolicy(retries=0, first_item_timeout_s=config.timeout_s,
                                            idle_timeout_s=config.timeout_s), clock=clock)
        self.sample_rate = sample_rate
        self._api_cls = _import_coqui()
        self.model_path, self.config_path = self._resolve()
        self._api: Any = None
        self._lock = threading.Lock()

    def _resolve(self) -> tuple[Path | None, Path | None]:
        c = self.config
        if c.model_path is not None:
            model = Path(c.model_path).expanduser()
            cfg = Path(c.config_path).expanduser() if c.config_path else model.with_name("config.json")
            for p, what in ((model, "model_path"), (cfg, "config_path")):
                if not p.is_file():
                    raise ConfigError(f"tts.{what}: {p} not found")
            return model, cfg
        if not c.allow_download:
            from TTS.utils.manage import ModelManager

            cached = Path(ModelManager(progress_bar=False).output_prefix) / str(c.model_name).replace("/", "--")
            if not cached.is_dir():
                raise ConfigError(
                    f"tts.model_name: {c.model_name} is not in Coqui's model cache ({cached}); nothing is "
                    "downloaded at run time unless tts.allow_download is true (or give model_path)"
                )
        return None, None

    def _load(self) -> Any:
        with self._lock:
            if self._api is None:
                try:
                    if self.model_path is not None:
                        self._api = self._api_cls(model_path=str(self.model_path), config_path=str(self.config_path),
                                                  progress_bar=False)
                    else:
                        self._api = self._api_cls(str(self.config.model_name), progress_bar=False)
                except (OSError, ValueError, KeyError, RuntimeError) as e:
                    raise EngineError("coqui", f"cannot load model: {type(e).__name__}: {e}") from e
                model = self._api.synthesizer.tts_model
                if self.config.speaker is None and getattr(model, "num_speakers", 0) > 1:
                    raise ConfigError(f"tts.speaker: this model has {model.num_speakers} speakers; name one "
                                      f"of {', '.join(self.speakers[:8])}")
            return self._api

    @property
    def speakers(self) -> list[str]:
        api = self._api
        manager = getattr(api.synthesizer.tts_model, "speaker_manager", None) if api is not None else None
        return list(getattr(manager, "speaker_names", []) or [])

    async def start(self) -> None:
        await self.run_blocking(self._load)

    def _timings(self, model: Any, outputs: dict[str, Any], n_samples: int, rate: int) -> tuple[PhonemeTiming, ...]:
        """Token durations (frames) -> timings in seconds, scaled so they span the waveform exactly."""
        durations = outputs.get("outputs", {}).get("durations")
        ids = outputs.get("text_inputs")
        chars = getattr(getattr(model, "tokenizer", None), "characters", None)
        if durations is None or ids is None or chars is None:
            return ()
        d = np.asarray(durations.detach().cpu().float().numpy()).reshape(-1)
        tok = np.asarray(ids.detach().cpu().numpy()).reshape(-1)
        if len(d) != len(tok) or d.sum() <= 0:
            return ()
        sec_per_frame = n_samples / rate / float(d.sum())
        special = {getattr(chars, a, None) for a in ("pad", "blank", "bos", "eos")}
        pauses = set(getattr(chars, "punctuations", "") or "")
        out: list[PhonemeTiming] = []
        t = 0.0
        for i, frames in zip(tok, d, strict=True):
            dur = float(frames) * sec_per_frame
            sym = chars.id_to_char(int(i))
            if sym in special or sym in pauses or not sym.strip():  # blanks, spaces, punctuation: no phoneme
                if out and sym in special:  # blanks between symbols belong to the symbol before them
                    last = out[-1]
                    out[-1] = PhonemeTiming(last.phoneme, last.start, last.duration + dur)
            elif dur > 0:
                out.append(PhonemeTiming(sym, t, dur))
            t += dur
        return tuple(out)

    def _synth_sentence(self, text: str) -> _Sentence:
        import torch

        api = self._load()
        syn = api.synthesizer
        model = syn.tts_model
        try:
            with torch.inference_mode():
                outputs = model.synthesize(text=text, speaker=self.config.speaker, language=self.config.language,
                                           use_griffin_lim=syn.vocoder_model is None)
                if syn.vocoder_model is None:
                    wav = outputs["wav"]
                else:
                    wav = syn._run_vocoder(outputs["outputs"]["model_outputs"][0], "cpu")
        except (RuntimeError, ValueError, KeyError, IndexError) as e:
            raise EngineError("coqui", f"{type(e).__name__}: {e}", retryable=False) from e
        if isinstance(wav, torch.Tensor):
            wav = wav.detach().cpu().numpy()
        audio = np.asarray(wav, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(audio)):
            raise EngineError("coqui", "model produced non-finite audio", retryable=False)
        rate = int(syn.output_sample_rate)
        return _Sentence(audio, rate, self._timings(model, outputs, len(audio), rate))

    async def _synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        offset = 0
        for sentence in split_sentences(text):
            offset = text.find(sentence, offset)
            s = await self.run_blocking(self._synth_sentence, sentence)
            peak = float(np.max(np.abs(s.audio))) if len(s.audio) else 0.0
            audio = (s.audio * (0.95 / peak)).astype(np.float32) if peak > 1.0 else s.audio  # no clipping
            audio = resample(audio, s.rate, self.sample_rate)
            yield SpeechChunk(AudioChunk(float_to_int16(audio), self.sample_rate), sentence,
                              phonemes=s.phonemes, text_offset=max(offset, 0))
            offset += len(sentence)

    async def aclose(self) -> None:
        self._api = None
