"""Early answers on real speech: espeak's voice -> Silero VAD (early ASR at 150 ms of silence) ->
faster-whisper tiny.en -> the conversation (scripted LLM, espeak TTS, portrait generator).

The microphone stops feeding at a chosen moment inside a pause until the test has seen what it
waits for (an early answer held), as a stalled input would: the end of turn, which counts the
pause's audio, cannot come first however slow the box is. No timing thresholds.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from agent.conversation import Conversation
from agent.frames import AudioChunk
from agent.session import AgentSession
from flowact.clock import RealClock
from plugins.llm_scripted import ScriptedLLM
from plugins.turn_smart import EndOfTurnConfig
from plugins.vad_silero import SileroVAD, SileroVADConfig
from tests.fixtures.session_parts import Recorder, build, make_session, user_texts
from tests.fixtures.speech import RATE, speech, trim

pytestmark = pytest.mark.timeout(300)

Step = np.ndarray | Callable[[], bool]


class GatedMic:
    """Plays its steps in real time (20 ms chunks): PCM is fed, a predicate stalls the input until it
    holds (nothing is fed meanwhile, so the VAD's silence does not grow); then silence."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.n = RATE // 50
        self.done = asyncio.Event()

    async def audio(self) -> AsyncIterator[AudioChunk]:
        clock = RealClock()
        sent = 0
        t0 = clock.now()
        for step in self.steps:
            if callable(step):
                for _ in range(6000):  # 120 s at most
                    if step():
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("the gated microphone waited 120 s in vain")
                t0, sent = clock.now(), 0  # real-time pace again from here (no burst to catch up)
                continue
            for i in range(0, len(step), self.n):
                await clock.sleep_until(t0 + sent / RATE)
                block = np.ascontiguousarray(np.pad(step[i : i + self.n], (0, max(0, self.n - len(step[i:])))))
                yield AudioChunk(block[: self.n].astype(np.int16), RATE, pts=sent / RATE)
                sent += self.n
        self.done.set()
        while True:  # the mic stays open (silence) until the session closes
            await clock.sleep_until(t0 + sent / RATE)
            yield AudioChunk(np.zeros(self.n, np.int16), RATE, pts=sent / RATE)
            sent += self.n


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def voice(text: str) -> np.ndarray:
    return trim(speech("espeak", text))


def spoken_session(reply: str) -> tuple[AgentSession, Recorder, ScriptedLLM]:
    session, rec = make_session(reply=reply, first_token_s=0.05)
    session.c.vad = SileroVAD(
        SileroVADConfig(end_silence_ms=700, end_of_turn=EndOfTurnConfig(early_asr_ms=150)), sample_rate=RATE
    )
    session.c.asr = build("asr", "faster_whisper")
    llm = session.c.llm
    assert isinstance(llm, ScriptedLLM)
    return session, rec, llm


def conv(session: AgentSession) -> Conversation:
    assert session._conversation is not None
    return session._conversation


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def agent_lines(rec: Recorder) -> list[str]:
    return [p["text"] for _, k, p in rec.events if k == "transcript" and p["role"] == "agent"]


async def test_a_spoken_turn_adopts_the_answer_begun_in_its_pause() -> None:
    session, rec, llm = spoken_session("Order 1234 arrives tomorrow.")
    mic = GatedMic([silence(0.5), voice("Where is my order from last week?"), silence(0.3),
                    lambda: conv(session).early_pending, silence(1.5)])
    session.c.audio_input = mic
    async with session:
        await asyncio.wait_for(mic.done.wait(), 180)
        await session.wait_reply(0, timeout=120)
        await session.wait_idle(timeout=120)
    (asked,) = user_texts(llm)  # the LLM was asked once: the early answer was the turn's
    assert {"where", "week"} <= words(asked), asked
    assert session.metrics.early_answers == {"adopted": 1, "cancelled": 0}
    assert session.metrics.early_asr["used"] == 1  # the turn's transcript was the pause's
    assert agent_lines(rec) == ["Order 1234 arrives tomorrow."]
    (row,) = session.metrics.turn_table()
    assert row["llm_request"] < 0  # asked before the end-of-turn decision (the table counts from it)


async def test_the_voice_going_on_cancels_the_early_answer_at_once() -> None:
    """An early answer is held for "My order number is"; the user goes on. It is cancelled at the
    first voiced frame (before the rest is even over, so it never holds the LLM), and the whole
    question gets one answer."""
    session, rec, llm = spoken_session("Order 456 is on its way.")
    held: list[asyncio.Task[Any]] = []
    at_resume: list[tuple[bool, int, list[str]]] = []  # once the rest is said, before its end of turn

    def early_held() -> bool:
        early = conv(session)._early
        if early is None:
            return False
        held.append(early.task)
        return True

    def early_gone() -> bool:
        if not held[0].done():
            return False
        at_resume.append((held[0].cancelled(), session.turn_count, agent_lines(rec)))
        return True

    mic = GatedMic([silence(0.5), voice("My order number is"), silence(0.3), early_held,
                    voice("four five six, and it is late."), early_gone, silence(1.5)])
    session.c.audio_input = mic
    async with session:
        await asyncio.wait_for(mic.done.wait(), 180)
        assert at_resume == [(True, 0, [])]  # cancelled, with no turn and nothing said, before any end of turn
        await session.wait_reply(0, timeout=120)
        await session.wait_idle(timeout=120)
    first, *rest = user_texts(llm)
    assert "late" not in words(first)  # the early answer was to the unfinished words
    assert rest and {"order", "late"} <= words(rest[-1]), rest  # the answer is to the whole question
    assert agent_lines(rec) == ["Order 456 is on its way."]  # one answer
    assert session.turn_count == 1
    assert session.metrics.early_answers["cancelled"] >= 1
    assert session.metrics.early_asr["dropped"] >= 1
