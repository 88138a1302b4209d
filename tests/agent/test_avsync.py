"""A/V timeline and the late-frame policy: video repeated or dropped and counted, audio kept."""

from __future__ import annotations

import numpy as np
import pytest

from agent.avsync import FrameSync, MediaTimeline
from agent.errors import ConfigError
from agent.metrics import SessionMetrics
from flowact.clock import FakeClock
from flowact.types import EXPRESSIONS, N_MELS, VISEMES, ControlChunk, VideoChunk, VideoFrame


def control(index: int, n: int = 4, fps: int = 25, sr: int = 24000) -> ControlChunk:
    return ControlChunk(
        index=index, pts=index * n / fps, fps=fps, n_frames=n, sample_rate=sr,
        audio=np.full(n * sr // fps, index, np.int16), mel=np.zeros((n, N_MELS), np.float32),
        energy=np.zeros(n, np.float32), visemes=np.zeros((n, len(VISEMES)), np.float32),
        expressions=np.zeros((n, len(EXPRESSIONS)), np.float32), head_pose=np.zeros((n, 3), np.float32),
        blink=np.zeros(n, np.float32), gaze=np.zeros((n, 2), np.float32),
    )


def rendered(c: ControlChunk, value: int) -> VideoChunk:
    img = np.full((8, 8, 3), value, np.uint8)
    frames = tuple(VideoFrame(c.pts + i / c.fps, img) for i in range(c.n_frames))
    return VideoChunk(c.index, c.pts, c.fps, frames, c.audio, c.sample_rate, render_ms=3.0)


def test_timeline_sizes() -> None:
    tl = MediaTimeline(25, 4, 24000)
    assert tl.samples_per_chunk == 3840 and tl.chunk_duration == pytest.approx(0.16)
    assert MediaTimeline(25, 4, 22050).samples_per_chunk == 3528
    with pytest.raises(ConfigError, match="whole number"):
        MediaTimeline(30, 1, 8000)


@pytest.mark.parametrize("policy", ["repeat", "drop"])
def test_late_chunk_keeps_audio_and_counts_video(policy: str) -> None:
    m = SessionMetrics(FakeClock(), fps=25)
    sync = FrameSync(MediaTimeline(), m, policy=policy)
    c0, c1 = control(0), control(1)
    out0 = sync.on_time(c0, rendered(c0, 100))
    assert len(out0.frames) == 4 and [f.pts for f in out0.frames] == pytest.approx([0, 0.04, 0.08, 0.12])
    out1 = sync.late(c1)
    assert np.array_equal(out1.audio, c1.audio)  # audio never dropped or stretched
    if policy == "repeat":
        assert len(out1.frames) == 4 and m.frames_repeated == 4 and m.frames_dropped == 0
        assert all(int(f.image[0, 0, 0]) == 100 for f in out1.frames)
        assert [f.pts for f in out1.frames] == pytest.approx([0.16, 0.2, 0.24, 0.28])
    else:
        assert out1.frames == () and m.frames_dropped == 4 and m.frames_repeated == 0


def test_av_offset_metric_is_zero_when_aligned() -> None:
    m = SessionMetrics(FakeClock(), fps=25)
    for _ in range(10):
        m.on_frames(4, 3840, 24000)
    assert m.av_offset_ms == 0.0
    m.on_frames(3, 3840, 24000)
    assert m.av_offset_ms == pytest.approx(40.0)


def test_av_offset_counts_dropped_frames_once_their_chunk_is_written() -> None:
    """A late chunk's frames are counted as dropped before the (stalled) sink has its audio: the
    offset must not read one chunk off meanwhile (the soak sampled -160 ms there)."""
    m = SessionMetrics(FakeClock(), fps=25)
    sync = FrameSync(MediaTimeline(), m, policy="drop")
    m.on_frames(4, 3840, 24000)
    out = sync.late(control(1))  # dropped video, the audio plays on: the sink write is pending
    assert out.frames == () and m.frames_dropped == 4
    assert m.av_offset_ms == 0.0
    m.on_frames(len(out.frames), len(out.audio), 24000)
    assert m.av_offset_ms == 0.0 and m.frames_dropped == 4
