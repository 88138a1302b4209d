"""ConversationHistory: whole exchanges, bounded by turns and characters, oldest dropped first."""

from __future__ import annotations

import pytest

from agent.history import ConversationHistory
from agent.interfaces import ChatMessage


def test_messages_are_system_history_then_the_new_line() -> None:
    h = ConversationHistory(max_turns=4, max_chars=1000)
    h.append("Hi", "  Hello there.  ")
    assert h.messages("Be kind.", "How are you?") == [
        ChatMessage("system", "Be kind."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello there."),
        ChatMessage("user", "How are you?"),
    ]


def test_bounded_by_turns_dropping_whole_exchanges() -> None:
    h = ConversationHistory(max_turns=2, max_chars=10_000)
    for i in range(5):
        h.append(f"q{i}", f"a{i}")
    assert len(h) == 2
    msgs = h.messages("S", "now")
    assert [m.content for m in msgs] == ["S", "q3", "a3", "q4", "a4", "now"]
    assert msgs[1].role == "user"  # never starts with a dangling reply


def test_bounded_by_characters() -> None:
    h = ConversationHistory(max_turns=100, max_chars=25)
    h.append("a" * 10, "b" * 10)  # 20 chars
    h.append("c" * 5, "d" * 5)  # 30 in all: the first exchange goes
    assert len(h) == 1 and h.chars == 10
    h.append("x" * 30, "y")  # larger than the bound on its own: nothing can be kept
    assert len(h) == 0 and h.chars == 0
    assert [m.role for m in h.messages("S", "u")] == ["system", "user"]


def test_zero_turns_remembers_nothing_and_clear_forgets() -> None:
    h = ConversationHistory(max_turns=0, max_chars=100)
    h.append("q", "a")
    assert len(h) == 0
    h = ConversationHistory(max_turns=3, max_chars=100)
    h.append("q", "a")
    h.clear()
    assert len(h) == 0 and h.chars == 0
    with pytest.raises(ValueError):
        ConversationHistory(max_turns=-1)
