"""MicListener: follow one remote participant's microphone in a LiveKit room.

The participant named by `listen_to`, else the first human (standard or SIP participant). When they
leave or unpublish, the next human with a subscribed microphone is picked. Audio arrives resampled to
mono `sample_rate` as `AudioChunk`s through `on_audio` (called on the event loop; keep it cheap).
Used by the room sink (the agent hears the user) and by the livekit-agents avatar worker (listening
nods). One reader task at a time; `stop()` cancels it, `aclose()` awaits everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import numpy as np
from livekit import rtc

from flowact.clock import Clock, RealClock
from flowact.types import AudioChunk

__all__ = ["HUMAN_KINDS", "MicListener"]

log = logging.getLogger(__name__)
HUMAN_KINDS = {rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, rtc.ParticipantKind.PARTICIPANT_KIND_SIP}


class MicListener:
    """Reads the chosen participant's microphone; `wire(room)` once per room (rejoins: a new room)."""

    def __init__(self, on_audio: Callable[[AudioChunk], None], *, sample_rate: int = 16000,
                 listen_to: str | None = None, clock: Clock | None = None, name: str = "mic") -> None:
        self.on_audio = on_audio
        self.sample_rate = sample_rate
        self.listen_to = listen_to
        self.clock: Clock = clock or RealClock()
        self.name = name
        self.room: rtc.Room | None = None
        self.listening: str | None = None  # identity whose mic we read
        self.track_sid = ""
        self._reader: asyncio.Task[None] | None = None
        self._stopped: set[asyncio.Task[None]] = set()  # cancelled readers, awaited in aclose
        self._closed = False

    def wire(self, room: rtc.Room) -> None:
        """Follow `room`'s participants and tracks (and whoever is already there)."""
        self.room = room
        room.on("track_subscribed", self.on_track_subscribed)
        room.on("track_unsubscribed", self.on_track_unsubscribed)
        room.on("participant_disconnected", self.on_participant_left)

    def unwire(self) -> None:
        if self.room is not None:
            self.room.off("track_subscribed", self.on_track_subscribed)
            self.room.off("track_unsubscribed", self.on_track_unsubscribed)
            self.room.off("participant_disconnected", self.on_participant_left)

    def catch_up(self) -> None:
        """Pick a microphone among the tracks subscribed before we were wired (or joined)."""
        self._pick_next()

    def wants(self, participant: rtc.RemoteParticipant) -> bool:
        if self.listen_to:
            return participant.identity == self.listen_to
        return participant.kind in HUMAN_KINDS

    def on_track_subscribed(self, track: rtc.Track, pub: rtc.RemoteTrackPublication,
                            participant: rtc.RemoteParticipant) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO or self._closed or not self.wants(participant):
            return
        if self.listening is not None:
            same_user = participant.identity == self.listening
            stale = self._reader is None or self._reader.done() or pub.sid != self.track_sid
            if not (same_user and stale):  # keep listening to whom we listen to
                return
            self.stop()  # the same user's new track (republished, or after a rejoin)
        self.listening, self.track_sid = participant.identity, pub.sid
        log.info("livekit: listening to %r (track %s)", participant.identity, pub.sid)
        self._reader = asyncio.create_task(self._read(track), name=f"livekit-{self.name}")

    def on_track_unsubscribed(self, track: rtc.Track, pub: rtc.RemoteTrackPublication,
                              participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.listening and pub.sid == self.track_sid:
            self.stop()
            self._pick_next()

    def on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.listening:
            log.info("livekit: %r left", participant.identity)
            self.stop()
            self._pick_next()

    def stop(self) -> None:
        """Stop reading (the room is being left or replaced, or the user is gone)."""
        if self._reader is not None:
            self._reader.cancel()
            self._stopped.add(self._reader)
            self._reader.add_done_callback(self._stopped.discard)
        self._reader, self.listening, self.track_sid = None, None, ""

    async def aclose(self) -> None:
        """Stop following the room and await every reader started."""
        self._closed = True
        self.unwire()
        self.stop()
        if self._stopped:
            await asyncio.wait(set(self._stopped), timeout=5)

    def _pick_next(self) -> None:
        if self.room is None:
            return
        for p in self.room.remote_participants.values():
            for pub in p.track_publications.values():
                if pub.track is not None and self.listening is None:
                    self.on_track_subscribed(pub.track, pub, p)

    async def _read(self, track: rtc.Track) -> None:
        rate = self.sample_rate
        stream = rtc.AudioStream(track, sample_rate=rate, num_channels=1)
        try:
            async for event in stream:
                pcm = np.frombuffer(event.frame.data, dtype=np.int16).copy()
                self.on_audio(AudioChunk(pcm, rate, pts=self.clock.now()))
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
