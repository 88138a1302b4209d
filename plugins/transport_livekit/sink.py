"""LiveKitSink: the agent as a LiveKit room participant.

Out: one video track (simulcast optional) and one audio track fed from the session's VideoChunks, the agent
state as a participant attribute, transcripts as text streams, chosen session events (`handoff` on
`flowact.handoff`, see `LiveKitConfig.event_topics`) as reliable JSON text streams. In: the user's microphone
(16 kHz mono AudioChunks) and chat text streams. The room connection is supervised: when the SDK
gives up on a lost signal connection the sink rejoins with backoff and republishes the same sources,
so the session never restarts.

A room handed over already connected (`LiveKitSink(config, room=job_room)`, e.g. a livekit-agents
job's `ctx.room`) is used as is: no URL or token is needed, the sink publishes its tracks there and
never leaves or rejoins it (its owner does); when that room is lost the inputs end, and so does the
session.

Media out (pacing, lip sync, catching up after a stall, dropping queued media on a barge-in through
`Interruptible.drop_queued_media`) is the `MediaPump` (plugins/transport_livekit/pump.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

import numpy as np
from livekit import rtc

from agent.commands import loads_json
from agent.errors import ConfigError, TransportError
from agent.frames import AudioChunk
from flowact.clock import Clock, RealClock
from flowact.types import AgentState, VideoChunk
from plugins.transport_livekit.config import LiveKitConfig
from plugins.transport_livekit.credentials import resolve
from plugins.transport_livekit.listener import MicListener
from plugins.transport_livekit.publish import default_bitrate, publish_options
from plugins.transport_livekit.pump import MediaPump

__all__ = ["LiveKitSink", "chat_text", "default_bitrate"]

log = logging.getLogger("plugins.transport_livekit")


class LiveKitSink:
    """Sink + AudioInput + TextInput for one room. Several instances may live in one process."""

    Config = LiveKitConfig

    def __init__(self, config: LiveKitConfig, *, clock: Clock | None = None, room: rtc.Room | None = None,
                 **_: Any) -> None:
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.room: rtc.Room | None = None
        self._handed = room  # a room connected by its owner (a dispatch job): publish there, never leave it
        self.width = self.height = self.fps = self.sample_rate = 0
        self._video_src: rtc.VideoSource | None = None
        self._audio_src: rtc.AudioSource | None = None
        self.pump = MediaPump(clock=self.clock, queue_chunks=config.queue_chunks, video_hold_ms=config.video_hold_ms,
                              send_audio=self._send_audio, speech_backlog_s=config.speech_backlog_s)
        n_in = max(1, int(config.input_queue_s * 100))  # ~10 ms frames
        self._audio_in: asyncio.Queue[AudioChunk | None] = asyncio.Queue(maxsize=n_in)
        self._text_in: asyncio.Queue[str | None] = asyncio.Queue(maxsize=64)
        self._outbox: asyncio.Queue[tuple[str, str, dict[str, str]]] = asyncio.Queue(maxsize=64)
        self._state: AgentState | None = None
        self._state_dirty = False  # the room's state attribute is behind `_state`
        self._wake = asyncio.Event()  # the outbox task has something to send (a message, the state)
        self._lost = asyncio.Event()
        self._connected = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._side: set[asyncio.Task[None]] = set()
        self._mic = MicListener(self._on_mic, sample_rate=config.input_sample_rate, listen_to=config.listen_to,
                                clock=self.clock, name=f"{config.room}-mic")
        self._segment = 0
        self._closed = False
        # counters (tests and telemetry); media counters are the pump's (see the properties below)
        self.mic_dropped = 0  # user audio dropped because the session read it too slowly
        self.malformed_chat = 0
        self.connects = 0
        self.sdk_reconnects = 0
        self.rejoin_failures = 0

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, *, width: int, height: int, fps: int, sample_rate: int) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ConfigError(f"livekit: video size must be positive and even, got {width}x{height}")
        if not 1 <= fps <= 60 or sample_rate not in (8000, 16000, 24000, 32000, 44100, 48000):
            raise ConfigError(f"livekit: unsupported fps {fps} or sample rate {sample_rate}")
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self._video_src = rtc.VideoSource(width, height)
        # A small queue: the audio of one frame waits at most ~one frame (A/V alignment), and a
        # barge-in clears it anyway (drop_queued_media).
        self._audio_src = rtc.AudioSource(sample_rate, 1, queue_size_ms=max(50, 2000 // fps))
        self.pump.bind(self._video_src, self._audio_src, fps=fps, sample_rate=sample_rate)
        await self._connect()  # the first join fails loudly (bad URL, token, permissions)
        self._spawn("pump", self.pump.run())
        self._spawn("supervisor", self._supervise() if self._handed is None else self._watch_handed())
        self._spawn("outbox", self._send_outbox())

    async def aclose(self) -> None:
        """Leave the room cleanly, end the input iterators, cancel and await every task."""
        if self._closed:
            return
        self._closed = self.pump.closed = True
        tasks = [*self._tasks.values(), *self._side]
        for t in tasks:
            t.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:  # never hang shutdown on a task stuck in the SDK
                log.warning("livekit: task %s did not stop within 5 s: %s", t.get_name(), t.get_stack(limit=3))
        await self._mic.aclose()
        room, self.room = self.room, None
        if room is not None and room is self._handed:
            await self._unpublish(room)  # the owner leaves the room; we only take our tracks back
        elif room is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), 5)
        for q in (self._audio_in, self._text_in):
            _put_drop_oldest(q, None)
        for src in (self._video_src, self._audio_src):
            if src is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(src.aclose(), 5)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks[name] = asyncio.create_task(coro, name=f"livekit-{self.config.room}-{name}")

    def _side_task(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        if len(self._side) > 32 or self._closed:  # bounded: a chat flood cannot grow tasks forever
            coro.close()
            return
        task = asyncio.create_task(coro, name=f"livekit-{self.config.room}-{name}")
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    # --- connection --------------------------------------------------------------------------
    async def _connect(self) -> None:
        cfg = self.config
        handed = self._handed
        if handed is not None and not handed.isconnected():
            raise TransportError(f"livekit: the room handed to the sink ({handed.name!r}) is not connected")
        url, token = ("", "") if handed is not None else resolve(cfg)
        room = handed or rtc.Room()
        self._wire(room)
        try:
            if handed is None:
                await asyncio.wait_for(
                    room.connect(url, token,
                                 rtc.RoomOptions(auto_subscribe=True, connect_timeout=cfg.connect_timeout_s)),
                    cfg.connect_timeout_s * 3,
                )
            assert self._video_src is not None and self._audio_src is not None
            video = rtc.LocalVideoTrack.create_video_track(cfg.video_track, self._video_src)
            audio = rtc.LocalAudioTrack.create_audio_track(cfg.audio_track, self._audio_src)
            vopts, aopts = publish_options(cfg, self.width, self.height, self.fps)
            lp = room.local_participant
            await asyncio.wait_for(lp.publish_track(video, vopts), cfg.connect_timeout_s)
            await asyncio.wait_for(lp.publish_track(audio, aopts), cfg.connect_timeout_s)
        except (TimeoutError, rtc.ConnectError, Exception) as e:
            if handed is None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(room.disconnect(), 5)
            else:
                self._mic.unwire()
            if isinstance(e, ConfigError):
                raise
            where = f"room {room.name!r}" if handed is not None else f"room {cfg.room!r} at {url}"
            raise TransportError(f"livekit: cannot join {where}: {type(e).__name__}: {e}",
                                 retryable=handed is None) from e
        self.room = room
        self.connects += 1
        self._lost.clear()
        self._connected.set()
        self._mark_state()  # re-apply the agent state on the new connection
        self._mic.catch_up()  # a user already in the room before we joined
        log.info("livekit: joined room %r as %r (connect #%d)", room.name or cfg.room,
                 room.local_participant.identity, self.connects)

    def _wire(self, room: rtc.Room) -> None:
        self._mic.wire(room)
        room.on("data_received", self._on_data)
        room.on("disconnected", lambda reason=None: self._on_disconnected(room, reason))
        room.on("reconnecting", lambda: self._connected.clear())
        room.on("reconnected", self._on_sdk_reconnected)
        for topic in self.config.chat_topics:
            room.register_text_stream_handler(topic, self._on_text_stream)

    def _on_disconnected(self, room: rtc.Room, reason: Any) -> None:
        if room is not self.room or self._closed:
            return
        log.warning("livekit: disconnected from %r (%s); %s", room.name or self.config.room, reason,
                    "its owner ends the session" if room is self._handed else "will rejoin")
        self._connected.clear()
        self._lost.set()

    async def _watch_handed(self) -> None:
        """A handed room is not ours to rejoin: once its owner's connection is lost, end the inputs."""
        await self._lost.wait()
        self._mic.stop()
        for q in (self._audio_in, self._text_in):
            _put_drop_oldest(q, None)

    async def _unpublish(self, room: rtc.Room) -> None:
        self._mic.unwire()
        room.off("data_received", self._on_data)
        for topic in self.config.chat_topics:
            with contextlib.suppress(Exception):
                room.unregister_text_stream_handler(topic)
        if not room.isconnected():
            return
        for pub in list(room.local_participant.track_publications.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.local_participant.unpublish_track(pub.sid), 5)

    def _on_sdk_reconnected(self) -> None:
        self.sdk_reconnects += 1
        self._connected.set()
        self._mark_state()

    async def _supervise(self) -> None:
        """Rejoin with exponential backoff whenever the room is lost; sources stay the same."""
        cfg = self.config
        while True:
            await self._lost.wait()
            old, self.room = self.room, None
            self._mic.stop()
            if old is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.disconnect(), 5)
            delay, attempt = cfg.reconnect_initial_s, 0
            while True:
                attempt += 1
                try:
                    await self._connect()
                    break
                except ConfigError as e:  # e.g. the secrets file vanished: retrying cannot help
                    log.error("livekit: cannot rejoin %r: %s", cfg.room, e)
                    return
                except TransportError as e:
                    self.rejoin_failures += 1
                    if cfg.reconnect_attempts and attempt >= cfg.reconnect_attempts:
                        log.error("livekit: giving up on %r after %d attempts: %s", cfg.room, attempt, e)
                        return
                    log.warning("livekit: rejoin attempt %d failed (%s); retry in %.1fs", attempt, e, delay)
                    await self.clock.sleep(delay)
                    delay = min(delay * 2, cfg.reconnect_max_s)

    # --- media out (the pump) -----------------------------------------------------------------
    async def write(self, chunk: VideoChunk) -> None:
        """Queue one chunk for the pump; never blocks (see `MediaPump.write`)."""
        self.pump.write(chunk)

    def drop_queued_media(self) -> None:
        """Speech was cut (barge-in): the room hears silence now (see `MediaPump.drop_queued`)."""
        self.pump.drop_queued()

    async def _send_audio(self, pcm: np.ndarray) -> None:
        """One frame's audio slice to the SDK, for the pump (a subclass may count what it hands over)."""
        await self.pump.send_audio(pcm)

    @property
    def audio_dropped(self) -> int:
        """User audio dropped (the session read it too slowly) + slices the SDK did not take in 1 s."""
        return self.mic_dropped + self.pump.audio_dropped

    @property
    def frames_sent(self) -> int:
        return self.pump.frames_sent

    @property
    def first_frame_at(self) -> float | None:
        """Clock time the first video frame went to the SDK."""
        return self.pump.first_frame_at

    @property
    def first_frame_sent(self) -> asyncio.Event:
        return self.pump.first_frame_sent

    @property
    def chunks_dropped(self) -> int:
        return self.pump.chunks_dropped

    @property
    def chunks_skipped(self) -> int:
        """Silent chunks skipped to catch up with a backlog."""
        return self.pump.chunks_skipped

    @property
    def chunks_flushed(self) -> int:
        """Chunks dropped by `drop_queued_media` (barge-in)."""
        return self.pump.chunks_flushed

    # --- user audio in -----------------------------------------------------------------------
    def audio(self) -> AsyncIterator[AudioChunk]:
        return _drain(self._audio_in)

    @property
    def listening_to(self) -> str | None:
        """Identity whose microphone the agent hears (None: nobody)."""
        return self._mic.listening

    def _on_mic(self, chunk: AudioChunk) -> None:
        if _put_drop_oldest(self._audio_in, chunk):
            self.mic_dropped += 1

    # --- data in -----------------------------------------------------------------------------
    def text(self) -> AsyncIterator[str]:
        return _drain(self._text_in)

    def _on_text_stream(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        self._side_task(self._read_text(reader, participant_identity), "chat")

    async def _read_text(self, reader: rtc.TextStreamReader, sender: str) -> None:
        text = await asyncio.wait_for(reader.read_all(), 30)
        if text.strip() and sender != self.config.identity:
            _put_drop_oldest(self._text_in, text.strip())

    def _on_data(self, packet: rtc.DataPacket) -> None:
        """Legacy chat (`lk-chat-topic`, JSON {"message": ...}) from older LiveKit components."""
        if not self.config.legacy_chat_topic or packet.topic != self.config.legacy_chat_topic:
            return
        text = chat_text(packet.data)
        if text is None:
            self.malformed_chat += 1
            if self.malformed_chat <= 10 or self.malformed_chat % 1000 == 0:  # a flood cannot flood the log
                log.warning("livekit: ignoring a malformed chat packet (%d bytes, %d so far)",
                            len(packet.data), self.malformed_chat)
            return
        if text:
            _put_drop_oldest(self._text_in, text)

    # --- data out: state + transcripts ---------------------------------------------------------
    async def on_state(self, state: AgentState) -> None:
        self._state = state
        self._mark_state()

    def _mark_state(self) -> None:
        self._state_dirty = True
        self._wake.set()

    async def on_metrics(self, payload: Mapping[str, Any]) -> None:
        """Metrics stay with the agent (logs, MQTT telemetry, the worker's /metrics): a room's
        participants get the agent's state and captions, not its internals."""

    async def on_transcript(self, role: str, text: str, final: bool) -> None:
        """Agent (and user) transcripts as `lk.transcription` text streams, the attributes
        livekit-agents' clients read (segment id, final flag, transcribed track)."""
        if not text:
            return
        if role == "user":
            track, seg = self._mic.track_sid, f"user_{self._segment}"
        else:
            track, seg = self._audio_track_sid(), f"agent_{self._segment}"
        if final:
            self._segment += 1
        attrs = {"lk.segment_id": seg, "lk.transcription_final": str(final).lower(),
                 "lk.transcribed_track_id": track}
        self._wake.set()
        if _put_drop_oldest(self._outbox, (self.config.transcription_topic, text, attrs)):
            log.warning("livekit: transcript outbox full, dropped the oldest")

    @property
    def event_kinds(self) -> frozenset[str]:
        """The session events this room hears (`EventPublisher`): the keys of `config.event_topics`."""
        return frozenset(self.config.event_topics)

    async def publish_event(self, kind: str, payload: Mapping[str, Any]) -> None:
        """A session event (e.g. the `handoff` with the transcript so far) as one reliable JSON text
        stream on its topic, attribute `flowact.event` = kind, sent by the outbox task."""
        topic = self.config.event_topics.get(kind)
        if topic is None:
            return
        text = json.dumps({"event": kind, **payload}, default=str, ensure_ascii=False)
        self._wake.set()
        if _put_drop_oldest(self._outbox, (topic, text, {"flowact.event": kind})):
            log.warning("livekit: outbox full, dropped the oldest message for the %s event", kind)

    def _audio_track_sid(self) -> str:
        if self.room is None:
            return ""
        for pub in self.room.local_participant.track_publications.values():
            if pub.kind == rtc.TrackKind.KIND_AUDIO:
                return str(pub.sid)
        return ""

    async def _send_outbox(self) -> None:
        """One task sends everything (state attribute, text streams), only while connected; it waits
        on one event (no helper task per message: every task is named and owned)."""
        while True:
            await self._wake.wait()
            await self._connected.wait()
            room = self.room
            if room is None:  # a reconnect under way: `_connect` sets `_connected` again
                self._connected.clear()
                continue
            self._wake.clear()
            item = None if self._outbox.empty() else self._outbox.get_nowait()
            try:
                if self._state_dirty and self._state is not None:
                    self._state_dirty = False
                    await asyncio.wait_for(
                        room.local_participant.set_attributes({self.config.state_attribute: self._state.value}), 5
                    )
                self._state_dirty = self._state_dirty and self._state is not None
                if item is not None:
                    topic, text, attrs = item
                    await asyncio.wait_for(
                        room.local_participant.send_text(text, topic=topic, attributes=attrs, compress=False), 5
                    )
            except Exception as e:  # a lost message is logged, never fatal
                log.warning("livekit: data send failed: %s: %s", type(e).__name__, e)
            if not self._outbox.empty() or self._state_dirty:
                self._wake.set()


def chat_text(data: bytes) -> str | None:
    """The text of a legacy chat packet (plain UTF-8, or JSON `{"message": ...}`): stripped text,
    "" for an empty message, None for a malformed packet."""
    try:
        raw = data.decode()
        msg = loads_json(raw).get("message", "") if raw.lstrip().startswith("{") else raw
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return msg.strip() if isinstance(msg, str) else None


def _put_drop_oldest(q: asyncio.Queue[Any], item: Any) -> bool:
    """Put without blocking; True when the oldest item had to be dropped."""
    dropped = False
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
                dropped = True


async def _drain(q: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    while True:
        item = await q.get()
        if item is None:
            _put_drop_oldest(q, None)  # wake any other reader too
            return
        yield item
