"""Local user inputs. Audio comes out as 16 kHz mono int16 AudioChunks on the session clock."""

from __future__ import annotations

import asyncio
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import read_yaml
from agent.errors import InputError
from agent.frames import AudioChunk
from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.clock import Clock, Pacer, RealClock
from plugins.input_local.config import NoInputConfig, ScriptInputConfig, StdinInputConfig, WavInputConfig

__all__ = ["NoInput", "ScriptInput", "StdinInput", "WavInput", "read_audio_file"]

MIN_RATE, MAX_RATE = 8000, 192000


def read_audio_file(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as mono float32 at `sample_rate`. Raises InputError naming the problem."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: audio file not found")
    try:
        with wave.open(str(p), "rb") as w:
            rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            raw = w.readframes(n)
        if width != 2:
            raise InputError(f"{p}: {8 * width}-bit WAV is not supported; use 16-bit PCM")
        whole = len(raw) - len(raw) % (2 * channels)  # a truncated file can end mid-frame
        data = int16_to_float(np.frombuffer(raw[:whole], dtype="<i2"))
        if channels > 1:
            data = data.reshape(-1, channels).mean(axis=1)
    except (wave.Error, EOFError, RuntimeError):  # RuntimeError: the wave module on a chunk size past the end
        data, rate = _decode_with_av(p)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(f"{p}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    if data.size == 0:
        raise InputError(f"{p}: the audio file is empty")
    # float files can hold NaN, inf and values far outside [-1, 1]: one NaN would spread over the
    # whole signal in the resampler, so they become silence / full scale here
    data = np.clip(np.nan_to_num(data.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    out = resample(data, rate, sample_rate)
    if out.size == 0:
        raise InputError(f"{p}: the audio is shorter than one sample at {sample_rate} Hz")
    return out


def _decode_with_av(p: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise InputError(f"{p}: no audio stream in the file")
            stream = container.streams.audio[0]
            rate = int(stream.rate or 0)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            parts = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
    except InputError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, AttributeError) as e:  # AttributeError: no codec
        raise InputError(f"{p}: not a readable audio file ({e.__class__.__name__})") from e
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), rate


class WavInput:
    """Plays an audio file into the session as if it were a live microphone."""

    Config = WavInputConfig

    def __init__(self, config: WavInputConfig, *, sample_rate: int = 16000, clock: Clock | None = None) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.clock = clock or RealClock()
        # Validate now so a bad file fails the session start, not the middle of it.
        self._pcm = float_to_int16(read_audio_file(config.path, sample_rate))

    async def audio(self) -> AsyncIterator[AudioChunk]:
        cfg = self.config
        n = self.sample_rate * cfg.chunk_ms // 1000
        lead = np.zeros(int(cfg.lead_silence_s * self.sample_rate), np.int16)
        trail = np.zeros(int(cfg.trail_silence_s * self.sample_rate), np.int16)
        pcm = np.concatenate([lead, self._pcm, trail])
        pacer = Pacer(self.clock, n / self.sample_rate)  # block k leaves at t0 + k * chunk_ms
        for start in range(0, len(pcm), n):
            if cfg.realtime:
                await pacer.wait()
            else:
                await asyncio.sleep(0)
            block = pcm[start : start + n]
            if len(block) < n:
                block = np.concatenate([block, np.zeros(n - len(block), np.int16)])
            yield AudioChunk(block, self.sample_rate, pts=start / self.sample_rate)


class StdinInput:
    """Typed lines on stdin (one message per line; EOF ends the input)."""

    Config = StdinInputConfig

    def __init__(self, config: StdinInputConfig, **_: Any) -> None:
        self.config = config

    async def text(self) -> AsyncIterator[str]:
        while True:
            if sys.stdin.isatty():
                print(self.config.prompt, end="", flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            if line.strip():
                yield line.strip()


class ScriptInput:
    """A scripted conversation: typed user lines, each sent after the previous reply finished."""

    Config = ScriptInputConfig
    wait_for_reply = True

    def __init__(self, config: ScriptInputConfig, *, clock: Clock | None = None, **_: Any) -> None:
        self.config = config
        self.clock = clock or RealClock()
        self.lines = load_script(config.path)

    async def text(self) -> AsyncIterator[str]:
        for text, pause in self.lines:
            if pause > 0:
                await self.clock.sleep(pause)
            yield text


def load_script(path: str | Path) -> list[tuple[str, float]]:
    """A script file: a YAML list of user lines (`- text` or `- {text: ..., pause_s: 0.5}`)."""
    p = Path(path)
    data = read_yaml(p, what="script file", error=InputError)
    if not isinstance(data, list) or not data:
        raise InputError(f"{p}: a script is a non-empty YAML list of user lines")
    out: list[tuple[str, float]] = []
    for i, entry in enumerate(data):
        if isinstance(entry, str):
            out.append((entry, 0.5))
        elif isinstance(entry, dict) and isinstance(entry.get("text"), str):
            out.append((entry["text"], float(entry.get("pause_s", 0.5))))
        else:
            raise InputError(f"{p}: entry {i} must be a string or a mapping with `text:`")
    return out


class NoInput:
    """No user input (the agent only speaks on commands)."""

    Config = NoInputConfig

    def __init__(self, config: NoInputConfig, **_: Any) -> None:
        self.config = config
