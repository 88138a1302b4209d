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


def test_bounded_by_turns_dropping_whole_exchanges_in_a_block() -> None:
    h = ConversationHistory(max_turns=2, max_chars=10_000)
    dropped = [h.append(f"q{i}", f"a{i}") for i in range(5)]
    assert dropped == [False, False, True, False, True]  # past 2: down to 1, then it grows again
    assert len(h) == 1
    msgs = h.messages("S", "now")
    assert [m.content for m in msgs] == ["S", "q4", "a4", "now"]
    assert msgs[1].role == "user"  # never starts with a dangling reply


def test_the_prompt_prefix_stays_the_same_between_drops() -> None:
    """A local LLM reuses the prompt prefix it evaluated last: a turn's prompt must begin with the
    last prompt's history on every turn but the few that dropped a block (not a window sliding by one)."""
    h = ConversationHistory(max_turns=8, max_chars=100_000)
    kept = 0
    for i in range(40):
        before = [(m.role, m.content) for m in h.messages("S", "x")[:-1]]
        dropped = h.append(f"question {i}", f"answer {i}")
        after = [(m.role, m.content) for m in h.messages("S", "y")[:-1]]
        if not dropped:
            assert after[: len(before)] == before  # the previous prompt is a prefix of the next one
            kept += 1
        assert len(h) <= 8
    assert kept >= 40 - 40 // 4  # at most one turn in four re-reads its history


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
