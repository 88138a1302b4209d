"""One media timeline for audio and video, and the late-frame policy.

Video runs at a fixed rate whether or not anyone speaks. Chunk k covers frames
[k*F, (k+1)*F) and exactly `F * sample_rate / fps` audio samples, so audio and video written
together are aligned by construction. When the generator misses a chunk's deadline, its video is
repeated (last frame held) or dropped by policy and counted; audio is never dropped or stretched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.errors import ConfigError
from agent.metrics import SessionMetrics
from flowact.types import ControlChunk, UInt8Array, VideoChunk, VideoFrame

__all__ = ["FrameSync", "MediaTimeline"]


@dataclass(frozen=True, slots=True)
class MediaTimeline:
    fps: int = 25
    frames_per_chunk: int = 4
    sample_rate: int = 24000

    def __post_init__(self) -> None:
        if (self.frames_per_chunk * self.sample_rate) % self.fps:
            raise ConfigError(
                f"session: sample_rate {self.sample_rate} Hz does not give a whole number of samples per "
                f"{self.frames_per_chunk}-frame chunk at {self.fps} fps (pick a rate divisible by "
                f"fps / gcd(fps, frames_per_chunk), e.g. 24000 at 25 fps)"
            )

    @property
    def chunk_duration(self) -> float:
        return self.frames_per_chunk / self.fps

    @property
    def samples_per_chunk(self) -> int:
        return self.frames_per_chunk * self.sample_rate // self.fps

    def chunk_pts(self, index: int) -> float:
        return index * self.chunk_duration


class FrameSync:
    """Builds the VideoChunk the sink receives from a control chunk and (maybe) its rendering."""

    def __init__(self, timeline: MediaTimeline, metrics: SessionMetrics, *, policy: str = "repeat") -> None:
        if policy not in ("repeat", "drop"):
            raise ConfigError(f"session.late_frame_policy must be 'repeat' or 'drop', not {policy!r}")
        self.timeline = timeline
        self.metrics = metrics
        self.policy = policy
        self.last_image: UInt8Array | None = None

    def on_time(self, control: ControlChunk, video: VideoChunk) -> VideoChunk:
        """The rendering arrived in time: pass it on (re-stamped onto the control's timeline)."""
        if video.frames:
            self.last_image = video.frames[-1].image
        frames = tuple(
            VideoFrame(pts=control.pts + i / control.fps, image=f.image, index=control.index * control.n_frames + i)
            for i, f in enumerate(video.frames)
        )
        if len(frames) < control.n_frames:  # a generator that returned too few frames
            frames = frames + self._fill(control, len(frames))
        self.metrics.render_ms.append(video.render_ms)
        return VideoChunk(
            index=control.index, pts=control.pts, fps=control.fps, frames=frames[: control.n_frames],
            audio=control.audio, sample_rate=control.sample_rate, state=control.state,
            render_ms=video.render_ms,
        )

    def late(self, control: ControlChunk) -> VideoChunk:
        """The generator missed the deadline: repeat or drop video, keep the audio."""
        frames = self._fill(control, 0)
        return VideoChunk(
            index=control.index, pts=control.pts, fps=control.fps, frames=frames,
            audio=control.audio, sample_rate=control.sample_rate, state=control.state,
        )

    def _fill(self, control: ControlChunk, start: int) -> tuple[VideoFrame, ...]:
        missing = control.n_frames - start
        if self.policy == "drop" or self.last_image is None:
            self.metrics.frames_dropped += missing
            return ()
        self.metrics.frames_repeated += missing
        img = self.last_image
        return tuple(
            VideoFrame(pts=control.pts + i / control.fps, image=img, index=control.index * control.n_frames + i)
            for i in range(start, control.n_frames)
        )


def silence(n_samples: int) -> np.ndarray:
    return np.zeros(n_samples, dtype=np.int16)
