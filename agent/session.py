"""AgentSession: wires input -> VAD -> ASR -> LLM -> TTS -> control -> generator -> sink.

The session owns every task (named, cancelled and awaited on shutdown), bounded queues between
stages, the turn machine (agent.turns) and the media loop (agent.media). Engine failures end the
turn, not the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, fields
from typing import Any

from agent.avsync import MediaTimeline
from flowact.clock import Clock, RealClock
from agent.commands import (
    Command,
    EmotionCommand,
    GestureCommand,
    InterruptCommand,
    SayCommand,
    StateCommand,
)
from agent.config import AgentConfig
from flowact.control import ControlBuilder
from agent.errors import ConfigError
from agent.frames import AudioChunk, VadEvent
from agent.intents import parse_tag
from agent.interfaces import ASR, LLM, TTS, VAD, AudioInput, ChatMessage, ControlChannel, Generator, Sink, TextInput
from agent.media import MediaLoop, PipelineItem
from agent.metrics import SessionMetrics
from agent.turn_runner import TurnRunner
from agent.turns import Action, CancelTurn, SetState, StartTurn, TurnMachine
from flowact.errors import FlowActError
from flowact.types import AgentState, ControlChunk, VideoChunk

__all__ = ["AgentSession", "Components"]

log = logging.getLogger("agent.session")


@dataclass(slots=True)
class Components:
    """Engines and transports; any left None is built from the config."""

    vad: VAD | None = None
    asr: ASR | None = None
    llm: LLM | None = None
    tts: TTS | None = None
    generator: Generator | None = None
    sink: Sink | None = None
    control: ControlChannel | None = None
    audio_input: AudioInput | None = None
    text_input: TextInput | None = None


class AgentSession:
    """One conversation with one avatar, for as long as it lasts."""

    def __init__(self, config: AgentConfig, *, clock: Clock | None = None, components: Components | None = None):
        self.config = config
        self.cfg = config.session
        self.clock: Clock = clock or RealClock()
        self.timeline = MediaTimeline(self.cfg.fps, self.cfg.frames_per_chunk, self.cfg.sample_rate)
        self.metrics = SessionMetrics(self.clock, fps=self.cfg.fps)
        self.turns = TurnMachine(barge_in=self.cfg.barge_in)
        self.builder = ControlBuilder(
            fps=self.cfg.fps, frames_per_chunk=self.cfg.frames_per_chunk, sample_rate=self.cfg.sample_rate
        )
        self.c = components or Components()
        self.history: deque[ChatMessage] = deque()
        self._observers: list[Any] = []
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._turn_task: asyncio.Task[None] | None = None
        self._asr_task: asyncio.Task[None] | None = None
        self._media: MediaLoop | None = None
        self._speech_event = asyncio.Event()
        self._tts_done_turn = 0  # highest turn whose speech is fully queued in the builder
        self._speaking_turn: int | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._inputs_done = asyncio.Event()
        self._started = False
        self._closed = False
        self._emotion_token: object | None = None

    # --- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        sr_in = self.cfg.input_sample_rate
        ctx: dict[str, dict[str, Any]] = {
            "vad": {"sample_rate": sr_in},
            "tts": {"sample_rate": self.cfg.sample_rate},
            "generator": {"width": self.cfg.width, "height": self.cfg.height, "fps": self.cfg.fps},
            "input": {"sample_rate": sr_in, "clock": self.clock},
        }
        for f in fields(Components):
            kind = {"audio_input": "input", "text_input": "input"}.get(f.name, f.name)
            if getattr(self.c, f.name) is not None or f.name == "text_input":
                continue
            spec = self.config.plugin(kind)
            if spec is not None:
                setattr(self.c, f.name, spec.build(**ctx.get(kind, {})))
        inp = self.c.audio_input
        if inp is not None and self.c.text_input is None and isinstance(inp, TextInput):
            self.c.text_input = inp
        if inp is not None and not isinstance(inp, AudioInput):
            self.c.audio_input = None
        sink = self.c.sink
        if self.c.audio_input is None and isinstance(sink, AudioInput):
            self.c.audio_input = sink
        if self.c.text_input is None and isinstance(sink, TextInput):
            self.c.text_input = sink
        missing = [n for n in ("tts", "generator", "sink") if getattr(self.c, n) is None]
        if missing:
            raise ConfigError(f"{self.config.source}: missing section(s) {missing}")
        if self.c.audio_input is not None and (self.c.vad is None or self.c.asr is None):
            raise ConfigError(f"{self.config.source}: audio input needs `vad:` and `asr:` sections")

    # --- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> AgentSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._build()
        assert self.c.generator is not None and self.c.sink is not None
        # Engines load while the portrait is analysed and the avatar starts idling (time to first frame).
        engines = [self.c.vad, self.c.asr, self.c.llm, self.c.tts, self.c.control]
        engine_starts = asyncio.gather(
            *(e.start() for e in engines if e is not None and hasattr(e, "start")), return_exceptions=True
        )
        try:
            await self.c.generator.start(self.cfg.portrait)
            await self.c.sink.start(
                width=self.cfg.width, height=self.cfg.height, fps=self.cfg.fps, sample_rate=self.cfg.sample_rate
            )
        except BaseException:
            engine_starts.cancel()
            await asyncio.gather(engine_starts, return_exceptions=True)
            await self._close_components()
            raise
        self._media = MediaLoop(
            timeline=self.timeline, clock=self.clock, metrics=self.metrics, generator=self.c.generator,
            sink=self.c.sink, next_chunk=self._next_chunk, on_written=self._on_written,
            realtime=self.cfg.realtime, policy=self.cfg.late_frame_policy, offline_gate=self._offline_gate,
        )
        self._media.start()
        errors = [r for r in await engine_starts if isinstance(r, BaseException)]
        if errors:
            await self._media.aclose()
            await self._close_components()
            raise errors[0]
        warmup = getattr(self.c.llm, "warmup", None)
        if warmup is not None:  # prime the LLM's prompt cache with the system prompt
            self._spawn("llm-warmup", warmup([ChatMessage("system", self.cfg.system_prompt)]))
        for source in (self.c.audio_input, self.c.text_input):
            bind = getattr(source, "bind_session", None)
            if bind is not None:
                bind(self)
        if self.c.audio_input is not None:
            self._spawn("audio-input", self._audio_loop(self.c.audio_input))
        if self.c.text_input is not None:
            self._spawn("text-input", self._text_loop(self.c.text_input))
        if self.c.audio_input is None and self.c.text_input is None:
            self._inputs_done.set()
        if self.c.control is not None:
            self._spawn("control", self._control_loop(self.c.control))
        self._spawn("telemetry", self._telemetry_loop())
        if self.cfg.greeting:
            await self.say(self.cfg.greeting)

    async def aclose(self) -> None:
        """Cancel and await every task, then close the engines (the sink last: it finalizes)."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._turn_task, self._asr_task, *self._tasks.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._media is not None:
            await self._media.aclose()
        await self._close_components()

    async def _close_components(self) -> None:
        for comp in (self.c.control, self.c.llm, self.c.tts, self.c.asr, self.c.vad, self.c.generator, self.c.sink):
            close = getattr(comp, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception as e:  # keep closing the rest
                log.error("closing %s failed: %s", type(comp).__name__, e)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s failed: %s", task.get_name(), exc)
            self.metrics.errors += 1
            self._emit("error", {"task": task.get_name(), "error": str(exc)})

    # --- public API ----------------------------------------------------------------------------
    @property
    def state(self) -> AgentState:
        return self.turns.state

    @property
    def turn_count(self) -> int:
        """Turns started so far."""
        return self.turns.turn

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """Every task the session owns right now (for leak checks)."""
        own = [t for t in (self._turn_task, self._asr_task, *self._tasks.values()) if t is not None]
        return own + (self._media.tasks if self._media is not None else [])

    def add_observer(self, observer: Any) -> None:
        self._observers.append(observer)

    async def user_text(self, text: str) -> None:
        self._execute(self.turns.on_user_message(text), user_end=self.clock.now())
        self._emit("transcript", {"role": "user", "text": text, "final": True})
        await self._hook("on_transcript", "user", text, True)

    async def say(self, text: str, *, interrupt: bool = False) -> None:
        self._execute(self.turns.on_say(text, interrupt=interrupt))

    def interrupt(self, reason: str = "interrupt") -> None:
        self._execute(self.turns.on_interrupt(reason))

    async def handle_command(self, cmd: Command) -> None:
        if isinstance(cmd, SayCommand):
            await self.say(cmd.text, interrupt=cmd.interrupt)
        elif isinstance(cmd, EmotionCommand | GestureCommand):
            spec = cmd.name if cmd.intensity == 1.0 else f"{cmd.name}:{cmd.intensity}"
            tag = parse_tag(spec, source="command")
            if tag is None:
                self._emit("error", {"command": cmd.kind, "error": f"unknown {cmd.kind} {cmd.name!r}"})
                return
            self.builder.push_tag(tag)
            if isinstance(cmd, EmotionCommand) and cmd.duration is not None:
                self._schedule(self._emotion_expires(tag.name, cmd.duration), "emotion-expiry")
        elif isinstance(cmd, InterruptCommand):
            self.interrupt("command")
        elif isinstance(cmd, StateCommand):
            self.builder.set_state(cmd.state)
        self._emit("command", {"kind": cmd.kind})

    async def _emotion_expires(self, name: str, after_s: float) -> None:
        """An emotion command with a duration: back to neutral afterwards (unless replaced)."""
        self._emotion_token = token = object()
        await self.clock.sleep(after_s)
        if self._emotion_token is token:
            neutral = parse_tag("neutral", source="command")
            if neutral is not None:
                self.builder.push_tag(neutral)

    async def wait_idle(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Until no turn is in progress and its speech has played out."""
        await asyncio.wait_for(self._wait_idle(), timeout)

    async def _wait_idle(self) -> None:
        while True:
            await self._idle.wait()
            await asyncio.sleep(0.01)
            if self._idle.is_set() and not self.turns.turn_active:
                return

    async def run_until_done(self, tail_s: float | None = None) -> None:
        """For finite inputs (WAV, script): wait for the input to end and the agent to finish."""
        await self._inputs_done.wait()
        while True:
            await self.wait_idle()
            if self._asr_task is None or self._asr_task.done():
                await asyncio.sleep(0.05)
                if (self._asr_task is None or self._asr_task.done()) and not self.turns.turn_active:
                    break
            else:
                await asyncio.gather(self._asr_task, return_exceptions=True)
        tail = self.cfg.idle_tail_s if tail_s is None else tail_s
        if self._media is not None:
            target = self._media.chunks_built + max(1, round(tail / self.timeline.chunk_duration))
            await self._media.wait_written(target)

    # --- turn execution ------------------------------------------------------------------------
    def _execute(self, actions: list[Action], *, user_end: float | None = None) -> None:
        for action in actions:
            if isinstance(action, SetState):
                self.builder.set_state(action.state)
                self._emit("state", {"state": action.state.value})
                self._schedule_hook("on_state", action.state)
                for obs in self._observers:
                    _call(obs, "on_state", action.state)
            elif isinstance(action, CancelTurn):
                self._cancel_turn(action)
            elif isinstance(action, StartTurn):
                self._idle.clear()
                if user_end is not None:
                    self.metrics.mark(action.turn, "user_end", user_end)
                self._turn_task = asyncio.create_task(self._run_turn(action), name=f"turn-{action.turn}")

    def _cancel_turn(self, action: CancelTurn) -> None:
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()
        self.builder.interrupt()
        if self.c.generator is not None:
            self.c.generator.interrupt()
        muted = self._media.mute_pending() if self._media is not None else 0
        self._speaking_turn = None
        if action.reason == "barge-in":
            self.metrics.barge_ins += 1
        self.metrics.finish_turn(action.turn, interrupted=True)
        self._emit("interrupt", {"turn": action.turn, "reason": action.reason, "muted_chunks": muted})
        self._idle.set()

    async def _run_turn(self, action: StartTurn) -> None:
        assert self.c.tts is not None
        runner = TurnRunner(
            turn=action.turn, builder=self.builder, tts=self.c.tts, clock=self.clock, metrics=self.metrics,
            llm=self.c.llm, speech_event=self._speech_event,
        )
        try:
            if action.use_llm:
                if self.c.llm is None:
                    raise ConfigError(f"{self.config.source}: llm section is needed to answer the user")
                messages = self._messages(action.text)
                result = await runner.run_llm(messages)
                self._remember(action.text, result.spoken_text)
            else:
                result = await runner.run_text(action.text)
            tm = self.metrics.turn(action.turn)
            tm.speech_s = result.speech_s
            if result.active_first >= 0:
                tm.speech_span_s = (result.active_last - result.active_first) / self.cfg.sample_rate
            self._tts_done_turn = action.turn
            self._speech_event.set()
            self._emit("transcript", {"role": "agent", "text": result.spoken_text.strip(), "final": True})
            await self._hook("on_transcript", "agent", result.spoken_text.strip(), True)
            if result.speech_s == 0.0:
                self._finish_turn(action.turn)
        except asyncio.CancelledError:
            if action.use_llm and runner.result.spoken_text:
                self._remember(action.text, runner.result.spoken_text + " ...")
            raise
        except FlowActError as e:
            log.error("turn %d failed: %s", action.turn, e)
            self.metrics.errors += 1
            self._emit("error", {"turn": action.turn, "error": str(e), "retryable": e.retryable})
            self._tts_done_turn = action.turn
            self._execute(self.turns.on_failed(action.turn))
            self._idle.set()

    def _messages(self, user_text: str) -> list[ChatMessage]:
        return [ChatMessage("system", self.cfg.system_prompt), *self.history, ChatMessage("user", user_text)]

    def _remember(self, user_text: str, reply: str) -> None:
        self.history.append(ChatMessage("user", user_text))
        self.history.append(ChatMessage("assistant", reply.strip()))
        while len(self.history) > 2 * self.cfg.history_turns:
            self.history.popleft()
        while self.history and sum(len(m.content) for m in self.history) > self.cfg.history_chars:
            self.history.popleft()

    def _finish_turn(self, turn: int) -> None:
        if turn != self.turns.turn:
            return
        record = self.metrics.finish_turn(turn)
        self._emit("turn", record)
        self._execute(self.turns.on_turn_finished(turn))
        self._speaking_turn = None
        self._idle.set()

    # --- media callbacks -----------------------------------------------------------------------
    def _next_chunk(self) -> tuple[ControlChunk, int | None]:
        chunk = self.builder.next_chunk()
        turn = self.turns.turn
        speaking_turn: int | None = None
        if self.turns.turn_active and self.builder.speaking:
            speaking_turn = turn
            if self._speaking_turn != turn:
                self._speaking_turn = turn
                self._execute(self.turns.on_speech_started(turn))
        elif (
            self.turns.turn_active
            and self._speaking_turn == turn
            and self._tts_done_turn >= turn
            and self.builder.speech_pending_s <= 0.0
        ):
            self._finish_turn(turn)
        for obs in self._observers:
            _call(obs, "on_control", chunk)
        return chunk, speaking_turn

    async def _offline_gate(self) -> None:
        """Offline rendering: do not run the timeline ahead while a turn is still producing speech."""
        while (
            self.turns.turn_active
            and self._tts_done_turn < self.turns.turn
            and self.builder.speech_pending_s < self.timeline.chunk_duration
        ):
            self._speech_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._speech_event.wait(), 0.05)

    async def _on_written(self, item: PipelineItem, chunk: VideoChunk) -> None:
        if item.speaking_turn is not None and not item.mute:
            self.metrics.mark(item.speaking_turn, "first_frame")
        for obs in self._observers:
            _call(obs, "on_video", chunk)

    # --- input loops ---------------------------------------------------------------------------
    async def _audio_loop(self, source: AudioInput) -> None:
        assert self.c.vad is not None
        try:
            async for chunk in source.audio():
                self.builder.push_user_audio(chunk)
                for event in await self.c.vad.feed(chunk):
                    self.handle_vad(event)
        finally:
            self._inputs_done.set()

    def handle_vad(self, event: VadEvent) -> None:
        """A VAD edge (from our VAD, or a transport that detects speech itself): onset may barge in;
        end of turn sends the utterance to ASR."""
        if event.speaking:
            self._execute(self.turns.on_user_speech_start())
            return
        self._execute(self.turns.on_user_speech_end())
        if event.audio is not None and len(event.audio.samples) > 0:
            if self._asr_task is not None and not self._asr_task.done():
                self._asr_task.cancel()
            self._asr_task = asyncio.create_task(self._transcribe(event.audio, self.clock.now()), name="asr")

    async def _transcribe(self, audio: AudioChunk, t_end: float) -> None:
        assert self.c.asr is not None
        text = ""
        try:
            async for tr in self.c.asr.transcribe(audio):
                self._emit("transcript", {"role": "user", "text": tr.text, "final": tr.final})
                await self._hook("on_transcript", "user", tr.text, tr.final)
                if tr.final:
                    text = tr.text
        except FlowActError as e:
            log.error("ASR failed: %s", e)
            self.metrics.errors += 1
            self._emit("error", {"stage": "asr", "error": str(e), "retryable": e.retryable})
            self._execute(self.turns.on_user_message(""))
            return
        t_final = self.clock.now()
        self._execute(self.turns.on_user_message(text), user_end=t_end)
        if text.strip():
            self.metrics.mark(self.turns.turn, "asr_final", t_final)

    async def _text_loop(self, source: TextInput) -> None:
        try:
            sequential = bool(getattr(source, "wait_for_reply", False))
            async for text in source.text():
                if text.strip():
                    await self.user_text(text.strip())
                    if sequential:  # scripted conversations: one line per finished reply
                        await self.wait_idle()
        finally:
            if self.c.audio_input is None:
                self._inputs_done.set()

    async def _control_loop(self, channel: ControlChannel) -> None:
        async for cmd in channel.commands():
            try:
                await self.handle_command(cmd)
            except Exception as e:  # a bad command never ends the session
                log.error("command %s failed: %s", cmd.kind, e)
                self._emit("error", {"command": cmd.kind, "error": str(e)})

    async def _telemetry_loop(self) -> None:
        while True:
            await self.clock.sleep(1.0)
            snap = self.metrics.snapshot()
            snap["state"] = self.state.value
            if self.c.control is not None:
                with contextlib.suppress(Exception):
                    await self.c.control.publish_telemetry(snap)
            await self._hook("on_metrics", snap)
            for obs in self._observers:
                _call(obs, "on_metrics", snap)

    # --- events and hooks ----------------------------------------------------------------------
    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        for obs in self._observers:
            _call(obs, "on_event", kind, payload)
        if self.c.control is not None and not self._closed:
            self._schedule(self.c.control.publish_event(kind, payload), f"event-{kind}")

    async def _hook(self, name: str, *args: Any) -> None:
        fn = getattr(self.c.sink, name, None)
        if fn is None:
            return
        try:
            await fn(*args)
        except Exception as e:
            log.warning("sink hook %s failed: %s", name, e)

    def _schedule_hook(self, name: str, *args: Any) -> None:
        if getattr(self.c.sink, name, None) is not None and not self._closed:
            self._schedule(self._hook(name, *args), f"hook-{name}")

    def _schedule(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Fire-and-forget work that is still owned: bounded, named, cancelled on close."""
        pending = [t for k, t in self._tasks.items() if k.startswith("bg-") and not t.done()]
        if len(pending) > 64:
            coro.close()
            return
        for k in [k for k, t in self._tasks.items() if k.startswith("bg-") and t.done()]:
            del self._tasks[k]
        key = f"bg-{name}-{id(coro)}"
        self._spawn(key, coro)


def _call(obj: Any, name: str, *args: Any) -> None:
    fn: Callable[..., Any] | None = getattr(obj, name, None)
    if fn is None:
        return
    try:
        fn(*args)
    except Exception as e:  # observers never break the session
        log.warning("observer %s.%s failed: %s", type(obj).__name__, name, e)
