"""FlowactVideoGenerator: livekit-agents' `VideoGenerator` driven by flowact's portrait generator.

The agent (any livekit-agents `AgentSession` with `DataStreamAudioOutput`) streams its TTS audio to
the avatar participant over a byte stream (`lk.audio_stream`); livekit-agents' `AvatarRunner`
receives it, calls `push_audio()` here, and publishes what we yield through its `AVSynchronizer`.
We turn the audio into control chunks with `flowact.control.ControlBuilder` (audio-only speech: the
visemes come from the audio features, there are no phoneme timings on this wire) and render them
with `flowact.generator.PortraitGenerator`. While nothing is queued, idle chunks (video only) keep
the face alive. `clear_buffer()` (the agent's `lk.clear_buffer` RPC) drops queued audio and
already-rendered frames at once; `AudioSegmentEnd` is yielded after the segment's last frame, so
the runner answers with `lk.playback_finished`. The face follows the agent's `lk.agent.state`
attribute (listening, thinking), nods at the user's pauses (their microphone, through the transport's
`MicListener`) and takes expressions and gestures over the `flowact.command` RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowact.control import ControlBuilder
from flowact.generator import PortraitGenerator, PortraitGeneratorConfig
from flowact.types import AgentState, AudioChunk, ControlChunk, IntentTag, SpeechChunk, VideoChunk
from plugins.livekit_avatar.commands import COMMAND_METHOD, is_served_agent, register_command_rpc
from plugins.transport_livekit.listener import MicListener

__all__ = ["FlowactAvatarConfig", "FlowactVideoGenerator", "run_avatar_worker"]

log = logging.getLogger(__name__)
Out: TypeAlias = rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd
STATE_ATTRIBUTE = "lk.agent.state"  # livekit-agents publishes its agent's state here
_AGENT_STATES = {"initializing": AgentState.IDLE, "idle": AgentState.IDLE, "listening": AgentState.LISTENING,
                 "thinking": AgentState.THINKING}


class FlowactAvatarConfig(BaseModel):
    """What the avatar worker renders and publishes."""

    model_config = ConfigDict(extra="forbid")

    portrait: Path = Field(description="portrait image (one face)")
    width: int = Field(480, ge=64, le=1920)
    height: int = Field(270, ge=64, le=1080)
    fps: int = Field(25, ge=5, le=60)
    sample_rate: int = Field(24000, description="rate of the published audio; input is resampled to it")
    frames_per_chunk: int = Field(2, ge=1, le=8, description="frames rendered per control chunk")
    motion: Literal["procedural", "learned"] = "procedural"
    checkpoint: str | None = None
    max_queued_s: float = Field(120.0, gt=0, description="audio queued ahead of playback before refusing more")
    idle_video: bool = Field(True, description="render idle frames while no speech is queued")
    listen: bool = Field(True, description="hear the user's microphone for listening nods at their pauses")
    listen_to: str | None = Field(None, description="identity to listen to; default: the first human")

    @model_validator(mode="after")
    def _whole_frames(self) -> FlowactAvatarConfig:
        if (self.frames_per_chunk * self.sample_rate) % self.fps or self.sample_rate % self.fps:
            raise ValueError(f"frames_per_chunk * sample_rate must divide by fps ({self.fps}) and so must "
                             f"sample_rate ({self.sample_rate}): every video frame carries whole audio samples")
        return self


class FlowactVideoGenerator(VideoGenerator):  # type: ignore[misc,unused-ignore]  # Any without the extra
    """livekit-agents `VideoGenerator` backed by flowact (see the module docstring)."""

    Config = FlowactAvatarConfig

    def __init__(self, config: FlowactAvatarConfig, *, generator: PortraitGenerator | None = None) -> None:
        c = self.config = config
        self._gen = generator or PortraitGenerator(
            PortraitGeneratorConfig(motion=c.motion, checkpoint=c.checkpoint), width=c.width, height=c.height, fps=c.fps
        )
        self._builder = ControlBuilder(fps=c.fps, frames_per_chunk=c.frames_per_chunk, sample_rate=c.sample_rate)
        self._spc = c.frames_per_chunk * c.sample_rate // c.fps  # samples per chunk
        self._spf = c.sample_rate // c.fps  # samples per frame
        self._pcm: list[np.ndarray] = []  # received audio of the current segment, not yet in the builder
        self._queued = 0
        self._segment_ended = False
        self._in_segment = False
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = 0
        self._wake = asyncio.Event()
        self._out: asyncio.Queue[Out] = asyncio.Queue(maxsize=2 * c.frames_per_chunk + 1)
        self._epoch = 0  # bumped by clear_buffer: chunks rendered for an older epoch are dropped
        self._task: asyncio.Task[None] | None = None
        self.chunks_rendered = 0
        self.speech_frames = 0
        self.clears = 0
        self.tags_applied: list[str] = []  # the newest expression/gesture commands (bounded)
        self.agent_state = "idle"  # the agent's state as last followed
        self.user_audio_s = 0.0  # seconds of the user's microphone heard
        self.last_image: np.ndarray | None = None  # the newest rendered frame (RGB), for inspection
        self.last_control: ControlChunk | None = None  # the newest control chunk, for inspection

    async def start(self) -> None:
        """Analyse the portrait and start the render loop (call once, before the runner starts)."""
        if not self.config.portrait.expanduser().is_file():
            raise FileNotFoundError(f"{self.config.portrait}: portrait file not found")
        await self._gen.start(self.config.portrait.expanduser())
        self._task = asyncio.create_task(self._render_loop(), name="flowact-avatar-render")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        await self._gen.aclose()

    def apply_tag(self, tag: IntentTag, duration_s: float | None = None) -> None:
        """An expression or gesture (the `flowact.command` RPC): at the next chunk; an emotion with a
        duration eases back to neutral after that much media time unless another emotion replaced it."""
        self._builder.push_tag(tag, duration_s)
        self.tags_applied = [*self.tags_applied[-31:], f"{tag.name}:{tag.intensity:g}"]

    def push_user_audio(self, chunk: AudioChunk) -> None:
        """The user's microphone (16 kHz mono): small listening nods at their pauses."""
        self._builder.push_user_audio(chunk)
        self.user_audio_s += chunk.duration

    def set_agent_state(self, value: str) -> None:
        """Follow the agent's `lk.agent.state` attribute: a listening face while it listens, a
        thinking one while its LLM works. `speaking` needs nothing: the audio drives the mouth."""
        state = _AGENT_STATES.get(value)
        if state is not None:
            self._builder.set_state(state)
            self.agent_state = value

    # --- VideoGenerator ---------------------------------------------------------------------------
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            if self._resampler is not None:
                for f in self._resampler.flush():
                    self._append(f)
            self._segment_ended = True
            self._wake.set()
            return
        if frame.sample_rate != self.config.sample_rate:
            if self._resampler is None or self._resampler_rate != frame.sample_rate:
                self._resampler = rtc.AudioResampler(frame.sample_rate, self.config.sample_rate, num_channels=1)
                self._resampler_rate = frame.sample_rate
            for f in self._resampler.push(_mono(frame)):
                self._append(f)
        else:
            self._append(_mono(frame))
        self._wake.set()

    def _append(self, frame: rtc.AudioFrame) -> None:
        pcm = np.frombuffer(frame.data, np.int16).copy()
        if (self._queued + len(pcm)) / self.config.sample_rate > self.config.max_queued_s:
            log.warning("more than %.0f s of audio queued: dropping %d samples", self.config.max_queued_s, len(pcm))
            return
        self._in_segment = True
        self._pcm.append(pcm)
        self._queued += len(pcm)

    def clear_buffer(self) -> None:
        """Drop queued audio and rendered frames now; the face relaxes on the next chunk."""
        self.clears += 1
        self._epoch += 1
        self._pcm.clear()
        self._queued = 0
        self._segment_ended = False
        self._in_segment = False
        self._resampler = None
        self._builder.interrupt()
        self._gen.interrupt()
        while not self._out.empty():
            self._out.get_nowait()
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[Out]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Out]:
        while True:
            yield await self._out.get()

    # --- render loop ------------------------------------------------------------------------------
    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        got = 0
        while got < n and self._pcm:
            head = self._pcm[0]
            k = min(n - got, len(head))
            out[got : got + k] = head[:k]
            got += k
            if k == len(head):
                self._pcm.pop(0)
            else:
                self._pcm[0] = head[k:]
        self._queued -= got
        return out

    async def _render_loop(self) -> None:
        while True:
            speech = self._queued >= self._spc or (self._segment_ended and self._queued > 0)
            end_now = self._segment_ended and self._queued == 0
            if not speech and not end_now and not self.config.idle_video:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not speech and not end_now and self._queued > 0:
                # a partial chunk is arriving: wait briefly for the rest rather than split the speech
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._spc / self.config.sample_rate)
                continue
            epoch = self._epoch
            if speech:
                audio = self._take(self._spc)
                self._builder.push_speech(SpeechChunk(AudioChunk(audio, self.config.sample_rate), ""))
            control = self.last_control = self._builder.next_chunk()
            chunk = await self._gen.render_chunk(control)
            self.chunks_rendered += 1
            if epoch != self._epoch:
                continue  # cleared while rendering
            await self._emit(chunk, speech, epoch)
            if end_now or (self._segment_ended and self._queued == 0 and speech):
                self._segment_ended = False
                if self._in_segment:
                    self._in_segment = False
                    await self._put(AudioSegmentEnd(), epoch)

    async def _emit(self, chunk: VideoChunk, speech: bool, epoch: int) -> None:
        c = self.config
        for i, f in enumerate(chunk.frames):
            img = self.last_image = np.asarray(f.image, np.uint8)
            rgba = np.empty((img.shape[0], img.shape[1], 4), np.uint8)
            rgba[..., :3] = img
            rgba[..., 3] = 255
            if not await self._put(rtc.VideoFrame(img.shape[1], img.shape[0], rtc.VideoBufferType.RGBA,
                                                  rgba.tobytes()), epoch):
                return
            if speech:
                pcm = np.ascontiguousarray(chunk.audio[i * self._spf : (i + 1) * self._spf])
                self.speech_frames += 1
                if not await self._put(rtc.AudioFrame(pcm.tobytes(), c.sample_rate, 1, len(pcm)), epoch):
                    return

    async def _put(self, item: Out, epoch: int) -> bool:
        """Queue an output unless a clear_buffer happened since its chunk was rendered."""
        if epoch != self._epoch:
            return False
        await self._out.put(item)
        if epoch != self._epoch:  # cleared while we waited for room: drop what we just queued
            while not self._out.empty():
                self._out.get_nowait()
            return False
        return True


