"""An answer begun from an early transcript (real espeak TTS and portrait generator, scripted LLM).

The end of turn that confirms the transcript adopts the held answer (the LLM is asked once, the
first audio is already synthesized); anything else cancels it: one answer, never two, and nothing of
a cancelled early answer is ever spoken or runs a tool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from agent.conversation import Conversation
from agent.events import SayRequested, UserMessage, UserSpeechEnded, UserSpeechStarted
from agent.frames import TextDelta, ToolCall
from agent.interfaces import ChatMessage, ToolSpec
from agent.session import AgentSession
from agent.tools import ToolStatus
from flowact.types import AgentState
from plugins.llm_scripted import ScriptedLLM, ScriptedLLMConfig
from tests.fixtures.session_parts import Recorder, make_session, user_texts

pytestmark = pytest.mark.timeout(120)


def _conv(session: AgentSession) -> Conversation:
    assert session._conversation is not None
    return session._conversation


def _agent_lines(rec: Recorder) -> list[str]:
    return [p["text"] for _, k, p in rec.events if k == "transcript" and p["role"] == "agent"]


async def _held_audio(session: AgentSession) -> None:
    """Until the held early answer has synthesized its first audio."""
    conv = _conv(session)
    early = conv._early
    assert early is not None
    for _ in range(1500):  # polled: a held runner reports nothing (that is the point)
        if "tts_first_audio" in early.runner._early_marks:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the held early answer synthesized nothing in 30 s")


async def _early_then_final(session: AgentSession, early: str, final: str) -> None:
    """An early transcript begins a held answer (its first audio synthesized), then the end of turn
    brings `final`; until the turn is over."""
    now = session.clock.now
    session._prefill(early)
    await _held_audio(session)
    session._emit(UserSpeechEnded(now()))
    session._emit(UserMessage(final, t_end=now()))
    await session.wait_idle(timeout=60)


async def test_the_end_of_turn_adopts_the_early_answer() -> None:
    session, rec = make_session(reply="[smile] Order 1234 arrives tomorrow, before noon.", first_token_s=0.05)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        now = session.clock.now
        session._emit(UserSpeechStarted(now()))
        session._prefill("where is order 1234")  # the listener's early transcript, end of turn still out
        await _held_audio(session)
        await asyncio.sleep(0.3)
        # held: nothing reached the builder, no turn, no speaking face
        assert session.turn_count == 0 and session.state == AgentState.LISTENING
        assert session.builder.speech_pending_s == 0.0 and not _agent_lines(rec)
        session._emit(UserSpeechEnded(now()))
        session._emit(UserMessage("where is order 1234", t_end=now(), t_final=now(), last_word=now() - 0.3))
        await session.wait_idle(timeout=60)
    assert user_texts(llm) == ["where is order 1234"]  # asked once
    assert session.metrics.early_answers == {"adopted": 1, "cancelled": 0}
    assert _agent_lines(rec) == ["Order 1234 arrives tomorrow, before noon."]
    (row,) = session.metrics.turn_table()
    # the answer was written and synthesized before the end of turn: its marks come before it
    assert row["llm_first_token"] < 0 and row["tts_first_audio"] < 0 < row["first_audio"]
    assert row["heard_s"] < 1.0
    assert list(session.history) == [("where is order 1234", "[smile] Order 1234 arrives tomorrow, before noon.")]
    assert not any(not t.done() for t in session.tasks)


async def test_the_user_going_on_cancels_the_early_answer() -> None:
    session, rec = make_session(reply="Order 1234 arrives tomorrow.", first_token_s=0.05)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        now = session.clock.now
        session._emit(UserSpeechStarted(now()))
        session._prefill("my order number is")
        await _held_audio(session)
        early = _conv(session)._early
        assert early is not None
        session._emit(UserSpeechStarted(now()))  # goes on (a new onset after the pause)
        assert _conv(session)._early is None
        await asyncio.wait({early.task})
        assert early.task.cancelled()
        session._emit(UserSpeechEnded(now()))
        session._emit(UserMessage("my order number is 1234", t_end=now()))
        await session.wait_idle(timeout=60)
    assert user_texts(llm) == ["my order number is", "my order number is 1234"]
    assert _agent_lines(rec) == ["Order 1234 arrives tomorrow."]  # one answer, to the whole question
    assert session.metrics.early_answers == {"adopted": 0, "cancelled": 1}
    assert session.turn_count == 1
    assert list(session.history) == [("my order number is 1234", "Order 1234 arrives tomorrow.")]


async def test_another_final_transcript_answers_afresh() -> None:
    """The end of turn came with other words (the user went on within the same utterance)."""
    session, rec = make_session(reply="Order 1234 arrives tomorrow.", first_token_s=0.05)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        await _early_then_final(session, "where is my order", "where is my order 1234")
    assert user_texts(llm) == ["where is my order", "where is my order 1234"]
    assert _agent_lines(rec) == ["Order 1234 arrives tomorrow."]
    assert session.turn_count == 1


async def test_no_early_answer_while_a_turn_runs_and_say_cancels_one() -> None:
    session, rec = make_session(reply="Sure.", first_token_s=0.05)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        conv = _conv(session)
        now = session.clock.now
        session._emit(UserMessage("hello", t_end=now()))
        assert not conv.answer_early("and another thing")  # the LLM is busy: the user barges in
        await session.wait_idle(timeout=60)
        assert conv.answer_early("what now")
        session._emit(SayRequested("One moment please."))  # the app takes over
        assert not conv.early_pending
        await session.wait_idle(timeout=60)
    assert _agent_lines(rec) == ["Sure.", "One moment please."]
    assert session.turn_count == 2


async def test_closing_cancels_a_held_early_answer() -> None:
    session, rec = make_session(reply="Order 1234 arrives tomorrow.", first_token_s=0.05)
    async with session:
        session._prefill("where is order 1234")
        early = _conv(session)._early
        assert early is not None
        await _held_audio(session)
    assert early.task.cancelled() and not _agent_lines(rec)


class _ToolLLM(ScriptedLLM):
    """Scripted replies, but the turn first runs a user tool (as the OpenAI plugin reports one)."""

    def __init__(self, config: ScriptedLLMConfig) -> None:
        super().__init__(config)
        self.tool_ran_at: list[float] = []

    async def chat(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[TextDelta | ToolCall]:
        self.calls.append(list(messages))
        yield ToolStatus("lookup_order", '{"order_id": "1234"}', "c1", phase="started")
        self.tool_ran_at.append(asyncio.get_running_loop().time())  # runs when the consumer asks for more
        yield ToolStatus("lookup_order", '{"order_id": "1234"}', "c1", phase="finished", ok=True, result="shipped")
        yield TextDelta("It shipped on Monday.")


async def test_a_tool_of_an_early_answer_waits_for_the_turn() -> None:
    session, rec = make_session()
    llm = _ToolLLM(ScriptedLLMConfig())
    session.c.llm = llm
    async with session:
        now = session.clock.now
        session._prefill("where is order 1234")
        await asyncio.sleep(0.5)
        assert llm.calls and not llm.tool_ran_at  # asked, but the tool has not run
        assert not [k for _, k, _ in rec.events if k == "tool"]
        adopted_at = asyncio.get_running_loop().time()
        session._emit(UserMessage("where is order 1234", t_end=now()))
        await session.wait_idle(timeout=60)
    assert len(llm.tool_ran_at) == 1 and llm.tool_ran_at[0] >= adopted_at
    assert _agent_lines(rec) == ["It shipped on Monday."]


async def test_after_a_false_early_end_the_whole_question_adopts_its_early_answer() -> None:
    """The turn for "my order number is" was cancelled as the user went on; the early transcript
    of the rest begins the answer to the whole question, which the end of turn then adopts."""
    session, rec = make_session(reply="Order 1234 arrives tomorrow.", first_token_s=1.5)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        now = session.clock.now
        session._emit(UserMessage("my order number is", t_end=now(), last_word=now() - 0.3))
        await asyncio.sleep(0.3)
        session._emit(UserSpeechStarted(now()))  # goes on: the turn is cancelled as "continued"
        await _early_then_final(session, "1234", "1234")  # the rest: early transcript, then its end of turn
    assert user_texts(llm) == ["my order number is", "my order number is 1234"]  # the whole, once
    assert session.metrics.early_answers == {"adopted": 1, "cancelled": 0}
    assert _agent_lines(rec) == ["Order 1234 arrives tomorrow."]
    assert list(session.history) == [("my order number is 1234", "Order 1234 arrives tomorrow.")]


async def test_the_same_words_adopt_whatever_the_case_and_punctuation() -> None:
    session, rec = make_session(reply="It arrives tomorrow.", first_token_s=0.05)
    async with session:
        llm = session.c.llm
        assert isinstance(llm, ScriptedLLM)
        await _early_then_final(session, "where is my order", "Where is my order?")
        assert session.metrics.early_answers == {"adopted": 1, "cancelled": 0}
        await _early_then_final(session, "Where is my order", "Where is my order, please?")  # a word more
    assert session.metrics.early_answers == {"adopted": 1, "cancelled": 1}
    assert user_texts(llm) == ["where is my order", "Where is my order", "Where is my order, please?"]
    assert _agent_lines(rec) == ["It arrives tomorrow.", "It arrives tomorrow."]
    assert session.turn_count == 2
