"""Local inputs: audio files of any rate/format become 16 kHz chunks; bad files give clear errors."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from agent.errors import InputError
from flowact.clock import FakeClock
from plugins.input_local import ScriptInput, WavInput, read_audio_file
from plugins.input_local.config import ScriptInputConfig, WavInputConfig


def tone_wav(path: Path, rate: int, seconds: float = 0.5, width: int = 2, channels: int = 1) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    x = (0.5 * np.sin(2 * np.pi * 500 * t) * 32767).astype("<i2")
    if channels == 2:
        x = np.stack([x, x], axis=1).reshape(-1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(x.tobytes() if width == 2 else (x // 256 + 128).astype(np.uint8).tobytes())
    return path


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2), (22050, 1), (8000, 1)])
def test_any_rate_is_resampled_to_16k(tmp_path: Path, rate: int, channels: int) -> None:
    x = read_audio_file(tone_wav(tmp_path / "a.wav", rate, channels=channels), 16000)
    assert len(x) == 8000
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 16000 / len(x) - 500) < 5


def test_compressed_audio_through_ffmpeg(tmp_path: Path) -> None:
    src = tone_wav(tmp_path / "a.wav", 24000, seconds=1.0)
    ogg = tmp_path / "a.ogg"
    subprocess.run(["sox", str(src), str(ogg)], check=True)
    x = read_audio_file(ogg, 16000)
    assert abs(len(x) - 16000) < 400


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "not a readable audio file|empty|no audio"),
        (b"RIFF\x00\x00garbage", "not a readable"),
        (None, "not found"),
    ],
)
def test_bad_audio_files(tmp_path: Path, content: bytes | None, needle: str) -> None:
    p = tmp_path / "bad.wav"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(InputError, match=needle):
        read_audio_file(p, 16000)


def test_8bit_wav_is_refused_with_reason(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="8-bit"):
        read_audio_file(tone_wav(tmp_path / "a.wav", 16000, width=1), 16000)


def test_too_low_rate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="outside"):
        read_audio_file(tone_wav(tmp_path / "a.wav", 4000), 16000)


async def test_wav_input_is_paced_like_a_microphone(tmp_path: Path) -> None:
    clock = FakeClock()
    inp = WavInput(
        WavInputConfig(path=str(tone_wav(tmp_path / "a.wav", 16000, 1.0)), trail_silence_s=0.5),
        sample_rate=16000, clock=clock,
    )
    chunks = [c async for c in inp.audio()]
    assert all(len(c.samples) == 320 and c.sample_rate == 16000 for c in chunks)
    assert len(chunks) == 75  # 1.5 s of 20 ms chunks
    assert clock.now() == pytest.approx(1.48)


async def test_script_input(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text('- Hello there\n- {text: "Where is my order?", pause_s: 0}\n')
    inp = ScriptInput(ScriptInputConfig(path=str(p)), clock=FakeClock())
    assert [t async for t in inp.text()] == ["Hello there", "Where is my order?"]
    p.write_text("just a string")
    with pytest.raises(InputError, match="YAML list"):
        ScriptInput(ScriptInputConfig(path=str(p)))
