"""FileSink: synced audio + video into an MP4 (H.264 yuv420p + AAC) with PyAV.

Written to `<path>.partial` as a fragmented MP4 flushed every `fragment_s`, so a killed process
leaves a recording that plays up to its last second (see `fragments`); a clean close remuxes it into
a normal MP4 at `path`, and a failed or cancelled run leaves no file there. The video is constant
frame rate: a chunk whose video was dropped by the A/V policy holds the last frame, so audio and video
stay aligned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agent.errors import ConfigError, TransportError
from flowact.types import VideoChunk
from plugins.sink_file.fragments import PartialFile, fragmented_options

__all__ = ["FileSink", "FileSinkConfig", "NullSink", "NullSinkConfig"]

log = logging.getLogger("plugins.sink_file")


class FileSinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = "out/session.mp4"
    preset: str = Field("veryfast", description="x264 preset")
    crf: int = Field(20, ge=0, le=51)
    audio_bitrate: int = Field(96000, ge=16000)
    fragment_s: float = Field(
        0.25, gt=0, le=10, description="flush a fragment to the .partial this often (what a crash can lose)"
    )


class FileSink:
    Config = FileSinkConfig

    def __init__(self, config: FileSinkConfig, **_: Any) -> None:
        self.config = config
        self.path = Path(config.path)
        self._file = PartialFile(self.path)
        self.partial = self._file.partial
        self._container: Any = None
        self._lock = asyncio.Lock()
        # A cancelled write() leaves its encode running in the worker thread; the container must never
        # be used by two threads at once (libav deadlocks), so the thread work holds this lock too.
        self._mux_lock = threading.Lock()
        self._last: np.ndarray | None = None
        self._n_video = 0
        self._n_audio = 0
        self._logged_s = 0
        self.frames_written = 0
        self.audio_samples_written = 0
        self.failed = False

    async def start(self, *, width: int, height: int, fps: int, sample_rate: int) -> None:
        if width % 2 or height % 2:
            raise ConfigError(f"session.width/height: H.264 needs even frame sizes, got {width}x{height} "
                              "(use even numbers, e.g. 854x480)")
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        import av

        try:
            self._file.acquire()
            self._container = av.open(
                str(self.partial), mode="w", format="mp4", options=fragmented_options(self.config.fragment_s)
            )
        except (OSError, av.error.FFmpegError) as e:
            self._file.release()
            raise TransportError(f"cannot write {self.path}: {e}") from e
        v = self._container.add_stream("libx264", rate=self.fps)
        v.width, v.height, v.pix_fmt = self.width, self.height, "yuv420p"
        v.time_base = Fraction(1, self.fps)
        v.options = {"preset": self.config.preset, "crf": str(self.config.crf)}
        a = self._container.add_stream("aac", rate=self.sample_rate)
        a.layout = "mono"
        a.bit_rate = self.config.audio_bitrate
        self._v, self._a = v, a
        self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=self.sample_rate, frame_size=1024)

    async def write(self, chunk: VideoChunk) -> None:
        if self._container is None:
            raise TransportError("FileSink.write before start")
        async with self._lock:
            try:
                await asyncio.to_thread(self._encode, chunk)
            except Exception:
                self.failed = True
                raise

    def _encode(self, chunk: VideoChunk) -> None:
        with self._mux_lock:
            if self._container is None:
                return  # closed while this write was queued
            self._encode_locked(chunk)

    def _encode_locked(self, chunk: VideoChunk) -> None:
        import av

        n_frames = round(len(chunk.audio) * self.fps / chunk.sample_rate) if chunk.sample_rate else 0
        images = [f.image for f in chunk.frames]
        if len(images) < n_frames and (images or self._last is not None):
            hold = images[-1] if images else self._last
            images += [hold] * (n_frames - len(images))  # type: ignore[list-item]
        for img in images:
            if img.shape[:2] != (self.height, self.width):
                raise TransportError(f"frame is {img.shape[1]}x{img.shape[0]}, sink is {self.width}x{self.height}")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self._n_video
            self._n_video += 1
            for packet in self._v.encode(frame):
                self._container.mux(packet)
            self._last = img
        self.frames_written += len(images)
        if self._n_video // self.fps > self._logged_s:
            self._logged_s = self._n_video // self.fps
            log.debug("%s: %d s of video sent to the encoder", self.partial, self._logged_s)
        if len(chunk.audio):
            if chunk.sample_rate != self.sample_rate:
                raise TransportError(f"audio at {chunk.sample_rate} Hz, sink expects {self.sample_rate} Hz")
            af = av.AudioFrame.from_ndarray(chunk.audio.reshape(1, -1), format="s16", layout="mono")
            af.sample_rate = self.sample_rate
            af.pts = self._n_audio
            self._n_audio += len(chunk.audio)
            self.audio_samples_written += len(chunk.audio)
            for rf in self._resampler.resample(af):
                for packet in self._a.encode(rf):
                    self._container.mux(packet)

    async def aclose(self) -> None:
        if self._container is None:
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self._finish)
            except BaseException:
                with contextlib.suppress(OSError):
                    self._file.discard()
                raise
            finally:
                self._file.release()

    def _finish(self) -> None:
        # the lock waits for an encode that a cancelled write() left running in its thread
        with self._mux_lock:
            container, self._container = self._container, None
            if container is None:
                return
            ok = not self.failed and self._n_video > 0
            try:
                if ok:
                    for rf in self._resampler.resample(None):
                        for packet in self._a.encode(rf):
                            container.mux(packet)
                    for packet in self._a.encode(None):
                        container.mux(packet)
                    for packet in self._v.encode(None):
                        container.mux(packet)
            finally:
                container.close()
        if ok:
            self._file.publish(remux=True)
            log.info("wrote %s (%d frames)", self.path, self._n_video)
        else:
            self._file.discard()


class NullSinkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NullSink:
    """Discards media but counts it (tests, benchmarks, headless control)."""

    Config = NullSinkConfig

    def __init__(self, config: NullSinkConfig | None = None, **_: Any) -> None:
        self.config = config or NullSinkConfig()
        self.frames = 0
        self.audio_samples = 0
        self.chunks = 0

    async def start(self, *, width: int, height: int, fps: int, sample_rate: int) -> None:
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate

    async def write(self, chunk: VideoChunk) -> None:
        self.chunks += 1
        self.frames += len(chunk.frames)
        self.audio_samples += len(chunk.audio)

    async def aclose(self) -> None:
        return None