def _mono(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    if frame.num_channels == 1:
        return frame
    pcm = np.frombuffer(frame.data, np.int16).reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    return rtc.AudioFrame(pcm.tobytes(), frame.sample_rate, 1, len(pcm))


@dataclass(slots=True)
class AvatarWorker:
    """A running avatar: the livekit-agents runner and our generator (close with `aclose`)."""

    room: rtc.Room
    runner: AvatarRunner
    generator: FlowactVideoGenerator
    on_attributes: Any = None  # the room listener that follows the agent's state
    mic: MicListener | None = None  # the user's microphone, for listening nods

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # the room may be gone already
            self.room.local_participant.unregister_rpc_method(COMMAND_METHOD)
        if self.on_attributes is not None:
            self.room.off("participant_attributes_changed", self.on_attributes)
        if self.mic is not None:
            await self.mic.aclose()
        await self.runner.aclose()
        await self.generator.aclose()


async def run_avatar_worker(room: rtc.Room, config: FlowactAvatarConfig, *, sender_identity: str | None = None,
                            **runner_kw: Any) -> AvatarWorker:
    """Serve `room` (already connected) as the avatar of `sender_identity` (default: the first agent)."""
    gen = FlowactVideoGenerator(config)
    runner: AvatarRunner | None = None
    try:  # the runner's start waits for the agent to join: a cancel here must not leak the renderer
        await gen.start()
        # before the runner publishes: an agent that sees our tracks can already send commands
        register_command_rpc(room, gen.apply_tag, sender_identity=sender_identity)
        runner = AvatarRunner(
            room, audio_recv=DataStreamAudioReceiver(room, sender_identity=sender_identity), video_gen=gen,
            options=AvatarOptions(video_width=config.width, video_height=config.height, video_fps=config.fps,
                                  audio_sample_rate=config.sample_rate, audio_channels=1),
            **runner_kw,
        )
        await runner.start()
    except BaseException:
        with contextlib.suppress(Exception):
            room.local_participant.unregister_rpc_method(COMMAND_METHOD)
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.aclose()
        await gen.aclose()
        raise

    def on_attributes(changed: dict[str, str], participant: rtc.Participant) -> None:
        if STATE_ATTRIBUTE in changed and is_served_agent(room, participant.identity, sender_identity):
            gen.set_agent_state(changed[STATE_ATTRIBUTE])
    room.on("participant_attributes_changed", on_attributes)
    for p in room.remote_participants.values():  # the state it is in already
        if STATE_ATTRIBUTE in p.attributes and is_served_agent(room, p.identity, sender_identity):
            gen.set_agent_state(p.attributes[STATE_ATTRIBUTE])
    mic = None
    if config.listen:
        mic = MicListener(gen.push_user_audio, sample_rate=16000, listen_to=config.listen_to, name="avatar-mic")
        mic.wire(room)
        mic.catch_up()
    return AvatarWorker(room, runner, gen, on_attributes, mic)
