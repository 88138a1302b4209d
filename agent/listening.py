"""The input stages: microphone -> VAD -> ASR, typed text, control commands -> typed events.

Each stage is a coroutine the session runs as an owned task. Stages never touch turn state: they
report `agent.events` values through `emit` (the conversation applies them) and transcripts
through the fanout. The ASR of an utterance runs as its own task so the microphone keeps flowing;
a newer utterance that ends while an older one is still being transcribed replaces that transcription
with one of both together (`join_utterances`: the older one's words are not lost).

Early transcription: a VAD pause event (the user has been quiet `early_asr_ms`) starts the ASR on
the utterance so far while the end of turn is still being decided. If the end of turn that follows
has the same last voiced frame, that transcript is the turn's (the ASR cost overlaps the endpoint
wait); if the user went on (the VAD's resume event, `UserSpeechResumed` for the conversation), it is
dropped at once and never reported. A newer pause drops a running one too. A dropped one runs out in
its thread (Whisper cannot be stopped mid-call), silently; a pause while two early transcriptions
(dropped or not) still run is left to the end of turn, so at most two early and one final
transcription run at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

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
    UserSpeechResumed,
    UserSpeechStarted,
)
from agent.fanout import Fanout
from agent.frames import AudioChunk, VadEvent
from agent.intents import parse_tag
from agent.interfaces import ASR, VAD, AudioInput, ControlChannel, ReplyPaced, TextInput
from agent.metrics import SessionMetrics
from agent.tasks import retrieve
from agent.text import reads_finished
from flowact.clock import Clock
from flowact.control import ControlBuilder

__all__ = ["Listener", "apply_command", "command_loop", "join_utterances"]

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
        on_early_text: Callable[[str], None] | None = None,
    ) -> None:
        self.emit = emit
        self.fanout = fanout
        self.clock = clock
        self.metrics = metrics
        self.builder_audio = builder_audio
        self.vad = vad
        self.asr = asr
        self.notify = notify  # wakes the session's waiters when a transcription ends
        self.on_early_text = on_early_text  # an early transcript is ready and the end of turn is still out
        self.asr_task: asyncio.Task[None] | None = None
        self._asr_audio: AudioChunk | None = None  # what asr_task transcribes
        self.early: tuple[tuple[float, float], asyncio.Task[str]] | None = None  # (speech key, transcription)
        self._stale: set[asyncio.Task[str]] = set()  # dropped early transcriptions, until they end

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
        """A VAD edge: onset may barge in; an end of turn sends the utterance to ASR (a pause may
        already have, see the module doc)."""
        if event.pause:
            self._start_early(event)
            return
        if event.resumed:
            if self.early is not None:  # the user went on: that transcript is of unfinished words
                self._drop(self.early[1])
                self.early = None
            self.emit(UserSpeechResumed(self.clock.now()))
            return
        if event.speaking:
            self.emit(UserSpeechStarted(self.clock.now()))
            return
        t_end = self.clock.now()
        # the VAD's own time runs on the audio it was fed: its lag behind that gives the last word
        last_word = None if event.last_voiced_t is None else t_end - max(0.0, event.t - event.last_voiced_t)
        self.emit(UserSpeechEnded(t_end, event.audio, last_voiced_t=last_word))
        if event.audio is not None and len(event.audio.samples) > 0 and self.asr is not None:
            audio, early = event.audio, None
            if self.asr_task is not None and not self.asr_task.done():
                # the user went on while the last turn's words were still being transcribed (a busy box):
                # transcribe both parts as one, or the first part's words are lost with its cancelled task
                self.asr_task.cancel()
                if self._asr_audio is not None:
                    audio = join_utterances(self._asr_audio, event.audio)
                if self.early is not None:
                    self._drop(self.early[1])
                    self.early = None
            else:
                early = self._take_early(event)
            self._asr_audio = audio
            self.asr_task = asyncio.create_task(self._transcribe(audio, t_end, last_word, early), name="asr")
            if self.notify is not None:
                notify = self.notify
                self.asr_task.add_done_callback(lambda _: notify())

    def _start_early(self, event: VadEvent) -> None:
        """A pause: transcribe the utterance so far (see the module doc for the bound)."""
        if self.asr is None or event.audio is None or not len(event.audio.samples) or event.last_voiced_t is None:
            return
        running = len(self._stale) + (self.early is not None and not self.early[1].done())
        if running >= 2:
            return  # bounded (module doc)
        if self.early is not None:
            self._drop(self.early[1])
        key = (event.audio.pts, event.last_voiced_t)
        self.early = (key, asyncio.create_task(self._asr_text(event.audio), name="asr-early"))
        self.early[1].add_done_callback(self._early_done)

    def _early_done(self, task: asyncio.Task[str]) -> None:
        """Report an early transcript while the end of turn is still out (the LLM may prepare)."""
        if self.early is None or self.early[1] is not task or task.cancelled() or task.exception() is not None:
            return
        if self.on_early_text is not None and task.result().strip():
            self.on_early_text(task.result())
        hint = getattr(self.vad, "words_complete", None)
        if hint is not None and reads_finished(task.result()):  # an unsure end-of-turn model waits less
            hint()

    def _take_early(self, event: VadEvent) -> asyncio.Task[str] | None:
        """The early transcription of this end of turn's speech (same start and last voiced frame)."""
        early, self.early = self.early, None
        after = event.t - (event.last_voiced_t or event.t)  # the endpoint's wait after the last word
        if early is None:
            log.debug("end of turn %.3f s after the last word: no early transcription", after)
            return None
        if event.audio is not None and early[0] == (event.audio.pts, event.last_voiced_t) and not early[1].cancelled():
            self.metrics.early_asr["used"] += 1
            state = "ready" if early[1].done() else "still running"
            log.debug("end of turn %.3f s after the last word: early transcript %s", after, state)
            return early[1]
        log.debug("end of turn: the early transcription was of other speech")
        self._drop(early[1])
        return None

    def _drop(self, task: asyncio.Task[str]) -> None:
        """An early transcription of speech the user went on with: ignored, kept until it ends."""
        self.metrics.early_asr["dropped"] += 1
        if task.done():
            retrieve(task, "dropped early transcription")  # the turn transcribes again
        else:
            self._stale.add(task)
            task.add_done_callback(self._stale_done)

    def _stale_done(self, task: asyncio.Task[str]) -> None:
        self._stale.discard(task)
        retrieve(task, "dropped early transcription")

    async def _asr_text(self, audio: AudioChunk) -> str:
        """The final transcript of `audio`; each segment is published as a caption in progress (the
        conversation says the final line once it knows the whole question: a user may go on)."""
        assert self.asr is not None
        text = ""
        async for tr in self.asr.transcribe(audio):
            if asyncio.current_task() not in self._stale:  # a dropped transcription stays silent
                self.fanout.transcript("user", tr.text, False)
            if tr.final:
                text = tr.text
        return text

    async def _transcribe(
        self, audio: AudioChunk, t_end: float, last_word: float | None, early: asyncio.Task[str] | None = None
    ) -> None:
        text = ""
        try:
            text = await (early if early is not None else self._asr_text(audio))
        except FlowActError as e:
            log.error("ASR failed: %s", e)
            self.metrics.errors += 1
            self.fanout.event("error", {"stage": "asr", "error": str(e), "retryable": e.retryable})
            text = ""
        self.emit(UserMessage(text, t_end=t_end, t_final=self.clock.now(), last_word=last_word))

    @property
    def transcribing(self) -> bool:
        return self.asr_task is not None and not self.asr_task.done()

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """The transcriptions running now (for leak checks)."""
        early = [self.early[1]] if self.early is not None else []
        own: list[asyncio.Task[Any]] = [self.asr_task] if self.asr_task is not None else []
        return own + early + list(self._stale)

    async def aclose(self) -> None:
        tasks = [t for t in self.tasks if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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


def join_utterances(first: AudioChunk, then: AudioChunk, max_gap_s: float = 0.3) -> AudioChunk:
    """Two utterances of one stream as one: `then` from where `first` ends (its pre-roll may reach back
    into `first`); a gap between them becomes at most `max_gap_s` of silence."""
    rate = first.sample_rate
    if then.sample_rate != rate:
        return then
    end = first.pts + len(first.samples) / rate
    skip = min(len(then.samples), max(0, round((end - then.pts) * rate)))
    gap = np.zeros(max(0, min(round((then.pts - end) * rate), round(max_gap_s * rate))), first.samples.dtype)
    return AudioChunk(np.concatenate([first.samples, gap, then.samples[skip:]]), rate, pts=first.pts)


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
