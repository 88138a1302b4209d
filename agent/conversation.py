"""The conversation stage: typed events in, turns out.

`Conversation` is the only owner of turn state. It feeds events (`agent.events`) to the pure
`TurnMachine` and carries out the actions that come back: it runs a turn (LLM -> TTS -> control
builder, `agent.turn_runner`) as an owned task, cancels it on barge-in (queued speech dropped,
chunks already built muted, the face eased back to listening), and finishes it when the media loop
reports that the turn's speech has drained. Waiters (`wait_idle`, the offline gate) wait on a
`Changed` signal that every event notifies; nothing polls. An early transcript may begin the answer
before the end of turn (`answer_early`, see `agent.early_answer`): the turn adopts it or it is
cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from agent.app_services import AppServices
from agent.early_answer import EarlyAnswer
from agent.errors import ConfigError, FlowActError
from agent.events import (
    InterruptRequested,
    SayRequested,
    SessionEvent,
    SpeechDrained,
    SpeechStarted,
    SpeechWritten,
    UserMessage,
    UserSpeechEnded,
    UserSpeechResumed,
    UserSpeechStarted,
)
from agent.fanout import Fanout
from agent.history import ConversationHistory
from agent.interfaces import LLM, TTS, Generator, Warmable
from agent.metrics import SessionMetrics
from agent.tools import ToolStatus
from agent.turn_runner import TurnResult, TurnRunner
from agent.turns import Action, CancelTurn, SetState, StartTurn, TurnMachine
from flowact.clock import Clock
from flowact.control import ControlBuilder
from flowact.types import AgentState

__all__ = ["Changed", "Conversation"]

log = logging.getLogger("agent.conversation")


class Changed:
    """A level-free signal: `notify()` wakes every waiter, which re-checks its predicate."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until `predicate()` holds."""
        while not predicate():
            fut = asyncio.get_running_loop().create_future()
            self._waiters.add(fut)
            try:
                await fut
            finally:
                self._waiters.discard(fut)


class Muting(Protocol):
    """The media loop, as far as a barge-in needs it."""

    def mute_pending(self) -> int: ...


