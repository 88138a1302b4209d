"""Turn logic with no I/O: who speaks, when a turn starts, when it is cancelled (barge-in).

The session feeds events in and executes the actions that come out. Every turn has a number; work
tagged with an older number is stale and must be dropped.

States: idle -> listening (user speaks) -> thinking (LLM/TTS working) -> speaking (agent audio
playing) -> idle. User speech onset while thinking/speaking is a barge-in: the turn is cancelled,
queued speech dropped and the face returns to listening.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowact.types import AgentState

__all__ = [
    "Action",
    "CancelTurn",
    "SetState",
    "StartTurn",
    "TurnMachine",
]


@dataclass(frozen=True, slots=True)
class StartTurn:
    """Generate (LLM) or speak (`say`, no LLM) for a new turn."""

    turn: int
    text: str
    use_llm: bool = True


@dataclass(frozen=True, slots=True)
class CancelTurn:
    """Cancel LLM/TTS work of `turn`, drop its queued speech, send Interrupt downstream."""

    turn: int
    reason: str


@dataclass(frozen=True, slots=True)
class SetState:
    state: AgentState


Action = StartTurn | CancelTurn | SetState


class TurnMachine:
    """The conversation's turn state machine (pure; deterministic)."""

    def __init__(self, *, barge_in: bool = True) -> None:
        self.barge_in = barge_in
        self.state = AgentState.IDLE
        self.turn = 0
        self.turn_active = False  # a turn is generating or its speech is still playing
        self.user_speaking = False
        self.barge_ins = 0

    # --- helpers -------------------------------------------------------------------------------
    def _set(self, state: AgentState, out: list[Action]) -> None:
        if state != self.state:
            self.state = state
            out.append(SetState(state))

    def _cancel(self, reason: str, out: list[Action]) -> None:
        if self.turn_active:
            out.append(CancelTurn(self.turn, reason))
            self.turn_active = False

    # --- events --------------------------------------------------------------------------------
    def on_user_speech_start(self, *, continues: bool = False) -> list[Action]:
        """VAD onset. Barge-in when the agent is thinking or speaking; with `continues` the user is
        going on with the utterance the current turn answers (a false early end): that turn is
        cancelled as "continued", so the whole question gets one answer."""
        out: list[Action] = []
        self.user_speaking = True
        if self.turn_active:
            if continues:
                self._cancel("continued", out)
            elif not self.barge_in:
                return out
            else:
                self.barge_ins += 1
                self._cancel("barge-in", out)
        self._set(AgentState.LISTENING, out)
        return out

    def on_user_speech_end(self) -> list[Action]:
        """VAD end of turn; the transcript follows (or not, if ASR finds nothing)."""
        self.user_speaking = False
        return []

    def on_user_message(self, text: str) -> list[Action]:
        """A final transcript or a typed message: start a new LLM turn (replacing any current one)."""
        out: list[Action] = []
        if not text.strip():
            if not self.turn_active and not self.user_speaking:
                self._set(AgentState.IDLE, out)
            return out
        self._cancel("new user message", out)
        self.turn += 1
        self.turn_active = True
        out.append(StartTurn(self.turn, text, use_llm=True))
        self._set(AgentState.THINKING, out)
        return out

    def on_say(self, text: str, *, interrupt: bool) -> list[Action]:
        """Speak text without the LLM. Without `interrupt` it waits for nothing: it replaces an
        idle state, or is refused (returns no StartTurn) while another turn is active."""
        out: list[Action] = []
        if not text.strip():
            return out
        if self.turn_active:
            if not interrupt:
                return out
            self._cancel("say with interrupt", out)
        self.turn += 1
        self.turn_active = True
        out.append(StartTurn(self.turn, text, use_llm=False))
        self._set(AgentState.THINKING, out)
        return out

    def on_interrupt(self, reason: str = "interrupt") -> list[Action]:
        out: list[Action] = []
        was_active = self.turn_active
        self._cancel(reason, out)
        if was_active or self.state != AgentState.IDLE:
            self._set(AgentState.LISTENING if self.user_speaking else AgentState.IDLE, out)
        return out

    def on_speech_started(self, turn: int) -> list[Action]:
        """The first audio of `turn` reached the media timeline."""
        out: list[Action] = []
        if turn == self.turn and self.turn_active:
            self._set(AgentState.SPEAKING, out)
        return out

    def on_turn_finished(self, turn: int) -> list[Action]:
        """All of `turn`'s speech has played (or the turn produced nothing)."""
        out: list[Action] = []
        if turn == self.turn and self.turn_active:
            self.turn_active = False
            self._set(AgentState.LISTENING if self.user_speaking else AgentState.IDLE, out)
        return out

    def on_failed(self, turn: int) -> list[Action]:
        """The turn failed (engine error): back to idle, the session stays up."""
        return self.on_turn_finished(turn)
