"""The input stages: microphone -> VAD -> ASR, typed text, control commands -> typed events.

Each stage is a coroutine the session runs as an owned task. Stages never touch turn state: they
report `agent.events` values through `emit` (the conversation applies them) and transcripts
through the fanout. The ASR of an utterance runs as its own task so the microphone keeps flowing;
a newer utterance supersedes an older one still being transcribed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agent.commands import (
    Command,
    EmotionCommand,
    GestureCommand,
    InterruptCommand,
    SayCommand,
    StateCommand,
)
from agent.errors import FlowActError
from agent.events import (
    InterruptRequested,
    SayRequested,
    SessionEvent,
    UserMessage,
    UserSpeechEnded,
    UserSpeechStarted,
)
from agent.fanout import Fanout
from agent.frames import AudioChunk, VadEvent
from agent.intents import parse_tag
from agent.interfaces import ASR, VAD, AudioInput, ControlChannel, ReplyPaced, TextInput
from agent.metrics import SessionMetrics
from flowact.clock import Clock
from flowact.control import ControlBuilder

__all__ = ["Listener", "apply_command", "command_loop"]

log = logging.getLogger("agent.listening")

Emit = Callable[[SessionEvent], None]


class Listener:
    """The user's side of the session: microphone through VAD and ASR, typed lines, commands."""

    def __init__(
        self,
        *,
        emit: Emit,
        fanout: Fanout,
        clock: Clock,
        metrics: SessionMetrics,
        builder_audio: Callable[[AudioChunk], None],
        vad: VAD | None = None,
        asr: ASR | None = None,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.emit = emit
        self.fanout = fanout
        self.clock = clock
        self.metrics = metrics
        self.builder_audio = builder_audio
        self.vad = vad
        self.asr = asr
        self.notify = notify  # wakes the session's waiters when a transcription ends
        self.asr_task: asyncio.Task[None] | None = None

    # --- microphone ------------------------------------------------------------------------------
    async def audio_loop(self, source: AudioInput) -> None:
        """Feed the microphone to the face (listening cues) and the VAD, until the input ends."""
        if self.vad is None:
            raise FlowActError("audio input without a VAD")
        async for chunk in source.audio():
            self.builder_audio(chunk)
            for event in await self.vad.feed(chunk):
                self.on_vad(event)

    def on_vad(self, event: VadEvent) -> None:
        """A VAD edge: onset may barge in; an end of turn sends the utterance to ASR."""
        if event.speaking:
            self.emit(UserSpeechStarted(self.clock.now()))
            return
        t_end = self.clock.now()
        # the VAD's own time runs on the audio it was fed: its lag behind that gives the last word
        last_word = None if event.last_voiced_t is None else t_end - max(0.0, event.t - event.last_voiced_t)
        self.emit(UserSpeechEnded(t_end, event.audio, last_voiced_t=last_word))
        if event.audio is not None and len(event.audio.samples) > 0 and self.asr is not None:
            if self.asr_task is not None and not self.asr_task.done():
                self.asr_task.cancel()
            self.asr_task = asyncio.create_task(self._transcribe(event.audio, t_end, last_word), name="asr")
            if self.notify is not None:
                notify = self.notify
                self.asr_task.add_done_callback(lambda _: notify())

    async def _transcribe(self, audio: AudioChunk, t_end: float, last_word: float | None) -> None:
        assert self.asr is not None
        text = ""
        try:
            async for tr in self.asr.transcribe(audio):
                # a segment's transcript is a caption in progress: the conversation says the final
                # line once it knows the whole question (a user may go on after a pause)
                self.fanout.transcript("user", tr.text, False)
                if tr.final:
                    text = tr.text
        except FlowActError as e:
            log.error("ASR failed: %s", e)
            self.metrics.errors += 1
            self.fanout.event("error", {"stage": "asr", "error": str(e), "retryable": e.retryable})
            text = ""
        self.emit(UserMessage(text, t_end=t_end, t_final=self.clock.now(), last_word=last_word))

    @property
    def transcribing(self) -> bool:
        return self.asr_task is not None and not self.asr_task.done()

    async def aclose(self) -> None:
        if self.asr_task is not None and not self.asr_task.done():
            self.asr_task.cancel()
            await asyncio.gather(self.asr_task, return_exceptions=True)

    # --- typed text ------------------------------------------------------------------------------
    def typed(self, text: str) -> None:
        """A typed user message (stdin, chat, preview page)."""
        self.emit(UserMessage(text, t_end=self.clock.now(), typed=True))
        self.fanout.transcript("user", text, True)

    async def text_loop(self, source: TextInput, wait_idle: Callable[[], Awaitable[None]]) -> None:
        """Typed lines until the input ends; a `ReplyPaced` input waits for each reply."""
        sequential = isinstance(source, ReplyPaced) and source.wait_for_reply
        async for text in source.text():
            if text.strip():
                self.typed(text.strip())
                if sequential:  # scripted conversations: one line per finished reply
                    await wait_idle()


async def command_loop(channel: ControlChannel, apply: Callable[[Command], Awaitable[None]], fanout: Fanout) -> None:
    """External commands (MQTT, ...) until the channel closes; a bad command never ends the session."""
    async for cmd in channel.commands():
        try:
            await apply(cmd)
        except Exception as e:
            log.error("command %s failed: %s", cmd.kind, e)
            fanout.event("error", {"command": cmd.kind, "error": str(e)})


def apply_command(cmd: Command, *, emit: Emit, builder: ControlBuilder, fanout: Fanout) -> None:
    """Carry out one command: say and interrupt become events, expressions go to the builder
    (an emotion with a duration eases back to neutral after it, on the media timeline)."""
    if isinstance(cmd, SayCommand):
        emit(SayRequested(cmd.text, interrupt=cmd.interrupt))
    elif isinstance(cmd, EmotionCommand | GestureCommand):
        spec = cmd.name if cmd.intensity == 1.0 else f"{cmd.name}:{cmd.intensity}"
        tag = parse_tag(spec, source="command")
        if tag is None:
            fanout.event("error", {"command": cmd.kind, "error": f"unknown {cmd.kind} {cmd.name!r}"})
            return
        duration = cmd.duration if isinstance(cmd, EmotionCommand) else None
        builder.push_tag(tag, duration_s=duration)
    elif isinstance(cmd, InterruptCommand):
        emit(InterruptRequested("command"))
    elif isinstance(cmd, StateCommand):
        builder.set_state(cmd.state)
    fanout.event("command", {"kind": cmd.kind})
