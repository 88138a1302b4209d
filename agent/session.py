"""AgentSession: builds the stages of one conversation, wires them with typed events, supervises.

    input ──► Listener (VAD, ASR, typed text, commands) ──events──► Conversation (turns) ──► builder
    builder ──► MediaLoop (producer → renderer → writer) ──► sink;  MediaLoop ──events──► Conversation

The session owns every task (named, cancelled and awaited on close) through a `TaskOwner`, routes
every event to the conversation in order (`_emit`), and fans news out to observers, the sink's
hooks and the control channel (`agent.fanout`). Engine failures end a turn, never the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from agent.app_services import AppServices
from agent.avsync import MediaTimeline
from agent.commands import Command
from agent.config import AgentConfig, PluginSpec
from agent.conversation import Conversation
from agent.errors import ConfigError
from agent.events import InterruptRequested, SayRequested, SessionEvent
from agent.fanout import Fanout, TaskOwner
from agent.frames import AudioChunk, VadEvent
from agent.history import ConversationHistory
from agent.interfaces import (
    ASR,
    LLM,
    TTS,
    VAD,
    AudioInput,
    ChatMessage,
    ControlChannel,
    Generator,
    Preparable,
    SessionBound,
    SessionObserver,
    Sink,
    Startable,
    TextInput,
    Warmable,
)
from agent.listening import Listener, apply_command, command_loop
from agent.media import MediaLoop
from agent.memory import limit_arenas, release_thresholds, trim_loop
from agent.metrics import SessionMetrics
from flowact.clock import Clock, RealClock
from flowact.control import ControlBuilder
from flowact.types import AgentState

__all__ = ["AgentSession", "Components"]

log = logging.getLogger("agent.session")

# said by the agent's TTS and heard by its ASR once before listening (see AgentSession._rehearse)
REHEARSAL = "Hello, where is my order? I would like to change the delivery address, please."


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
        self.builder = ControlBuilder(
            fps=self.cfg.fps, frames_per_chunk=self.cfg.frames_per_chunk, sample_rate=self.cfg.sample_rate
        )
        self.history = ConversationHistory(max_turns=self.cfg.history_turns, max_chars=self.cfg.history_chars)
        self.c = components or Components()
        self.owner = TaskOwner()
        self.owner.on_failure.append(self._task_failed)
        self.fanout = Fanout(self.owner)
        self.services = AppServices(
            knowledge=config.knowledge, record=config.record, tutor=config.tutor, name=config.source
        )
        self._conversation: Conversation | None = None
        self._listener: Listener | None = None
        self._media: MediaLoop | None = None
        self._inputs_done = asyncio.Event()
        self._prefill_task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    # --- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        sr_in = self.cfg.input_sample_rate
        clock = {"clock": self.clock}  # engines, inputs, sinks and channels run on the session's clock
        ctx: dict[str, dict[str, Any]] = {
            "vad": {"sample_rate": sr_in, **clock},
            "asr": clock,
            "llm": clock,
            "tts": {"sample_rate": self.cfg.sample_rate, **clock},
            "generator": {"width": self.cfg.width, "height": self.cfg.height, "fps": self.cfg.fps},
            "input": {"sample_rate": sr_in, **clock},
            "sink": clock,
            "control": clock,
        }
        for f in fields(Components):
            kind = {"audio_input": "input", "text_input": "input"}.get(f.name, f.name)
            if getattr(self.c, f.name) is not None or f.name == "text_input":
                continue
            spec = self.config.plugin(kind)
            if spec is not None:
                if kind == "generator":
                    spec = self._with_face(spec)
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

    def _with_face(self, spec: PluginSpec) -> PluginSpec:
        """`session.face` picks the face of a group photo, `session.isolate_face` shows that person alone:
        handed to the generator's own `face` and `isolate_face`."""
        update: dict[str, object] = {}
        for key in ("face", "isolate_face"):
            value = getattr(self.cfg, key)
            if value is None or value is False:
                continue
            if key not in type(spec.config).model_fields:
                raise ConfigError(f"{self.config.source}: session.{key}: generator {spec.name!r} cannot "
                                  f"{'choose a face' if key == 'face' else 'isolate a face'}")
            update[key] = value
        if not update:
            return spec
        config = spec.config.model_copy(update=update)
        return PluginSpec(kind=spec.kind, name=spec.name, cls=spec.cls, config=config)

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
        if self.cfg.malloc_arenas is not None:
            limit_arenas(self.cfg.malloc_arenas)  # before the engines' threads allocate
        if self.cfg.malloc_mmap_threshold_kb is not None:
            kb = self.cfg.malloc_mmap_threshold_kb
            release_thresholds(kb * 1024, 4 * kb * 1024)
        self._build()
        c = self.c
        assert c.generator is not None and c.sink is not None and c.tts is not None
        self.fanout.attach(c.sink, c.control)
        # Engines load while the portrait is analysed and the avatar starts idling (time to first frame).
        startable: list[Startable] = []
        for engine in (c.vad, c.asr, c.llm, c.tts, c.control):
            if isinstance(engine, Startable):
                startable.append(engine)
        engine_starts = asyncio.gather(*(e.start() for e in startable), return_exceptions=True)
        try:
            await self.services.start()  # knowledge base indexed, record opened, lesson loaded
            for observer in self.services.observers:
                self.add_observer(observer)
            # The portrait is analysed while the sink connects and publishes (a room's publish negotiation
            # takes a few hundred ms): the first frame can leave as soon as both are ready.
            await _start_all(
                c.generator.start(self.cfg.portrait),
                c.sink.start(width=self.cfg.width, height=self.cfg.height, fps=self.cfg.fps,
                             sample_rate=self.cfg.sample_rate),
            )
        except BaseException:
            engine_starts.cancel()
            await asyncio.gather(engine_starts, return_exceptions=True)
            await self._close_components()
            await self.services.aclose()
            raise
        self._conversation = conv = Conversation(
            builder=self.builder, tts=c.tts, llm=c.llm, generator=c.generator, clock=self.clock,
            metrics=self.metrics, fanout=self.fanout, history=self.history, system_prompt=self.cfg.system_prompt,
            barge_in=self.cfg.barge_in, chunk_duration=self.timeline.chunk_duration, source=self.config.source,
            continue_window_s=self.cfg.continue_window_s, first_clause=self.cfg.first_clause,
            first_clause_words=self.cfg.first_clause_words,
            services=self.services, early_answer=self.cfg.early_answer,
        )
        self._media = MediaLoop(
            timeline=self.timeline, clock=self.clock, metrics=self.metrics, generator=c.generator, sink=c.sink,
            source=self.builder, emit=self._emit, observer=self.fanout, realtime=self.cfg.realtime,
            policy=self.cfg.late_frame_policy, gate=None if self.cfg.realtime else conv.offline_gate,
        )
        conv.media = self._media
        self._media.start()
        errors = [r for r in await engine_starts if isinstance(r, BaseException)]
        if errors:
            await self._media.aclose()
            await self._close_components()
            await self.services.aclose()
            raise errors[0]
        await self._warm_up()
        self._start_inputs()
        self.owner.spawn("telemetry", self._telemetry_loop())
        if self.cfg.malloc_trim_s > 0:
            self.owner.spawn("malloc-trim", trim_loop(self.clock, self.cfg.malloc_trim_s, self.wait_idle))
        greeting = self.services.greeting(self.cfg.greeting)  # a tutor opens with its lesson
        if greeting:
            await self.say(greeting)

    async def _warm_up(self) -> None:
        """Before listening, warm what the first answer needs: the LLM's prompt cache (system
        prompt), one throw-away ASR and TTS call, then a rehearsal (a real sentence through both).
        The avatar already idles meanwhile."""
        c = self.c
        jobs: list[Any] = []
        if isinstance(c.llm, Warmable):
            jobs.append(c.llm.warmup([ChatMessage("system", self.cfg.system_prompt)]))
        engines: list[Any] = [c.asr, c.tts]
        prepares = [e.prepare() for e in engines if isinstance(e, Preparable)]
        jobs.append(self._rehearse(prepares))
        t0 = self.clock.now()
        try:
            results = await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), self.cfg.warmup_timeout_s)
        except TimeoutError:
            log.warning("warm-up took longer than %.0f s; listening anyway", self.cfg.warmup_timeout_s)
            return
        for r in results:
            if isinstance(r, Exception):
                log.warning("warm-up call failed (the first turn may be slow): %s", r)
        self.metrics.warmup_s = round(self.clock.now() - t0, 3)

    async def _rehearse(self, prepares: list[Any]) -> None:
        """The engines' own warm-up calls, then one real-length sentence said by the TTS and heard by
        the ASR: the first question finds Whisper's decoder warm on words (its warm-up hears noise)
        and the TTS warm on a whole sentence, not only on "Hello."."""
        for result in await asyncio.gather(*prepares, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result
        tts, asr = self.c.tts, self.c.asr
        if tts is None or asr is None or self.c.audio_input is None:
            return
        parts = [s.audio async for s in tts.synthesize(REHEARSAL)]
        if parts:
            pcm = np.concatenate([a.samples for a in parts])
            async for _ in asr.transcribe(AudioChunk(pcm, parts[0].sample_rate)):
                pass

    def _start_inputs(self) -> None:
        c = self.c
        self._listener = listener = Listener(
            emit=self._emit, fanout=self.fanout, clock=self.clock, metrics=self.metrics,
            builder_audio=self.builder.push_user_audio, vad=c.vad, asr=c.asr,
            notify=self._conversation.notify if self._conversation is not None else None,
            on_early_text=self._prefill,
        )
        for source in (c.audio_input, c.text_input):
            if isinstance(source, SessionBound):
                source.bind_session(self)
        audio, text = c.audio_input, c.text_input
        if audio is not None:
            self.owner.spawn("audio-input", self._input_done(lambda: listener.audio_loop(audio), primary=True))
        if text is not None:
            stage = self._input_done(lambda: listener.text_loop(text, self.wait_idle), primary=audio is None)
            self.owner.spawn("text-input", stage)
        if c.audio_input is None and c.text_input is None:
            self._inputs_done.set()
        if c.control is not None:
            self.owner.spawn("control", command_loop(c.control, self.handle_command, self.fanout))

    def _prefill(self, text: str) -> None:
        """An early transcript while the end of turn is still out (e.g. Smart Turn judged the pause
        incomplete): begin the answer, held until the end of turn confirms it
        (`Conversation.answer_early`); where that cannot be (`session.early_answer: false`, a tutor),
        prime the LLM's prompt cache with the question, so if it is the turn's, the answer's first
        token comes without the prompt's cost. One at a time, and only when no turn uses the LLM."""
        llm, conv = self.c.llm, self._conversation
        if conv is None or conv.answer_early(text):
            return
        if not isinstance(llm, Warmable) or not conv.idle:
            return
        if self._prefill_task is None or self._prefill_task.done():
            messages = self.history.messages(self.cfg.system_prompt, text)
            self._prefill_task = self.owner.spawn("llm-prefill", llm.warmup(messages))

    async def _input_done(self, stage: Callable[[], Coroutine[Any, Any, None]], primary: bool) -> None:
        """Run an input stage; the session's input is done when its primary input ends. The stage's
        coroutine is made here, so a session closed before the task starts leaves none unawaited."""
        try:
            await stage()
        finally:
            if primary:
                self._inputs_done.set()

    async def aclose(self) -> None:
        """Cancel and await every task, then close the engines (the sink last: it finalizes)."""
        if self._closed:
            return
        self._closed = True
        if self._conversation is not None:
            await self._conversation.aclose()
        if self._listener is not None:
            await self._listener.aclose()
        await self.owner.aclose()
        if self._media is not None:
            await self._media.aclose()
        await self._close_components()
        await self.services.aclose()  # after the last events: the record is complete

    async def _close_components(self) -> None:
        c = self.c
        for comp in (c.control, c.llm, c.tts, c.asr, c.generator, c.sink):
            if comp is None:
                continue
            try:
                await comp.aclose()
            except Exception as e:  # keep closing the rest
                log.error("closing %s failed: %s", type(comp).__name__, e)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        self.metrics.errors += 1
        self.fanout.event("error", {"task": name, "error": str(exc)})

    # --- public API ----------------------------------------------------------------------------
    @property
    def state(self) -> AgentState:
        return self._conversation.state if self._conversation is not None else AgentState.IDLE

    @property
    def turn_count(self) -> int:
        """Turns started so far."""
        return self._conversation.turns.turn if self._conversation is not None else 0

    @property
    def tasks(self) -> list[asyncio.Task[Any]]:
        """Every task the session owns right now (for leak checks)."""
        own = list(self.owner.tasks)
        if self._conversation is not None and self._conversation.turn_task is not None:
            own.append(self._conversation.turn_task)
        if self._listener is not None:
            own.extend(self._listener.tasks)
        return own + (self._media.tasks if self._media is not None else [])

    def add_observer(self, observer: SessionObserver) -> None:
        self.fanout.observers.append(observer)

    async def user_text(self, text: str) -> None:
        """A typed user message: starts a turn (barging in on the current one)."""
        self._require_started().typed(text)

    async def say(self, text: str, *, interrupt: bool = False) -> None:
        """Speak `text` without the LLM (refused while a turn is active, unless `interrupt`)."""
        self._emit(SayRequested(text, interrupt=interrupt))

    def interrupt(self, reason: str = "interrupt") -> None:
        self._emit(InterruptRequested(reason))

    def handle_vad(self, event: VadEvent) -> None:
        """A VAD edge from outside (a transport that detects speech itself)."""
        self._require_started().on_vad(event)

    async def handle_command(self, cmd: Command) -> None:
        apply_command(cmd, emit=self._emit, builder=self.builder, fanout=self.fanout)

    async def wait_idle(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Until no turn is in progress and its speech has played out."""
        conv = self._conversation
        if conv is not None:
            await asyncio.wait_for(conv.wait_for(lambda: conv.idle), timeout)

    async def wait_reply(self, after_turn: int, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Until a turn numbered above `after_turn` has been answered and played out (a scripted user
        waits for the answer to what it said; a turn cancelled because the user went on is no answer)."""
        conv = self._conversation
        if conv is not None:
            await asyncio.wait_for(conv.wait_for(lambda: conv.answered_turn > after_turn and conv.idle), timeout)

    async def run_until_done(self, tail_s: float | None = None) -> None:
        """For finite inputs (WAV, script): wait for the input to end and the agent to finish."""
        await self._inputs_done.wait()
        conv, listener = self._conversation, self._listener
        if conv is not None:
            await conv.wait_for(lambda: conv.idle and not (listener is not None and listener.transcribing))
        tail = self.cfg.idle_tail_s if tail_s is None else tail_s
        if self._media is not None:
            target = self._media.chunks_built + max(1, round(tail / self.timeline.chunk_duration))
            await self._media.wait_written(target)

    # --- internals -----------------------------------------------------------------------------
    def _emit(self, event: SessionEvent) -> None:
        """Every event goes to the conversation, in order."""
        if self._conversation is not None and not self._closed:
            self._conversation.handle(event)

    def _require_started(self) -> Listener:
        if self._listener is None:
            raise RuntimeError("AgentSession.start() must be awaited first")
        return self._listener

    async def _telemetry_loop(self) -> None:
        while True:
            await self.clock.sleep(1.0)
            snap = self.metrics.snapshot()
            snap["state"] = self.state.value
            self.fanout.on_metrics(snap)


async def _start_all(*starts: Coroutine[Any, Any, None]) -> None:
    """Run start calls concurrently and let every one finish (a start may be running in a thread, which
    cancelling would not stop), then raise the first error: the caller closes what has started."""
    for result in await asyncio.gather(*starts, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result
