"""AgentSession end to end with real TTS (espeak-ng) and the real portrait generator.

The LLM is the scripted engine (orchestration tests; the real LLM plugin has its own tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import pytest

from agent.frames import VadEvent
from agent.interfaces import ChatMessage
from agent.session import AgentSession, Components
from flowact.types import EXPRESSIONS, AgentState
from plugins.llm_scripted import ScriptedLLM, ScriptedLLMConfig
from plugins.sink_file import NullSink
from tests.fixtures.session_parts import StallingSink, make_session, session_config

pytestmark = pytest.mark.timeout(120)


def speech_energy(chunks: list) -> np.ndarray:
    return np.array([float(np.sqrt(np.mean(c.audio.astype(np.float32) ** 2))) for c in chunks])


async def wait_for(pred, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def test_typed_turn_speaks_with_ordered_latencies() -> None:
    session, rec = make_session(reply="[smile] Hello! Your order arrives tomorrow.")
    async with session:
        await session.user_text("where is my order")
        await session.wait_idle(timeout=60)
        await asyncio.sleep(0.5)
    assert rec.states[:3] == [AgentState.THINKING, AgentState.SPEAKING, AgentState.IDLE]
    speaking = [c for c in rec.controls if c.state == AgentState.SPEAKING]
    assert speaking, "no speaking chunks"
    assert speech_energy(speaking).max() > 500  # the speech audio rides in the control chunks
    turns = session.metrics.turn_table()
    assert len(turns) == 1
    t = turns[0]
    assert 0 < t["llm_first_token"] <= t["tts_first_audio"] <= t["first_frame"] < 10
    agent_lines = [p["text"] for _, k, p in rec.events if k == "transcript" and p["role"] == "agent"]
    assert agent_lines == ["Hello! Your order arrives tomorrow."]  # tags never reach the speech
    smiles = [e for c in rec.controls for e in c.events if e.name == "smile"]
    assert len(smiles) == 1  # [smile] reached the face: a gesture, once (it is not an expression channel)
    assert rec.controls[0].expressions.shape[1] == len(EXPRESSIONS)
    thinking = max(float(c.expressions[:, EXPRESSIONS.index("thinking")].max()) for c in rec.controls)
    assert thinking > 0.0  # the thinking face while the LLM wrote
    # every frame written, audio and video aligned within one frame
    assert abs(session.metrics.av_offset_ms) <= 40.0
    assert session.metrics.frames_written == session.timeline.frames_per_chunk * len(rec.videos)


async def test_barge_in_cancels_within_100ms_and_returns_to_listening() -> None:
    session, rec = make_session()
    async with session:
        await session.user_text("tell me about my order")
        await wait_for(lambda: session.state == AgentState.SPEAKING)
        await asyncio.sleep(0.5)
        assert session._conversation is not None
        turn_task = session._conversation.turn_task
        assert turn_task is not None and not turn_task.done()
        n_before = len(rec.controls)
        t0 = time.monotonic()
        session.handle_vad(VadEvent(speaking=True, t=0.0))
        await asyncio.wait({turn_task}, timeout=1.0)
        cancel_ms = (time.monotonic() - t0) * 1000
        assert turn_task.done() and cancel_ms < 100, f"cancelled after {cancel_ms:.1f} ms"
        assert session.state == AgentState.LISTENING
        assert session.builder.speech_pending_s == 0.0
        await asyncio.sleep(1.0)
    after = rec.controls[n_before:]
    assert after and after[0].interrupt  # the generator is told to ease back
    assert all(c.state == AgentState.LISTENING for c in after[1:])
    assert speech_energy(after).max() < 50  # no agent speech after the barge-in
    # the chunks built before the barge-in but not yet written were muted at the sink
    written_after = [v for v in rec.videos if v.index >= n_before]
    assert speech_energy(written_after).max() < 50
    assert "interrupt" in rec.kinds() and session.metrics.barge_ins == 1


async def test_barge_in_while_thinking_and_during_first_tts_chunk() -> None:
    session, rec = make_session(first_token_s=0.4)
    async with session:
        await session.user_text("first question")
        await asyncio.sleep(0.1)  # the LLM has not answered yet
        assert session.state == AgentState.THINKING
        session.handle_vad(VadEvent(speaking=True, t=0.0))
        assert session.state == AgentState.LISTENING
        session.handle_vad(VadEvent(speaking=False, t=0.0))
        await session.user_text("second question")
        # barge in the moment the first speech chunk is queued
        await wait_for(lambda: session.builder.speech_pending_s > 0)
        session.handle_vad(VadEvent(speaking=True, t=0.0))
        assert session.builder.speech_pending_s == 0.0
        session.handle_vad(VadEvent(speaking=False, t=0.0))
        await session.user_text("third question")  # double barge-in, then a normal turn
        await session.wait_idle(timeout=60)
    turns = session.metrics.turn_table()
    assert [t["interrupted"] for t in turns] == [True, True, False]
    assert session.metrics.barge_ins == 2
    assert rec.states[-1] == AgentState.IDLE


async def test_engine_error_ends_the_turn_not_the_session() -> None:
    session, rec = make_session(fail_with="model exploded")
    async with session:
        await session.user_text("hi")
        await session.wait_idle(timeout=30)
        errors = [p for _, k, p in rec.events if k == "error"]
        assert errors and "model exploded" in errors[0]["error"] and errors[0]["retryable"] is False
        assert session.state == AgentState.IDLE
        n = session.metrics.frames_written
        await asyncio.sleep(0.5)
        assert session.metrics.frames_written > n  # the stream keeps running


async def test_stalled_sink_keeps_queues_bounded_and_audio_whole() -> None:
    sink = StallingSink(stall_at_chunk=5, stall_s=1.5)
    session, rec = make_session(sink=sink)
    async with session:
        await session.user_text("hello")
        await asyncio.sleep(4.0)
        media = session._media
        assert media is not None
        assert media.max_queue_seen <= 3
        built, written = media.chunks_built, media.chunks_written
    spc = session.timeline.samples_per_chunk
    assert sink.audio_samples == sink.chunks * spc  # audio never dropped or stretched
    assert built - written <= 6
    m = session.metrics
    assert m.frames_dropped + m.frames_repeated > 0  # the stall cost video only, and it was counted
    assert m.frames_written + m.frames_dropped == session.timeline.frames_per_chunk * sink.chunks


async def test_shutdown_cancels_everything() -> None:
    session, _ = make_session()
    await session.start()
    await session.user_text("talk to me")
    await asyncio.sleep(0.8)
    tasks = session.tasks
    assert tasks
    await session.aclose()
    assert all(t.done() for t in tasks)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == [], [t.get_name() for t in others]


async def test_history_is_bounded() -> None:
    session, _ = make_session(reply="Sure.", history_turns=2)
    async with session:
        for i in range(5):
            await session.user_text(f"question {i}")
            await session.wait_idle(timeout=30)
    assert 1 <= len(session.history) <= 2  # exchanges (past the bound, dropped down to half of it)
    assert list(session.history)[-1][0] == "question 4"


class PrimingLLM(ScriptedLLM):
    """The scripted LLM, noting each prompt prefix it is asked to evaluate ahead of a turn."""

    def __init__(self, config: ScriptedLLMConfig, *, says_as_written: bool = False) -> None:
        super().__init__(config)
        self.primed: list[list[str]] = []
        self.cache_behind = says_as_written  # every reply a tool's line or the knowledge base's sentences

    async def warmup(self, messages: Sequence[ChatMessage]) -> None:
        self.primed.append([m.content for m in messages])


async def test_a_reply_said_as_written_is_evaluated_before_the_next_question() -> None:
    """A reply the LLM's server never completed itself (a tool's line, the knowledge base's sentences:
    `cache_behind`) leaves its prompt cache behind the conversation: the session has it evaluate the
    conversation so far while the reply plays, not when the next question comes."""
    llm = PrimingLLM(ScriptedLLMConfig(replies=["Order 1234 shipped on Monday."], first_token_s=0.0),
                     says_as_written=True)
    session = AgentSession(session_config(system_prompt="Be brief."), components=Components(llm=llm, sink=NullSink()))
    async with session:
        at_start = len(llm.primed)
        for i in range(2):
            await session.user_text(f"where is order 1234, take {i}")
            await session.wait_idle(timeout=30)
            for _ in range(100):  # the priming runs in the background
                if len(llm.primed) > at_start + i:
                    break
                await asyncio.sleep(0.02)
    assert llm.primed[at_start:] == [
        ["Be brief.", "where is order 1234, take 0", "Order 1234 shipped on Monday."],
        ["Be brief.", "where is order 1234, take 0", "Order 1234 shipped on Monday.",
         "where is order 1234, take 1", "Order 1234 shipped on Monday."],
    ]


async def test_a_dropped_history_block_is_evaluated_before_the_next_question() -> None:
    """Past the history bound the oldest exchanges go in a block, and the LLM is asked at once to
    evaluate the new prompt prefix (system prompt + what is kept), not on the next question."""
    llm = PrimingLLM(ScriptedLLMConfig(replies=["Sure."], first_token_s=0.0))
    session = AgentSession(session_config(history_turns=4, system_prompt="Be brief."),
                           components=Components(llm=llm, sink=NullSink()))
    async with session:
        at_start = list(llm.primed)  # the session's own warm-up (the system prompt)
        for i in range(5):
            await session.user_text(f"question {i}")
            await session.wait_idle(timeout=30)
            if i < 4:
                assert llm.primed == at_start  # within the bound: the cached prefix still holds
        for _ in range(100):  # the priming runs in the background
            if len(llm.primed) > len(at_start):
                break
            await asyncio.sleep(0.02)
    kept = [q for q, _ in session.history]
    assert kept == ["question 3", "question 4"]  # down to half of 4
    assert llm.primed[len(at_start):] == [["Be brief.", "question 3", "Sure.", "question 4", "Sure."]]


async def test_emotion_command_with_duration_returns_to_neutral() -> None:
    from agent.commands import EmotionCommand

    session, rec = make_session()
    async with session:
        await session.handle_command(EmotionCommand(name="happy", intensity=0.9, duration=0.6))
        await asyncio.sleep(0.6)
        peak = max(float(c.expressions[:, 0].max()) for c in rec.controls)
        await asyncio.sleep(2.0)
        last = float(rec.controls[-1].expressions[:, 0].max())
    assert peak > 0.4  # "happy" is the first expression channel
    assert last < 0.1
