"""MediaPump: the session's VideoChunks out to the SDK's VideoSource and AudioSource, in lip sync.

The session's media loop calls `write()` on its media clock, one chunk (a few frames + their audio)
per chunk period. The pump task (`run`) spreads each chunk's frames at 1/fps and feeds each frame's
audio slice right beside it; the frame is held until the audio queued before its slice has played,
so audio and video leave together (measured at the receiver: within one frame). We do not use
`rtc.AVSynchronizer`: its pacing reads `time.perf_counter` directly (no injected clock) and its video
queue blocks the writer; the pump is the same idea with a bounded, drop-oldest queue.

A backlog (a starved CPU) is caught up on silence, never on the answer (see `write`), and queued
digital silence is skipped so a stall does not delay the rest of the session for good.

Barge-in (`drop_queued`): the queued chunks, the rest of the chunk being sent and the SDK's
AudioSource queue are dropped at once, audio and video together, and the pacing re-anchors on the
next chunk, so the listener hears silence one network hop later instead of after the ~0.2-0.5 s of
speech queued here. A slice whose capture was waiting for room in the SDK's queue when the cut came
lands after the clear: it is cleared again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import numpy as np
from livekit import rtc

from flowact.audio import float_to_int16, int16_to_float, resample
from flowact.clock import Clock, Pacer
from flowact.types import VideoChunk

__all__ = ["SPEECH_BACKLOG", "SPEECH_BACKLOG_S", "MediaPump", "has_sound"]

log = logging.getLogger("plugins.transport_livekit")
SPEECH_BACKLOG = 4  # speech may queue up to this many times `queue_chunks` before any of it is dropped
SPEECH_BACKLOG_S = 2.0  # ... and at least this long, however short the chunks (seconds of media)


class MediaPump:
    """Bounded chunk queue + the pacing task of one LiveKit sink; `bind` the sources before `run`."""

    def __init__(self, *, clock: Clock, queue_chunks: int, video_hold_ms: float,
                 send_audio: Callable[[np.ndarray], Awaitable[None]] | None = None,
                 speech_backlog_s: float = SPEECH_BACKLOG_S) -> None:
        self.clock = clock
        self._send = send_audio or self.send_audio  # how a slice reaches the SDK (the sink may wrap it)
        self.queue_chunks = queue_chunks
        self.speech_backlog_s = speech_backlog_s
        self.hold_s = video_hold_ms / 1000.0
        # queue_chunks bounds the backlog; speech may wait up to SPEECH_BACKLOG times that, and at least
        # speech_backlog_s of media: `write` is the only producer and keeps the queue within those bounds
        self.chunks: asyncio.Queue[VideoChunk] = asyncio.Queue()
        self.speech_queued = 0  # queued chunks that carry sound
        self._video: rtc.VideoSource | None = None
        self._audio: rtc.AudioSource | None = None
        self.fps = self.sample_rate = 0
        self.closed = False
        self._cuts = 0  # drop_queued() calls: the task abandons what it was sending when this moves
        # counters (tests and telemetry)
        self.frames_sent = 0
        self.first_frame_at: float | None = None  # clock time the first video frame went to the SDK
        self.first_frame_sent = asyncio.Event()
        self.chunks_dropped = 0
        self.chunks_skipped = 0  # silent chunks skipped to catch up with a backlog
        self.chunks_flushed = 0  # chunks dropped by drop_queued (barge-in)
        self.audio_dropped = 0  # audio slices the SDK did not take within 1 s

    def bind(self, video: rtc.VideoSource, audio: rtc.AudioSource, *, fps: int, sample_rate: int) -> None:
        self._video, self._audio, self.fps, self.sample_rate = video, audio, fps, sample_rate

    # --- the session's side ------------------------------------------------------------------
    def write(self, chunk: VideoChunk) -> None:
        """Queue one chunk; never blocks. A pump behind (a starved CPU, a rejoin) catches up on silence,
        never on the answer: past `queue_chunks`, a silent chunk is dropped (the oldest when only silence
        waits, else itself) and speech waits, up to SPEECH_BACKLOG times the bound and at least
        `speech_backlog_s` of media (then the oldest chunk goes: a bound in chunks alone would shrink
        with shorter chunks). The audio source drains in real time, so only dropping shortens a backlog."""
        if self.closed:
            return
        q, sound = self.chunks, has_sound(chunk)
        seconds = max(1, len(chunk.frames)) / max(1, chunk.fps)
        hard = max(self.queue_chunks * SPEECH_BACKLOG, int(np.ceil(self.speech_backlog_s / seconds - 1e-9)))
        if not sound and q.qsize() >= self.queue_chunks:
            self.chunks_dropped += 1
            if self.speech_queued:  # speech waits in the backlog: skip this silence instead
                return
            self._take_oldest()
        elif q.qsize() >= hard:
            self.chunks_dropped += 1
            self._take_oldest()
        q.put_nowait(chunk)
        self.speech_queued += sound

    def _take_oldest(self) -> VideoChunk:
        chunk = self.chunks.get_nowait()
        self.speech_queued -= has_sound(chunk)
        return chunk

    def drop_queued(self) -> None:
        """Speech was cut (barge-in): drop every queued chunk, the rest of the chunk being sent and
        the audio the SDK holds, so the room hears silence now. Audio and video go together (A/V
        sync holds); the next chunk written starts a fresh pacing anchor. Never blocks."""
        self._cuts += 1
        while not self.chunks.empty():
            self._take_oldest()
            self.chunks_flushed += 1
        self._clear_sdk_audio()

    def _clear_sdk_audio(self) -> None:
        if self._audio is not None:
            with contextlib.suppress(Exception):  # a closed source has nothing queued
                self._audio.clear_queue()

    # --- the task ----------------------------------------------------------------------------
    async def run(self) -> None:
        assert self._video is not None and self._audio is not None, "bind() the sources first"
        period = 1.0 / self.fps
        pacer: Pacer | None = None  # anchored on the first frame; re-anchors when 4 frames behind
        cuts = self._cuts
        while True:
            chunk = await self.chunks.get()
            if cuts != self._cuts:  # media was dropped: pace from this chunk on, no catching up
                cuts, pacer = self._cuts, None
            self.speech_queued -= has_sound(chunk)
            # Audio leaves in real time, so a backlog (after a stall) would delay everything after it
            # for good: catch up by skipping queued digital silence (idle, or speech cut by a barge-in).
            while not self.chunks.empty() and not has_sound(chunk):
                self.chunks_skipped += 1
                chunk = self.chunks.get_nowait()
                self.speech_queued -= has_sound(chunk)
            frames = chunk.frames
            audio = chunk.audio.astype(np.int16, copy=False)
            if chunk.sample_rate != self.sample_rate and len(audio):
                audio = float_to_int16(resample(int16_to_float(audio), chunk.sample_rate, self.sample_rate))
            n = max(1, len(frames))
            bounds = np.linspace(0, len(audio), n + 1).astype(int)
            for i in range(n):
                if cuts != self._cuts:  # dropped mid-chunk: its remaining frames and audio go too
                    break
                if pacer is None:
                    pacer = Pacer(self.clock, period, max_lag_s=4 * period)
                if self.chunks.empty():
                    await pacer.wait()
                else:  # a backlog is sent without waiting: spend this tick now
                    if pacer.next_due < self.clock.now() - 4 * period:
                        pacer.reanchor()
                    pacer.ticks += 1
                seg = audio[bounds[i] : bounds[i + 1]]
                if len(seg):
                    await self._send(seg)
                    if cuts != self._cuts:  # cut while the SDK took this slice: it landed after the clear
                        self._clear_sdk_audio()
                        break
                    # The slice starts playing once the audio queued before it has played: hold the
                    # frame until then, so the picture leaves with its sound (A/V sync at the sender).
                    lag = self._audio.queued_duration - len(seg) / self.sample_rate + self.hold_s
                    if lag > 0.005:
                        await self.clock.sleep(min(lag, 2 * period))
                    if cuts != self._cuts:  # its audio was just cleared: the frame goes with it
                        break
                if i < len(frames):
                    self._send_video(frames[i].image)

    def _send_video(self, image: np.ndarray) -> None:
        assert self._video is not None
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            log.warning("livekit: dropping a frame of shape %s %s (need HxWx3 uint8)", image.shape, image.dtype)
            return
        h, w = image.shape[:2]
        frame = rtc.VideoFrame(w, h, rtc.VideoBufferType.RGB24, np.ascontiguousarray(image).tobytes())
        self._video.capture_frame(frame)
        self.frames_sent += 1
        if self.first_frame_at is None:
            self.first_frame_at = self.clock.now()
            self.first_frame_sent.set()

    async def send_audio(self, pcm: np.ndarray) -> None:
        """One slice of audio to the SDK's source; waits for room in its queue, at most 1 s."""
        assert self._audio is not None
        frame = rtc.AudioFrame(pcm.tobytes(), self.sample_rate, 1, len(pcm))
        try:  # the source drains in real time; a stall here must never wedge the pump
            await asyncio.wait_for(self._audio.capture_frame(frame), 1.0)
        except TimeoutError:
            self.audio_dropped += 1


def has_sound(chunk: VideoChunk) -> bool:
    """Any non-zero sample (idle and muted chunks are digital silence; a pause inside speech is not)."""
    return bool(len(chunk.audio)) and bool(np.any(chunk.audio))
