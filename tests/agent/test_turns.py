"""The turn machine: states, barge-in from every state, double barge-in, stale turns."""

from __future__ import annotations

import pytest

from agent.turns import CancelTurn, SetState, StartTurn, TurnMachine
from flowact.types import AgentState


def kinds(actions: list[object]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_typed_message_starts_a_thinking_turn() -> None:
    tm = TurnMachine()
    out = tm.on_user_message("hello")
    assert out == [StartTurn(1, "hello"), SetState(AgentState.THINKING)]
    assert tm.turn_active and tm.state == AgentState.THINKING


def test_full_turn_cycle() -> None:
    tm = TurnMachine()
    tm.on_user_speech_start()
    assert tm.state == AgentState.LISTENING
    tm.on_user_speech_end()
    tm.on_user_message("what is my order status")
    assert tm.on_speech_started(1) == [SetState(AgentState.SPEAKING)]
    assert tm.on_turn_finished(1) == [SetState(AgentState.IDLE)]
    assert not tm.turn_active


@pytest.mark.parametrize("reach", ["thinking", "speaking"])
def test_barge_in_cancels_active_turn(reach: str) -> None:
    tm = TurnMachine()
    tm.on_user_message("hi")
    if reach == "speaking":
        tm.on_speech_started(1)
    out = tm.on_user_speech_start()
    assert out == [CancelTurn(1, "barge-in"), SetState(AgentState.LISTENING)]
    assert not tm.turn_active and tm.barge_ins == 1


@pytest.mark.parametrize("state", ["idle", "listening"])
def test_speech_onset_without_active_turn_is_not_a_barge_in(state: str) -> None:
    tm = TurnMachine()
    if state == "listening":
        tm.on_user_speech_start()
        tm.on_user_speech_end()
    out = tm.on_user_speech_start()
    assert not any(isinstance(a, CancelTurn) for a in out)
    assert tm.barge_ins == 0 and tm.state == AgentState.LISTENING


def test_double_barge_in() -> None:
    tm = TurnMachine()
    tm.on_user_message("first")
    tm.on_speech_started(1)
    assert kinds(tm.on_user_speech_start()) == ["CancelTurn", "SetState"]
    tm.on_user_speech_end()
    tm.on_user_message("second")  # turn 2
    tm.on_speech_started(2)
    out = tm.on_user_speech_start()
    assert out[0] == CancelTurn(2, "barge-in")
    # a second onset while already listening cancels nothing more
    assert tm.on_user_speech_start() == []
    assert tm.barge_ins == 2


def test_barge_in_disabled_keeps_turn() -> None:
    tm = TurnMachine(barge_in=False)
    tm.on_user_message("hi")
    tm.on_speech_started(1)
    assert tm.on_user_speech_start() == []
    assert tm.turn_active and tm.state == AgentState.SPEAKING


def test_stale_turn_events_are_ignored() -> None:
    tm = TurnMachine()
    tm.on_user_message("one")
    tm.on_user_message("two")  # cancels turn 1, starts turn 2
    assert tm.on_speech_started(1) == []
    assert tm.on_turn_finished(1) == []
    assert tm.turn_active and tm.turn == 2


def test_new_message_replaces_active_turn() -> None:
    tm = TurnMachine()
    tm.on_user_message("one")
    out = tm.on_user_message("two")
    assert out[0] == CancelTurn(1, "new user message")
    assert out[1] == StartTurn(2, "two")


def test_say_without_interrupt_is_refused_while_busy() -> None:
    tm = TurnMachine()
    tm.on_user_message("q")
    assert tm.on_say("hello", interrupt=False) == []
    out = tm.on_say("hello", interrupt=True)
    assert out[0] == CancelTurn(1, "say with interrupt")
    assert out[1] == StartTurn(2, "hello", use_llm=False)


def test_empty_transcript_returns_to_idle() -> None:
    tm = TurnMachine()
    tm.on_user_speech_start()
    tm.on_user_speech_end()
    assert tm.on_user_message("  ") == [SetState(AgentState.IDLE)]


def test_interrupt_command_from_every_state() -> None:
    for setup in ("idle", "thinking", "speaking"):
        tm = TurnMachine()
        if setup != "idle":
            tm.on_user_message("x")
        if setup == "speaking":
            tm.on_speech_started(1)
        out = tm.on_interrupt()
        assert not tm.turn_active
        assert tm.state == AgentState.IDLE
        assert (CancelTurn(1, "interrupt") in out) == (setup != "idle")