class Conversation:
    """Turn state and turn tasks of one session (see the module docstring)."""

    def __init__(
        self,
        *,
        builder: ControlBuilder,
        tts: TTS,
        llm: LLM | None,
        generator: Generator,
        clock: Clock,
        metrics: SessionMetrics,
        fanout: Fanout,
        history: ConversationHistory,
        system_prompt: str,
        barge_in: bool = True,
        chunk_duration: float = 0.16,
        continue_window_s: float = 2.5,
        first_clause: bool = True,
        first_clause_words: int = 5,
        services: AppServices | None = None,
        source: str = "<config>",
        early_answer: bool = True,
    ) -> None:
        self.builder = builder
        self.tts = tts
        self.llm = llm
        self.generator = generator
        self.clock = clock
        self.metrics = metrics
        self.fanout = fanout
        self.history = history
        self.system_prompt = system_prompt
        self.chunk_duration = chunk_duration
        self.source = source
        self.turns = TurnMachine(barge_in=barge_in)
        self.media: Muting | None = None
        self.turn_task: asyncio.Task[None] | None = None
        self.changed = Changed()
        self._spoken_turn = 0  # highest turn whose speech is fully queued in the builder
        self._runs: dict[int, int] = {}  # speech run (media loop) -> turn
        self._media_speaking = False
        self.continue_window_s = continue_window_s
        self.first_clause = first_clause
        self.first_clause_words = first_clause_words
        self.services = services
        self._spoken: tuple[int, str, float] | None = None  # (turn, user text, end) of a spoken question
        self._carry = ""  # a question the user went on with after a false early end
        self._continued_turn = 0
        self.answered_turn = 0  # newest turn whose answer played out (not cancelled)
        self._user_line: tuple[int, str] | None = None  # a spoken question not yet said as final
        self._agent_line: str | None = None  # its answer, whole before the question settled: said after it
        self.early_answer = early_answer
        self._early: EarlyAnswer | None = None  # an answer begun before the end of turn (one at most)

    # --- events ----------------------------------------------------------------------------------
    def handle(self, event: SessionEvent) -> None:
        """Apply one event (synchronously, in order), then wake every waiter."""
        if isinstance(event, UserSpeechStarted | UserSpeechResumed | SayRequested | InterruptRequested):
            # the user goes on (or the app takes over): the early answer is not wanted
            self._drop_early(type(event).__name__)
        if isinstance(event, UserSpeechStarted):
            self._execute(self.turns.on_user_speech_start(continues=self._continues(event.t)))
        elif isinstance(event, UserSpeechEnded):
            self._execute(self.turns.on_user_speech_end())
        elif isinstance(event, UserMessage):
            self._on_message(event)
        elif isinstance(event, SayRequested):
            self._execute(self.turns.on_say(event.text, interrupt=event.interrupt))
        elif isinstance(event, InterruptRequested):
            self._execute(self.turns.on_interrupt(event.reason))
        elif isinstance(event, SpeechStarted):
            self._media_speaking = True
            if self.turns.turn_active:
                self._runs = {event.run: self.turns.turn}  # only the newest run matters
                self._settle_user_line()
                self._execute(self.turns.on_speech_started(self.turns.turn))
        elif isinstance(event, SpeechDrained):
            self._media_speaking = False
            if self.turns.turn_active and self._spoken_turn < self.turns.turn:
                self.builder.set_state(AgentState.THINKING)  # a pause inside the answer: a thinking face
            self._maybe_finish(self.turns.turn)
        elif isinstance(event, SpeechWritten):
            turn = self._runs.get(event.run)
            if turn is not None:
                self.metrics.mark(turn, "first_frame", event.t)
                if event.audible:
                    self.metrics.mark(turn, "first_audio", event.t)
        self.notify()

    def notify(self) -> None:
        """Wake the waiters of `changed` (they re-check their predicates)."""
        self.changed.notify()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until `predicate()` holds (re-checked on every event)."""
        await self.changed.wait_for(predicate)

    # --- queries ---------------------------------------------------------------------------------
    @property
    def state(self) -> AgentState:
        return self.turns.state

    @property
    def idle(self) -> bool:
        """No turn in progress (its speech has played out, or it was cancelled)."""
        return not self.turns.turn_active

    def speech_ready(self) -> bool:
        """Offline rendering may build the next chunk: no turn is still producing speech, or a
        whole chunk of its speech is queued."""
        generating = self.turns.turn_active and self._spoken_turn < self.turns.turn
        return not generating or self.builder.speech_pending_s >= self.chunk_duration

    async def offline_gate(self) -> None:
        await self.wait_for(self.speech_ready)

    # --- actions ---------------------------------------------------------------------------------
    def _continues(self, t: float) -> bool:
        """Voice onset soon after a spoken question whose answer has not started playing: the user
        is going on with the same question (a false early end), not barging in."""
        spoken = self._spoken
        return (
            spoken is not None and spoken[0] == self.turns.turn and self.turns.turn_active
            and self.turns.state == AgentState.THINKING and t - spoken[2] <= self.continue_window_s
        )

    def _on_message(self, event: UserMessage) -> None:
        text = event.text
        if self._carry and not event.typed:  # the rest of a question the user went on with
            text = f"{self._carry} {text}".strip()
        self._carry = ""
        if self.turns.user_speaking and not event.typed and text.strip():
            self._carry = text  # the user already went on talking: wait for the whole question
            self._drop_early("the user went on")
            return
        actions = self.turns.on_user_message(text)
        for action in actions:
            if isinstance(action, StartTurn):
                self._spoken = None if event.typed else (action.turn, action.text, event.t_end)
                self.metrics.mark(action.turn, "user_end", event.t_end)
                self.metrics.mark(action.turn, "last_word", event.t_end if event.last_word is None else event.last_word)
                if event.t_final is not None:
                    self.metrics.mark(action.turn, "asr_final", event.t_final)
        self._execute(actions)  # a cancelled earlier turn says its own pending line first
        start = next((a for a in actions if isinstance(a, StartTurn)), None)
        if start is None:
            self._drop_early("no turn")
        if start is not None and not event.typed:
            # the final spoken line is said once the question is settled (its answer starts, or the
            # turn ends any way but "continued"); typed lines were said when typed
            self._user_line = (start.turn, start.text)

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SetState):
                self.builder.set_state(action.state)
                self.fanout.state(action.state)
            elif isinstance(action, CancelTurn):
                self._cancel(action)
            elif isinstance(action, StartTurn):
                early = self._take_early(action)
                self.turn_task = asyncio.create_task(self._run_turn(action, early), name=f"turn-{action.turn}")

    def _cancel(self, action: CancelTurn) -> None:
        if self.turn_task is not None and not self.turn_task.done():
            self.turn_task.cancel()
        self.builder.interrupt()
        self.generator.interrupt()
        muted = self.media.mute_pending() if self.media is not None else 0
        self._runs.clear()
        if action.reason == "continued" and self._spoken is not None:
            self._carry, self._continued_turn = self._spoken[1], action.turn
            self._user_line = None  # said later, whole, with the rest of the question
            self._agent_line = None  # its answer was never heard
        else:
            self._settle_user_line()
        if action.reason == "barge-in":
            self.metrics.barge_ins += 1
        self.metrics.finish_turn(action.turn, interrupted=True)
        self.fanout.event("interrupt", {"turn": action.turn, "reason": action.reason, "muted_chunks": muted})

    def _maybe_finish(self, turn: int) -> None:
        """Finish `turn` once all its speech is queued and the media loop has drained it."""
        if turn != self.turns.turn or not self.turns.turn_active or self._spoken_turn < turn:
            return
        if self._media_speaking or self.builder.speech_pending_s > 0.0:
            return
        self._settle_user_line()
        record = self.metrics.finish_turn(turn)
        self.answered_turn = turn
        self.fanout.event("turn", record)
        self._execute(self.turns.on_turn_finished(turn))

    def _reprime(self) -> None:
        """The history dropped its oldest block (agent.history), or the LLM's cache missed the latest
        reply (said as written): have the LLM evaluate the new prompt prefix now, while the answer
        plays, rather than on the next question."""
        llm = self.llm
        if isinstance(llm, Warmable):
            messages = self.history.messages(self.system_prompt, "")[:-1]
            self.fanout.owner.schedule("llm-reprime", llm.warmup(messages), quiet=True)

    # --- early answers (agent.early_answer) -----------------------------------------------------
    def answer_early(self, text: str) -> bool:
        """An early transcript while the end of turn is still out: begin its answer, held. Not while
        a turn runs, nor when preparing a turn has side effects (a tutor grades answers)."""
        if not self.early_answer or self.llm is None or not self.idle or not text.strip():
            return False
        if self.services is not None and self.services.tutor is not None:
            return False
        if self._carry:  # the rest of a question the user went on with: the turn will answer it whole
            text = f"{self._carry} {text}".strip()
        if self._early is not None and self._early.matches(text):
            return True
        self._drop_early("another early transcript")
        runner = self._new_runner(0, held=True)
        task = asyncio.create_task(self._answer(runner, text), name="early-answer")
        self._early = EarlyAnswer(text, runner, task, begun=self.clock.now())
        log.debug("early answer begun for %r", text)
        return True

    def _take_early(self, start: StartTurn) -> EarlyAnswer | None:
        """The early answer `start` adopts (same transcript); any other is cancelled."""
        early = self._early
        if early is not None and start.use_llm and early.matches(start.text) and not early.task.done():
            self._early = None
            self.metrics.early_answers["adopted"] += 1
            log.debug("early answer adopted by turn %d, %.3f s after it began", start.turn,
                      self.clock.now() - early.begun)
            return early
        if early is not None:
            why = "done" if early.task.done() else "a say" if not start.use_llm else f"final {start.text!r}"
            self._drop_early(why)
        return None

    def _drop_early(self, reason: str) -> None:
        if self._early is not None:
            log.debug("early answer for %r cancelled: %s", self._early.text, reason)
            self._early.cancel()
            self._early = None
            self.metrics.early_answers["cancelled"] += 1

    @property
    def early_pending(self) -> bool:
        """An early answer is held, waiting for its end of turn."""
        return self._early is not None

    def _new_runner(self, turn: int, *, held: bool = False) -> TurnRunner:
        runner = TurnRunner(
            turn=turn, builder=self.builder, tts=self.tts, clock=self.clock, metrics=self.metrics,
            llm=self.llm, on_speech=self.notify, first_clause=self.first_clause,
            first_clause_words=self.first_clause_words, held=held,
        )
        runner.on_tool = lambda status: self._on_tool(runner.turn, status)
        return runner

    async def _answer(self, runner: TurnRunner, text: str) -> TurnResult | None:
        """The LLM's answer to `text` through `runner` (None: the app speaks a line instead)."""
        if self.llm is None:
            raise ConfigError(f"{self.source}: llm section is needed to answer the user")
        messages = self.history.messages(self.system_prompt, text)
        if self.services is not None:  # knowledge-base passages, the tutor's graded line
            messages, line = await self.services.prepare(messages, text)
            if line is not None:
                if runner.held:
                    return None
                return await runner.run_text(line)
        return await runner.run_llm(messages)

    # --- turns -----------------------------------------------------------------------------------
    async def _run_turn(self, action: StartTurn, early: EarlyAnswer | None = None) -> None:
        runner = early.runner if early is not None else self._new_runner(action.turn)
        try:
            if action.use_llm:
                result = await early.adopt(action.turn) if early is not None else None
                if result is None:  # no early answer (or it could not be used): answer now
                    if early is not None:
                        runner = self._new_runner(action.turn)
                    result = await self._answer(runner, action.text)
                    assert result is not None  # a runner that is not held always answers
                # as the LLM wrote it (intent tags kept): the next turn's prompt shares its prefix
                # with what the LLM server has cached, and the model sees how it used its tags
                dropped = self.history.append(action.text, result.reply_text)
                if dropped or (isinstance(self.llm, Warmable) and self.llm.cache_behind):
                    self._reprime()
            else:
                result = await runner.run_text(action.text)
            tm = self.metrics.turn(action.turn)
            tm.speech_s = result.speech_s
            if result.active_first >= 0:
                tm.speech_span_s = (result.active_last - result.active_first) / self.builder.sample_rate
            tm.speech_gaps_s = result.gap_samples / self.builder.sample_rate
            self._spoken_turn = action.turn
            self._say_agent_line(result.spoken_text.strip())
            self._maybe_finish(action.turn)
        except asyncio.CancelledError:
            if action.use_llm and runner.result.spoken_text and action.turn != self._continued_turn:
                if self.history.append(action.text, runner.result.spoken_text + " ..."):
                    self._reprime()  # while the user is still talking over it
            raise
        except FlowActError as e:
            log.error("turn %d failed: %s", action.turn, e)
            self.metrics.errors += 1
            self.fanout.event("error", {"turn": action.turn, "error": str(e), "retryable": e.retryable})
            self._settle_user_line()
            self._spoken_turn = action.turn
            self._execute(self.turns.on_failed(action.turn))
        finally:
            self.notify()

    def _settle_user_line(self) -> None:
        """Say the pending spoken question as the final user line (once), then its answer if that was
        whole first."""
        if self._user_line is not None:
            self.fanout.transcript("user", self._user_line[1], True)
            self._user_line = None
        if self._agent_line is not None:
            self.fanout.transcript("agent", self._agent_line, True)
            self._agent_line = None

    def _say_agent_line(self, text: str) -> None:
        """The answer's final line, after its question: a short answer is whole (all its speech
        queued) before the first of it plays, which is when a spoken question settles."""
        if self._user_line is None:
            self.fanout.transcript("agent", text, True)
        else:
            self._agent_line = text

    def _on_tool(self, turn: int, status: ToolStatus) -> None:
        """A tool the LLM runs: a thinking face while it works, `tool` / `handoff` events when done."""
        self._settle_user_line()  # a tool acts on the question: it is settled (and belongs in a hand-off)
        if status.phase == "started":
            self.builder.set_state(AgentState.THINKING)
        if self.services is not None:
            for kind, payload in self.services.on_tool_status(status, turn):
                self.fanout.event(kind, payload)

    async def aclose(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            await early.aclose()
        if self.turn_task is not None and not self.turn_task.done():
            self.turn_task.cancel()
            await asyncio.gather(self.turn_task, return_exceptions=True)
