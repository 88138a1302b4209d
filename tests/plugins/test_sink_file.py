"""MP4 sink: H.264 + AAC written with correct durations; never a half-written file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from agent.errors import ConfigError, TransportError
from flowact.types import VideoChunk, VideoFrame
from plugins.sink_file import FileSink, FileSinkConfig
from tests.fixtures.mp4 import video_frames


def chunk(i: int, n: int = 4, w: int = 64, h: int = 48, sr: int = 24000, frames: bool = True) -> VideoChunk:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : (i * 5) % w] = 200
    t = np.arange(n * sr // 25) / sr + i * n / 25
    audio = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    fr = tuple(VideoFrame(i * n / 25 + k / 25, img) for k in range(n)) if frames else ()
    return VideoChunk(i, i * n / 25, 25, fr, audio, sr)


async def test_writes_playable_mp4_with_matching_durations(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    sink = FileSink(FileSinkConfig(path=str(out)))
    await sink.start(width=64, height=48, fps=25, sample_rate=24000)
    for i in range(25):  # 100 frames = 4 s
        await sink.write(chunk(i, frames=(i != 7)))  # chunk 7's video was dropped: the last frame is held
    assert not out.exists()  # only the .partial exists until close
    await sink.aclose()
    assert out.exists() and not (tmp_path / "o.mp4.partial").exists()
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        n_video = sum(1 for _ in c.decode(v))
    with av.open(str(out)) as c:
        n_audio = sum(f.samples for f in c.decode(c.streams.audio[0]))
    assert n_video == 100
    assert abs(n_audio / 24000 - 4.0) <= 1 / 25 + 2048 / 24000  # within a frame (+ AAC priming)


async def test_failure_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    sink = FileSink(FileSinkConfig(path=str(out)))
    await sink.start(width=64, height=48, fps=25, sample_rate=24000)
    await sink.write(chunk(0))
    with pytest.raises(TransportError, match="sink is 64x48"):
        await sink.write(chunk(1, w=32))
    await sink.aclose()
    assert not out.exists() and not (tmp_path / "o.mp4.partial").exists()


async def test_odd_size_is_refused(tmp_path: Path) -> None:
    sink = FileSink(FileSinkConfig(path=str(tmp_path / "o.mp4")))
    with pytest.raises(ConfigError, match="even frame sizes"):
        await sink.start(width=63, height=48, fps=25, sample_rate=24000)


async def test_close_after_a_cancelled_write_does_not_deadlock(tmp_path: Path) -> None:
    """Shutdown cancels the writer mid-encode; the encode thread must finish before the muxer closes."""
    import asyncio

    out = tmp_path / "o.mp4"
    sink = FileSink(FileSinkConfig(path=str(out), preset="medium"))
    await sink.start(width=640, height=480, fps=25, sample_rate=24000)
    await sink.write(chunk(0, n=4, w=640, h=480))
    for i in range(1, 4):
        task = asyncio.create_task(sink.write(chunk(i, n=12, w=640, h=480)))
        await asyncio.sleep(0.005)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await asyncio.wait_for(sink.aclose(), 30)
    assert out.exists() and not (tmp_path / "o.mp4.partial").exists()
    frames, fps = video_frames(out)
    assert fps == 25 and len(frames) >= 4
