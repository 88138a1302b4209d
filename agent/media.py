"""The media loop: control builder -> generator -> A/V sync -> sink, paced by the media clock.

Three owned tasks joined by bounded queues:
  producer  builds control chunk k at `t0 + k*dur - lead` (never starves: idle/listening when silent)
            and reports runs of speech as events (`SpeechStarted`, `SpeechDrained`)
  renderer  renders chunks strictly in order (motion continuity), off the event loop (generator)
  writer    at `t0 + k*dur` writes chunk k to the sink: rendered in time, or repeated/dropped video
            by policy, always with its audio.
A stalled sink back-pressures the queues (no growth); when the writer falls behind by more than one
chunk it drops video (counted) to catch up, and re-anchors the timeline after a long stall. In
offline mode (`realtime=False`) nothing sleeps and every chunk is rendered; an optional `gate`
holds the producer while a turn is still producing speech.

The loop never changes turn state: it reports what it built and wrote (`agent.events`) through
`emit`, and shows control and video chunks to `observer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.avsync import FrameSync, MediaTimeline
from agent.events import MediaEvent, SpeechDrained, SpeechStarted, SpeechWritten
from agent.interfaces import Generator, Interruptible, SessionObserver, Sink
from agent.metrics import SessionMetrics
from flowact.clock import Clock, Pacer
from flowact.types import ControlChunk, VideoChunk

__all__ = ["AUDIBLE_PEAK", "ControlSource", "MediaLoop", "PipelineItem"]

AUDIBLE_PEAK = 656  # int16 peak (-34 dBFS) from which a chunk's speech counts as heard


class ControlSource(Protocol):
    """Where the media loop takes its chunks from (the control builder)."""

    def next_chunk(self) -> ControlChunk: ...

    @property
    def speaking(self) -> bool: ...

log = logging.getLogger("agent.media")


@dataclass(slots=True)
class PipelineItem:
    control: ControlChunk
    video: asyncio.Future[VideoChunk]
    speech_run: int | None  # the run of speech this chunk carries, if any (see SpeechStarted)
    mute: int = 0  # barge-in cut for chunks built before it: 1 fade out, 2 silent


class MediaLoop:
    """Owns the producer, renderer and writer tasks of one session."""

    def __init__(
        self,
        *,
        timeline: MediaTimeline,
        clock: Clock,
        metrics: SessionMetrics,
        generator: Generator,
        sink: Sink,
        source: ControlSource,
        emit: Callable[[MediaEvent], None],
        observer: SessionObserver | None = None,
        realtime: bool = True,
        policy: str = "repeat",
        lead_chunks: int = 1,
        depth: int = 3,
        max_lag_s: float = 0.5,
        gate: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.timeline = timeline
        self.clock = clock
        self.metrics = metrics
        self.generator = generator
        self.sink = sink
        self.source = source
        self.emit = emit
        self.observer = observer or SessionObserver()
        self.realtime = realtime
        self.sync = FrameSync(timeline, metrics, policy=policy)
        self.lead_s = lead_chunks * timeline.chunk_duration
        self.max_lag_s = max_lag_s
        self.gate = gate
        self._render_q: asyncio.Queue[PipelineItem] = asyncio.Queue(maxsize=depth)
        self._write_q: asyncio.Queue[PipelineItem] = asyncio.Queue(maxsize=depth)
        self._inflight: list[PipelineItem] = []  # built, not yet written (bounded by 2*depth)
        self._tasks: list[asyncio.Task[None]] = []
        self._pacer = Pacer(clock, timeline.chunk_duration, start=0.0, lead=self.lead_s)
        self.chunks_built = 0
        self.chunks_written = 0
        self.slips = 0
        self.max_queue_seen = 0
        self.first_written = asyncio.Event()
        self._written = asyncio.Condition()
        self._run = 0  # runs of speech seen so far
        self._in_speech = False
        self._run_written = 0  # last run whose first chunk reached the sink
        self._run_heard = 0  # last run whose first audible chunk reached the sink

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.t0 = self.clock.now() + self.lead_s
        self._pacer.ticks = 0
        self._tasks = [
            asyncio.create_task(self._produce(), name="media-producer"),
            asyncio.create_task(self._render(), name="media-renderer"),
            asyncio.create_task(self._write(), name="media-writer"),
        ]

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for item in self._inflight:
            if not item.video.done():
                item.video.cancel()
        self._inflight.clear()
        self._tasks = []

    @property
    def t0(self) -> float:
        """Wall time (session clock) of pts 0: chunk k is written at `t0 + k * chunk_duration`."""
        return self._pacer.start

    @t0.setter
    def t0(self, value: float) -> None:
        self._pacer.start = value

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    def mute_pending(self) -> int:
        """Barge-in: cut the speech of every chunk built but not yet written, and have a sink that
        queues media drop what it holds (`Interruptible`). Returns how many chunks were cut here.
        The first cut chunk fades its speech out over 10 ms where it follows what the sink plays;
        after a dropped queue it is silent: the room's audio already stopped, and a fade written
        after that was a 10 ms blip of the old answer heard 40-80 ms into the silence."""
        dropped = False
        if isinstance(self.sink, Interruptible):
            self.sink.drop_queued_media()
            dropped = True
        n = 0
        for item in self._inflight:
            if item.speech_run is not None and not item.mute:
                item.mute = 1 if n == 0 and not dropped else 2
                n += 1
        return n

    async def wait_written(self, index: int) -> None:
        """Wait until chunk `index` has been written to the sink."""
        async with self._written:
            await self._written.wait_for(lambda: self.chunks_written > index)

    # --- tasks ---------------------------------------------------------------------------------
    def _build(self) -> tuple[ControlChunk, int | None]:
        """The next control chunk, and the run of speech it carries (events on run edges)."""
        control = self.source.next_chunk()
        speaking = self.source.speaking
        if speaking and not self._in_speech:
            self._run += 1
            self._in_speech = True
            self.emit(SpeechStarted(self._run))
        elif not speaking and self._in_speech:
            self._in_speech = False
            self.emit(SpeechDrained(self._run))
        self.observer.on_control(control)
        return control, (self._run if speaking else None)

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.realtime:
                await self._pacer.wait()
            elif self.gate is not None:
                await self.gate()
            control, run = self._build()
            item = PipelineItem(control, loop.create_future(), run)
            self._inflight.append(item)
            await self._render_q.put(item)
            await self._write_q.put(item)
            self.max_queue_seen = max(self.max_queue_seen, self._write_q.qsize(), self._render_q.qsize())
            self.chunks_built += 1

    async def _render(self) -> None:
        while True:
            item = await self._render_q.get()
            if item.video.done():  # cancelled or dropped while queued
                continue
            try:
                video = await self.generator.render_chunk(item.control)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a generator bug must not stop the stream: hold the last frame
                log.error("render of chunk %d failed: %s", item.control.index, e)
                self.metrics.errors += 1
                if not item.video.done():
                    item.video.set_exception(e)
                continue
            if not item.video.done():
                item.video.set_result(video)

    async def _write(self) -> None:
        first = True
        dur = self.timeline.chunk_duration
        while True:
            item = await self._write_q.get()
            control = item.control
            if first or not self.realtime:
                video = await self._wait_video(item)
                if first and self.realtime:
                    # The timeline starts when the first frame is ready (time to first frame).
                    self.t0 = self.clock.now() - control.pts
                first = False
                out = self.sync.on_time(control, video) if video is not None else self.sync.late(control)
            else:
                deadline = self.t0 + control.pts
                await self.clock.sleep_until(deadline)
                lag = self.clock.now() - deadline
                if lag > self.max_lag_s:
                    self.t0 += lag  # long stall: re-anchor rather than rush
                    self.slips += 1
                    log.warning("media timeline slipped by %.3f s (sink or generator stalled)", lag)
                behind = lag > dur and not self._write_q.empty()
                ready = item.video.done() and not item.video.cancelled() and item.video.exception() is None
                if ready and not behind:
                    out = self.sync.on_time(control, item.video.result())
                else:
                    if not item.video.done():
                        item.video.cancel()
                    out = self.sync.late(control) if not behind else self._drop_video(control)
            if item.mute:
                out = _muted(out, fade=item.mute == 1)
            await self.sink.write(out)
            self._inflight.remove(item)
            self.metrics.on_frames(len(out.frames), len(out.audio), out.sample_rate)
            self.first_written.set()
            async with self._written:
                self.chunks_written += 1
                self._written.notify_all()
            run = item.speech_run
            if run is not None and not item.mute and run > self._run_heard:
                audible = bool(len(out.audio)) and int(np.abs(out.audio).max()) >= AUDIBLE_PEAK
                if run > self._run_written or audible:
                    self._run_written = run
                    self._run_heard = run if audible else self._run_heard
                    self.emit(SpeechWritten(run, self.clock.now(), audible))
            self.observer.on_video(out)

    async def _wait_video(self, item: PipelineItem) -> VideoChunk | None:
        with contextlib.suppress(Exception):
            return await item.video
        return None

    def _drop_video(self, control: ControlChunk) -> VideoChunk:
        self.metrics.frames_dropped += control.n_frames
        return VideoChunk(
            index=control.index, pts=control.pts, fps=control.fps, frames=(), audio=control.audio,
            sample_rate=control.sample_rate, state=control.state,
        )


def _muted(chunk: VideoChunk, *, fade: bool) -> VideoChunk:
    """Cut speech after a barge-in: a 10 ms fade then silence (same length: the timeline holds)."""
    audio = chunk.audio.astype(np.float32)
    fade_n = min(len(audio), max(1, chunk.sample_rate // 100)) if fade else 0
    audio[:fade_n] *= np.linspace(1.0, 0.0, fade_n, dtype=np.float32)
    audio[fade_n:] = 0.0
    return VideoChunk(
        index=chunk.index, pts=chunk.pts, fps=chunk.fps, frames=chunk.frames,
        audio=audio.astype(np.int16), sample_rate=chunk.sample_rate, state=chunk.state,
        render_ms=chunk.render_ms,
    )
